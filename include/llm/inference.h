// InferenceModel: a Qwen2 model loaded for generation. Batched prefill, then token-by-token
// decode against a KV cache that holds the Hkv key/value heads (not Hq) of every layer, sized by
// the context the user asks for, in one or more slots (one sequence each). The same block as
// training (src/model/qwen2_block.h) with the KV-cache attention; optional weight-only int8/int4
// quantization of every linear layer and the output layer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "llm/arena.h"
#include "llm/backend.h"
#include "llm/model.h"
#include "llm/tokenizer.h"

namespace llm {

class FiniteWatch;  // src/model/finite_check.h

class WeightSource;

enum class QuantMode : uint8_t { None, Int8, Int4 };
QuantMode parse_quant(std::string_view s, std::string_view where);  // "none" | "int8" | "int4"
std::string_view quant_name(QuantMode q);

struct InferenceOptions {
  int64_t context = 4096;       // KV-cache positions (capped by max_position_embeddings)
  int64_t prefill_chunk = 256;  // tokens per prefill forward
  DType dtype = DType::F32;     // weights and activations (when not quantized) and the KV cache
  QuantMode quant = QuantMode::None;
  int64_t quant_group = 64;  // columns per scale (int4: 32 or 64; int8: 0 = one per row)
  // int8/int4 on the CPU: prompts and batched decode multiply by int8-quantized activations on
  // integer dot products (QuantizedMatrix::int8_activations); off, only the weights are quantized.
  bool int8_activations = false;
  // Decode steps (one token, logits of the last) recorded once as a graph and replayed, on a
  // backend with a recorder() (CUDA): one launch per token instead of one per op.
  bool graphs = true;
  // KV-cache slots: sequences that can be held at once (forward_batch). Each costs a full
  // context of keys and values.
  int64_t slots = 1;
  // A PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) merged into
  // the weights at load (W += alpha/r B A in fp32, before any rounding or quantization); empty: none.
  std::filesystem::path lora;
  // Test only: the residual stream in f16 as well under f16 (residual_dtype's narrow).
  bool narrow_residual = false;
};

// New tokens for one sequence of a batch, appended at its slot's position.
struct SeqTokens {
  int64_t slot = 0;
  std::span<const int32_t> tokens;
};

// Where a model directory's files are: our run directory (its `latest` checkpoint), one of our
// checkpoint directories, or an HF Qwen2 directory.
struct ModelFiles {
  std::filesystem::path dir;        // the directory holding config.json and the weights
  std::filesystem::path tokenizer;  // tokenizer.json or tokenizer.model (may be empty: none found)
};
ModelFiles locate_model(const std::filesystem::path& path);

class InferenceModel {
 public:
  // Builds from a config and fp32 host weights [ParamTable(cfg).flat_size()].
  InferenceModel(const ModelConfig& cfg, std::span<const float> weights, Backend& backend, const InferenceOptions& opt);
  ~InferenceModel();
  InferenceModel(const InferenceModel&) = delete;
  InferenceModel& operator=(const InferenceModel&) = delete;

  // Builds from a config and a source of weights (src/gen/weight_source.h): what the two
  // loaders below share.
  InferenceModel(const ModelConfig& cfg, const WeightSource& weights, Backend& backend, const InferenceOptions& opt);

  // Loads config.json, the weights and the tokenizer of a model directory (see locate_model), or
  // a GGUF file (load_gguf).
  static std::unique_ptr<InferenceModel> load(const std::filesystem::path& path, Backend& backend,
                                              const InferenceOptions& opt);

  // Loads a Qwen2 GGUF file (general.architecture qwen2, as llama.cpp writes and reads them):
  // the config from qwen2.*, the weights by llama.cpp's tensor names (quantized tensors kept in
  // their ggml blocks unless opt.quant asks for int8/int4; f32/f16/bf16 matrices become dense in
  // opt.dtype), the tokenizer from tokenizer.ggml.* and the chat template. src/gen/gguf_model.cpp.
  static std::unique_ptr<InferenceModel> load_gguf(const std::filesystem::path& file, Backend& backend,
                                                   const InferenceOptions& opt);
  // tokenizer.chat_template of a GGUF file (empty otherwise).
  const std::string& chat_template() const { return chat_template_; }

  const ModelConfig& config() const { return cfg_; }
  const InferenceOptions& options() const { return opt_; }
  Backend& backend() const { return *backend_; }
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  int64_t context() const { return context_; }
  int64_t position() const { return pos_[0]; }  // tokens in slot 0

  // Slot 0, one sequence: appends tokens at position(); returns the logits [V] after the last
  // one (fp32, host).
  std::vector<float> forward(std::span<const int32_t> tokens);
  // As forward, but the logits after every token, [tokens.size() * V].
  std::vector<float> forward_all(std::span<const int32_t> tokens);
  void reset() { reset(0); }
  // Keeps the first n cached positions (n <= position()).
  void truncate(int64_t n) { truncate(0, n); }

  // Several sequences in one forward pass (continuous batching): every linear layer runs once
  // over all their rows, attention per sequence against its own slot. Each sequence's tokens are
  // appended at position(slot); returns the logits after each one's last token, [seqs.size() * V].
  // A slot appears at most once; the rows (sum of tokens) are at most batch_rows().
  std::vector<float> forward_batch(std::span<const SeqTokens> seqs);
  int64_t slots() const { return static_cast<int64_t>(pos_.size()); }
  int64_t batch_rows() const { return rows_; }
  int64_t position(int64_t slot) const;
  void reset(int64_t slot) { truncate(slot, 0); }  // frees the slot
  void truncate(int64_t slot, int64_t n);

  size_t weight_bytes() const;
  size_t kv_cache_bytes() const;
  // Decode steps replayed from the recorded graph so far (0 when graphs are off or unsupported).
  int64_t graph_replays() const;
  // Why recording the decode step failed, if it did (decode steps then run op by op).
  const std::string& graph_error() const;

 private:
  struct Impl;
  struct SeqRowsList;
  void check_tokens(std::span<const int32_t> tokens, int64_t slot) const;
  void run(std::span<const int32_t> tokens, std::vector<float>* all, std::vector<float>* last);
  // The ops of one batch: ids [N] on the device, seqs covering its N rows in order. A watch
  // (diagnostics) checks each tensor as it is written.
  void issue_layers(const Tensor& ids, const SeqRowsList& seqs, FiniteWatch* watch = nullptr);
  // The ops of the output layer for the given rows of the batch: logits [rows.size(), V] on the device.
  void issue_head(std::span<const int64_t> rows, FiniteWatch* watch = nullptr);
  // Nothing when every logit is finite; otherwise re-runs what produced them (rerun: the same
  // ops, with the watch, writing the same KV-cache entries again) and fails naming the first
  // layer and tensor with a non-finite value.
  void check_logits(std::span<const float> logits, const std::function<void(FiniteWatch&)>& rerun);
  // One token of slot 0 with the logits after it; through the recorded graph when the backend has graphs.
  void decode_step(int32_t token, std::vector<float>* last);

  ModelConfig cfg_;
  InferenceOptions opt_;
  Backend* backend_;
  int64_t context_ = 0;
  int64_t rows_ = 0;          // rows of the activation buffers: max(prefill_chunk, slots)
  std::vector<int64_t> pos_;  // tokens cached in each slot
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string chat_template_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace llm
