// Safetensors reader (mmap + validation) and writer (streamed through AtomicFile).
// The accepted format is described in include/llm/safetensors.h.
#include "llm/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <system_error>
#include <tuple>
#include <utility>

#include "llm/atomic_file.h"
#include "llm/error.h"

namespace llm {
namespace {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

using json = nlohmann::json;

struct DtypeInfo {
  std::string_view name;
  size_t size;
};
constexpr std::array<DtypeInfo, 15> kDtypes{{{"BOOL", 1},
                                             {"U8", 1},
                                             {"I8", 1},
                                             {"F8_E5M2", 1},
                                             {"F8_E4M3", 1},
                                             {"I16", 2},
                                             {"U16", 2},
                                             {"F16", 2},
                                             {"BF16", 2},
                                             {"I32", 4},
                                             {"U32", 4},
                                             {"F32", 4},
                                             {"F64", 8},
                                             {"I64", 8},
                                             {"U64", 8}}};

std::string accepted_dtypes() {
  std::string s;
  for (const auto& d : kDtypes) s += cat(s.empty() ? "" : " ", d.name);
  return s;
}

std::string shape_str(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += cat(i ? ", " : "", shape[i]);
  return s + "]";
}

// numel * elem_size, or false on overflow.
bool checked_nbytes(std::span<const int64_t> shape, uint64_t elem_size, uint64_t* out) {
  uint64_t n = elem_size;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  *out = n;
  return true;
}

// A JSON value's text for messages, kept short.
std::string brief(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// s with bytes outside printable ASCII written as \xNN: nlohmann quotes the offending input,
// which may be invalid UTF-8, and messages must stay printable.
std::string ascii_only(std::string_view s) {
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      const char* hex = "0123456789abcdef";
      out += {'\\', 'x', hex[u >> 4], hex[u & 15]};
    }
  }
  return out;
}

// Parses the header text, rejecting duplicate keys (nlohmann would silently keep the last).
json parse_header(const std::filesystem::path& path, std::string_view text) {
  std::vector<std::set<std::string>> open_objects;  // keys seen so far in each enclosing object
  auto on_event = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      LLM_CHECK(open_objects.back().insert(key).second, path, ": header: key \"", key, "\" appears twice");
    }
    return true;
  };
  // nlohmann stops at a NUL byte as if the input ended there; in valid JSON a raw NUL cannot
  // occur at all (inside strings it must be escaped), so any NUL makes the header invalid.
  const size_t nul = text.find('\0');
  LLM_CHECK(nul == std::string_view::npos, path, ": header (file bytes 8..", 8 + text.size(),
            ") is not valid UTF-8 JSON: NUL byte at file byte ", 8 + nul);
  try {
    return json::parse(text, on_event);
  } catch (const json::parse_error& e) {
    fail(path, ": header (file bytes 8..", 8 + text.size(), ") is not valid UTF-8 JSON, near file byte ",
         8 + (e.byte > 0 ? e.byte - 1 : 0), ": ", ascii_only(e.what()));
  } catch (const json::out_of_range& e) {  // a number beyond 64 bits or double (error 406)
    fail(path, ": header (file bytes 8..", 8 + text.size(), "): ", ascii_only(e.what()));
  }
}

