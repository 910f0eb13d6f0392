// GgufFile: mmap a GGUF file and validate every field before anything uses it (gguf_reader.h).
// The parser is a cursor over the mapping that checks each read against the bytes left; counts
// are bounded by what the bytes left could hold before anything is reserved for them.
#include "llm/gguf_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

#include "llm/error.h"

namespace llm {

namespace fs = std::filesystem;

namespace {

// ggml's names for the types a file may hold that this engine does not compute on, so the
// error says what the tensor is (ggml.h's enum ggml_type).
std::string_view other_ggml_type_name(uint32_t t) {
  static const char* const kNames[] = {
      "f32",     "f16",   "q4_0",   "q4_1",  "q4_2 (removed)", "q4_3 (removed)", "q5_0", "q5_1",    "q8_0",
      "q8_1",    "q2_K",  "q3_K",   "q4_K",  "q5_K",           "q6_K",           "q8_K", "iq2_xxs", "iq2_xs",
      "iq3_xxs", "iq1_s", "iq4_nl", "iq3_s", "iq2_s",          "iq4_xs",         "i8",   "i16",     "i32",
      "i64",     "f64",   "iq1_m",  "bf16"};
  return t < std::size(kNames) ? kNames[t] : "unknown";
}

bool supported_ggml_type(uint32_t t) {
  switch (static_cast<GgmlType>(t)) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q8_0:
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
    case GgmlType::Q4_K:
    case GgmlType::Q6_K: return true;
  }
  return false;
}

// Bytes of one scalar metadata value; 0 for string, array and unknown types.
uint64_t scalar_size(uint32_t t) {
  switch (static_cast<GgufValueType>(t)) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::BOOL: return 1;
    case GgufValueType::U16:
    case GgufValueType::I16: return 2;
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::F32: return 4;
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::F64: return 8;
    case GgufValueType::STRING:
    case GgufValueType::ARRAY: return 0;
  }
  return 0;
}

const char* value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: return "u8";
    case GgufValueType::I8: return "i8";
    case GgufValueType::U16: return "u16";
    case GgufValueType::I16: return "i16";
    case GgufValueType::U32: return "u32";
    case GgufValueType::I32: return "i32";
    case GgufValueType::F32: return "f32";
    case GgufValueType::BOOL: return "bool";
    case GgufValueType::STRING: return "string";
    case GgufValueType::ARRAY: return "array";
    case GgufValueType::U64: return "u64";
    case GgufValueType::I64: return "i64";
    case GgufValueType::F64: return "f64";
  }
  return "?";
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// An integer value of any width as int64; false when it does not fit (a u64 above 2^63).
bool int_value(GgufValueType t, const uint8_t* p, int64_t& out) {
  switch (t) {
    case GgufValueType::U8: out = load<uint8_t>(p); return true;
    case GgufValueType::I8: out = load<int8_t>(p); return true;
    case GgufValueType::U16: out = load<uint16_t>(p); return true;
    case GgufValueType::I16: out = load<int16_t>(p); return true;
    case GgufValueType::U32: out = load<uint32_t>(p); return true;
    case GgufValueType::I32: out = load<int32_t>(p); return true;
    case GgufValueType::I64: out = load<int64_t>(p); return true;
    case GgufValueType::U64: {
      const auto v = load<uint64_t>(p);
      out = static_cast<int64_t>(v);
      return v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    }
    default: return false;
  }
}

// A bounds-checked reader over the mapping.
class Cursor {
 public:
  Cursor(const GgufFile& f, const uint8_t* base, uint64_t size) : f_(f), base_(base), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }
  const uint8_t* at(uint64_t off) const { return base_ + off; }

  // n bytes at the cursor; `what` names the field in the error.
  const uint8_t* take(uint64_t n, const std::string& what) {
    LLM_CHECK(n <= left(), f_.where(pos_), what, ": needs ", n, " bytes but the file ends ", left(),
              " bytes later (truncated?)");
    const uint8_t* p = base_ + pos_;
    pos_ += n;
    return p;
  }
  template <class T>
  T read(const std::string& what) {
    return load<T>(take(sizeof(T), what));
  }
  std::string_view string(const std::string& what) {
    const uint64_t at0 = pos_;
    const auto n = read<uint64_t>(what + " (string length)");
    LLM_CHECK(n <= left(), f_.where(at0), what, ": string length ", n, " runs past the end of the file (", left(),
              " bytes left)");
    return {reinterpret_cast<const char*>(take(n, what)), static_cast<size_t>(n)};
  }

 private:
  const GgufFile& f_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

