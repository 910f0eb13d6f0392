#include "llm/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "llm/atomic_file.h"
#include "llm/checksum.h"
#include "llm/error.h"

namespace llm {

static_assert(std::endian::native == std::endian::little,
              "shards are little-endian and read in place by mmap: a big-endian host needs byte swaps");

namespace fs = std::filesystem;

namespace {

// Field offsets in the header (docs/data.md has the table).
constexpr size_t kOffMagic = 0, kOffVersion = 8, kOffHeaderBytes = 12, kOffWidth = 16, kOffVocab = 20, kOffTokens = 24,
                 kOffDocs = 32, kOffFpLen = 40, kOffFlags = 44, kOffFp = 48, kOffHeaderHash = 248;

std::string errno_text(int err) { return std::generic_category().message(err); }

void put_u32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put_u64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
uint32_t get_u32(const unsigned char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
uint64_t get_u64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

std::string printable(const unsigned char* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = p[i];
    if (c >= 32 && c < 127) {
      s += static_cast<char>(c);
    } else {
      static const char* hex = "0123456789abcdef";
      s += "\\x";
      s += hex[c >> 4];
      s += hex[c & 15];
    }
  }
  return s;
}

void write_all_at(int fd, const void* data, size_t n, off_t offset, const fs::path& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = offset >= 0 ? ::pwrite(fd, p, n, offset) : ::write(fd, p, n);
    if (w < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      fail(path, ": write failed: ", errno_text(err));
    }
    p += w;
    n -= static_cast<size_t>(w);
    if (offset >= 0) offset += w;
  }
}

}  // namespace

