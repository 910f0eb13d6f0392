// The GGUF v3 writer: metadata encoded as it is added, tensor infos with offsets laid out at
// write time, then the data, streamed tensor by tensor through an AtomicFile.
#include <cstring>
#include <memory>
#include <type_traits>

#include "llm/atomic_file.h"
#include "llm/error.h"
#include "llm/gguf.h"

namespace llm {

namespace {

template <class T>
void put(std::string& out, T v) {
  static_assert(std::is_trivially_copyable_v<T>);
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // the host is little endian, as GGUF (x86-64, aarch64)
  out.append(b, sizeof(T));
}

void put_string(std::string& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.append(s);
}

constexpr size_t kMaxTensorName = 63;  // GGML_MAX_NAME (64) including the terminating zero
constexpr size_t kMaxDims = 4;         // GGML_MAX_DIMS

size_t pad_to(size_t n, size_t a) { return (n + a - 1) / a * a; }

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  LLM_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0, "gguf: alignment ", alignment,
            " is not a power of two");
  add_u32("general.alignment", alignment);
}

void GgufWriter::begin_kv(const std::string& key, GgufValueType type) {
  LLM_CHECK(!key.empty() && key.size() < 65536, "gguf: metadata key \"", key, "\" must be 1..65535 bytes");
  for (const auto& k : keys_) LLM_CHECK(k != key, "gguf: metadata key \"", key, "\" added twice");
  keys_.push_back(key);
  put_string(kv_bytes_, key);
  put<uint32_t>(kv_bytes_, static_cast<uint32_t>(type));
  ++kv_count_;
}

void GgufWriter::add_u32(const std::string& key, uint32_t v) { begin_kv(key, GgufValueType::U32), put(kv_bytes_, v); }
void GgufWriter::add_i32(const std::string& key, int32_t v) { begin_kv(key, GgufValueType::I32), put(kv_bytes_, v); }
void GgufWriter::add_u64(const std::string& key, uint64_t v) { begin_kv(key, GgufValueType::U64), put(kv_bytes_, v); }
void GgufWriter::add_f32(const std::string& key, float v) { begin_kv(key, GgufValueType::F32), put(kv_bytes_, v); }
void GgufWriter::add_bool(const std::string& key, bool v) {
  begin_kv(key, GgufValueType::BOOL);
  put<uint8_t>(kv_bytes_, v ? 1 : 0);
}
void GgufWriter::add_string(const std::string& key, std::string_view v) {
  begin_kv(key, GgufValueType::STRING);
  put_string(kv_bytes_, v);
}

#define LLM_GGUF_ARRAY(CPP, TYPE, PUT)                                            \
  void GgufWriter::add_array(const std::string& key, const std::vector<CPP>& v) { \
    begin_kv(key, GgufValueType::ARRAY);                                          \
    put<uint32_t>(kv_bytes_, static_cast<uint32_t>(GgufValueType::TYPE));         \
    put<uint64_t>(kv_bytes_, v.size());                                           \
    for (const auto& e : v) PUT;                                                  \
  }
LLM_GGUF_ARRAY(uint32_t, U32, put<uint32_t>(kv_bytes_, e))
LLM_GGUF_ARRAY(int32_t, I32, put<int32_t>(kv_bytes_, e))
LLM_GGUF_ARRAY(float, F32, put<float>(kv_bytes_, e))
LLM_GGUF_ARRAY(std::string, STRING, put_string(kv_bytes_, e))
LLM_GGUF_ARRAY(bool, BOOL, put<uint8_t>(kv_bytes_, e ? 1 : 0))
#undef LLM_GGUF_ARRAY

void GgufWriter::add_tensor_info(const std::string& name, const std::vector<int64_t>& shape, GgmlType type,
                                 Producer produce) {
  LLM_CHECK(!name.empty() && name.size() <= kMaxTensorName, "gguf: tensor name \"", name, "\" must be 1..",
            kMaxTensorName, " bytes");
  for (const auto& t : tensors_) LLM_CHECK(t.name != name, "gguf: tensor ", name, " added twice");
  LLM_CHECK(!shape.empty() && shape.size() <= kMaxDims, "gguf: tensor ", name, " has ", shape.size(),
            " dimensions (1..", kMaxDims, " allowed)");
  int64_t numel = 1;
  for (const int64_t d : shape) {
    LLM_CHECK(d > 0, "gguf: tensor ", name, " has a dimension of ", d);
    numel *= d;
  }
  const int64_t block = ggml_block_elems(type);
  LLM_CHECK(shape.back() % block == 0, "gguf: tensor ", name, ": rows of ", shape.back(),
            " values cannot be stored as ", ggml_type_name(type), " (blocks of ", block, ")");
  tensors_.push_back(Tensor{name, shape, type, ggml_row_bytes(type, numel), std::move(produce)});
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type,
                            std::vector<uint8_t> data) {
  auto held = std::make_shared<std::vector<uint8_t>>(std::move(data));
  add_tensor_info(name, shape, type, [held] { return *held; });
  LLM_CHECK(held->size() == tensors_.back().bytes, "gguf: tensor ", name, ": ", held->size(), " bytes given, ",
            ggml_type_name(type), " of this shape takes ", tensors_.back().bytes);
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type,
                            Producer produce) {
  LLM_CHECK(produce != nullptr, "gguf: tensor ", name, " has no data");
  add_tensor_info(name, shape, type, std::move(produce));
}

void GgufWriter::write(const std::filesystem::path& file) const {
  std::string head;
  head.append("GGUF");
  put<uint32_t>(head, kVersion);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kv_count_);
  head += kv_bytes_;
  size_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(head, t.name);
    put<uint32_t>(head, static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(head, static_cast<uint64_t>(*it));
    put<uint32_t>(head, static_cast<uint32_t>(t.type));
    put<uint64_t>(head, offset);
    offset = pad_to(offset + t.bytes, alignment_);
  }
  head.resize(pad_to(head.size(), alignment_), '\0');

  AtomicFile out(file);
  out.write(head.data(), head.size());
  const std::string zeros(alignment_, '\0');
  for (const Tensor& t : tensors_) {
    const std::vector<uint8_t> data = t.produce();
    LLM_CHECK(data.size() == t.bytes, file.string(), ": tensor ", t.name, ": ", data.size(), " bytes produced, ",
              t.bytes, " expected");
    out.write(data.data(), data.size());
    out.write(zeros.data(), pad_to(t.bytes, alignment_) - t.bytes);
  }
  out.commit();
}

}  // namespace llm