std::map<std::string, std::string> parse_metadata(const std::filesystem::path& path, const json& v) {
  std::map<std::string, std::string> out;
  if (v.is_null()) return out;  // HF reads a null __metadata__ as absent
  LLM_CHECK(v.is_object(), path, ": __metadata__: expected an object of strings, got ", v.type_name(), " ", brief(v));
  for (const auto& [key, value] : v.items()) {
    LLM_CHECK(value.is_string(), path, ": __metadata__ \"", key, "\": expected a string, got ", value.type_name(), " ",
              brief(value));
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

// Validates one tensor entry on its own (everything except how it sits among the others).
SafetensorsTensor parse_tensor(const std::filesystem::path& path, const std::string& name, const json& v,
                               uint64_t data_start, uint64_t file_size) {
  const std::string where = cat(path, ": tensor \"", name, "\"");
  LLM_CHECK(v.is_object(), where, ": expected an object with dtype, shape, data_offsets, got ", v.type_name(), " ",
            brief(v));
  for (const auto& [key, value] : v.items()) {
    LLM_CHECK(key == "dtype" || key == "shape" || key == "data_offsets", where, ": unexpected key \"", key,
              "\" (expected dtype, shape, data_offsets)");
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    LLM_CHECK(v.contains(key), where, ": missing \"", key, "\"");
  }

  SafetensorsTensor t;
  t.name = name;
  const json& dtype = v["dtype"];
  LLM_CHECK(dtype.is_string(), where, ": dtype: expected a string, got ", brief(dtype));
  t.dtype = dtype.get<std::string>();
  const size_t elem = safetensors_dtype_size(t.dtype);
  LLM_CHECK(elem != 0, where, ": unknown dtype \"", t.dtype, "\" (accepted: ", accepted_dtypes(), ")");

  const json& shape = v["shape"];
  LLM_CHECK(shape.is_array(), where, ": shape: expected an array of non-negative integers, got ", brief(shape));
  for (const json& d : shape) {
    // nlohmann stores non-negative integer literals as unsigned, negative ones as signed, and
    // anything with a fraction or exponent as float.
    LLM_CHECK(d.is_number_unsigned() && d.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()), where,
              ": shape ", brief(shape), ": expected non-negative integers, got ", brief(d));
    t.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
  }
  uint64_t need = 0;
  LLM_CHECK(checked_nbytes(t.shape, elem, &need), where, ": shape ", shape_str(t.shape), " of ", t.dtype,
            " overflows 64-bit byte count");

  const json& offs = v["data_offsets"];
  LLM_CHECK(offs.is_array() && offs.size() == 2 && offs[0].is_number_unsigned() && offs[1].is_number_unsigned(), where,
            ": data_offsets: expected [begin, end], two non-negative integers, got ", brief(offs));
  const uint64_t begin = offs[0].get<uint64_t>();
  const uint64_t end = offs[1].get<uint64_t>();
  LLM_CHECK(begin <= end, where, ": data_offsets [", begin, ", ", end, "]: end is before begin");
  LLM_CHECK(end - begin == need, where, ": data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes, but ",
            t.dtype, " ", shape_str(t.shape), " needs ", need);
  LLM_CHECK(end <= file_size - data_start, where, ": data_offsets [", begin, ", ", end, "] (file bytes ",
            data_start + begin, "..", data_start + end, ") run past the end of the file (", file_size, " bytes)");
  t.offset = data_start + begin;
  t.nbytes = need;
  return t;
}

// Rounds d to a float with round-to-odd: inexact results get their last bit set. Rounding that
// float again to any format with at least 2 fewer significand bits (f16: 11, bf16: 8) gives the
// same result as rounding d directly, which a plain double -> float -> f16 cast does not.
float round_to_odd_f32(double d) {
  float f = static_cast<float>(d);
  if (std::isnan(d) || static_cast<double>(f) == d) return f;
  if (std::fabs(static_cast<double>(f)) > std::fabs(d)) f = std::nextafter(f, 0.0f);  // truncate
  return std::bit_cast<float>(std::bit_cast<uint32_t>(f) | 1u);
}

template <class T>
T load(const std::byte* p, size_t i) {
  T v;
  std::memcpy(&v, p + i * sizeof(T), sizeof(T));
  return v;
}

// Element i of a float tensor as fp32; for_rounding picks round-to-odd for F64 (see above).
float load_float(std::string_view dtype, const std::byte* p, size_t i, bool for_rounding) {
  if (dtype == "F32") return load<float>(p, i);
  if (dtype == "F16") return f16_bits_to_f32(load<uint16_t>(p, i));
  if (dtype == "BF16") return bf16_bits_to_f32(load<uint16_t>(p, i));
  const double d = load<double>(p, i);  // F64
  return for_rounding ? round_to_odd_f32(d) : static_cast<float>(d);
}

}  // namespace

size_t safetensors_dtype_size(std::string_view dtype) {
  for (const auto& d : kDtypes) {
    if (d.name == dtype) return d.size;
  }
  return 0;
}

std::string_view safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
  }
  fail("safetensors_dtype_name: no safetensors name for dtype ", static_cast<int>(dtype));
}

int64_t SafetensorsTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- reader ------------------------------------------------------------------------------------

void SafetensorsReader::Unmap::operator()(const std::byte* p) const noexcept {
  ::munmap(const_cast<std::byte*>(p), size);
}

