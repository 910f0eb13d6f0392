// GGUF (version 3), the file format of ggml / llama.cpp: a writer, and the export of a Qwen2 model
// directory to a file llama.cpp loads (architecture "qwen2").
//
// File layout (little endian; docs/deployment.md has the details):
//   "GGUF" | u32 version = 3 | u64 tensor count | u64 key/value count
//   key/values: string key, u32 value type, value (strings: u64 length + bytes; arrays: u32 element
//               type, u64 count, elements)
//   tensor infos: string name, u32 n_dims, u64 dims[n_dims] (ggml order: the innermost, contiguous
//                 dimension first, i.e. the row-major shape reversed), u32 ggml type, u64 offset
//                 (from the start of the data section, a multiple of general.alignment)
//   zero padding to general.alignment (32), then the tensor data, each tensor padded to it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "llm/ggml_quant.h"
#include "llm/model.h"

namespace llm {

// gguf_type: the value types of metadata.
enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

class GgufWriter {
 public:
  static constexpr uint32_t kVersion = 3;
  static constexpr uint32_t kDefaultAlignment = 32;

  // Writes general.alignment (u32) as the first key.
  explicit GgufWriter(uint32_t alignment = kDefaultAlignment);

  // Metadata, in the order added. A key appears once (a second add is an error naming it).
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_u64(const std::string& key, uint64_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, std::string_view v);
  void add_array(const std::string& key, const std::vector<uint32_t>& v);
  void add_array(const std::string& key, const std::vector<int32_t>& v);
  void add_array(const std::string& key, const std::vector<float>& v);
  void add_array(const std::string& key, const std::vector<std::string>& v);
  void add_array(const std::string& key, const std::vector<bool>& v);

  // A tensor of row-major shape `shape` (HF order, e.g. [out, in]) stored as `type`; its innermost
  // dimension must be a whole number of the type's blocks. `data` is the encoded bytes
  // (ggml_row_bytes(type, numel)). The second form produces them only while write() runs, so a
  // large model is never held encoded in memory all at once.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type, std::vector<uint8_t> data);
  using Producer = std::function<std::vector<uint8_t>()>;
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, GgmlType type, Producer produce);

  // Writes the file atomically (temp name next to it, fsync, rename): a reader never sees a
  // partial file, and a failure leaves no file behind. Errors name the file (and the tensor).
  void write(const std::filesystem::path& file) const;

  size_t tensor_count() const { return tensors_.size(); }
  size_t kv_count() const { return kv_count_; }

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    GgmlType type;
    size_t bytes;
    Producer produce;
  };
  void begin_kv(const std::string& key, GgufValueType type);
  void add_tensor_info(const std::string& name, const std::vector<int64_t>& shape, GgmlType type, Producer produce);

  uint32_t alignment_;
  std::string kv_bytes_;  // the encoded key/value section
  size_t kv_count_ = 0;
  std::vector<std::string> keys_;
  std::vector<Tensor> tensors_;
};

// ---- export --------------------------------------------------------------------------------------

// What the 2-D weights become. f32/f16/bf16/q8_0/q4_0: every 2-D weight in that type (q4_0 as
// llama-quantize does: the output layer, or the tied embedding, in q6_K, or q8_0 when its rows
// are not a multiple of 256). q4_k_m: llama-quantize's Q4_K_M mixture (q6_K for the output layer,
// for attn_v and ffn_down in llama.cpp's "more bits" layers, q4_K elsewhere; rows that are not a
// multiple of 256 fall back to q5_0 / q8_0). Norms and biases always stay f32.
enum class GgufFileType { F32, F16, BF16, Q8_0, Q4_0, Q4_K_M };
GgufFileType parse_gguf_file_type(std::string_view s, std::string_view where);  // "f32", ..., "q4_k_m"
std::string_view gguf_file_type_name(GgufFileType t);

// llama.cpp's name of a parameter (model.layers.3.self_attn.q_proj.weight -> blk.3.attn_q.weight).
std::string gguf_tensor_name(const ParamInfo& p);

// The type export_gguf stores a parameter in (a ParamTable entry of a model with config cfg).
GgmlType gguf_tensor_type(GgufFileType type, const ModelConfig& cfg, const ParamInfo& p);

struct GgufExportResult {
  std::filesystem::path file;
  size_t bytes = 0;
  std::map<std::string, int> tensors_by_type;  // "q8_0" -> count
};

// Reads a model directory (anything `llmgen --model` accepts: a run directory, a checkpoint,
// an HF Qwen2 directory), which must hold a tokenizer (tokenizer.json or a sentencepiece model),
// and writes it as a GGUF file for llama.cpp. Every input is checked before the file is written;
// on an error no file (and no temporary) is left at out_file.
GgufExportResult export_gguf(const std::filesystem::path& model_dir, const std::filesystem::path& out_file,
                             GgufFileType type);

// Qwen2.5's ChatML chat template (Jinja), written as tokenizer.chat_template when the model
// directory's tokenizer_config.json has none of its own.
extern const char* const kQwen25ChatTemplate;

}  // namespace llm
