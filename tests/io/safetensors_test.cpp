// Safetensors round trips, files built by hand or by an independent Python reader/writer, and
// conversions. Malformed files are in safetensors_validation_test.cpp.
#include "llm/safetensors.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "io_test_util.h"
#include "test_util.h"

namespace llm {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::le_u64;
using test::read_bytes;
using test::safetensors_bytes;
using test::TempDir;
using test::write_bytes;

// Little-endian bytes of values, built with shifts (independent of memcpy and host layout).
std::string le_f32(std::initializer_list<float> vs) {
  std::string s;
  for (float v : vs) {
    const uint32_t b = std::bit_cast<uint32_t>(v);
    for (int i = 0; i < 4; ++i) s += static_cast<char>((b >> (8 * i)) & 0xffu);
  }
  return s;
}
std::string le_u16(std::initializer_list<uint16_t> vs) {
  std::string s;
  for (uint16_t v : vs) s += std::string{static_cast<char>(v & 0xffu), static_cast<char>(v >> 8)};
  return s;
}
std::string le_i64(std::initializer_list<int64_t> vs) {
  std::string s;
  for (int64_t v : vs) s += le_u64(static_cast<uint64_t>(v));
  return s;
}

std::vector<uint16_t> random_finite_f16_bits(std::mt19937_64& g, size_t n) {
  std::vector<uint16_t> v(n);
  for (auto& h : v) {
    do h = static_cast<uint16_t>(g());
    while ((h & 0x7c00u) == 0x7c00u);
  }
  return v;
}

template <class T>
std::string as_bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

std::string bytes_of(const SafetensorsReader& r, const SafetensorsTensor& t) {
  auto b = r.bytes(t);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// ---- round trip ----------------------------------------------------------------------------------

TEST(Safetensors, RoundTripAllDtypesScalarsAndEmptyTensors) {
  auto g = test::rng();
  const std::vector<float> f32 = test::randn(g, 15);
  const std::vector<uint16_t> f16 = random_finite_f16_bits(g, 7);
  std::vector<uint16_t> bf16(24);
  for (auto& b : bf16) b = static_cast<uint16_t>(g());  // any bits, NaNs included: bytes are copied
  std::vector<int32_t> i32(6);
  for (auto& v : i32) v = static_cast<int32_t>(g());
  std::vector<uint8_t> u8(11);  // odd size: the tensors after it start unaligned
  for (auto& v : u8) v = static_cast<uint8_t>(g());
  const std::vector<float> scalar = {test::randn(g, 1)[0]};
  const std::vector<float> after_u8 = test::randn(g, 3);

  struct Want {
    std::string name, dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  const std::vector<Want> want = {
      {"model.layers.0.w", "F32", {3, 5}, as_bytes(f32)},
      {"h", "F16", {7}, as_bytes(f16)},
      {"b", "BF16", {2, 3, 4}, as_bytes(bf16)},
      {"ids", "I32", {6}, as_bytes(i32)},
      {"empty_f32", "F32", {0, 3}, ""},
      {"bytes", "U8", {11}, as_bytes(u8)},
      {"scalar", "F32", {}, as_bytes(scalar)},
      {"empty_bf16", "BF16", {4, 0}, ""},
      {"after_u8", "F32", {3}, as_bytes(after_u8)},
  };
  SafetensorsWriter w;
  w.add("model.layers.0.w", DType::F32, {3, 5}, f32.data());
  w.add("h", DType::F16, {7}, f16.data());
  w.add("b", DType::BF16, {2, 3, 4}, bf16.data());
  w.add("ids", DType::I32, {6}, i32.data());
  w.add("empty_f32", DType::F32, {0, 3}, nullptr);
  w.add("bytes", DType::U8, {11}, u8.data());
  w.add("scalar", DType::F32, {}, scalar.data());
  w.add("empty_bf16", DType::BF16, {4, 0}, nullptr);
  w.add("after_u8", DType::F32, {3}, after_u8.data());
  TempDir dir;
  const fs::path path = dir / "m.safetensors";
  w.write(path);

  const std::string file = read_bytes(path);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(file[static_cast<size_t>(i)]);
  EXPECT_EQ(header_len % 8, 0u);

  SafetensorsReader r(path);
  EXPECT_EQ(r.path(), path);
  EXPECT_TRUE(r.metadata().empty());
  ASSERT_EQ(r.tensors().size(), want.size());
  uint64_t offset = 8 + header_len;  // written back to back, in the order added
  for (size_t i = 0; i < want.size(); ++i) {
    const SafetensorsTensor& t = r.tensors()[i];
    SCOPED_TRACE(want[i].name);
    EXPECT_EQ(t.name, want[i].name);
    EXPECT_EQ(t.dtype, want[i].dtype);
    EXPECT_EQ(t.shape, want[i].shape);
    EXPECT_EQ(t.offset, offset);
    EXPECT_EQ(t.nbytes, want[i].bytes.size());
    EXPECT_EQ(bytes_of(r, t), want[i].bytes);
    EXPECT_EQ(file.substr(offset, t.nbytes), want[i].bytes);
    EXPECT_EQ(r.find(want[i].name), &t);
    EXPECT_EQ(&r.at(want[i].name), &t);
    offset += t.nbytes;
  }
  EXPECT_EQ(offset, file.size());
  EXPECT_EQ(r.read_f32("model.layers.0.w"), f32);
  EXPECT_EQ(r.read_f32("scalar"), scalar);
  EXPECT_EQ(r.read_f32("after_u8"), after_u8);
  EXPECT_TRUE(r.read_f32("empty_bf16").empty());
  EXPECT_EQ(r.read_i32("ids"), i32);
  EXPECT_EQ(r.find("missing"), nullptr);
}

TEST(Safetensors, MetadataRoundTrip) {
  SafetensorsWriter w;
  w.add_metadata("format", "pt");
  w.add_metadata("note", "quotes \" backslash \\ newline \n unicode \xc3\xa4\xe2\x82\xac");
  w.add_metadata("empty", "");
  const float x = 1.0f;
  w.add("x", DType::F32, {1}, &x);
  TempDir dir;
  w.write(dir / "m.safetensors");
  SafetensorsReader r(dir / "m.safetensors");
  const std::map<std::string, std::string> want = {
      {"format", "pt"}, {"note", "quotes \" backslash \\ newline \n unicode \xc3\xa4\xe2\x82\xac"}, {"empty", ""}};
  EXPECT_EQ(r.metadata(), want);
  EXPECT_EQ(r.read_f32("x"), std::vector<float>{1.0f});
}

TEST(Safetensors, RewriteReplacesFileAtomically) {
  TempDir dir;
  const float a = 1.0f, b[2] = {2.0f, 3.0f};
  SafetensorsWriter w1;
  w1.add("a", DType::F32, {}, &a);
  w1.write(dir / "m.safetensors");
  SafetensorsWriter w2;
  w2.add("b", DType::F32, {2}, b);
  w2.write(dir / "m.safetensors");
  SafetensorsReader r(dir / "m.safetensors");
  ASSERT_EQ(r.tensors().size(), 1u);
  EXPECT_EQ(r.read_f32("b"), (std::vector<float>{2.0f, 3.0f}));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

// ---- byte-exact layout, independent of our reader ------------------------------------------------

TEST(Safetensors, WriterProducesHfByteLayout) {
  // The layout HF's serializer produces for these inputs (compact JSON, keys dtype/shape/
  // data_offsets, header padded with spaces to a multiple of 8), spelled out by hand.
  const std::vector<float> v = {0, 1, 2, 3, 4, 5};
  const std::string data = le_f32({0, 1, 2, 3, 4, 5});
  ASSERT_EQ(data.substr(4, 4), std::string("\x00\x00\x80\x3f", 4));  // 1.0f
  TempDir dir;
  {
    SafetensorsWriter w;
    w.add("attn.0", DType::F32, {1, 2, 3}, v.data());
    w.write(dir / "a.safetensors");
    const std::string header = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
    ASSERT_EQ(header.size(), 64u);  // already a multiple of 8: no padding
    EXPECT_EQ(read_bytes(dir / "a.safetensors"), le_u64(64) + header + data);
  }
  {
    SafetensorsWriter w;
    w.add("attn0", DType::F32, {1, 1, 2, 3}, v.data());
    w.write(dir / "b.safetensors");
    const std::string header = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
    ASSERT_EQ(header.size(), 65u);
    EXPECT_EQ(read_bytes(dir / "b.safetensors"), le_u64(72) + header + std::string(7, ' ') + data);
  }
  {
    SafetensorsWriter w;
    w.write(dir / "c.safetensors");
    EXPECT_EQ(read_bytes(dir / "c.safetensors"), le_u64(8) + "{}" + std::string(6, ' '));
  }
  {
    SafetensorsWriter w;
    w.add_metadata("framework", "pt");
    w.write(dir / "d.safetensors");
    EXPECT_EQ(read_bytes(dir / "d.safetensors"),
              le_u64(40) + R"({"__metadata__":{"framework":"pt"}})" + std::string(5, ' '));
  }
}

// ---- reading hand-built bytes, independent of our writer ----------------------------------------

TEST(Safetensors, ReadsHandBuiltFileFieldByField) {
  // Tensors listed out of offset order, a scalar, an empty tensor, a non-ASCII name, metadata,
  // padding with spaces, and a header length that is not a multiple of 8.
  const std::string header =
      "{\"__metadata__\":{\"k\":\"v\"},"
      "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[8,16]},"
      "\"\xc3\xa4\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[16,18]},"
      "\"z\":{\"data_offsets\":[18,18],\"shape\":[0,5],\"dtype\":\"F16\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}   ";
  const std::string data =
      le_f32({1.5f, -2.0f}) + std::string("\x07\x00\x00\x00\xff\xff\xff\xff", 8) + le_u16({0xc040});  // bf16 -3.0
  ASSERT_EQ(data.size(), 18u);
  TempDir dir;
  const fs::path path = dir / "hand.safetensors";
  write_bytes(path, safetensors_bytes(header, data));
  SafetensorsReader r(path);

  const uint64_t base = 8 + header.size();
  ASSERT_EQ(r.tensors().size(), 4u);
  const auto& t = r.tensors();
  EXPECT_EQ(t[0].name, "a");
  EXPECT_EQ(t[0].dtype, "F32");
  EXPECT_EQ(t[0].shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(t[0].offset, base);
  EXPECT_EQ(t[0].nbytes, 8u);
  EXPECT_EQ(t[1].name, "b");
  EXPECT_EQ(t[1].dtype, "I32");
  EXPECT_EQ(t[1].offset, base + 8);
  EXPECT_EQ(t[1].nbytes, 8u);
  EXPECT_EQ(t[2].name, "\xc3\xa4");
  EXPECT_EQ(t[2].dtype, "BF16");
  EXPECT_TRUE(t[2].shape.empty());
  EXPECT_EQ(t[2].numel(), 1);
  EXPECT_EQ(t[2].offset, base + 16);
  EXPECT_EQ(t[2].nbytes, 2u);
  EXPECT_EQ(t[3].name, "z");
  EXPECT_EQ(t[3].shape, (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(t[3].offset, base + 18);
  EXPECT_EQ(t[3].nbytes, 0u);
  EXPECT_EQ(r.read_f32("a"), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(r.read_i32("b"), (std::vector<int32_t>{7, -1}));
  EXPECT_EQ(r.read_f32("\xc3\xa4"), std::vector<float>{-3.0f});
  EXPECT_TRUE(r.read_f32("z").empty());
  EXPECT_EQ(r.metadata(), (std::map<std::string, std::string>{{"k", "v"}}));
}

TEST(Safetensors, NullMetadataReadsAsAbsentAndEmptyFileIsValid) {
  TempDir dir;
  write_bytes(dir / "a.safetensors", safetensors_bytes(R"({"__metadata__":null})"));
  EXPECT_TRUE(SafetensorsReader(dir / "a.safetensors").metadata().empty());
  write_bytes(dir / "b.safetensors", safetensors_bytes("{}"));
  EXPECT_TRUE(SafetensorsReader(dir / "b.safetensors").tensors().empty());
}

TEST(Safetensors, ReadI32WidensFromI64InRangeAndRejectsOutOfRange) {
  TempDir dir;
  const fs::path path = dir / "i64.safetensors";
  write_bytes(path, safetensors_bytes(R"({"ok":{"dtype":"I64","shape":[3],"data_offsets":[0,24]},)"
                                      R"("big":{"dtype":"I64","shape":[2],"data_offsets":[24,40]}})",
                                      le_i64({-2147483648LL, 0, 2147483647LL}) + le_i64({5, 2147483648LL})));
  SafetensorsReader r(path);
  EXPECT_EQ(r.read_i32("ok"), (std::vector<int32_t>{-2147483647 - 1, 0, 2147483647}));
  expect_error([&] { r.read_i32("big"); }, {path.string(), "tensor \"big\"", "element 1 = 2147483648", "int32"});
}

// ---- conversions -------------------------------------------------------------------------------

// h is the f16 nearest to v, ties to even: checked with the decoder only, against both neighbours.
void expect_nearest_f16(float v, uint16_t h) {
  const double err = std::abs(double(f16_bits_to_f32(h)) - v);
  for (int d : {-1, 1}) {
    const uint16_t n = static_cast<uint16_t>(h + d);
    if ((n & 0x7fffu) >= 0x7c00u || (n & 0x8000u) != (h & 0x8000u)) continue;  // past inf or sign flip
    const double nerr = std::abs(double(f16_bits_to_f32(n)) - v);
    EXPECT_TRUE(err < nerr || (err == nerr && (h & 1u) == 0)) << v << " -> " << h << " but " << n << " is nearer";
  }
}

TEST(Safetensors, ReadIntoConvertsBetweenFloatTypes) {
  auto g = test::rng();
  const size_t n = 1000;
  const std::vector<uint16_t> f16 = random_finite_f16_bits(g, n);
  std::vector<uint16_t> bf16(n);
  for (auto& b : bf16) b = static_cast<uint16_t>(g());
  std::vector<float> f32 = test::randn(g, n, 100.0f);
  f32[0] = 65519.0f;          // rounds to f16 max 65504
  f32[1] = 1.0f + 0x1p-11f;   // exact f16 tie: rounds to even (1.0)
  f32[2] = -0x1p-25f * 1.5f;  // subnormal f16 range
  std::vector<double> f64(n);
  for (auto& d : f64) d = std::normal_distribution<double>(0.0, 10.0)(g);
  TempDir dir;
  const fs::path path = dir / "c.safetensors";
  SafetensorsWriter w;
  w.add("f16", DType::F16, {10, 100}, f16.data());
  w.add("bf16", DType::BF16, {10, 100}, bf16.data());
  w.add("f32", DType::F32, {10, 100}, f32.data());
  w.write(path);
  SafetensorsReader r(path);
  const std::vector<int64_t> shape = {10, 100};

  std::vector<float> out32(n);
  std::vector<uint16_t> out16(n);
  r.read_into("f16", shape, DType::F32, out32.data());
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(out32[i], f16_bits_to_f32(f16[i])) << i;
  r.read_into("bf16", shape, DType::F32, out32.data());
  for (size_t i = 0; i < n; ++i) {
    const float want = bf16_bits_to_f32(bf16[i]);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(out32[i])) << i;
    } else {
      ASSERT_EQ(out32[i], want) << i;
    }
  }
  r.read_into("f16", shape, DType::F16, out16.data());
  EXPECT_EQ(out16, f16);  // same dtype: a copy
  r.read_into("f32", shape, DType::F16, out16.data());
  for (size_t i = 0; i < n; ++i) expect_nearest_f16(f32[i], out16[i]);
  EXPECT_EQ(out16[0], 0x7bffu);
  EXPECT_EQ(out16[1], 0x3c00u);
  r.read_into("f32", shape, DType::BF16, out16.data());
  for (size_t i = 0; i < n; ++i) {
    // bf16 is the top half of f32: the answer is the truncation or the next value up in magnitude.
    const uint32_t x = std::bit_cast<uint32_t>(f32[i]);
    const uint16_t lo = static_cast<uint16_t>(x >> 16), hi = static_cast<uint16_t>(lo + 1);
    const double elo = std::abs(double(bf16_bits_to_f32(lo)) - f32[i]);
    const double ehi = std::abs(double(bf16_bits_to_f32(hi)) - f32[i]);
    const uint16_t want = (elo < ehi || (elo == ehi && (lo & 1u) == 0)) ? lo : hi;
    ASSERT_EQ(out16[i], want) << f32[i];
  }
  r.read_into("bf16", shape, DType::F16, out16.data());
  for (size_t i = 0; i < n; ++i) {
    if (!std::isnan(bf16_bits_to_f32(bf16[i]))) {
      ASSERT_EQ(out16[i], f32_to_f16_bits(bf16_bits_to_f32(bf16[i]))) << i;
    }
  }
}

TEST(Safetensors, ReadIntoFromF64RoundsOnce) {
  // Just above an f16 / bf16 tie: rounding through f32 first would land exactly on the tie and
  // then go to even (down); rounding once goes up.
  const std::vector<double> v = {
      1.0 + 0x1p-11 + 0x1p-40, 1.0 + 0x1p-11, 1.0 + 0x1p-8 + 0x1p-40, 1.0 + 0x1p-8, -1e300, 1e-300, 0.1};
  std::string data;
  for (double d : v) data += le_u64(std::bit_cast<uint64_t>(d));
  TempDir dir;
  const fs::path path = dir / "f64.safetensors";
  write_bytes(path, safetensors_bytes(R"({"d":{"dtype":"F64","shape":[7],"data_offsets":[0,56]}})", data));
  SafetensorsReader r(path);
  const std::vector<int64_t> shape = {7};
  std::vector<uint16_t> h(7), b(7);
  r.read_into("d", shape, DType::F16, h.data());
  r.read_into("d", shape, DType::BF16, b.data());
  EXPECT_EQ(h[0], 0x3c01u);  // 1 + 2^-10
  EXPECT_EQ(h[1], 0x3c00u);  // exact tie: even
  EXPECT_EQ(h[4], 0xfc00u);  // -inf
  EXPECT_EQ(h[5], 0x0000u);
  EXPECT_EQ(h[6], 0x2e66u);  // 0.1 in f16
  EXPECT_EQ(b[2], 0x3f81u);  // 1 + 2^-7
  EXPECT_EQ(b[3], 0x3f80u);
  EXPECT_EQ(b[4], 0xff80u);  // -inf
  EXPECT_EQ(b[6], 0x3dcdu);  // 0.1 in bf16
  const std::vector<float> f = r.read_f32("d");
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(f[i], static_cast<float>(v[i])) << i;
}

TEST(Safetensors, ReadIntoErrorsNameFileTensorAndShapes) {
  TempDir dir;
  const fs::path path = dir / "e.safetensors";
  const std::vector<float> x(6, 1.0f);
  const std::vector<int32_t> ids(2, 3);
  SafetensorsWriter w;
  w.add("x", DType::F32, {2, 3}, x.data());
  w.add("ids", DType::I32, {2}, ids.data());
  w.write(path);
  SafetensorsReader r(path);
  std::vector<float> out(6);
  const std::vector<int64_t> wrong = {3, 2}, right = {2, 3}, ids_shape = {2};
  expect_error([&] { r.read_into("x", wrong, DType::F32, out.data()); },
               {path.string(), "tensor \"x\"", "expected shape [3, 2]", "the file has [2, 3]"});
  expect_error([&] { r.read_into("x", right, DType::I32, out.data()); }, {path.string(), "\"x\"", "i32"});
  expect_error([&] { r.read_into("ids", ids_shape, DType::F32, out.data()); },
               {path.string(), "\"ids\"", "expected a float tensor", "I32"});
  expect_error([&] { r.read_f32("nope"); }, {path.string(), "no tensor \"nope\""});
  expect_error([&] { (void)r.at("nope"); }, {path.string(), "no tensor \"nope\""});
  expect_error([&] { r.read_i32("x"); }, {path.string(), "\"x\"", "expected an integer tensor", "F32"});
  SafetensorsTensor foreign = r.at("x");
  foreign.offset = 1u << 30;
  expect_error([&] { r.bytes(foreign); }, {path.string(), "outside this file"});
}

// ---- writer errors -----------------------------------------------------------------------------

TEST(SafetensorsWriter, BadInputsAreErrors) {
  const float x[2] = {1, 2};
  SafetensorsWriter w;
  w.add("x", DType::F32, {2}, x);
  expect_error([&] { w.add("x", DType::F32, {2}, x); }, {"SafetensorsWriter", "tensor \"x\" added twice"});
  expect_error([&] { w.add("__metadata__", DType::F32, {2}, x); }, {"\"__metadata__\" is reserved"});
  expect_error([&] { w.add("neg", DType::F32, {2, -1}, x); }, {"tensor \"neg\"", "[2, -1]", "negative"});
  expect_error([&] { w.add("null", DType::F32, {2}, nullptr); }, {"tensor \"null\"", "data is null for 8 bytes"});
  expect_error([&] { w.add("bad\xff", DType::F32, {2}, x); }, {"tensor name", "not valid UTF-8"});
  w.add_metadata("k", "v");
  expect_error([&] { w.add_metadata("k", "w"); }, {"metadata key \"k\" added twice"});
  expect_error([&] { w.add_metadata("k2", "\xc3"); }, {"metadata value", "not valid UTF-8"});
  TempDir dir;
  const fs::path missing = dir / "missing" / "m.safetensors";
  expect_error([&] { w.write(missing); }, {missing.string(), "No such file or directory"});
}

// ---- cross-check with an independent reader/writer (Python json + numpy) --------------------------

std::string script_command(const std::string& mode, const fs::path& file) {
  return cat(LLM_PYTHON, " ", test::shell_quote(cat(LLM_SOURCE_DIR, "/tests/io/read_safetensors.py")), " ", mode, " ",
             test::shell_quote(file.string()));
}

TEST(SafetensorsPython, IndependentReaderSeesWhatWeWrote) {
  if (!fs::exists(LLM_PYTHON)) GTEST_SKIP() << LLM_PYTHON << " not found";
  auto g = test::rng();
  const std::vector<float> f32 = test::randn(g, 12);
  const std::vector<uint16_t> f16 = random_finite_f16_bits(g, 5);
  std::vector<uint16_t> bf16(6);
  for (auto& b : bf16) {
    do b = static_cast<uint16_t>(g());
    while ((b & 0x7f80u) == 0x7f80u);  // finite
  }
  std::vector<int32_t> i32(4);
  for (auto& v : i32) v = static_cast<int32_t>(g());
  const std::vector<uint8_t> u8 = {0, 255, 7};
  const float scalar = 0.1f;
  SafetensorsWriter w;
  w.add_metadata("format", "pt");
  w.add("f32", DType::F32, {3, 4}, f32.data());
  w.add("u8", DType::U8, {3}, u8.data());
  w.add("f16", DType::F16, {5}, f16.data());
  w.add("bf16", DType::BF16, {2, 3}, bf16.data());
  w.add("i32", DType::I32, {2, 2}, i32.data());
  w.add("scalar", DType::F32, {}, &scalar);
  w.add("empty", DType::F16, {0}, nullptr);
  TempDir dir;
  const fs::path path = dir / "x.safetensors";
  w.write(path);

  const test::CommandResult res = test::run_command(script_command("read", path) + " 2>&1");
  ASSERT_EQ(res.status, 0) << res.output;
  const nlohmann::json out = nlohmann::json::parse(res.output);
  EXPECT_EQ(out["header_len"].get<uint64_t>() % 8, 0u);
  EXPECT_EQ(out["metadata"], nlohmann::json({{"format", "pt"}}));
  const auto& ts = out["tensors"];
  ASSERT_EQ(ts.size(), 7u);
  auto floats = [](const nlohmann::json& t) {
    std::vector<float> v;
    for (const auto& x : t["values"]) v.push_back(static_cast<float>(x.get<double>()));
    return v;
  };
  EXPECT_EQ(ts[0]["name"], "f32");
  EXPECT_EQ(ts[0]["shape"], nlohmann::json({3, 4}));
  EXPECT_EQ(floats(ts[0]), f32);
  EXPECT_EQ(ts[1]["name"], "u8");
  EXPECT_EQ(ts[1]["values"].get<std::vector<int>>(), (std::vector<int>{0, 255, 7}));
  EXPECT_EQ(ts[2]["dtype"], "F16");
  const std::vector<float> py_f16 = floats(ts[2]);
  for (size_t i = 0; i < f16.size(); ++i) EXPECT_EQ(py_f16[i], f16_bits_to_f32(f16[i])) << i;
  EXPECT_EQ(ts[3]["dtype"], "BF16");
  EXPECT_EQ(ts[3]["shape"], nlohmann::json({2, 3}));
  const std::vector<float> py_bf16 = floats(ts[3]);
  for (size_t i = 0; i < bf16.size(); ++i) EXPECT_EQ(py_bf16[i], bf16_bits_to_f32(bf16[i])) << i;
  EXPECT_EQ(ts[4]["values"].get<std::vector<int32_t>>(), i32);
  EXPECT_EQ(ts[5]["shape"], nlohmann::json::array());
  EXPECT_EQ(floats(ts[5]), std::vector<float>{0.1f});
  EXPECT_EQ(ts[6]["values"], nlohmann::json::array());
  EXPECT_EQ(ts[6]["data_offsets"][0], ts[6]["data_offsets"][1]);
}

TEST(SafetensorsPython, WeReadWhatTheIndependentWriterWrote) {
  if (!fs::exists(LLM_PYTHON)) GTEST_SKIP() << LLM_PYTHON << " not found";
  TempDir dir;
  const fs::path path = dir / "py.safetensors";
  const test::CommandResult res = test::run_command(script_command("write", path) + " 2>&1");
  ASSERT_EQ(res.status, 0) << res.output;
  SafetensorsReader r(path);
  EXPECT_EQ(r.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(r.tensors().size(), 8u);
  // HF order: descending alignment, then name.
  std::vector<std::string> names;
  for (const auto& t : r.tensors()) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"i64", "f64", "empty", "scalar", "i32", "bf16", "f16", "u8"}));
  EXPECT_EQ(r.at("f64").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(r.read_f32("f64"), (std::vector<float>{-1.25f, -0.75f, -0.25f, 0.25f, 0.75f, 1.25f}));
  EXPECT_EQ(r.read_i32("i64"), (std::vector<int32_t>{-3, 0, 7, 2147483647}));
  EXPECT_EQ(r.read_f32("bf16"), (std::vector<float>{1.0f, -2.5f, 0.15625f}));
  EXPECT_EQ(r.read_f32("f16"), (std::vector<float>{0.5f, -1.0f, 65504.0f, 0x1p-24f}));
  EXPECT_EQ(r.at("scalar").shape, std::vector<int64_t>{});
  EXPECT_EQ(r.read_f32("scalar"), std::vector<float>{3.5f});
  EXPECT_EQ(r.at("empty").shape, (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(r.at("empty").nbytes, 0u);
  EXPECT_EQ(r.at("u8").dtype, "U8");
  const auto u8 = r.bytes(r.at("u8"));
  ASSERT_EQ(u8.size(), 5u);
  EXPECT_EQ(std::to_integer<int>(u8[3]), 128);
  EXPECT_EQ(r.read_i32("i32"), (std::vector<int32_t>{-2147483647 - 1, 2147483647}));
}

}  // namespace
}  // namespace llm
