#include "llm/config_reader.h"

#include <cmath>
#include <fstream>
#include <limits>

#include "llm/error.h"

namespace llm {

nlohmann::json read_json_file(const std::filesystem::path& file, std::string_view open_hint) {
  std::ifstream in(file, std::ios::binary);
  LLM_CHECK(in.good(), file.string(), ": cannot open", open_hint.empty() ? "" : " (", open_hint,
            open_hint.empty() ? "" : ")");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    fail(file.string(), ": not valid JSON at byte ", e.byte, ": ", e.what());
  } catch (const nlohmann::json::out_of_range& e) {  // a number beyond 64 bits or double (error 406)
    fail(file.string(), ": ", e.what());
  }
}

namespace {

std::string describe(const nlohmann::json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

template <class T>
T convert(const nlohmann::json& v, const std::string& where);

template <>
bool convert<bool>(const nlohmann::json& v, const std::string& where) {
  LLM_CHECK(v.is_boolean(), where, ": expected true or false, got ", describe(v));
  return v.get<bool>();
}
template <>
int64_t convert<int64_t>(const nlohmann::json& v, const std::string& where) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    LLM_CHECK(std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9e15, where, ": expected an integer, got ",
              describe(v));
    return static_cast<int64_t>(d);
  }
  fail(where, ": expected an integer, got ", describe(v));
}
template <>
int convert<int>(const nlohmann::json& v, const std::string& where) {
  const int64_t x = convert<int64_t>(v, where);
  LLM_CHECK(x >= std::numeric_limits<int>::min() && x <= std::numeric_limits<int>::max(), where, ": ", x,
            " is out of range");
  return static_cast<int>(x);
}
template <>
double convert<double>(const nlohmann::json& v, const std::string& where) {
  LLM_CHECK(v.is_number(), where, ": expected a number, got ", describe(v));
  const double d = v.get<double>();
  LLM_CHECK(std::isfinite(d), where, ": expected a finite number, got ", describe(v));
  return d;
}
template <>
float convert<float>(const nlohmann::json& v, const std::string& where) {
  return static_cast<float>(convert<double>(v, where));
}
template <>
std::string convert<std::string>(const nlohmann::json& v, const std::string& where) {
  LLM_CHECK(v.is_string(), where, ": expected a string, got ", describe(v));
  return v.get<std::string>();
}
template <>
std::vector<std::string> convert<std::vector<std::string>>(const nlohmann::json& v, const std::string& where) {
  if (v.is_string()) return {v.get<std::string>()};
  LLM_CHECK(v.is_array(), where, ": expected a list of strings, got ", describe(v));
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) out.push_back(convert<std::string>(v[i], cat(where, "[", i, "]")));
  return out;
}
template <>
std::vector<int64_t> convert<std::vector<int64_t>>(const nlohmann::json& v, const std::string& where) {
  if (v.is_number()) return {convert<int64_t>(v, where)};
  LLM_CHECK(v.is_array(), where, ": expected a list of integers, got ", describe(v));
  std::vector<int64_t> out;
  for (size_t i = 0; i < v.size(); ++i) out.push_back(convert<int64_t>(v[i], cat(where, "[", i, "]")));
  return out;
}

}  // namespace

ConfigReader::ConfigReader(const nlohmann::json& j, std::string path) : path_(std::move(path)) {
  if (j.is_null()) {
    obj_ = nlohmann::json::object();
  } else {
    LLM_CHECK(j.is_object(), path_.empty() ? "config" : path_, ": expected an object, got ", describe(j));
    obj_ = j;
  }
}

std::string ConfigReader::key_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : cat(path_, ".", key);
}

bool ConfigReader::has(std::string_view key) const {
  auto it = obj_.find(std::string(key));
  return it != obj_.end() && !it->is_null();
}

const nlohmann::json* ConfigReader::find(std::string_view key) {
  known_.emplace(key);
  auto it = obj_.find(std::string(key));
  if (it == obj_.end() || it->is_null()) return nullptr;
  return &*it;
}

template <class T>
T ConfigReader::get(std::string_view key, const T& def) {
  const nlohmann::json* v = find(key);
  return v ? convert<T>(*v, key_path(key)) : def;
}

template <class T>
std::optional<T> ConfigReader::get_optional(std::string_view key) {
  const nlohmann::json* v = find(key);
  if (!v) return std::nullopt;
  return convert<T>(*v, key_path(key));
}

template <class T>
T ConfigReader::require(std::string_view key) {
  const nlohmann::json* v = find(key);
  LLM_CHECK(v != nullptr, key_path(key), ": required key is missing");
  return convert<T>(*v, key_path(key));
}

#define LLM_INSTANTIATE(T)                                                   \
  template T ConfigReader::get<T>(std::string_view, const T&);               \
  template std::optional<T> ConfigReader::get_optional<T>(std::string_view); \
  template T ConfigReader::require<T>(std::string_view);
LLM_INSTANTIATE(bool)
LLM_INSTANTIATE(int)
LLM_INSTANTIATE(int64_t)
LLM_INSTANTIATE(float)
LLM_INSTANTIATE(double)
LLM_INSTANTIATE(std::string)
LLM_INSTANTIATE(std::vector<std::string>)
LLM_INSTANTIATE(std::vector<int64_t>)
#undef LLM_INSTANTIATE

std::string ConfigReader::get_choice(std::string_view key, const std::string& def,
                                     const std::vector<std::string>& choices) {
  const std::string v = get<std::string>(key, def);
  for (const auto& c : choices) {
    if (c == v) return v;
  }
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  fail(key_path(key), ": \"", v, "\" is not one of: ", list);
}

ConfigReader ConfigReader::section(std::string_view key) {
  const nlohmann::json* v = find(key);
  return ConfigReader(v ? *v : nlohmann::json(), key_path(key));
}

void ConfigReader::ignore(std::initializer_list<std::string_view> keys) {
  for (auto k : keys) known_.emplace(k);
}

void ConfigReader::finish() const {
  for (const auto& [k, v] : obj_.items()) {
    if (known_.count(k)) continue;
    std::string list;
    for (const auto& c : known_) list += (list.empty() ? "" : ", ") + c;
    fail(key_path(k), ": unknown key; valid keys", path_.empty() ? "" : cat(" in ", path_), ": ", list);
  }
}

}  // namespace llm
