// InferenceModel: weights per tensor (fused q/k/v and gate/up as in training), optionally
// quantized; a KV cache of Hkv heads per layer; prefill in chunks; decode one token at a time.
// On a backend with graphs (CUDA) a decode step is recorded once and replayed: its token and
// position are uploaded to a small device buffer before each replay, and every op of the step
// reads them from there (Backend::decode_attention), so one recording serves every position.
#include "llm/inference.h"

#include <algorithm>

#include "llm/checkpoint.h"
#include "llm/error.h"
#include "llm/hf_weights.h"
#include "model/rope_tables.h"

namespace llm {

namespace fs = std::filesystem;

QuantMode parse_quant(std::string_view s, std::string_view where) {
  if (s == "none") return QuantMode::None;
  if (s == "int8") return QuantMode::Int8;
  if (s == "int4") return QuantMode::Int4;
  fail(where, ": \"", s, "\" is not one of: none, int8, int4");
}

std::string_view quant_name(QuantMode q) {
  switch (q) {
    case QuantMode::None: return "none";
    case QuantMode::Int8: return "int8";
    case QuantMode::Int4: return "int4";
  }
  return "?";
}

ModelFiles locate_model(const fs::path& path) {
  LLM_CHECK(fs::exists(path), path.string(), ": no such model directory");
  LLM_CHECK(fs::is_directory(path), path.string(), ": not a directory (expected a run, checkpoint or HF model directory)");
  ModelFiles f;
  if (fs::exists(path / "config.json")) {
    f.dir = path;
  } else if (auto ck = latest_checkpoint(path)) {
    f.dir = *ck;
  } else {
    fail(path.string(), ": no config.json and no checkpoint (step_*/ or latest) inside");
  }
  for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
    if (fs::exists(f.dir / name)) return f.tokenizer = f.dir / name, f;
  }
  for (const auto& e : fs::directory_iterator(f.dir)) {
    if (e.path().extension() == ".model") return f.tokenizer = e.path(), f;
  }
  return f;
}

// A linear layer's weight [out, in]: dense in the compute dtype, or quantized.
struct Linear {
  OwnedTensor dense;
  QuantizedMatrix q;
  OwnedTensor qdata, qscales;
  bool quantized = false;
  size_t bytes() const { return dense.empty() ? qdata->nbytes() + qscales->nbytes() : dense->nbytes(); }
};

struct InferenceModel::Impl {
  explicit Impl(Backend& be) : weights(be, "weights"), cache(be, "kv-cache"), acts(be, "activations") {}
  Arena weights, cache, acts;
  struct Layer {
    OwnedTensor ln1, qkv_b, ln2;
    Linear qkv, o, gate_up, down;
  };
  std::vector<Layer> layers;
  OwnedTensor final_norm;
  Linear embed;                 // the input table [V, C]
  Linear head_own;              // lm_head when untied
  const Linear* head = nullptr; // the output layer: embed (tied) or head_own
  OwnedTensor k_cache, v_cache; // [L, ctx, Hkv, D] each
  OwnedTensor rope_cos, rope_sin;
  // activations for one chunk of n <= chunk tokens
  OwnedTensor ids, x, ln, qkv, att, proj, h2, gate_up, act, rstd, logits;
  OwnedTensor step;  // i32 [2]: the token and the position of a one-token step
  // The recorded decode step (graphs), and how steps ran so far.
  std::unique_ptr<OpGraph> graph;
  std::string graph_error;
  int64_t eager_steps = 0, replays = 0;
};

InferenceModel::~InferenceModel() = default;