uint32_t token_width_for_vocab(uint64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

std::vector<unsigned char> encode_shard_header(const ShardHeader& h) {
  LLM_CHECK(h.vocab_size > 0, "shard header: vocab_size must be positive");
  LLM_CHECK(h.token_width == token_width_for_vocab(h.vocab_size), "shard header: token width ", h.token_width,
            " does not match vocab size ", h.vocab_size, " (expected ", token_width_for_vocab(h.vocab_size), ")");
  LLM_CHECK(h.fingerprint.size() <= kShardFingerprintBytes, "shard header: tokenizer fingerprint has ",
            h.fingerprint.size(), " bytes, at most ", kShardFingerprintBytes, " fit");
  std::vector<unsigned char> b(kShardHeaderBytes, 0);
  std::memcpy(b.data() + kOffMagic, kShardMagic, sizeof kShardMagic);
  put_u32(b.data() + kOffVersion, h.version);
  put_u32(b.data() + kOffHeaderBytes, static_cast<uint32_t>(kShardHeaderBytes));
  put_u32(b.data() + kOffWidth, h.token_width);
  put_u32(b.data() + kOffVocab, h.vocab_size);
  put_u64(b.data() + kOffTokens, h.token_count);
  put_u64(b.data() + kOffDocs, h.document_count);
  put_u32(b.data() + kOffFpLen, static_cast<uint32_t>(h.fingerprint.size()));
  LLM_CHECK((h.flags & ~kShardHasTokenFlags) == 0, "shard header: unknown flags ", h.flags);
  put_u32(b.data() + kOffFlags, h.flags);
  std::memcpy(b.data() + kOffFp, h.fingerprint.data(), h.fingerprint.size());
  // The header's own checksum: a flipped bit in a count or the fingerprint is caught on open.
  put_u64(b.data() + kOffHeaderHash, xxh3_bytes(b.data(), kOffHeaderHash));
  return b;
}

// ---- reading ------------------------------------------------------------------------------------

ShardFile::ShardFile(const fs::path& path, const std::string& expected_fingerprint) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    fail(path, ": cannot open shard: ", errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, ": cannot stat shard: ", errno_text(err));
  }
  const auto file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < kShardHeaderBytes) {
    ::close(fd);
    fail(path, ": truncated shard: the header needs ", kShardHeaderBytes, " bytes, the file has ", file_bytes);
  }
  map_bytes_ = static_cast<size_t>(file_bytes);
  void* m = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_SHARED, fd, 0);
  const int map_err = errno;
  ::close(fd);  // the mapping keeps the file
  if (m == MAP_FAILED) {
    map_bytes_ = 0;
    fail(path, ": cannot mmap shard: ", errno_text(map_err));
  }
  map_ = m;
  try {
    const auto* b = static_cast<const unsigned char*>(map_);
    LLM_CHECK(std::memcmp(b + kOffMagic, kShardMagic, sizeof kShardMagic) == 0, path,
              ": not a token shard: bytes 0-7 are \"", printable(b, 8), "\", expected \"LLMTOKEN\"");
    header_.version = get_u32(b + kOffVersion);
    LLM_CHECK(header_.version == kShardVersion, path, ": unsupported shard format version ", header_.version,
              " at byte offset ", kOffVersion, " (this build reads version ", kShardVersion, ")");
    const uint32_t header_bytes = get_u32(b + kOffHeaderBytes);
    LLM_CHECK(header_bytes == kShardHeaderBytes, path, ": header size ", header_bytes, " at byte offset ",
              kOffHeaderBytes, ", expected ", kShardHeaderBytes);
    header_.token_width = get_u32(b + kOffWidth);
    header_.vocab_size = get_u32(b + kOffVocab);
    LLM_CHECK(header_.vocab_size > 0, path, ": vocab size 0 at byte offset ", kOffVocab);
    LLM_CHECK(header_.token_width == token_width_for_vocab(header_.vocab_size), path, ": token width ",
              header_.token_width, " at byte offset ", kOffWidth, " does not match vocab size ", header_.vocab_size,
              " (expected ", token_width_for_vocab(header_.vocab_size), ")");
    header_.token_count = get_u64(b + kOffTokens);
    header_.document_count = get_u64(b + kOffDocs);
    const uint32_t fp_len = get_u32(b + kOffFpLen);
    LLM_CHECK(fp_len <= kShardFingerprintBytes, path, ": fingerprint length ", fp_len, " at byte offset ", kOffFpLen,
              " exceeds ", kShardFingerprintBytes);
    header_.fingerprint.assign(reinterpret_cast<const char*>(b + kOffFp), fp_len);
    header_.flags = get_u32(b + kOffFlags);
    LLM_CHECK((header_.flags & ~kShardHasTokenFlags) == 0, path, ": unknown flags ", header_.flags, " at byte offset ",
              kOffFlags, " (this build knows ", kShardHasTokenFlags, ": token flags)");

    // Each token takes its id's width, plus one flag byte when the shard has token flags.
    const uint64_t per_token = header_.token_width + (has_token_flags() ? 1 : 0);
    const uint64_t data_bytes = file_bytes - kShardHeaderBytes;
    const uint64_t want = header_.token_count;
    LLM_CHECK(want <= data_bytes / per_token && data_bytes == want * per_token, path, ": the header (byte offset ",
              kOffTokens, ") says ", want, " tokens of ", per_token, " bytes, which needs ", kShardHeaderBytes, " + ",
              want, " * ", per_token, " bytes, but the file has ", file_bytes, " bytes",
              data_bytes < want * per_token ? " (truncated)" : "");
    // After the field checks (their messages are more specific), before the fingerprint's (a
    // damaged fingerprint is not a different tokenizer). Zero: a shard from before header checksums.
    const uint64_t header_hash = get_u64(b + kOffHeaderHash);
    LLM_CHECK(header_hash == 0 || header_hash == xxh3_bytes(b, kOffHeaderHash), path,
              ": damaged header: the checksum at byte offset ", kOffHeaderHash,
              " does not match bytes 0-247; prepare the data again (llmtrain prepare --force)");
    if (!expected_fingerprint.empty()) {
      LLM_CHECK(header_.fingerprint == expected_fingerprint, path, ": written with tokenizer fingerprint \"",
                header_.fingerprint, "\" (byte offset ", kOffFp, "), but the configured tokenizer has \"",
                expected_fingerprint, "\"; prepare the data again with this tokenizer");
    }
    // Shuffled sampling touches the file at random; don't let readahead waste I/O.
    ::madvise(map_, map_bytes_, MADV_RANDOM);
  } catch (...) {
    unmap();
    throw;
  }
}

ShardFile::~ShardFile() { unmap(); }

ShardFile::ShardFile(ShardFile&& o) noexcept
    : path_(std::move(o.path_)),
      header_(std::move(o.header_)),
      map_(std::exchange(o.map_, nullptr)),
      map_bytes_(std::exchange(o.map_bytes_, 0)) {}

ShardFile& ShardFile::operator=(ShardFile&& o) noexcept {
  if (this != &o) {
    unmap();
    path_ = std::move(o.path_);
    header_ = std::move(o.header_);
    map_ = std::exchange(o.map_, nullptr);
    map_bytes_ = std::exchange(o.map_bytes_, 0);
  }
  return *this;
}

void ShardFile::unmap() noexcept {
  if (map_) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
}

void ShardFile::bad_token(uint64_t index, uint64_t value) const {
  fail(path_, ": token ", index, " at byte offset ", kShardHeaderBytes + index * header_.token_width, " is ", value,
       ", not below the vocab size ", header_.vocab_size);
}