bool mul_ok(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }
bool add_ok(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_add_overflow(a, b, &out); }

}  // namespace

std::string GgufFile::where(uint64_t offset) const { return cat(path_.string(), ": byte ", offset, ": "); }

GgufFile::GgufFile(const fs::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LLM_CHECK(fd >= 0, path.string(), ": cannot be opened: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path.string(), ": not a regular file");
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    LLM_CHECK(p != MAP_FAILED, path.string(), ": cannot be memory-mapped: ", std::strerror(err));
    base_ = static_cast<const uint8_t*>(p);
  } else {
    ::close(fd);
  }
  try {
    parse();
  } catch (...) {
    if (base_ != nullptr) ::munmap(const_cast<uint8_t*>(base_), size_);
    throw;
  }
}

GgufFile::~GgufFile() {
  if (base_ != nullptr) ::munmap(const_cast<uint8_t*>(base_), size_);
}

void GgufFile::parse() {
  Cursor c(*this, base_, size_);
  LLM_CHECK(size_ >= 4 && std::memcmp(base_, "GGUF", 4) == 0, where(0),
            "not a GGUF file (the first 4 bytes are not the magic \"GGUF\")");
  c.take(4, "magic");
  version_ = c.read<uint32_t>("version");
  LLM_CHECK(version_ == 2 || version_ == 3, where(4), "version ", version_,
            " is not supported (GGUF versions 2 and 3 are read; version 1 files predate 64-bit counts)");
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("key/value count");
  // The smallest key/value: an 8-byte key length, a 4-byte type and a 1-byte value; the smallest
  // tensor info: name length, n_dims, one dim, type, offset (8 + 4 + 8 + 4 + 8).
  LLM_CHECK(n_kv <= c.left() / 13, where(16), "key/value count ", n_kv, " cannot fit in the ", c.left(), " bytes left");
  LLM_CHECK(n_tensors <= c.left() / 32, where(8), "tensor count ", n_tensors, " cannot fit in the ", c.left(),
            " bytes left");

  // ---- key/values ----
  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t kv_at = c.pos();
    const std::string key(c.string(cat("key ", i)));
    LLM_CHECK(!key.empty(), where(kv_at), "key ", i, " is empty");
    LLM_CHECK(!kv_.contains(key), where(kv_at), key, ": the key appears twice");
    Value v;
    const uint64_t type_at = c.pos();
    const auto type = c.read<uint32_t>(key + " (value type)");
    LLM_CHECK(type <= static_cast<uint32_t>(GgufValueType::F64), where(type_at), key, ": unknown value type ", type);
    v.type = static_cast<GgufValueType>(type);
    v.offset = c.pos();
    if (v.type == GgufValueType::STRING) {
      v.data = c.at(c.pos());
      c.string(key);
    } else if (v.type == GgufValueType::ARRAY) {
      const uint64_t et_at = c.pos();
      const auto et = c.read<uint32_t>(key + " (array element type)");
      LLM_CHECK(et <= static_cast<uint32_t>(GgufValueType::F64), where(et_at), key, ": unknown array element type ",
                et);
      LLM_CHECK(et != static_cast<uint32_t>(GgufValueType::ARRAY), where(et_at), key,
                ": arrays of arrays are not supported");
      v.elem_type = static_cast<GgufValueType>(et);
      const uint64_t count_at = c.pos();
      v.count = c.read<uint64_t>(key + " (array length)");
      v.data = c.at(c.pos());
      if (v.elem_type == GgufValueType::STRING) {
        LLM_CHECK(v.count <= c.left() / 8, where(count_at), key, ": array length ", v.count,
                  " runs past the end of the file (", c.left(), " bytes left)");
        for (uint64_t j = 0; j < v.count; ++j) c.string(cat(key, "[", j, "]"));
      } else {
        uint64_t bytes = 0;
        LLM_CHECK(mul_ok(v.count, scalar_size(et), bytes) && bytes <= c.left(), where(count_at), key, ": array length ",
                  v.count, " runs past the end of the file (", c.left(), " bytes left)");
        c.take(bytes, key);
      }
    } else {
      v.data = c.take(scalar_size(type), key);
    }
    key_order_.push_back(key);
    kv_.emplace(key, v);
  }
  if (const Value* a = find("general.alignment")) {
    LLM_CHECK(a->type == GgufValueType::U32, where(a->offset), "general.alignment: expected a u32, got a ",
              value_type_name(a->type));
    const auto al = load<uint32_t>(a->data);
    LLM_CHECK(al > 0 && (al & (al - 1)) == 0, where(a->offset), "general.alignment: ", al, " is not a power of two");
    alignment_ = al;
  }

  // ---- tensor infos ----
  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t;
    t.info_offset = c.pos();
    t.name = std::string(c.string(cat("tensor ", i, " name")));
    const std::string tn = cat("tensor ", t.name.empty() ? cat("#", i) : t.name);
    LLM_CHECK(!t.name.empty(), where(t.info_offset), tn, ": empty name");
    LLM_CHECK(!tensor_index_.contains(t.name), where(t.info_offset), tn, ": the name appears twice");
    const uint64_t nd_at = c.pos();
    const auto n_dims = c.read<uint32_t>(tn + " (n_dims)");
    LLM_CHECK(n_dims >= 1 && n_dims <= 4, where(nd_at), tn, ": n_dims ", n_dims, " is not 1 to 4");
    uint64_t numel = 1;
    std::vector<int64_t> dims;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t d_at = c.pos();
      const auto n = c.read<uint64_t>(cat(tn, " (dim ", d, ")"));
      LLM_CHECK(n >= 1 && n <= (uint64_t{1} << 40), where(d_at), tn, ": dim ", d, " = ", n, " is not in [1, 2^40]");
      LLM_CHECK(mul_ok(numel, n, numel) && numel <= (uint64_t{1} << 48), where(d_at), tn,
                ": the product of the dims overflows (more than 2^48 elements)");
      dims.push_back(static_cast<int64_t>(n));
    }
    const uint64_t type_at = c.pos();
    const auto type = c.read<uint32_t>(tn + " (type)");
    LLM_CHECK(supported_ggml_type(type), where(type_at), tn, ": ggml type ", type, " (", other_ggml_type_name(type),
              ") is not supported (supported: f32, f16, bf16, q8_0, q4_0, q5_0, q4_K, q6_K)");
    t.type = static_cast<GgmlType>(type);
    const uint64_t off_at = c.pos();
    t.offset = c.read<uint64_t>(tn + " (offset)");
    LLM_CHECK(t.offset % alignment_ == 0, where(off_at), tn, ": data offset ", t.offset,
              " is not a multiple of the alignment ", alignment_);
    t.cols = dims[0];
    t.rows = static_cast<int64_t>(numel) / t.cols;
    const auto be = static_cast<uint64_t>(ggml_block_elems(t.type));
    LLM_CHECK(static_cast<uint64_t>(t.cols) % be == 0, where(dims.size() > 0 ? nd_at + 4 : nd_at), tn, ": ", t.cols,
              " values per row are not a whole number of ", ggml_type_name(t.type), " blocks of ", be);
    const uint64_t row_bytes = static_cast<uint64_t>(t.cols) / be * ggml_block_bytes(t.type);
    LLM_CHECK(mul_ok(row_bytes, static_cast<uint64_t>(t.rows), t.bytes), where(nd_at), tn, ": the byte size overflows");
    t.shape.assign(dims.rbegin(), dims.rend());
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // ---- data: aligned after the infos; every tensor inside the file, none overlapping ----
  uint64_t data_start = 0;
  LLM_CHECK(add_ok(c.pos(), alignment_ - 1, data_start), where(c.pos()), "the data section start overflows");
  data_start -= data_start % alignment_;
  LLM_CHECK(data_start <= size_ || tensors_.empty(), where(c.pos()), "the data section (aligned to ", alignment_,
            ") starts past the end of the file");
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (TensorInfo& t : tensors_) {
    uint64_t begin = 0, end = 0;
    LLM_CHECK(add_ok(data_start, t.offset, begin) && add_ok(begin, t.bytes, end) && end <= size_, where(t.info_offset),
              "tensor ", t.name, ": its ", t.bytes, " bytes at data offset ", t.offset, " (file offset ", data_start,
              " + ", t.offset, ") run past the end of the file (", size_, " bytes)");
    t.offset = begin;
    t.data = base_ + begin;
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const TensorInfo& a = tensors_[order[i - 1]];
    const TensorInfo& b = tensors_[order[i]];
    LLM_CHECK(a.offset + a.bytes <= b.offset, where(b.info_offset), "tensor ", b.name, " (bytes ", b.offset, " to ",
              b.offset + b.bytes, ") overlaps tensor ", a.name, " (bytes ", a.offset, " to ", a.offset + a.bytes, ")");
  }
}