InferenceModel::InferenceModel(const ModelConfig& cfg, std::span<const float> weights, Backend& backend,
                               const InferenceOptions& opt)
    : cfg_(cfg), opt_(opt), backend_(&backend), impl_(std::make_unique<Impl>(backend)) {
  cfg_.validate("model");
  const ParamTable table(cfg_);
  LLM_CHECK(static_cast<int64_t>(weights.size()) == table.flat_size(), "inference: ", weights.size(),
            " weights for a model of ", table.flat_size());
  LLM_CHECK(opt_.context > 0 && opt_.prefill_chunk > 0, "inference: context and prefill_chunk must be positive");
  context_ = std::min(opt_.context, cfg_.max_position_embeddings);
  const DType dt = opt_.quant == QuantMode::None ? opt_.dtype : DType::F32;
  Impl& m = *impl_;
  Backend& be = backend;
  const int64_t C = cfg_.hidden_size, I = cfg_.intermediate_size, Q = cfg_.qkv_dim(), D = cfg_.head_dim();
  const int64_t Hq = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads, V = cfg_.vocab_size;
  const int64_t L = cfg_.num_hidden_layers, chunk = opt_.prefill_chunk;

  // Upload through a staging buffer, rounding to the storage dtype on the device.
  Arena staging(be, "staging");
  auto upload = [&](int64_t offset, std::initializer_list<int64_t> shape) {
    OwnedTensor t = m.weights.tensor(dt, shape);
    OwnedTensor s = staging.tensor(DType::F32, shape);
    be.upload(s.t(), weights.data() + offset);
    be.copy(s.t(), t.t());
    return t;
  };
  auto linear = [&](int64_t offset, int64_t rows, int64_t cols) {
    Linear lin;
    if (opt_.quant == QuantMode::None) {
      lin.dense = upload(offset, {rows, cols});
      return lin;
    }
    const bool int4 = opt_.quant == QuantMode::Int4;
    const int64_t group = int4 || opt_.quant_group > 0 ? opt_.quant_group : cols;
    LLM_CHECK(group > 0 && cols % group == 0 && (!int4 || group % 2 == 0), "inference: quantization group ", group,
              " does not divide the ", cols, " columns of a ", rows, "x", cols, " matrix");
    OwnedTensor s = staging.tensor(DType::F32, {rows, cols});
    be.upload(s.t(), weights.data() + offset);
    lin.quantized = true;
    lin.qdata = int4 ? m.weights.tensor(DType::U8, {rows, cols / 2}) : m.weights.tensor(DType::I8, {rows, cols});
    lin.qscales = m.weights.tensor(DType::F32, {rows, cols / group});
    lin.q = QuantizedMatrix{int4 ? QuantKind::Int4 : QuantKind::Int8, rows, cols, group, lin.qdata.t(), lin.qscales.t()};
    be.quantize(s.t(), lin.q);
    return lin;
  };
  auto vec = [&](std::string_view name, int64_t n) { return upload(table.at(name).offset, {n}); };
  for (int l = 0; l < static_cast<int>(L); ++l) {
    Impl::Layer ly;
    auto at = [&](const char* s) { return table.at(ParamTable::layer_name(l, s)).offset; };
    ly.ln1 = vec(ParamTable::layer_name(l, "input_layernorm.weight"), C);
    ly.qkv_b = upload(at("self_attn.q_proj.bias"), {Q});
    ly.ln2 = vec(ParamTable::layer_name(l, "post_attention_layernorm.weight"), C);
    ly.qkv = linear(at("self_attn.q_proj.weight"), Q, C);
    ly.o = linear(at("self_attn.o_proj.weight"), C, Hq * D);
    ly.gate_up = linear(at("mlp.gate_proj.weight"), 2 * I, C);
    ly.down = linear(at("mlp.down_proj.weight"), C, I);
    m.layers.push_back(std::move(ly));
  }
  m.final_norm = vec("model.norm.weight", C);
  m.embed = linear(table.at("model.embed_tokens.weight").offset, V, C);
  if (cfg_.tie_word_embeddings) {
    m.head = &m.embed;
  } else {
    m.head_own = linear(table.at("lm_head.weight").offset, V, C);
    m.head = &m.head_own;
  }
  m.k_cache = m.cache.tensor(dt, {L * context_ * Hkv * D});
  m.v_cache = m.cache.tensor(dt, {L * context_ * Hkv * D});
  std::vector<float> cs, sn;
  build_rope_tables(cfg_, context_, cs, sn);
  m.rope_cos = m.acts.tensor(DType::F32, {context_, D / 2});
  m.rope_sin = m.acts.tensor(DType::F32, {context_, D / 2});
  be.upload(m.rope_cos.t(), cs.data());
  be.upload(m.rope_sin.t(), sn.data());
  m.ids = m.acts.tensor(DType::I32, {chunk});
  m.x = m.acts.tensor(dt, {chunk * C});
  m.ln = m.acts.tensor(dt, {chunk * C});
  m.qkv = m.acts.tensor(dt, {chunk * Q});
  m.att = m.acts.tensor(dt, {chunk * Hq * D});
  m.proj = m.acts.tensor(dt, {chunk * C});
  m.h2 = m.acts.tensor(dt, {chunk * C});
  m.gate_up = m.acts.tensor(dt, {chunk * 2 * I});
  m.act = m.acts.tensor(dt, {chunk * I});
  m.rstd = m.acts.tensor(DType::F32, {chunk});
  m.logits = m.acts.tensor(DType::F32, {V});
  m.step = m.acts.tensor(DType::I32, {2});
}