void ShardFile::read(uint64_t begin, std::span<int32_t> out) const {
  LLM_CHECK(begin <= header_.token_count && out.size() <= header_.token_count - begin, path_, ": reading tokens [",
            begin, ", ", begin + out.size(), ") of a shard with ", header_.token_count);
  const auto* base = static_cast<const unsigned char*>(map_) + kShardHeaderBytes;
  const uint32_t vocab = header_.vocab_size;
  // The header is 256 bytes and the mapping page-aligned, so the ids are naturally aligned.
  if (header_.token_width == 2) {
    const auto* t = reinterpret_cast<const uint16_t*>(base) + begin;
    for (size_t i = 0; i < out.size(); ++i) {
      if (t[i] >= vocab) bad_token(begin + i, t[i]);
      out[i] = t[i];
    }
  } else {
    const auto* t = reinterpret_cast<const uint32_t*>(base) + begin;
    for (size_t i = 0; i < out.size(); ++i) {
      if (t[i] >= vocab) bad_token(begin + i, t[i]);
      out[i] = static_cast<int32_t>(t[i]);
    }
  }
}

void ShardFile::verify_tokens() const {
  std::vector<int32_t> buf(1 << 16);
  for (uint64_t i = 0; i < header_.token_count; i += buf.size()) {
    const uint64_t n = std::min<uint64_t>(buf.size(), header_.token_count - i);
    read(i, std::span<int32_t>(buf.data(), n));
  }
}

void ShardFile::read_flags(uint64_t begin, std::span<uint8_t> out) const {
  LLM_CHECK(has_token_flags(), path_, ": the shard has no token flags (plain text shards have none)");
  LLM_CHECK(begin <= header_.token_count && out.size() <= header_.token_count - begin, path_, ": reading flags [",
            begin, ", ", begin + out.size(), ") of a shard with ", header_.token_count);
  const auto* flags =
      static_cast<const unsigned char*>(map_) + kShardHeaderBytes + header_.token_count * header_.token_width;
  std::memcpy(out.data(), flags + begin, out.size());
}

// ---- writing ------------------------------------------------------------------------------------

ShardWriter::ShardWriter(fs::path path, uint32_t vocab_size, std::string fingerprint, bool with_flags)
    : path_(std::move(path)) {
  header_.vocab_size = vocab_size;
  header_.flags = with_flags ? kShardHasTokenFlags : 0;
  header_.token_width = token_width_for_vocab(vocab_size);
  header_.fingerprint = std::move(fingerprint);
  encode_shard_header(header_);  // validates the fields before any file exists
  tmp_ = path_;
  tmp_ += cat(".tmp.", ::getpid());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int err = errno;
    fail(path_, ": cannot create shard (temp file ", tmp_, "): ", errno_text(err));
  }
  buf_.assign(kShardHeaderBytes, 0);  // placeholder; the real header is written by commit()
}

ShardWriter::~ShardWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void ShardWriter::append(std::span<const int32_t> ids, std::span<const uint8_t> flags) {
  LLM_CHECK(fd_ >= 0, path_, ": append after commit");
  const bool with_flags = (header_.flags & kShardHasTokenFlags) != 0;
  LLM_CHECK(flags.size() == (with_flags ? ids.size() : 0), path_, ": append of ", ids.size(), " ids with ",
            flags.size(), " flags to a shard ", with_flags ? "with" : "without", " token flags");
  flags_.insert(flags_.end(), flags.begin(), flags.end());
  const uint32_t w = header_.token_width;
  const size_t at = buf_.size();
  buf_.resize(at + ids.size() * w);
  unsigned char* p = buf_.data() + at;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    LLM_CHECK(id >= 0 && static_cast<uint32_t>(id) < header_.vocab_size, path_, ": token id ", id, " (token ",
              header_.token_count + i, ") is outside the vocabulary [0, ", header_.vocab_size, ")");
    const auto u = static_cast<uint32_t>(id);
    for (uint32_t k = 0; k < w; ++k) p[i * w + k] = static_cast<unsigned char>(u >> (8 * k));
  }
  header_.token_count += ids.size();
  if (buf_.size() >= (4u << 20)) flush();
}

void ShardWriter::flush() {
  write_all_at(fd_, buf_.data(), buf_.size(), -1, tmp_);
  buf_.clear();
}

void ShardWriter::commit() {
  LLM_CHECK(fd_ >= 0, path_, ": commit called twice");
  flush();
  write_all_at(fd_, flags_.data(), flags_.size(), -1, tmp_);  // the flag bytes follow the ids
  const std::vector<unsigned char> h = encode_shard_header(header_);
  write_all_at(fd_, h.data(), h.size(), 0, tmp_);
  if (::fsync(fd_) != 0) {
    const int err = errno;
    fail(tmp_, ": fsync failed: ", errno_text(err));
  }
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    fail(tmp_, ": close failed: ", errno_text(err));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    fail(path_, ": cannot rename ", tmp_, " to it: ", errno_text(err));
  }
  fsync_dir(path_.parent_path());
}

void write_shard(const fs::path& path, std::span<const int32_t> ids, uint32_t vocab_size,
                 const std::string& fingerprint, uint64_t document_count, std::span<const uint8_t> flags) {
  ShardWriter w(path, vocab_size, fingerprint, !flags.empty());
  w.append(ids, flags);
  for (uint64_t i = 0; i < document_count; ++i) w.end_document();
  w.commit();
}

}  // namespace llm
