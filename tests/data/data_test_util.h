// Helpers for the data tests: a byte-level tokenizer (ids are bytes, so expected token streams
// can be computed independently of any real tokenizer) and a temporary directory.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "llm/error.h"
#include "llm/tokenizer.h"
#include "test_util.h"

namespace llm::test {

// Ids 0..255 are the bytes, 256 is <|endoftext|>; ids up to vocab - 1 exist but are never
// produced (a larger vocab exercises 4-byte shards).
class ByteTokenizer : public Tokenizer {
 public:
  static constexpr int32_t kEot = 256;
  explicit ByteTokenizer(int32_t vocab = 257, std::string fingerprint = "byte-tokenizer-v1")
      : vocab_(vocab), fingerprint_(std::move(fingerprint)) {}

  std::vector<int32_t> encode(std::string_view text) const override {
    if (!fail_on_.empty() && text.find(fail_on_) != std::string_view::npos) fail("ByteTokenizer: asked to fail");
    std::vector<int32_t> ids;
    ids.reserve(text.size());
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::string decode(std::span<const int32_t> ids) const override {
    std::string s;
    for (int32_t id : ids) s += token_bytes(id);
    return s;
  }
  std::string token_bytes(int32_t id) const override {
    return id < 256 ? std::string(1, static_cast<char>(id)) : id == kEot ? "<|endoftext|>" : "";
  }
  int32_t vocab_size() const override { return vocab_; }
  int32_t eot_id() const override { return kEot; }
  std::vector<int32_t> stop_ids() const override { return {kEot}; }
  bool is_special(int32_t id) const override { return id == kEot; }
  int32_t token_id(std::string_view piece) const override {
    if (piece == "<|endoftext|>") return kEot;
    return piece.size() == 1 ? static_cast<unsigned char>(piece[0]) : -1;
  }
  std::string fingerprint() const override { return fingerprint_; }
  std::string kind() const override { return "bytes"; }
  void save(const std::filesystem::path&) const override {}

  std::string fail_on_;  // encode throws on a text containing this (tests interrupted runs)

 private:
  int32_t vocab_;
  std::string fingerprint_;
};

// A fresh directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("llm-data-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
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

inline void write_file(const std::filesystem::path& p, const std::string& content) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << p;
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs f, expects an llm::Error whose message contains every one of parts; returns the message.
template <class F>
std::string expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "message: " << msg << "\nmissing: " << p;
    return msg;
  }
  ADD_FAILURE() << "expected an llm::Error";
  return "";
}

}  // namespace llm::test
