// Token shards (*.tok): a fixed 256-byte little-endian header, then token ids of 2 or 4 bytes.
// The layout is written down byte by byte in docs/data.md. Shards are written to a temporary
// name, fsynced and renamed, and read by mmap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace llm {

inline constexpr char kShardMagic[8] = {'L', 'L', 'M', 'T', 'O', 'K', 'E', 'N'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 256;
inline constexpr size_t kShardFingerprintBytes = 128;

// Header flag: one flag byte per token follows the token ids (chat data; docs/data.md).
inline constexpr uint32_t kShardHasTokenFlags = 1;
// Bits of a token's flag byte.
inline constexpr uint8_t kTokenTrained = 1;   // predicting this token from the one before is trained on
inline constexpr uint8_t kTokenDocStart = 2;  // the first token of a document (a conversation)

struct ShardHeader {
  uint32_t version = kShardVersion;
  uint32_t token_width = 2;  // bytes per token: 2 when vocab_size <= 65536, else 4
  uint32_t vocab_size = 0;
  uint64_t token_count = 0;
  uint64_t document_count = 0;  // documents whose end-of-text token lies in this shard
  uint32_t flags = 0;           // kShardHasTokenFlags or 0
  std::string fingerprint;      // the tokenizer's fingerprint (at most 128 bytes)
};

// 2 when every id < vocab_size fits 16 bits, else 4.
uint32_t token_width_for_vocab(uint64_t vocab_size);

// The 256 header bytes of h (checks the fields it can).
std::vector<unsigned char> encode_shard_header(const ShardHeader& h);

// A shard mapped read-only. Opening checks the header (magic, version, width, the token count
// against the file size) and, when expected_fingerprint is not empty, the tokenizer
// fingerprint; every error names the file and, where it applies, the byte offset.
class ShardFile {
 public:
  explicit ShardFile(const std::filesystem::path& path, const std::string& expected_fingerprint = "");
  ~ShardFile();
  ShardFile(const ShardFile&) = delete;
  ShardFile& operator=(const ShardFile&) = delete;
  ShardFile(ShardFile&& o) noexcept;
  ShardFile& operator=(ShardFile&& o) noexcept;

  const std::filesystem::path& path() const { return path_; }
  const ShardHeader& header() const { return header_; }
  uint64_t size() const { return header_.token_count; }

  // Copies tokens [begin, begin + out.size()) into out, checking each id is < vocab_size
  // (an error names the file and the byte offset of the bad token).
  void read(uint64_t begin, std::span<int32_t> out) const;
  // Checks every token id (a full pass over the file).
  void verify_tokens() const;
  // True when the shard carries a flag byte per token (kTokenTrained, kTokenDocStart).
  bool has_token_flags() const { return (header_.flags & kShardHasTokenFlags) != 0; }
  // Copies the flags of tokens [begin, begin + out.size()) into out; an error without flags.
  void read_flags(uint64_t begin, std::span<uint8_t> out) const;

 private:
  void unmap() noexcept;
  [[noreturn]] void bad_token(uint64_t index, uint64_t value) const;

  std::filesystem::path path_;
  ShardHeader header_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
};

// Writes one shard: tokens stream to a temporary file next to `path`; commit() writes the
// header, fsyncs and renames. Destroyed without commit(), the temporary file is removed, so a
// half-written shard never appears under its final name.
class ShardWriter {
 public:
  // with_flags: every append() carries one flag byte per token, written after the ids.
  ShardWriter(std::filesystem::path path, uint32_t vocab_size, std::string fingerprint, bool with_flags = false);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Appends ids (each must be < vocab_size); flags (one per id) exactly when the writer has them.
  void append(std::span<const int32_t> ids, std::span<const uint8_t> flags = {});
  // Counts one more document ending in this shard.
  void end_document() { ++header_.document_count; }
  uint64_t tokens() const { return header_.token_count; }
  void commit();

 private:
  void flush();

  std::filesystem::path path_, tmp_;
  ShardHeader header_;
  int fd_ = -1;
  std::vector<unsigned char> buf_;
  std::vector<uint8_t> flags_;  // written after the ids by commit()
};

// Writes a whole shard at once (tests, small tools).
void write_shard(const std::filesystem::path& path, std::span<const int32_t> ids, uint32_t vocab_size,
                 const std::string& fingerprint, uint64_t document_count, std::span<const uint8_t> flags = {});

}  // namespace llm
