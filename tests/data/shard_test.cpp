#include "llm/shard.h"
#include "llm/checksum.h"

#include <fstream>

#include "data_test_util.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

std::vector<int32_t> random_ids(std::mt19937_64& g, size_t n, int32_t vocab) {
  std::uniform_int_distribution<int32_t> d(0, vocab - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Overwrites bytes of a file in place.
void patch(const fs::path& p, size_t offset, const std::vector<unsigned char>& bytes) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good());
}

uint64_t le(const std::string& bytes, size_t offset, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  return v;
}

TEST(Shard, RoundTripTwoAndFourByteTokens) {
  auto g = rng();
  TempDir dir;
  for (int32_t vocab : {1000, 65536, 70000, 151936}) {
    const auto ids = random_ids(g, 1000 + g() % 5000, vocab);
    const fs::path p = dir / cat("s", vocab, ".tok");
    write_shard(p, ids, static_cast<uint32_t>(vocab), cat("fp-", vocab), 17);
    const uint32_t width = vocab <= 65536 ? 2 : 4;
    EXPECT_EQ(fs::file_size(p), 256 + ids.size() * width);

    // The bytes on disk follow docs/data.md, read here independently of the reader.
    const std::string raw = read_file(p);
    EXPECT_EQ(raw.substr(0, 8), "LLMTOKEN");
    EXPECT_EQ(le(raw, 8, 4), 1u);      // version
    EXPECT_EQ(le(raw, 12, 4), 256u);   // header bytes
    EXPECT_EQ(le(raw, 16, 4), width);  // token width
    EXPECT_EQ(le(raw, 20, 4), uint64_t(vocab));
    EXPECT_EQ(le(raw, 24, 8), ids.size());  // token count
    EXPECT_EQ(le(raw, 32, 8), 17u);         // documents
    const std::string fp = cat("fp-", vocab);
    EXPECT_EQ(le(raw, 40, 4), fp.size());
    EXPECT_EQ(raw.substr(48, fp.size()), fp);
    for (size_t i = 48 + fp.size(); i < 248; ++i) ASSERT_EQ(raw[i], 0) << "byte " << i;
    EXPECT_EQ(le(raw, 248, 8), xxh3_bytes(raw.data(), 248));  // the header's checksum
    for (size_t i = 0; i < ids.size(); ++i) ASSERT_EQ(le(raw, 256 + i * width, width), uint64_t(ids[i])) << i;

    ShardFile f(p, fp);
    EXPECT_EQ(f.header().token_width, width);
    EXPECT_EQ(f.header().vocab_size, uint32_t(vocab));
    EXPECT_EQ(f.header().document_count, 17u);
    EXPECT_EQ(f.header().fingerprint, fp);
    std::vector<int32_t> back(ids.size());
    f.read(0, back);
    EXPECT_EQ(back, ids);
    const size_t at = g() % ids.size();
    std::vector<int32_t> part(std::min<size_t>(37, ids.size() - at));
    f.read(at, part);
    EXPECT_TRUE(std::equal(part.begin(), part.end(), ids.begin() + static_cast<std::ptrdiff_t>(at)));
    f.verify_tokens();
  }
}

class ShardErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    auto g = rng();
    ids_ = random_ids(g, 500, 1000);
    path_ = dir_ / "bad.tok";
    write_shard(path_, ids_, 1000, "good-fp", 3);
  }
  TempDir dir_;
  fs::path path_;
  std::vector<int32_t> ids_;
};

TEST_F(ShardErrors, TruncatedTokens) {
  fs::resize_file(path_, 256 + 2 * 500 - 3);
  expect_error([&] { ShardFile f(path_); },
               {path_.string(), "500 tokens", "1253 bytes", "truncated", "byte offset 24"});
}

TEST_F(ShardErrors, TruncatedHeader) {
  fs::resize_file(path_, 100);
  expect_error([&] { ShardFile f(path_); }, {path_.string(), "truncated", "256 bytes", "has 100"});
}

TEST_F(ShardErrors, TrailingBytes) {
  std::ofstream(path_, std::ios::app | std::ios::binary) << "xyz";
  expect_error([&] { ShardFile f(path_); }, {path_.string(), "500 tokens", "file has 1259 bytes"});
}

TEST_F(ShardErrors, WrongMagic) {
  patch(path_, 0, {'G', 'G', 'U', 'F'});
  expect_error([&] { ShardFile f(path_); }, {path_.string(), "not a token shard", "GGUFOKEN", "LLMTOKEN"});
}

TEST_F(ShardErrors, UnsupportedVersion) {
  patch(path_, 8, {7, 0, 0, 0});
  expect_error([&] { ShardFile f(path_); }, {path_.string(), "unsupported shard format version 7", "byte offset 8"});
}

TEST_F(ShardErrors, WidthDisagreesWithVocab) {
  patch(path_, 16, {4, 0, 0, 0});
  expect_error([&] { ShardFile f(path_); }, {path_.string(), "token width 4", "byte offset 16", "vocab size 1000"});
}

TEST_F(ShardErrors, FingerprintMismatch) {
  expect_error([&] { ShardFile f(path_, "other-fp"); },
               {path_.string(), "\"good-fp\"", "\"other-fp\"", "byte offset 48", "prepare the data again"});
}

TEST_F(ShardErrors, TokenOutsideVocab) {
  auto g = rng();
  const size_t k = g() % ids_.size();
  patch(path_, 256 + 2 * k, {0xE8, 0x03});  // 1000 == vocab
  ShardFile f(path_);                       // the header is fine
  const std::string where = "token " + std::to_string(k) + " at byte offset " + std::to_string(256 + 2 * k);
  expect_error([&] { f.verify_tokens(); }, {path_.string(), where, "is 1000", "vocab size 1000"});
  std::vector<int32_t> out(ids_.size() - k);
  expect_error([&] { f.read(k, out); }, {path_.string(), where});
  if (k > 0) {  // a range before the bad token reads fine
    std::vector<int32_t> before(k);
    f.read(0, before);
    EXPECT_TRUE(std::equal(before.begin(), before.end(), ids_.begin()));
  }
}

TEST_F(ShardErrors, ReadPastTheEnd) {
  ShardFile f(path_);
  std::vector<int32_t> out(10);
  expect_error([&] { f.read(495, out); }, {path_.string(), "[495, 505)", "500"});
}

TEST(ShardWriterTest, RejectsBadIdsAndLeavesNoFileWithoutCommit) {
  TempDir dir;
  const fs::path p = dir / "w.tok";
  {
    ShardWriter w(p, 300, "fp");
    const std::vector<int32_t> good = {1, 2, 299};
    w.append(good);
    const std::vector<int32_t> bad = {5, 300};
    expect_error([&] { w.append(bad); }, {p.string(), "token id 300", "token 4", "[0, 300)"});
    const std::vector<int32_t> negative = {-1};
    expect_error([&] { w.append(negative); }, {p.string(), "token id -1"});
  }  // destroyed without commit
  EXPECT_FALSE(fs::exists(p));
  EXPECT_TRUE(fs::is_empty(dir.path()));
  expect_error([&] { ShardWriter w(p, 300, std::string(129, 'f')); }, {"fingerprint has 129 bytes", "128"});
  expect_error([&] { ShardFile f(dir / "missing.tok"); }, {(dir / "missing.tok").string(), "cannot open"});
}

}  // namespace
}  // namespace llm::test
