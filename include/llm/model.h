// The Qwen2 model: configuration (HF Qwen2Config keys), the parameter table (HF names and shapes,
// one flat buffer), deterministic initialisation, and Qwen2Model with forward, backward and the
// recompute policies. Precision and parallelism policy live outside (trainer, optimizer).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "llm/arena.h"
#include "llm/backend.h"
#include "llm/config_reader.h"
#include "llm/lora_config.h"

namespace llm {

class CausalAttention;    // src/model/qwen2_block.h
class LoraTable;          // include/llm/lora.h
struct LoraDropoutState;  // src/model/qwen2_block.h

// Architecture hyper-parameters, named as HF's Qwen2Config names them.
struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t max_position_embeddings = 32768;
  double rope_theta = 1000000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = true;
  double initializer_range = 0.02;
  int64_t bos_token_id = 151643;
  int64_t eos_token_id = 151643;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t qkv_dim() const { return (num_attention_heads + 2 * num_key_value_heads) * head_dim(); }
  // Throws naming the first inconsistent key (prefix: where the config came from).
  void validate(const std::string& where) const;
  // HF config.json contents (architectures, model_type "qwen2", torch_dtype, ...).
  nlohmann::json to_hf_json(const std::string& torch_dtype = "float32") const;
};

// Reads the HF keys of a config object strictly: unknown keys are errors. Used for the "model"
// section of our configs (the caller marks its own extra keys, such as init_from, first).
ModelConfig parse_model_config(ConfigReader& r);
// Reads an HF config.json leniently (HF writes many keys we have no use for), rejecting what we
// cannot run: another model_type, rope_scaling, sliding-window attention, non-silu activations.
ModelConfig read_hf_config(const std::filesystem::path& config_json);

// ---- parameters ------------------------------------------------------------------------------------

enum class ParamKind : uint8_t { Embedding, Weight, Bias, Norm, Head };

struct ParamInfo {
  std::string name;            // HF tensor name
  std::vector<int64_t> shape;  // HF shape, [out, in] for linear weights
  int64_t offset = 0;          // element offset in the flat buffers
  int64_t numel = 0;
  ParamKind kind = ParamKind::Weight;
  int layer = -1;  // -1 outside the decoder layers
};

// Flat layout: embeddings, then per layer [input_layernorm | q k v weights | q k v biases | o_proj |
// post_attention_layernorm | gate up weights | down_proj], then model.norm (and lm_head when
// untied). q/k/v and gate/up sit back to back so each pair is one fused matrix ([(Hq+2Hkv)D, C] and
// [2I, C]). Each group starts on a 64-element boundary for aligned device access; the padding is
// zero and never read by the model.
class ParamTable {
 public:
  explicit ParamTable(const ModelConfig& cfg);
  const std::vector<ParamInfo>& params() const { return params_; }
  const ParamInfo& at(std::string_view name) const;  // error naming the tensor if absent
  const ParamInfo* find(std::string_view name) const;
  int64_t flat_size() const { return flat_size_; }  // with padding
  int64_t count() const { return count_; }          // parameters proper
  // Offsets of the fused blocks of layer l.
  int64_t qkv_weight_offset(int l) const { return at(layer_name(l, "self_attn.q_proj.weight")).offset; }
  static std::string layer_name(int l, std::string_view suffix);

 private:
  std::vector<ParamInfo> params_;
  int64_t flat_size_ = 0;
  int64_t count_ = 0;
};

// Qwen-style initial values for the flat range [begin, begin + count): normal(0, initializer_range)
// for embeddings and linear weights, zero biases, unit norm weights, zero padding. Each value is a
// function of (seed, parameter name, element index) alone, so any range — a ZeRO shard, a chunk —
// gets the same values as a full initialisation.
void init_parameter_values(const ModelConfig& cfg, const ParamTable& table, uint64_t seed, int64_t begin, int64_t count,
                           float* out);

// ---- the model -------------------------------------------------------------------------------------

enum class Recompute : uint8_t {
  None,       // keep every activation the backward reads
  Selective,  // keep matmul outputs (qkv, attention output, gate/up) and layer inputs; recompute norms, SwiGLU
  Full        // keep each layer's input; recompute the whole layer in backward
};
Recompute parse_recompute(std::string_view s, std::string_view where);
std::string_view recompute_name(Recompute r);

// The dtype of the residual stream (each layer's input and output, the sum after attention, the
// o_proj / down_proj outputs added into it) for a compute dtype: f32 under f16, whose 65504 is
// below the activations a few residual channels of real Qwen2 weights reach (an overflow there is
// in the forward, out of the loss scaler's reach); the compute dtype otherwise (bf16 has fp32's
// range, and a bf16 residual is what the reference PyTorch implementation runs). narrow: the
// compute dtype whatever it is (the pre-fp32-residual path, kept only so a test can show it fail).
inline DType residual_dtype(DType compute, bool narrow = false) {
  return compute == DType::F16 && !narrow ? DType::F32 : compute;
}