std::unique_ptr<InferenceModel> InferenceModel::load(const fs::path& path, Backend& backend,
                                                     const InferenceOptions& opt) {
  const ModelFiles files = locate_model(path);
  const ModelConfig cfg = read_hf_config(files.dir / "config.json");
  const ParamTable table(cfg);
  const std::vector<float> w = read_model_weights(files.dir, table, cfg);
  auto model = std::make_unique<InferenceModel>(cfg, w, backend, opt);
  if (!files.tokenizer.empty()) model->tokenizer_ = load_tokenizer(files.tokenizer);
  if (model->tokenizer_) {
    LLM_CHECK(model->tokenizer_->vocab_size() <= cfg.vocab_size, files.tokenizer.string(), ": the tokenizer has ",
              model->tokenizer_->vocab_size(), " ids but the model's vocabulary is ", cfg.vocab_size);
  }
  return model;
}

size_t InferenceModel::weight_bytes() const { return impl_->weights.live_bytes(); }
size_t InferenceModel::kv_cache_bytes() const { return impl_->cache.live_bytes(); }
int64_t InferenceModel::graph_replays() const { return impl_->replays; }
const std::string& InferenceModel::graph_error() const { return impl_->graph_error; }

void InferenceModel::truncate(int64_t n) {
  LLM_CHECK(n >= 0 && n <= pos_, "inference: cannot keep ", n, " of ", pos_, " cached positions");
  pos_ = n;
}

std::vector<float> InferenceModel::forward(std::span<const int32_t> tokens) {
  std::vector<float> last;
  run(tokens, nullptr, &last);
  return last;
}

std::vector<float> InferenceModel::forward_all(std::span<const int32_t> tokens) {
  std::vector<float> all;
  run(tokens, &all, nullptr);
  return all;
}

namespace {
void apply(Backend& be, const Tensor& x, const Linear& lin, const Tensor& y, const Tensor* bias) {
  if (lin.quantized) {
    be.quant_matmul(x, lin.q, y, bias);
  } else {
    be.matmul(x, false, lin.dense, true, y, 1.0f, 0.0f, bias);
  }
}
}  // namespace

