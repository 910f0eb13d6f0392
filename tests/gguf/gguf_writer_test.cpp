// The GGUF writer against an independent reader (tests/gguf/read_gguf.py: Python struct + numpy):
// every metadata type, tensor infos in ggml order, alignment, data; and its refusals.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "io/io_test_util.h"
#include "llm/gguf.h"
#include "test_util.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_with_python(const fs::path& file) {
  const auto r = run_command(cat(LLM_PYTHON, " ", shell_quote(cat(LLM_SOURCE_DIR, "/tests/gguf/read_gguf.py")), " ",
                                 shell_quote(file.string())));
  EXPECT_EQ(r.status, 0) << r.output;
  return r.status == 0 ? nlohmann::json::parse(r.output) : nlohmann::json();
}

std::vector<uint8_t> encode(GgmlType t, const std::vector<float>& x) {
  std::vector<uint8_t> b(ggml_row_bytes(t, int64_t(x.size())));
  ggml_quantize(t, x.data(), int64_t(x.size()), b.data());
  return b;
}

TEST(GgufWriter, RoundTripThroughAnIndependentReader) {
  if (!fs::exists(LLM_PYTHON)) GTEST_SKIP() << LLM_PYTHON << " not found";
  TempDir dir;
  auto g = rng();
  GgufWriter w;
  w.add_u32("t.u32", 4000000000u);
  w.add_i32("t.i32", -7);
  w.add_u64("t.u64", 1ull << 40);
  w.add_f32("t.f32", 0.25f);
  w.add_bool("t.bool", true);
  w.add_string("t.string", "héllo, 世界");
  w.add_array("t.arr_u32", std::vector<uint32_t>{1, 2, 3});
  w.add_array("t.arr_i32", std::vector<int32_t>{-1, 0, 1});
  w.add_array("t.arr_f32", std::vector<float>{1.5f, -2.0f});
  w.add_array("t.arr_str", std::vector<std::string>{"a", "", "Ġthe"});
  w.add_array("t.arr_bool", std::vector<bool>{true, false});
  const auto a = randn(g, 3 * 64), b = randn(g, 5), c = randn(g, 2 * 32), d = randn(g, 4 * 64);
  w.add_tensor("a", {3, 64}, GgmlType::F32, encode(GgmlType::F32, a));
  w.add_tensor("b", {5}, GgmlType::F32, encode(GgmlType::F32, b));  // 20 bytes: the next offset is padded to 32
  w.add_tensor("c", {2, 32}, GgmlType::F16, [&] { return encode(GgmlType::F16, c); });
  w.add_tensor("d.q8", {4, 64}, GgmlType::Q8_0, encode(GgmlType::Q8_0, d));
  w.add_tensor("d.q4", {4, 64}, GgmlType::Q4_0, encode(GgmlType::Q4_0, d));
  w.add_tensor("d.bf16", {2, 2, 64}, GgmlType::BF16, encode(GgmlType::BF16, d));
  w.write(dir / "t.gguf");
  EXPECT_FALSE(fs::exists(dir / ("t.gguf.tmp." + std::to_string(::getpid()))));

  const nlohmann::json j = read_with_python(dir / "t.gguf");
  ASSERT_FALSE(j.is_null());
  EXPECT_EQ(j["version"], 3);
  EXPECT_EQ(j["n_tensors"], 6);
  EXPECT_EQ(j["n_kv"], 12);  // with general.alignment
  const auto& kv = j["kv"];
  EXPECT_EQ(kv["general.alignment"], 32);
  EXPECT_EQ(j["kv_types"]["general.alignment"], 4);
  EXPECT_EQ(kv["t.u32"], 4000000000u);
  EXPECT_EQ(kv["t.i32"], -7);
  EXPECT_EQ(j["kv_types"]["t.u64"], 10);
  EXPECT_EQ(kv["t.u64"], 1ull << 40);
  EXPECT_EQ(kv["t.f32"], 0.25);
  EXPECT_EQ(kv["t.bool"], true);
  EXPECT_EQ(kv["t.string"], "héllo, 世界");
  EXPECT_EQ(kv["t.arr_u32"]["array_type"], 4);
  EXPECT_EQ(kv["t.arr_u32"]["values"], nlohmann::json({1, 2, 3}));
  EXPECT_EQ(kv["t.arr_i32"]["values"], nlohmann::json({-1, 0, 1}));
  EXPECT_EQ(kv["t.arr_f32"]["values"], nlohmann::json({1.5, -2.0}));
  EXPECT_EQ(kv["t.arr_str"]["array_type"], 8);
  EXPECT_EQ(kv["t.arr_str"]["values"], nlohmann::json({"a", "", "Ġthe"}));
  EXPECT_EQ(kv["t.arr_bool"]["values"], nlohmann::json({true, false}));
  EXPECT_EQ(int64_t(j["data_start"]) % 32, 0);

  const auto& t = j["tensors"];
  ASSERT_EQ(t.size(), 6u);
  EXPECT_EQ(t[0]["name"], "a");
  EXPECT_EQ(t[0]["dims"], nlohmann::json({64, 3}));  // ggml order: innermost first
  EXPECT_EQ(t[0]["offset"], 0);
  EXPECT_EQ(t[1]["offset"], 3 * 64 * 4);
  EXPECT_EQ(t[2]["offset"], 3 * 64 * 4 + 32);
  EXPECT_EQ(t[2]["type"], "f16");
  EXPECT_EQ(t[3]["type"], "q8_0");
  EXPECT_EQ(t[3]["bytes"], 8 * 34);
  EXPECT_EQ(t[5]["dims"], nlohmann::json({64, 2, 2}));
  for (const auto& e : t) EXPECT_EQ(int64_t(e["offset"]) % 32, 0) << e["name"];
  auto expect_values = [&](const nlohmann::json& e, const std::vector<float>& x, double tol) {
    ASSERT_EQ(e["values"].size(), x.size()) << e["name"];
    double amax = 0;
    for (float v : x) amax = std::max(amax, std::fabs(double(v)));
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_NEAR(double(e["values"][i]), x[i], tol * amax) << e["name"] << " [" << i << "]";
    }
  };
  expect_values(t[0], a, 0);
  expect_values(t[1], b, 0);
  expect_values(t[2], c, 1e-3);
  expect_values(t[3], d, 1.0 / 127);  // half a step of the largest block, plus the scale's rounding
  expect_values(t[4], d, 1.0 / 7);
  expect_values(t[5], d, 1.0 / 128);
  // and the Python decode of the blocks equals ours exactly
  for (int k : {3, 4}) {
    const GgmlType ty = k == 3 ? GgmlType::Q8_0 : GgmlType::Q4_0;
    const auto bytes = encode(ty, d);
    std::vector<float> ours(d.size());
    ggml_dequantize(ty, bytes.data(), int64_t(d.size()), ours.data());
    for (size_t i = 0; i < d.size(); ++i) ASSERT_EQ(double(t[k]["values"][i]), double(ours[i])) << k << " " << i;
  }
}