// Sees each tensor a forward writes, right after the op that wrote it (diagnostics and tests).
using ForwardProbe = std::function<void(int layer, const char* tensor, const Tensor& t)>;

struct ModelOptions {
  DType compute_dtype = DType::F32;  // weights and activations (the residual stream: residual_dtype)
  // Test only: the residual stream in f16 as well under f16 (residual_dtype's narrow).
  bool narrow_residual = false;
  Recompute recompute = Recompute::None;
  int64_t max_batch = 1;        // micro-batch rows the activation plan is sized for
  int64_t max_seq = 0;          // tokens per row (0: max_position_embeddings)
  bool training = true;         // allocate gradients and backward buffers
  int64_t ce_chunk_tokens = 0;  // tokens per chunk of the fused output layer + loss (0: the backend's default)
  LoraConfig lora;              // enabled: adapters on the linear layers, the base weights frozen
  // ZeRO-2 (not with LoRA, whose gradients are small): the gradients exist one bucket at a time instead of as one
  // [flat_size] buffer: one buffer the size of the largest bucket serves in turn the rest (embeddings, final norm,
  // lm_head: the output layer's and final norm's gradients, sent before the layers), each layer
  // (sent as soon as its backward is done) and the input embeddings' gradients (sent last).
  // backward() hands each to the gradient sink and zeroes the buffer.
  bool bucketed_grads = false;
};

// ZeRO-2's gradient buckets (ModelOptions::bucketed_grads): each layer is one bucket (layer l is
// [layer_begin[l], layer_begin[l + 1]) of the flat layout), the final norm one, and the embeddings
// and the output layer go in buckets of whole vocabulary rows, formed after the layers' backward
// (Backend::cross_entropy_dw, embedding_backward_rows). One buffer of `buffer` elements serves
// them all in turn.
struct GradBuckets {
  std::vector<int64_t> layer_begin;  // L + 1 entries
  int64_t largest_layer = 0;         // elements of the largest layer range
  int64_t vocab_rows = 0;            // rows per embedding / output-layer bucket: what the largest layer holds
  int64_t buffer = 0;                // max(largest layer, vocab_rows rows, the final norm)
};
GradBuckets grad_buckets(const ParamTable& table, int64_t num_layers);

// One micro-batch on the host: ids and targets [B*T]; a negative target is ignored.
// positions [B*T] (document attention, packed sequences): each token's index within its document;
// a token attends to the tokens of its document up to itself (keys t - positions[t] .. t) and is
// rotated by RoPE at positions[t]. Empty: every row is one causal sequence from position 0.
struct TokenBatch {
  int64_t B = 0, T = 0;
  std::span<const int32_t> ids;
  std::span<const int32_t> targets;
  std::span<const int32_t> positions = {};
};

struct LossSum {
  double sum = 0.0;   // sum of per-token losses
  int64_t count = 0;  // tokens with a target
  double mean() const { return count ? sum / double(count) : 0.0; }
};