const GgufFile::Value* GgufFile::find(std::string_view key) const {
  const auto it = kv_.find(std::string(key));
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufFile::Value& GgufFile::require(std::string_view key, const char* what) const {
  const Value* v = find(key);
  LLM_CHECK(v != nullptr, path_.string(), ": the key ", key, " (", what, ") is missing");
  return *v;
}

int64_t GgufFile::get_int(std::string_view key) const {
  const Value& v = require(key, "an integer");
  int64_t out = 0;
  LLM_CHECK(int_value(v.type, v.data, out), where(v.offset), key, ": expected an integer, got a ",
            value_type_name(v.type));
  return out;
}

double GgufFile::get_float(std::string_view key) const {
  const Value& v = require(key, "a number");
  if (v.type == GgufValueType::F32) return load<float>(v.data);
  if (v.type == GgufValueType::F64) return load<double>(v.data);
  int64_t i = 0;
  LLM_CHECK(int_value(v.type, v.data, i), where(v.offset), key, ": expected a number, got a ", value_type_name(v.type));
  return static_cast<double>(i);
}

bool GgufFile::get_bool(std::string_view key) const {
  const Value& v = require(key, "a bool");
  LLM_CHECK(v.type == GgufValueType::BOOL, where(v.offset), key, ": expected a bool, got a ", value_type_name(v.type));
  return v.data[0] != 0;
}

std::string_view GgufFile::get_string(std::string_view key) const {
  const Value& v = require(key, "a string");
  LLM_CHECK(v.type == GgufValueType::STRING, where(v.offset), key, ": expected a string, got a ",
            value_type_name(v.type));
  return {reinterpret_cast<const char*>(v.data + 8), static_cast<size_t>(load<uint64_t>(v.data))};
}

std::vector<std::string_view> GgufFile::get_string_array(std::string_view key) const {
  const Value& v = require(key, "an array of strings");
  LLM_CHECK(v.type == GgufValueType::ARRAY && v.elem_type == GgufValueType::STRING, where(v.offset), key,
            ": expected an array of strings");
  std::vector<std::string_view> out;
  out.reserve(static_cast<size_t>(v.count));
  const uint8_t* p = v.data;
  for (uint64_t i = 0; i < v.count; ++i) {  // lengths were checked when the file was opened
    const auto n = load<uint64_t>(p);
    out.emplace_back(reinterpret_cast<const char*>(p + 8), static_cast<size_t>(n));
    p += 8 + n;
  }
  return out;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  const Value& v = require(key, "an array of integers");
  const uint64_t es = scalar_size(static_cast<uint32_t>(v.elem_type));
  int64_t probe = 0;
  LLM_CHECK(v.type == GgufValueType::ARRAY && es > 0 && v.elem_type != GgufValueType::F32 &&
                v.elem_type != GgufValueType::F64 && v.elem_type != GgufValueType::BOOL,
            where(v.offset), key, ": expected an array of integers");
  std::vector<int64_t> out(static_cast<size_t>(v.count));
  for (uint64_t i = 0; i < v.count; ++i) {
    LLM_CHECK(int_value(v.elem_type, v.data + i * es, probe), where(v.offset), key, "[", i,
              "]: does not fit a 64-bit signed integer");
    out[static_cast<size_t>(i)] = probe;
  }
  return out;
}

std::vector<float> GgufFile::get_float_array(std::string_view key) const {
  const Value& v = require(key, "an array of floats");
  LLM_CHECK(v.type == GgufValueType::ARRAY && v.elem_type == GgufValueType::F32, where(v.offset), key,
            ": expected an array of f32");
  std::vector<float> out(static_cast<size_t>(v.count));
  if (v.count > 0) std::memcpy(out.data(), v.data, static_cast<size_t>(v.count) * 4);
  return out;
}

const GgufFile::TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufFile::TensorInfo& GgufFile::tensor(std::string_view name) const {
  const TensorInfo* t = find_tensor(name);
  LLM_CHECK(t != nullptr, path_.string(), ": tensor ", name, " is missing");
  return *t;
}

bool is_gguf_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace llm
