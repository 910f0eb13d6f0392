// Hugging Face safetensors files: a memory-mapped reader that validates the whole file up front,
// and a streaming writer.
//
// Format: 8-byte little-endian u64 N; N bytes of UTF-8 JSON object
//   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}, ...}
// then the data buffer; offsets are relative to its first byte (file byte 8 + N).
//
// The reader accepts what HF's own loader (safetensors/src/tensor.rs) accepts, and additionally
// rejects a few things HF lets through silently:
//   - N <= 100'000'000 (HF's MAX_HEADER_SIZE) and 8 + N <= file size;
//   - the header is valid UTF-8 JSON and an object; whitespace padding after it is fine;
//   - "__metadata__" is an object of string values; null is read as absent (as HF does);
//   - every other key is a tensor: an object with dtype, shape, data_offsets and no other key
//     (HF ignores extra keys; we reject them);
//   - dtype is one of BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 BF16 I32 U32 F32 F64 I64 U64
//     (HF's list minus the sub-byte F4/F6 types);
//   - shape is an array of non-negative integers ([] is a scalar, a 0 makes an empty tensor),
//     and numel * dtype size does not overflow;
//   - data_offsets is [begin, end], non-negative integers, begin <= end, end - begin equal to
//     numel * dtype size, inside the file;
//   - sorted by offset, the tensors tile the data buffer exactly, as HF requires: no overlap, no
//     gap, no bytes after the last tensor;
//   - a key appearing twice in any JSON object is an error (HF keeps one of them).
// Errors are llm::Error naming the file and, where it applies, the tensor and the byte offset.
//
// Data is little-endian (only little-endian hosts are supported). A tensor's bytes need not be
// aligned for its dtype (the writer keeps the order tensors were added in), so read them with
// memcpy or the read_* helpers, not by casting the pointer. The file must not be truncated while
// a reader maps it (that would be SIGBUS on access, as with any mmap).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "llm/dtype.h"

namespace llm {

// Largest header the reader accepts and the writer produces (HF's limit).
inline constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

// Bytes per element of a safetensors dtype name ("F32" -> 4); 0 for a name not accepted.
size_t safetensors_dtype_size(std::string_view dtype);
// The safetensors name of one of our dtypes (DType::BF16 -> "BF16").
std::string_view safetensors_dtype_name(DType dtype);

struct SafetensorsTensor {
  std::string name;
  std::string dtype;           // "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", ...
  std::vector<int64_t> shape;  // [] for a scalar
  uint64_t offset = 0;         // absolute byte offset of the data in the file
  uint64_t nbytes = 0;
  int64_t numel() const;
};

class SafetensorsReader {
 public:
  // Maps the file and validates everything listed above; throws llm::Error on the first problem.
  explicit SafetensorsReader(const std::filesystem::path& path);

  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }  // sorted by offset
  const SafetensorsTensor* find(std::string_view name) const;                 // nullptr if absent
  const SafetensorsTensor& at(std::string_view name) const;                   // throws naming the file and tensor
  std::span<const std::byte> bytes(const SafetensorsTensor& t) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::filesystem::path& path() const { return path_; }

  // Copies float tensor `name` (F64/F32/F16/BF16 in the file) into dst (numel elements of
  // dst_dtype = F32, F16 or BF16), rounding to nearest even. F64 -> F16/BF16 rounds once (via
  // round-to-odd), not twice. Throws if the file's shape differs from expected_shape, naming the
  // file, the tensor and both shapes.
  void read_into(std::string_view name, std::span<const int64_t> expected_shape, DType dst_dtype, void* dst) const;
  // A float tensor of any shape as fp32.
  std::vector<float> read_f32(std::string_view name) const;
  // An I32 tensor, or an I64 one whose values all fit (else an error naming the element).
  std::vector<int32_t> read_i32(std::string_view name) const;

 private:
  struct Unmap {
    size_t size;  // no default member initializer: it would make Unmap not default-constructible
                  // while SafetensorsReader is incomplete (a GCC rule), which unique_ptr needs
    void operator()(const std::byte* p) const noexcept;
  };

  std::filesystem::path path_;
  std::unique_ptr<const std::byte, Unmap> map_;  // the whole file
  size_t file_size_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// Collects tensors (by pointer: nothing is copied) and writes them in one pass.
class SafetensorsWriter {
 public:
  // data (numel * dtype_size(dtype) bytes, may be null when that is 0) must stay valid until
  // write(). Throws on a duplicate or reserved ("__metadata__") name, a name that is not valid
  // UTF-8, or a negative dimension.
  void add(std::string name, DType dtype, std::vector<int64_t> shape, const void* data);
  // Throws on a duplicate key or a key/value that is not valid UTF-8.
  void add_metadata(std::string key, std::string value);
  // Writes the header (padded with spaces to a multiple of 8) and the tensors back to back in the
  // order added, through AtomicFile: the target is replaced only when the file is complete.
  void write(const std::filesystem::path& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    const void* data;
    uint64_t nbytes;
  };
  std::vector<Entry> entries_;
  std::set<std::string, std::less<>> names_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace llm