SafetensorsReader::SafetensorsReader(const std::filesystem::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    fail(path, ": cannot open: ", std::generic_category().message(err));
  }
  struct stat st {};
  const int stat_rc = ::fstat(fd, &st);
  const int stat_err = errno;
  if (stat_rc != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, ": ", stat_rc != 0 ? std::generic_category().message(stat_err) : "not a regular file");
  }
  file_size_ = static_cast<size_t>(st.st_size);
  if (file_size_ < 8) {
    ::close(fd);
    fail(path, ": file is ", file_size_, " bytes, too short for the 8-byte header length");
  }
  void* p = ::mmap(nullptr, file_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (p == MAP_FAILED)
    fail(path, ": mmap of ", file_size_, " bytes failed: ", std::generic_category().message(map_err));
  map_ = std::unique_ptr<const std::byte, Unmap>(static_cast<const std::byte*>(p), Unmap{file_size_});
  const std::byte* base = map_.get();

  const uint64_t header_len = load<uint64_t>(base, 0);
  LLM_CHECK(header_len <= kSafetensorsMaxHeader, path, ": header length ", header_len,
            " (file bytes 0..8) exceeds the 100 MB limit (", kSafetensorsMaxHeader, " bytes)");
  LLM_CHECK(header_len <= file_size_ - 8, path, ": header length ", header_len, " (file bytes 0..8) runs past the end",
            " of the file (", file_size_, " bytes)");
  const uint64_t data_start = 8 + header_len;
  const json header =
      parse_header(path, std::string_view(reinterpret_cast<const char*>(base + 8), static_cast<size_t>(header_len)));
  LLM_CHECK(header.is_object(), path, ": header: expected a JSON object, got ", header.type_name());

  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      metadata_ = parse_metadata(path, value);
    } else {
      tensors_.push_back(parse_tensor(path, key, value, data_start, file_size_));
    }
  }

  // HF's rule: sorted by offset, the tensors tile the data buffer with no overlap, gap or tail.
  std::sort(tensors_.begin(), tensors_.end(), [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
    return std::tie(a.offset, a.nbytes, a.name) < std::tie(b.offset, b.nbytes, b.name);
  });
  uint64_t covered = data_start;  // end of the data claimed so far
  const SafetensorsTensor* prev = nullptr;
  for (const SafetensorsTensor& t : tensors_) {
    if (t.offset < covered) {
      fail(path, ": tensor \"", t.name, "\" (file bytes ", t.offset, "..", t.offset + t.nbytes, ") overlaps tensor \"",
           prev->name, "\" (file bytes ", prev->offset, "..", prev->offset + prev->nbytes, ")");
    }
    LLM_CHECK(t.offset == covered, path, ": gap of ", t.offset - covered, " bytes at file byte ", covered,
              " before tensor \"", t.name, "\" (tensors must cover the data buffer contiguously)");
    covered = t.offset + t.nbytes;
    prev = &t;
  }
  LLM_CHECK(covered == file_size_, path, ": ", file_size_ - covered, " bytes after the last tensor, at file byte ",
            covered, " (tensors must cover the data buffer up to the end of the file)");

  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

const SafetensorsTensor* SafetensorsReader::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const SafetensorsTensor& SafetensorsReader::at(std::string_view name) const {
  const SafetensorsTensor* t = find(name);
  LLM_CHECK(t != nullptr, path_, ": no tensor \"", name, "\" (the file has ", tensors_.size(), " tensors)");
  return *t;
}

std::span<const std::byte> SafetensorsReader::bytes(const SafetensorsTensor& t) const {
  LLM_CHECK(t.offset <= file_size_ && t.nbytes <= file_size_ - t.offset, path_, ": tensor \"", t.name, "\": bytes ",
            t.offset, "..", t.offset + t.nbytes, " are outside this file (", file_size_,
            " bytes); is the tensor from another reader?");
  return {map_.get() + t.offset, static_cast<size_t>(t.nbytes)};
}

