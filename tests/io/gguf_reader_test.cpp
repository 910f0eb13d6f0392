// GgufFile against damaged files: a valid file written by GgufWriter, then truncated at many
// offsets, given a bad magic or version, huge counts, unknown value and tensor types, misaligned,
// overlapping and out-of-file offsets, string and array lengths past the end, dims whose product
// overflows, and random byte flips. Each must be one llm::Error naming what is wrong (or, for a
// flip that leaves a valid file, a clean read), never a crash: this module also runs under
// AddressSanitizer in CI (scripts/test.sh).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "io/io_test_util.h"
#include "llm/gguf.h"
#include "llm/gguf_reader.h"
#include "test_util.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

// A small valid file: every value kind the reader parses, and two tensors (f32 and q8_0).
std::string valid_file(const TempDir& dir) {
  GgufWriter w;
  w.add_string("general.architecture", "qwen2");
  w.add_u32("qwen2.block_count", 3);
  w.add_f32("qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  w.add_array("tokenizer.ggml.token_type", std::vector<int32_t>{1, 3, 4});
  w.add_array("tokenizer.ggml.tokens", std::vector<std::string>{"alpha", "beta", "gamma"});
  std::mt19937_64 g = rng();
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> a(2 * 32), b(3 * 64);
  for (float& v : a) v = u(g);
  for (float& v : b) v = u(g);
  std::vector<uint8_t> ab(a.size() * 4), bb(ggml_row_bytes(GgmlType::Q8_0, 3 * 64));
  ggml_quantize(GgmlType::F32, a.data(), 64, ab.data());
  ggml_quantize(GgmlType::Q8_0, b.data(), 3 * 64, bb.data());
  w.add_tensor("tensor.alpha", {2, 32}, GgmlType::F32, ab);
  w.add_tensor("tensor.beta", {3, 64}, GgmlType::Q8_0, bb);
  w.write(dir / "valid.gguf");
  return read_bytes(dir / "valid.gguf");
}

size_t find(const std::string& bytes, std::string_view what) {
  const size_t at = bytes.find(what);
  if (at == std::string::npos) throw Error(cat("test: \"", what, "\" not in the file"));
  return at;
}

template <class T>
void put(std::string& bytes, size_t at, T v) {
  std::memcpy(bytes.data() + at, &v, sizeof v);
}

// Writes the damaged bytes and expects opening them to fail naming each of parts.
void expect_bad(const TempDir& dir, const std::string& bytes, const std::vector<std::string>& parts) {
  const fs::path p = dir / "bad.gguf";
  write_bytes(p, bytes);
  std::vector<std::string> all = parts;
  all.push_back(p.string());
  expect_error([&] { GgufFile f(p); }, all);
}

// Where a tensor's info fields are: after its name, n_dims (u32), dims (u64 each), type, offset.
struct InfoAt {
  size_t n_dims, dims, type, offset;
};
InfoAt info_at(const std::string& bytes, std::string_view name, uint32_t n_dims) {
  const size_t nd = find(bytes, name) + name.size();
  return {nd, nd + 4, nd + 4 + 8 * n_dims, nd + 4 + 8 * n_dims + 4};
}

TEST(GgufReader, ReadsTheValidFile) {
  TempDir dir;
  valid_file(dir);
  const GgufFile f(dir / "valid.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "qwen2");
  EXPECT_EQ(f.get_int("qwen2.block_count"), 3);
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("qwen2.attention.layer_norm_rms_epsilon")), 1e-6f);
  EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type"), (std::vector<int64_t>{1, 3, 4}));
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens"), (std::vector<std::string_view>{"alpha", "beta", "gamma"}));
  const auto& beta = f.tensor("tensor.beta");
  EXPECT_EQ(beta.type, GgmlType::Q8_0);
  EXPECT_EQ(beta.shape, (std::vector<int64_t>{3, 64}));
  EXPECT_EQ(beta.bytes, ggml_row_bytes(GgmlType::Q8_0, 3 * 64));
  EXPECT_EQ(beta.offset % 32, 0u);
  expect_error([&] { f.get_int("general.architecture"); }, {"general.architecture", "expected an integer"});
  expect_error([&] { f.get_string("no.such.key"); }, {"no.such.key", "missing"});
  expect_error([&] { f.tensor("tensor.gamma"); }, {"tensor.gamma", "missing"});
}

TEST(GgufReader, TruncatedAnywhereIsAnError) {
  TempDir dir;
  const std::string good = valid_file(dir);
  uint64_t end = 0;
  {
    const GgufFile f(dir / "valid.gguf");
    for (const auto& t : f.tensors()) end = std::max(end, t.offset + t.bytes);
  }
  // Every offset of the header and metadata, then strides through the data.
  const size_t meta = find(good, "tensor.beta") + 40;
  for (size_t n = 0; n < end; n += n < meta ? 1 : 7) {
    const fs::path p = dir / "cut.gguf";
    write_bytes(p, good.substr(0, n));
    EXPECT_THROW(GgufFile f(p), Error) << "truncated to " << n << " bytes";
  }
}

