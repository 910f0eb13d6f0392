// Exports of a model directory for the deployment tools (docs/deployment.md):
//   export_hf:     a clean Hugging Face directory (transformers, vLLM, `ollama create` from safetensors);
//   export_ollama: a GGUF file plus an Ollama Modelfile (Qwen2.5's ChatML template in Go template syntax).
// (export_gguf, the GGUF file alone, is in llm/gguf.h.) Each output directory is written whole
// into a temporary sibling directory, every file fsync'ed, then renamed into place: an error
// leaves no output (and no temporary) behind.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "llm/dtype.h"
#include "llm/gguf.h"

namespace llm {

// HF's default max_shard_size for save_pretrained ("5GB", decimal).
inline constexpr uint64_t kHfDefaultMaxShardBytes = 5'000'000'000;

struct HfExportOptions {
  DType dtype = DType::BF16;  // BF16, F16 or F32 safetensors
  // Weight files above this size are split as save_pretrained splits them: tensors in order, a
  // new shard when the next one would pass the limit, a tensor larger than it alone in its shard.
  uint64_t max_shard_bytes = kHfDefaultMaxShardBytes;
};

struct HfExportResult {
  std::filesystem::path dir;
  std::vector<std::string> files;  // the names written, sorted
  int shards = 0;                  // weight files (1: model.safetensors, no index)
  uint64_t weight_bytes = 0;       // the tensors' bytes (the index's metadata.total_size)
};

// Reads a model directory (anything `llmgen --model` takes; it must hold a tokenizer) and writes
// out_dir with: model.safetensors (or model-0000N-of-0000M.safetensors + model.safetensors.index.json),
// config.json (HF Qwen2Config keys as Qwen2.5 ships them), generation_config.json (the source's,
// else Qwen's defaults), and the tokenizer files: tokenizer.json, vocab.json, merges.txt and
// tokenizer_config.json (chat_template, added_tokens_decoder) for a Qwen BPE tokenizer;
// tokenizer.model and tokenizer_config.json for a sentencepiece one. out_dir must not exist, be
// empty, or hold only files an export writes (a previous export, which is then replaced).
HfExportResult export_hf(const std::filesystem::path& model_dir, const std::filesystem::path& out_dir,
                         const HfExportOptions& opt);

// "5GB", "500MB", "2GiB", "1.5GB", "123456" (bytes) -> bytes; decimal units as HF's
// max_shard_size, binary with "i". An error naming `where` for anything else or 0.
uint64_t parse_byte_size(std::string_view s, std::string_view where);

struct OllamaExportResult {
  std::filesystem::path dir, gguf, modelfile;
  GgufExportResult gguf_result;  // .file is where it was written before the directory was renamed
  std::string name;              // a model name for `ollama create` derived from out_dir
};

// Writes out_dir/model.gguf (export_gguf with `type`) and out_dir/Modelfile (see ollama_modelfile).
// out_dir as for export_hf.
OllamaExportResult export_ollama(const std::filesystem::path& model_dir, const std::filesystem::path& out_dir,
                                 GgufFileType type);

// The Modelfile for a GGUF file named gguf_name: FROM, and, when the vocabulary has ChatML
// (chatml = it has <|im_start|> and <|im_end|>), Qwen2.5's template as Ollama's qwen2.5 Modelfile
// has it, its default SYSTEM message, the stop tokens and Qwen2.5-Instruct's sampling defaults;
// without ChatML a plain completion template.
std::string ollama_modelfile(std::string_view gguf_name, bool chatml);

// The Go template (Ollama's syntax) of Qwen2.5's ChatML, with tool calls, and its default system message.
extern const char* const kOllamaQwen25Template;
extern const char* const kQwen25DefaultSystem;

}  // namespace llm