void SafetensorsReader::read_into(std::string_view name, std::span<const int64_t> expected_shape, DType dst_dtype,
                                  void* dst) const {
  const SafetensorsTensor& t = at(name);
  const std::string where = cat(path_, ": tensor \"", name, "\"");
  LLM_CHECK(t.dtype == "F64" || t.dtype == "F32" || t.dtype == "F16" || t.dtype == "BF16", where,
            ": expected a float tensor (F64, F32, F16, BF16), the file has ", t.dtype);
  LLM_CHECK(std::equal(t.shape.begin(), t.shape.end(), expected_shape.begin(), expected_shape.end()), where,
            ": expected shape ", shape_str(expected_shape), ", the file has ", shape_str(t.shape));
  LLM_CHECK(is_float(dst_dtype), where, ": read_into: destination dtype must be f32, f16 or bf16, got ",
            dtype_name(dst_dtype));
  const size_t n = static_cast<size_t>(t.numel());
  LLM_CHECK(dst != nullptr || n == 0, where, ": read_into: destination is null");
  const std::byte* src = bytes(t).data();
  if (safetensors_dtype_name(dst_dtype) == t.dtype) {
    if (n != 0) std::memcpy(dst, src, n * dtype_size(dst_dtype));
    return;
  }
  auto* out = static_cast<std::byte*>(dst);
  switch (dst_dtype) {
    case DType::F32:
      for (size_t i = 0; i < n; ++i) {
        const float f = load_float(t.dtype, src, i, false);
        std::memcpy(out + 4 * i, &f, 4);
      }
      break;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16_bits(load_float(t.dtype, src, i, true));
        std::memcpy(out + 2 * i, &h, 2);
      }
      break;
    default:  // BF16
      for (size_t i = 0; i < n; ++i) {
        const uint16_t b = f32_to_bf16_bits(load_float(t.dtype, src, i, true));
        std::memcpy(out + 2 * i, &b, 2);
      }
      break;
  }
}

std::vector<float> SafetensorsReader::read_f32(std::string_view name) const {
  const SafetensorsTensor& t = at(name);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  read_into(name, t.shape, DType::F32, out.data());
  return out;
}

std::vector<int32_t> SafetensorsReader::read_i32(std::string_view name) const {
  const SafetensorsTensor& t = at(name);
  const std::byte* src = bytes(t).data();
  std::vector<int32_t> out(static_cast<size_t>(t.numel()));
  if (t.dtype == "I32") {
    if (!out.empty()) std::memcpy(out.data(), src, out.size() * 4);
    return out;
  }
  LLM_CHECK(t.dtype == "I64", path_, ": tensor \"", name, "\": expected an integer tensor (I32, I64), the file has ",
            t.dtype);
  for (size_t i = 0; i < out.size(); ++i) {
    const int64_t v = load<int64_t>(src, i);
    LLM_CHECK(v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max(), path_,
              ": tensor \"", name, "\": element ", i, " = ", v, " does not fit in int32");
    out[i] = static_cast<int32_t>(v);
  }
  return out;
}

// ---- writer ------------------------------------------------------------------------------------

namespace {
void check_utf8(std::string_view what, const std::string& s) {
  try {
    (void)json(s).dump();  // nlohmann's serializer validates UTF-8
  } catch (const json::type_error&) {
    fail("SafetensorsWriter: ", what, " \"", json(s).dump(-1, ' ', false, json::error_handler_t::replace),
         "\" is not valid UTF-8");
  }
}
}  // namespace

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<int64_t> shape, const void* data) {
  check_utf8("tensor name", name);
  LLM_CHECK(name != "__metadata__", "SafetensorsWriter: tensor name \"__metadata__\" is reserved for metadata");
  LLM_CHECK(!names_.contains(name), "SafetensorsWriter: tensor \"", name, "\" added twice");
  uint64_t nbytes = 0;
  LLM_CHECK(checked_nbytes(shape, dtype_size(dtype), &nbytes), "SafetensorsWriter: tensor \"", name, "\": shape ",
            shape_str(shape), " has a negative dimension or overflows");
  LLM_CHECK(data != nullptr || nbytes == 0, "SafetensorsWriter: tensor \"", name, "\": data is null for ", nbytes,
            " bytes");
  (void)safetensors_dtype_name(dtype);  // throws for a dtype without a safetensors name
  names_.insert(name);
  entries_.push_back(Entry{std::move(name), dtype, std::move(shape), data, nbytes});
}

void SafetensorsWriter::add_metadata(std::string key, std::string value) {
  check_utf8("metadata key", key);
  check_utf8("metadata value", value);
  LLM_CHECK(!metadata_.contains(key), "SafetensorsWriter: metadata key \"", key, "\" added twice");
  metadata_.emplace(std::move(key), std::move(value));
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    header[e.name] = {
        {"dtype", safetensors_dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.nbytes}}};
    offset += e.nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data buffer 8-byte aligned
  LLM_CHECK(text.size() <= kSafetensorsMaxHeader, path, ": safetensors header would be ", text.size(),
            " bytes, over the 100 MB limit readers accept");

  AtomicFile file(path);
  const uint64_t len = text.size();  // little-endian host (static_assert above)
  file.write(&len, 8);
  file.write(text.data(), text.size());
  for (const Entry& e : entries_) {
    if (e.nbytes != 0) file.write(e.data, e.nbytes);
  }
  file.commit();
}

}  // namespace llm