class Qwen2Model {
 public:
  Qwen2Model(const ModelConfig& cfg, Backend& backend, const ModelOptions& opts);
  ~Qwen2Model();
  Qwen2Model(const Qwen2Model&) = delete;
  Qwen2Model& operator=(const Qwen2Model&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const ParamTable& params() const { return table_; }
  const ModelOptions& options() const { return opts_; }
  Backend& backend() const { return *backend_; }

  // Flat compute-dtype weights [flat_size] and fp32 gradients [flat_size] (not with
  // bucketed_grads: there the gradients go to the sink bucket by bucket).
  const Tensor& weights() const { return weights_.t(); }
  const Tensor& grads() const;
  // bucketed_grads: called with the flat offset of a range and its gradients (f32) for this
  // micro-batch, in backward order (the final norm, each layer from the last, then the rows of
  // the embeddings and of an untied output layer; GradBuckets), each range once; the buffer is
  // zeroed after the call.
  using GradSink = std::function<void(int64_t flat_begin, const Tensor& grads)>;
  void set_grad_sink(GradSink sink) { grad_sink_ = std::move(sink); }
  // Views of one parameter (HF shape) in the flat buffers.
  Tensor weight(std::string_view name) const;
  Tensor grad(std::string_view name) const;

  // Copies fp32 host values [flat_size] into the weights (rounded to the compute dtype).
  void set_weights(std::span<const float> flat);
  void zero_grads();  // the trainable parameters' gradients

  // LoRA (options().lora enabled, else null / empty): the adapter table, the adapters [lora
  // flat_size] in the compute dtype and their fp32 gradients. The base weights are then frozen:
  // no gradients are allocated or formed for them, only dx flows through them.
  const LoraTable* lora() const { return lora_.get(); }
  const Tensor& lora_weights() const { return lora_weights_.t(); }
  const Tensor& lora_grads() const { return lora_grads_.t(); }
  void set_lora_weights(std::span<const float> flat);
  // The seed of the LoRA dropout masks of the next training forward (and its backward); the
  // trainer derives it from the step, so a resumed run draws the same masks.
  void set_dropout_seed(uint64_t seed);
  // What the optimizer updates: the adapters under LoRA, else all the weights.
  const Tensor& trainable_weights() const { return lora_ ? lora_weights_.t() : weights_.t(); }
  const Tensor& trainable_grads() const { return lora_ ? lora_grads_.t() : grads_.t(); }
  int64_t trainable_size() const;

  // Forward over one micro-batch: the summed loss and the target count. With grad = true the
  // output layer's gradients are formed here already (the fused loss never keeps logits):
  // d(loss_sum * grad_scale) flows back, so the caller passes grad_scale = loss_scale / targets
  // of the whole optimizer step. Then backward() adds this micro-batch's gradients to grads().
  LossSum forward(const TokenBatch& batch, bool grad, float grad_scale = 1.0f);
  void backward();
  // Logits [B*T, V] in fp32 on the host, for tests and tools (allocates [N, V]; small models).
  std::vector<float> logits(const TokenBatch& batch);

  // The loss forward (no gradients; the last forward's activations are overwritten) calling probe
  // after each op with the tensor it wrote: layer -1 "embedding out", layers 0 .. L-1 the block's
  // tensors (src/model/qwen2_block.cpp names them), layer L "model.norm out" and "per-token loss".
  LossSum probe_forward(const TokenBatch& batch, const ForwardProbe& probe);
  // Where the loss forward of batch first holds a value that is not finite, as a sentence naming
  // the layer and tensor (nonfinite_advice, src/model/finite_check.h): what llmtrain says on a
  // non-finite loss. Diagnostics only: one Backend::sum per tensor.
  std::string diagnose_nonfinite(const TokenBatch& batch);

  // Arenas: "weights", "grads", "activations", "scratch".
  std::vector<const Arena*> arenas() const;

 private:
  struct Layer;      // views of one layer's weights and gradients
  struct LayerActs;  // views of the activations one layer keeps for the backward
  struct Buffers;    // every activation and scratch buffer of the plan

  Layer bind_layer(int l) const;
  void bind_lora(int l, Layer& L) const;
  void upload_rounded(std::span<const float> flat, const Tensor& dst);
  Buffers plan_buffers();
  Tensor residual(int l, int64_t N) const;  // x_l [N, C]: the input of layer l
  void check_batch(const TokenBatch& batch, bool need_targets) const;
  void embed_and_layers(const TokenBatch& batch, int64_t B, int64_t T, const ForwardProbe* probe = nullptr);
  LossSum loss_forward(const TokenBatch& batch, bool grad, float grad_scale, const ForwardProbe* probe);
  void layer_forward(int l, const Tensor& x_in, const Tensor& x_out, const LayerActs& a, int64_t B, int64_t T,
                     const ForwardProbe* probe = nullptr);
  void layer_backward(int l, const LayerActs& a, int64_t B, int64_t T);
  void recompute_layer(int l, const LayerActs& a, int64_t B, int64_t T);
  LayerActs acts_for(int l, int64_t N, int64_t B, int64_t T) const;
  CausalAttention attention_for(const LayerActs& a, int64_t B, int64_t T) const;

  ModelConfig cfg_;
  ParamTable table_;
  ModelOptions opts_;
  Backend* backend_;
  Arena weights_arena_, grads_arena_, act_arena_, scratch_arena_;
  OwnedTensor weights_;
  OwnedTensor grads_;  // [flat_size], or with bucketed_grads one bucket [buckets_.buffer]
  // Every model's: bucketed_grads uses them all, and every mode runs the output layer's GEMMs in
  // blocks of vocab_rows rows, so that bucketed and whole-buffer runs compute the same
  // (Backend::cross_entropy's row_block).
  GradBuckets buckets_;
  GradSink grad_sink_;
  Tensor grad_range(int64_t flat_offset, int64_t n) const;  // where the gradients of a flat range live
  void send_bucket(int64_t flat_begin, const Tensor& g);    // to the sink, then zeroed
  void flush_layer_grads(int l);
  void flush_norm_grads();
  void vocab_row_buckets();  // the embeddings' and output layer's gradients, bucket by bucket
  std::unique_ptr<LoraTable> lora_;
  OwnedTensor lora_weights_, lora_grads_;
  OwnedTensor norm_grad_sink_;                   // [C] f32: the frozen norms' gradients under LoRA, discarded
  std::unique_ptr<LoraDropoutState> lora_drop_;  // read by the adapters (a stable address)
  std::vector<Layer> layers_;
  std::unique_ptr<Buffers> buf_;
  Tensor rope_cos_, rope_sin_;  // [max_seq, D/2] f32
  int64_t last_B_ = 0, last_T_ = 0;
  float last_grad_scale_ = 1.0f;  // of the last forward with gradients (bucketed: the output layer's dw)
  bool has_positions_ = false;    // the batch being run carries positions (document attention)
  bool have_forward_grad_ = false;
};

}  // namespace llm