void InferenceModel::run(std::span<const int32_t> tokens, std::vector<float>* all, std::vector<float>* last) {
  LLM_CHECK(!tokens.empty(), "inference: no tokens to process");
  LLM_CHECK(pos_ + static_cast<int64_t>(tokens.size()) <= context_, "inference: ", pos_, " cached + ", tokens.size(),
            " new tokens exceed the context of ", context_, " positions");
  // Checked here, on the host: a recorded step cannot check its ids on the device.
  for (size_t i = 0; i < tokens.size(); ++i) {
    LLM_CHECK(tokens[i] >= 0 && tokens[i] < cfg_.vocab_size, "inference: token id ", tokens[i], " at position ", i,
              " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
  }
  if (tokens.size() == 1 && last) return decode_step(tokens[0], last);
  Impl& m = *impl_;
  Backend& be = *backend_;
  const int64_t V = cfg_.vocab_size;
  if (all) all->reserve(tokens.size() * static_cast<size_t>(V));
  for (size_t start = 0; start < tokens.size(); start += static_cast<size_t>(opt_.prefill_chunk)) {
    const int64_t n = std::min<int64_t>(opt_.prefill_chunk, static_cast<int64_t>(tokens.size() - start));
    Tensor ids;
    if (n == 1) {  // a one-token chunk takes the decode path, which reads the position from m.step
      const int32_t step[2] = {tokens[start], static_cast<int32_t>(pos_)};
      be.upload(m.step.t(), step);
      ids = m.step->range(0, 1);
    } else {
      ids = m.ids->range(0, n);
      be.upload(ids, tokens.data() + start);
    }
    issue_layers(ids, n, pos_);
    pos_ += n;
    const bool final_chunk = start + static_cast<size_t>(n) >= tokens.size();
    if (all) {
      // Row by row keeps the logits buffer at [V] whatever the chunk size.
      for (int64_t r = 0; r < n; ++r) {
        issue_head(r);
        const size_t off = all->size();
        all->resize(off + static_cast<size_t>(V));
        be.download(m.logits.t(), all->data() + off);
      }
    } else if (final_chunk) {
      issue_head(n - 1);
      last->resize(static_cast<size_t>(V));
      be.download(m.logits.t(), last->data());
    }
  }
}

void InferenceModel::decode_step(int32_t token, std::vector<float>* last) {
  Impl& m = *impl_;
  Backend& be = *backend_;
  const int32_t step[2] = {token, static_cast<int32_t>(pos_)};
  be.upload(m.step.t(), step);  // before the replay: the recorded ops read both from here
  const Tensor ids = m.step->range(0, 1);
  OpRecorder* const recorder = opt_.graphs && m.graph_error.empty() ? be.recorder() : nullptr;
  const bool graphs = recorder != nullptr;
  // Recorded at the second step: the first ran the same ops one by one, which sized the backend's
  // workspace and built its matmul plans (nothing may allocate while recording).
  if (graphs && !m.graph && m.eager_steps > 0) {
    recorder->begin();
    try {
      issue_layers(ids, 1, pos_);
      issue_head(0);
      m.graph = recorder->end();
    } catch (const std::exception& e) {
      // Nothing ran while recording: fall back to running the step op by op, now and later.
      recorder->abort();
      m.graph_error = e.what();
    }
  }
  if (graphs && m.graph) {
    m.graph->replay();
    ++m.replays;
  } else {
    issue_layers(ids, 1, pos_);
    issue_head(0);
    ++m.eager_steps;
  }
  ++pos_;
  last->resize(static_cast<size_t>(cfg_.vocab_size));
  be.download(m.logits.t(), last->data());
}

void InferenceModel::issue_layers(const Tensor& ids, int64_t n, int64_t pos0) {
  Impl& m = *impl_;
  Backend& be = *backend_;
  const int64_t C = cfg_.hidden_size, I = cfg_.intermediate_size, Q = cfg_.qkv_dim(), D = cfg_.head_dim();
  const int64_t Hq = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads;
  const auto eps = static_cast<float>(cfg_.rms_norm_eps);
  const int64_t layer_cache = context_ * Hkv * D;
  const Tensor x = m.x->range(0, n * C).view({n, C});                  // [n, C] residual
  const Tensor ln = m.ln->range(0, n * C).view({n, C});                // [n, C]
  const Tensor qkv = m.qkv->range(0, n * Q).view({n, Q});              // [n, (Hq + 2Hkv) D]
  const Tensor att = m.att->range(0, n * Hq * D).view({n, Hq * D});    // [n, Hq D]
  const Tensor proj = m.proj->range(0, n * C).view({n, C});
  const Tensor h2 = m.h2->range(0, n * C).view({n, C});
  const Tensor gu = m.gate_up->range(0, n * 2 * I).view({n, 2 * I});  // [n, 2I]
  const Tensor act = m.act->range(0, n * I).view({n, I});              // [n, I]
  const Tensor rstd = m.rstd->range(0, n);
  if (m.embed.quantized) {
    be.quant_embedding(ids, m.embed.q, x);
  } else {
    be.embedding_forward(ids, m.embed.dense, x);
  }
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const Impl::Layer& ly = m.layers[l];
    be.rmsnorm_forward(x, ly.ln1, eps, ln, rstd);
    apply(be, ln, ly.qkv, qkv, &ly.qkv_b.t());
    const Tensor heads = qkv.view({1, n, Hq + 2 * Hkv, D});
    // The layer's cache [1, ctx, Hkv, D]: this chunk's k, v go to positions [pos0, pos0 + n).
    const Tensor kc = m.k_cache->range(int64_t(l) * layer_cache, layer_cache).view({1, context_, Hkv, D});
    const Tensor vc = m.v_cache->range(int64_t(l) * layer_cache, layer_cache).view({1, context_, Hkv, D});
    if (n == 1) {
      // Rope, cache write and attention at the position in m.step (== pos0), so that the same
      // ops, recorded once, serve every position.
      be.decode_attention(heads, m.rope_cos, m.rope_sin, kc, vc, m.step->range(1, 1), pos0, att.view({1, 1, Hq, D}));
    } else {
      be.rope(heads.slice(2, 0, Hq + Hkv), m.rope_cos, m.rope_sin, pos0, false);
      be.copy(heads.slice(2, Hq, Hq + Hkv), kc.slice(1, pos0, pos0 + n));
      be.copy(heads.slice(2, Hq + Hkv, Hq + 2 * Hkv), vc.slice(1, pos0, pos0 + n));
      be.attention_forward(heads.slice(2, 0, Hq), kc.slice(1, 0, pos0 + n), vc.slice(1, 0, pos0 + n),
                           att.view({1, n, Hq, D}), Tensor());
    }
    apply(be, att, ly.o, proj, nullptr);
    be.add_rmsnorm_forward(x, proj, ly.ln2, eps, h2, ln, rstd);
    apply(be, ln, ly.gate_up, gu, nullptr);
    be.swiglu_forward(gu, act);
    apply(be, act, ly.down, proj, nullptr);
    be.add(h2, proj, x);
  }
}

void InferenceModel::issue_head(int64_t r) {
  Impl& m = *impl_;
  Backend& be = *backend_;
  const int64_t C = cfg_.hidden_size, V = cfg_.vocab_size;
  const Tensor ln = m.ln->range(0, C).view({1, C});
  be.rmsnorm_forward(m.x->range(r * C, C).view({1, C}), m.final_norm, static_cast<float>(cfg_.rms_norm_eps), ln,
                     m.rstd->range(0, 1));
  apply(be, ln, *m.head, m.logits->view({1, V}), nullptr);
}

}  // namespace llm