TEST(GgufWriter, RefusesWhatLlamaCppCannotRead) {
  GgufWriter w;
  expect_error([&] { w.add_u32("general.alignment", 64); }, {"general.alignment", "added twice"});
  expect_error([&] { w.add_tensor("x", {2, 48}, GgmlType::Q8_0, std::vector<uint8_t>(2 * 51)); }, {"x", "48", "q8_0"});
  expect_error([&] { w.add_tensor(std::string(64, 'n'), {4}, GgmlType::F32, std::vector<uint8_t>(16)); },
               {"1..63 bytes"});
  expect_error([&] { w.add_tensor("y", {4}, GgmlType::F32, std::vector<uint8_t>(15)); }, {"y", "15 bytes"});
  expect_error(
      [&] {
        w.add_tensor("z", {1, 1, 1, 1, 1}, GgmlType::F32, std::vector<uint8_t>(4));
      },
      {"z", "5 dimensions"});
  w.add_tensor("ok", {4}, GgmlType::F32, std::vector<uint8_t>(16));
  expect_error([&] { w.add_tensor("ok", {4}, GgmlType::F32, std::vector<uint8_t>(16)); }, {"ok", "added twice"});
  expect_error([] { GgufWriter bad(24); }, {"alignment 24"});
}

TEST(GgufWriter, AFailedWriteLeavesNoFile) {
  TempDir dir;
  GgufWriter w;
  w.add_tensor("t", {8}, GgmlType::F32, [] { return std::vector<uint8_t>(7); });  // a producer that lies
  expect_error([&] { w.write(dir / "x.gguf"); }, {"x.gguf", "tensor t", "7 bytes produced"});
  EXPECT_TRUE(fs::is_empty(dir.path()));
  expect_error([&] { w.write(dir / "no/such/dir/x.gguf"); }, {"no/such/dir"});
}

}  // namespace
}  // namespace llm::test
