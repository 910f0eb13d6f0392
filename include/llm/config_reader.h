// ConfigReader: strict, typed reading of one JSON object of a config. Every key read is recorded;
// finish() rejects the keys nobody read, naming each and listing the valid ones. Type errors name
// the full key path ("train.lr: expected a number, got \"fast\"").
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace llm {

// The JSON document in `file`. One message naming the file for each way it can be bad: it cannot
// be opened (then `open_hint`, when given, says what was expected there), it is not JSON (the byte
// offset), a number beyond 64 bits or double.
nlohmann::json read_json_file(const std::filesystem::path& file, std::string_view open_hint = {});

class ConfigReader {
 public:
  // j must be an object (or null, read as empty); path is the key path for messages ("train").
  ConfigReader(const nlohmann::json& j, std::string path);

  bool has(std::string_view key) const;
  // The value at key converted to T (bool, int64_t, int, double, float, std::string,
  // std::vector<std::string>, std::vector<int64_t>), or def when absent (null counts as absent).
  template <class T>
  T get(std::string_view key, const T& def);
  template <class T>
  std::optional<T> get_optional(std::string_view key);
  template <class T>
  T require(std::string_view key);
  // A string that must be one of choices.
  std::string get_choice(std::string_view key, const std::string& def, const std::vector<std::string>& choices);
  // A nested object (absent: empty).
  ConfigReader section(std::string_view key);
  // Marks keys as known without reading them (kept for compatibility, ignored).
  void ignore(std::initializer_list<std::string_view> keys);
  // Throws on any key not read.
  void finish() const;
  const std::string& path() const { return path_; }
  std::string key_path(std::string_view key) const;

 private:
  const nlohmann::json* find(std::string_view key);
  nlohmann::json obj_;
  std::string path_;
  std::set<std::string, std::less<>> known_;
};

}  // namespace llm