TEST(GgufReader, BadHeaderFieldsAreNamed) {
  TempDir dir;
  const std::string good = valid_file(dir);
  std::string b = good;
  b[0] = 'X';
  expect_bad(dir, b, {"byte 0", "not a GGUF file"});
  for (uint32_t v : {1u, 4u, 0xFFFFFFFFu}) {
    b = good;
    put(b, 4, v);
    expect_bad(dir, b, {"byte 4", cat("version ", v)});
  }
  b = good;
  put(b, 8, uint64_t{1} << 62);
  expect_bad(dir, b, {"tensor count", "cannot fit"});
  b = good;
  put(b, 16, ~uint64_t{0});
  expect_bad(dir, b, {"key/value count", "cannot fit"});
}

TEST(GgufReader, BadMetadataIsNamed) {
  TempDir dir;
  const std::string good = valid_file(dir);
  const std::string key = "qwen2.block_count";
  const size_t key_at = find(good, key);
  std::string b = good;
  put(b, key_at + key.size(), uint32_t{99});
  expect_bad(dir, b, {key, "unknown value type 99"});
  b = good;
  put(b, key_at - 8, uint64_t{1} << 60);
  expect_bad(dir, b, {"string length", "past the end"});
  const std::string arr = "tokenizer.ggml.token_type";
  const size_t arr_at = find(good, arr) + arr.size();
  b = good;
  put(b, arr_at + 4, uint32_t{77});  // element type
  expect_bad(dir, b, {arr, "unknown array element type 77"});
  b = good;
  put(b, arr_at + 8, uint64_t{1} << 61);  // array length
  expect_bad(dir, b, {arr, "array length", "past the end"});
  const std::string strs = "tokenizer.ggml.tokens";
  b = good;
  put(b, find(good, strs) + strs.size() + 8, uint64_t{1} << 40);
  expect_bad(dir, b, {strs, "array length"});
  b = good;
  put(b, find(good, "gamma") - 8, uint64_t{1} << 50);
  expect_bad(dir, b, {"tokenizer.ggml.tokens[2]", "string length"});
  const std::string al = "general.alignment";
  b = good;
  put(b, find(good, al) + al.size() + 4, uint32_t{48});
  expect_bad(dir, b, {al, "48 is not a power of two"});
}

TEST(GgufReader, BadTensorInfosAreNamed) {
  TempDir dir;
  const std::string good = valid_file(dir);
  const InfoAt alpha = info_at(good, "tensor.alpha", 2), beta = info_at(good, "tensor.beta", 2);
  std::string b = good;
  put(b, beta.type, uint32_t{99});
  expect_bad(dir, b, {"tensor.beta", "ggml type 99", "not supported"});
  b = good;
  put(b, beta.type, uint32_t{3});
  expect_bad(dir, b, {"tensor.beta", "ggml type 3 (q4_1)"});
  b = good;
  put(b, beta.offset, uint64_t{5});
  expect_bad(dir, b, {"tensor.beta", "not a multiple of the alignment"});
  b = good;
  put(b, beta.offset, uint64_t{0});  // where alpha is
  expect_bad(dir, b, {"overlaps", "tensor.alpha"});
  b = good;
  put(b, beta.offset, uint64_t{1} << 50);
  expect_bad(dir, b, {"tensor.beta", "past the end of the file"});
  b = good;
  put(b, beta.offset, ~uint64_t{0} & ~uint64_t{31});  // the sum with the data start overflows
  expect_bad(dir, b, {"tensor.beta", "past the end of the file"});
  b = good;
  put(b, alpha.dims, uint64_t{1} << 40);
  put(b, alpha.dims + 8, uint64_t{1} << 40);
  expect_bad(dir, b, {"tensor.alpha", "product of the dims overflows"});
  b = good;
  put(b, alpha.dims + 8, uint64_t{0});
  expect_bad(dir, b, {"tensor.alpha", "dim 1 = 0"});
  b = good;
  put(b, beta.dims, uint64_t{48});  // not whole q8_0 blocks
  expect_bad(dir, b, {"tensor.beta", "48 values per row", "q8_0"});
  b = good;
  put(b, alpha.n_dims, uint32_t{7});
  expect_bad(dir, b, {"tensor.alpha", "n_dims 7"});
  b = good;
  put(b, beta.dims + 8, uint64_t{1000});  // 1000 rows: far more bytes than the file holds
  expect_bad(dir, b, {"tensor.beta", "past the end of the file"});
}

// Random single-byte changes over the header, metadata and tensor infos: a clean read or one
// llm::Error, nothing else (under ASan, no out-of-bounds read either).
TEST(GgufReader, RandomByteFlipsNeverCrash) {
  TempDir dir;
  const std::string good = valid_file(dir);
  const size_t meta = find(good, "tensor.beta") + 40;
  std::mt19937_64 g = rng();
  int errors = 0;
  for (int i = 0; i < 400; ++i) {
    std::string b = good;
    const int flips = 1 + static_cast<int>(g() % 3);
    for (int k = 0; k < flips; ++k) b[g() % meta] = static_cast<char>(g() & 0xFF);
    write_bytes(dir / "flip.gguf", b);
    try {
      const GgufFile f(dir / "flip.gguf");
      for (const auto& t : f.tensors()) ASSERT_LE(t.offset + t.bytes, f.file_size());
    } catch (const Error& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find("flip.gguf"), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(errors, 0);
}

}  // namespace
}  // namespace llm::test
