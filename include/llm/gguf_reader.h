// GgufFile: a GGUF file (version 2 or 3) memory-mapped and validated as a whole when it is opened,
// so that nothing read later can point outside the file. The format is described in gguf.h.
//
// Checked before use, with overflow-safe arithmetic: the magic and version, every count (bounded
// by the bytes left, so a huge count is an error, not an allocation), every string and array
// length (inside the file), value and element types, duplicate keys and tensor names,
// general.alignment (a power of two), tensor dims (1 to 4, positive, their product and byte size
// without overflow, rows a whole number of blocks), ggml types (the ones this engine computes on:
// f32, f16, bf16, q8_0, q4_0, q5_0, q4_K, q6_K; any other is an error naming the type and the
// tensor), and tensor offsets (aligned, inside the file, not overlapping).
// Every error is one llm::Error: "<file>: byte <offset>: <key or tensor>: what is wrong".
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "llm/ggml_quant.h"
#include "llm/gguf.h"

namespace llm {

class GgufFile {
 public:
  // One metadata value, pointing into the mapping. For arrays: elem_type and count; data is the
  // first element (strings inside arrays are length-prefixed as everywhere).
  struct Value {
    GgufValueType type = GgufValueType::U8;
    GgufValueType elem_type = GgufValueType::U8;  // arrays only
    uint64_t count = 0;                           // arrays only
    const uint8_t* data = nullptr;
    uint64_t offset = 0;  // the value's byte offset in the file (for errors)
  };
  struct TensorInfo {
    std::string name;
    GgmlType type = GgmlType::F32;
    std::vector<int64_t> shape;  // row-major (HF order): GGUF's dims reversed
    int64_t rows = 0, cols = 0;  // cols: the innermost dimension; rows: the product of the others
    uint64_t offset = 0;         // of the data, from the start of the file
    uint64_t bytes = 0;
    uint64_t info_offset = 0;  // of the tensor's info record (for errors)
    const uint8_t* data = nullptr;
  };

  // Maps and validates the file; throws llm::Error naming the file, the byte offset and the key
  // or tensor that is wrong.
  explicit GgufFile(const std::filesystem::path& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_size() const { return size_; }

  // ---- metadata -------------------------------------------------------------------------------
  const Value* find(std::string_view key) const;  // nullptr when absent
  bool has(std::string_view key) const { return find(key) != nullptr; }
  // Typed reads; an absent key or another type is an error naming the file, the key and its offset.
  // get_int takes any integer type (and checks it fits); get_float f32 or f64.
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  std::string_view get_string(std::string_view key) const;
  std::vector<std::string_view> get_string_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;
  std::vector<float> get_float_array(std::string_view key) const;
  const std::vector<std::string>& keys() const { return key_order_; }

  // ---- tensors --------------------------------------------------------------------------------
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;  // nullptr when absent
  const TensorInfo& tensor(std::string_view name) const;       // absent: an error naming it

  // "<file>: byte <offset>: " — the prefix of every error about this file.
  std::string where(uint64_t offset) const;

 private:
  void parse();
  const Value& require(std::string_view key, const char* what) const;

  std::filesystem::path path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::unordered_map<std::string, Value> kv_;
  std::vector<std::string> key_order_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// Whether a file starts with the GGUF magic (a model given as one file rather than a directory).
bool is_gguf_file(const std::filesystem::path& path);

}  // namespace llm
