// InferenceModel: weights per tensor (fused q/k/v and gate/up as in training), optionally
// quantized; a KV cache of Hkv heads per layer and slot; prefill in chunks; decode one token at a
// time; several sequences in one pass (forward_batch). Each layer is the training block
// (block_forward) with the KV-cache attention. On a backend that records ops (CUDA graphs) a
// decode step is recorded once and replayed: its token and position are uploaded to a small
// device buffer before each replay, and every op of the step reads them from there
// (Backend::decode_attention), so one recording serves every position.
#include "llm/inference.h"

#include <algorithm>
#include <cmath>

#include "gen/weight_source.h"
#include "llm/checkpoint.h"
#include "llm/checksum.h"
#include "llm/error.h"
#include "llm/hf_weights.h"
#include "llm/lora.h"
#include "model/finite_check.h"
#include "model/kv_cache_attention.h"
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
  LLM_CHECK(fs::is_directory(path), path.string(),
            ": not a directory or a GGUF file (expected a run, checkpoint or HF model directory, or a .gguf file)");
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

namespace {
// The weights of a checkpoint read whole into fp32: each parameter at its ParamTable offset.
class FlatWeights final : public WeightSource {
 public:
  FlatWeights(const ModelConfig& cfg, std::span<const float> w) : table_(cfg), w_(w) {
    LLM_CHECK(static_cast<int64_t>(w.size()) == table_.flat_size(), "inference: ", w.size(), " weights for a model of ",
              table_.flat_size());
  }
  void read_f32(const std::string& name, float* out, int64_t n) const override {
    const ParamInfo& p = table_.at(name);
    LLM_CHECK(p.numel == n, "inference: ", name, " has ", p.numel, " values, not ", n);
    std::copy_n(w_.data() + p.offset, n, out);
  }

 private:
  ParamTable table_;
  std::span<const float> w_;
};
}  // namespace

// A linear layer's weight [out, in], owned: dense in the compute dtype, quantized (int8/int4), or
// ggml blocks in one part per stacked matrix (q/k/v, gate/up).
struct Linear {
  OwnedTensor dense;
  QuantizedMatrix q;
  OwnedTensor qdata, qscales;
  bool quantized = false;
  std::vector<QuantizedMatrix> parts;  // QuantKind::Ggml, stacked along the rows
  std::vector<OwnedTensor> part_data;
  size_t bytes() const {
    size_t b = 0;
    for (const OwnedTensor& t : part_data) b += t->nbytes();
    return !parts.empty() ? b : dense.empty() ? qdata->nbytes() + qscales->nbytes() : dense->nbytes();
  }
  LinearWeight view() const {
    if (!parts.empty()) return LinearWeight{Tensor(), parts.data(), static_cast<int>(parts.size()), {}};
    return quantized ? LinearWeight{Tensor(), &q, 1, {}} : LinearWeight{dense.t(), nullptr, 1, {}};
  }
  // The single matrix of an embedding table (int8/int4 or one ggml part).
  const QuantizedMatrix* table() const { return !parts.empty() ? &parts[0] : quantized ? &q : nullptr; }
};

struct InferenceModel::SeqRowsList {
  std::vector<SeqRows> seqs;
};

struct InferenceModel::Impl {
  explicit Impl(Backend& be) : weights(be, "weights"), cache(be, "kv-cache"), acts(be, "activations") {}
  Arena weights, cache, acts;
  struct Layer {
    OwnedTensor ln1, qkv_b, ln2;
    Linear qkv, o, gate_up, down;
    BlockWeights view() const {
      return BlockWeights{ln1.t(), qkv.view(), qkv_b.t(), o.view(), ln2.t(), gate_up.view(), down.view()};
    }
  };
  std::vector<Layer> layers;
  std::vector<BlockWeights> blocks;  // views of layers, for block_forward
  OwnedTensor final_norm;
  Linear embed;                  // the input table [V, C]
  Linear head_own;               // lm_head when untied
  const Linear* head = nullptr;  // the output layer: embed (tied) or head_own
  OwnedTensor k_cache, v_cache;  // [L, slots, ctx, Hkv, D] each
  KvCacheViews kv;
  OwnedTensor rope_cos, rope_sin;
  // activations for one batch of n <= rows tokens
  OwnedTensor ids, x, ln, qkv, att, proj, h2, gate_up, act, rstd, logits;
  OwnedTensor step;     // i32 [2]: the token and the position of a one-token step of slot 0
  OwnedTensor seq_pos;  // i32 [slots]: each sequence's position in a forward_batch
  // The recorded decode step (graphs), and how steps ran so far.
  std::unique_ptr<OpGraph> graph;
  std::string graph_error;
  int64_t eager_steps = 0, replays = 0;
};

InferenceModel::~InferenceModel() = default;

InferenceModel::InferenceModel(const ModelConfig& cfg, std::span<const float> weights, Backend& backend,
                               const InferenceOptions& opt)
    : InferenceModel(cfg, FlatWeights(cfg, weights), backend, opt) {}

InferenceModel::InferenceModel(const ModelConfig& cfg, const WeightSource& weights, Backend& backend,
                               const InferenceOptions& opt)
    : cfg_(cfg), opt_(opt), backend_(&backend), impl_(std::make_unique<Impl>(backend)) {
  cfg_.validate("model");
  LLM_CHECK(opt_.context > 0 && opt_.prefill_chunk > 0, "inference: context and prefill_chunk must be positive");
  LLM_CHECK(opt_.slots > 0, "inference: slots must be positive, got ", opt_.slots);
  context_ = std::min(opt_.context, cfg_.max_position_embeddings);
  pos_.assign(static_cast<size_t>(opt_.slots), 0);
  rows_ = std::max(opt_.prefill_chunk, opt_.slots);
  const DType dt = opt_.quant == QuantMode::None ? opt_.dtype : DType::F32;
  Impl& m = *impl_;
  Backend& be = backend;
  const int64_t C = cfg_.hidden_size, I = cfg_.intermediate_size, Q = cfg_.qkv_dim(), D = cfg_.head_dim();
  const int64_t Hq = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads, V = cfg_.vocab_size;
  const int64_t L = cfg_.num_hidden_layers, rows = rows_, S = opt_.slots;

  // Upload through a staging buffer, rounding to the storage dtype on the device. A matrix is
  // read as the parts stacked along its rows (names[i] has rows[i] rows).
  Arena staging(be, "staging");
  auto read_stacked = [&](std::span<const std::string> names, std::span<const int64_t> part_rows, int64_t cols) {
    int64_t total = 0;
    for (int64_t r : part_rows) total += r;
    OwnedTensor s = staging.tensor(DType::F32, {total, cols});
    std::vector<float> host(static_cast<size_t>(total * cols));
    int64_t r0 = 0;
    for (size_t i = 0; i < names.size(); ++i) {
      weights.read_f32(names[i], host.data() + r0 * cols, part_rows[i] * cols);
      r0 += part_rows[i];
    }
    be.upload(s.t(), host.data());
    return s;
  };
  auto upload = [&](std::span<const std::string> names, std::span<const int64_t> part_rows, int64_t cols) {
    OwnedTensor s = read_stacked(names, part_rows, cols);
    const int64_t total = s->size(0);
    OwnedTensor t = cols == 1 ? m.weights.tensor(dt, {total}) : m.weights.tensor(dt, {total, cols});
    be.copy(cols == 1 ? s->view({total}) : s.t(), t.t());
    return t;
  };
  // A ggml part: the file's blocks copied as they are (f32 values when the part is a float type).
  auto ggml_part = [&](Linear& lin, const std::string& name, int64_t nrows, int64_t cols) {
    const GgufFile::TensorInfo* t = weights.blocks(name);
    const GgmlType type = t != nullptr ? t->type : GgmlType::F32;
    // Said at load, not at the first token: only the CPU has kernels for the block formats.
    LLM_CHECK(t == nullptr || be.device() == DeviceKind::CPU, "quant_matmul: ", ggml_type_name(type), " (tensor ",
              t->name, ", a ggml block format from a GGUF file) is not supported on CUDA; use --device cpu");
    const auto row_bytes = static_cast<int64_t>(ggml_row_bytes(type, cols));
    OwnedTensor data = m.weights.tensor(DType::U8, {nrows, row_bytes});
    if (t != nullptr) {
      be.upload(data.t(), t->data);
    } else {
      std::vector<float> host(static_cast<size_t>(nrows * cols));
      weights.read_f32(name, host.data(), nrows * cols);
      be.upload(data.t(), host.data());
    }
    lin.parts.push_back(
        QuantizedMatrix{QuantKind::Ggml, nrows, cols, ggml_block_elems(type), data.t(), Tensor(), type});
    lin.part_data.push_back(std::move(data));
  };
  auto linear = [&](std::initializer_list<std::string> name_list, std::initializer_list<int64_t> rows_list,
                    int64_t cols) {
    const std::vector<std::string> names(name_list);
    const std::vector<int64_t> part_rows(rows_list);
    int64_t nrows = 0;
    for (int64_t r : part_rows) nrows += r;
    Linear lin;
    if (opt_.quant == QuantMode::None) {
      bool blocks = false;
      for (const std::string& n : names) blocks = blocks || weights.blocks(n) != nullptr;
      if (blocks) {
        for (size_t i = 0; i < names.size(); ++i) ggml_part(lin, names[i], part_rows[i], cols);
      } else {
        lin.dense = upload(names, part_rows, cols);
      }
      return lin;
    }
    const bool int4 = opt_.quant == QuantMode::Int4;
    const int64_t group = int4 || opt_.quant_group > 0 ? opt_.quant_group : cols;
    LLM_CHECK(group > 0 && cols % group == 0 && (!int4 || group % 2 == 0), "inference: quantization group ", group,
              " does not divide the ", cols, " columns of a ", nrows, "x", cols, " matrix");
    OwnedTensor s = read_stacked(names, part_rows, cols);
    lin.quantized = true;
    lin.qdata = int4 ? m.weights.tensor(DType::U8, {nrows, cols / 2}) : m.weights.tensor(DType::I8, {nrows, cols});
    lin.qscales = m.weights.tensor(DType::F32, {nrows, cols / group});
    lin.q =
        QuantizedMatrix{int4 ? QuantKind::Int4 : QuantKind::Int8, nrows, cols, group, lin.qdata.t(), lin.qscales.t()};
    lin.q.int8_activations = opt_.int8_activations;
    be.quantize(s.t(), lin.q);
    return lin;
  };
  auto vec = [&](std::initializer_list<std::string> names, std::initializer_list<int64_t> sizes) {
    return upload(std::vector<std::string>(names), std::vector<int64_t>(sizes), 1);
  };
  const int64_t HqD = Hq * D, HkvD = Hkv * D;
  for (int l = 0; l < static_cast<int>(L); ++l) {
    Impl::Layer ly;
    auto nm = [&](const char* s) { return ParamTable::layer_name(l, s); };
    ly.ln1 = vec({nm("input_layernorm.weight")}, {C});
    ly.qkv_b =
        vec({nm("self_attn.q_proj.bias"), nm("self_attn.k_proj.bias"), nm("self_attn.v_proj.bias")}, {HqD, HkvD, HkvD});
    ly.ln2 = vec({nm("post_attention_layernorm.weight")}, {C});
    ly.qkv = linear({nm("self_attn.q_proj.weight"), nm("self_attn.k_proj.weight"), nm("self_attn.v_proj.weight")},
                    {HqD, HkvD, HkvD}, C);
    ly.o = linear({nm("self_attn.o_proj.weight")}, {C}, HqD);
    ly.gate_up = linear({nm("mlp.gate_proj.weight"), nm("mlp.up_proj.weight")}, {I, I}, C);
    ly.down = linear({nm("mlp.down_proj.weight")}, {C}, I);
    m.layers.push_back(std::move(ly));
  }
  for (const Impl::Layer& ly : m.layers) m.blocks.push_back(ly.view());
  m.final_norm = vec({"model.norm.weight"}, {C});
  m.embed = linear({"model.embed_tokens.weight"}, {V}, C);
  if (cfg_.tie_word_embeddings) {
    m.head = &m.embed;
  } else {
    m.head_own = linear({"lm_head.weight"}, {V}, C);
    m.head = &m.head_own;
  }
  m.k_cache = m.cache.tensor(dt, {L * S * context_ * Hkv * D});
  m.v_cache = m.cache.tensor(dt, {L * S * context_ * Hkv * D});
  m.kv = KvCacheViews{m.k_cache.t(), m.v_cache.t(), S, context_, Hkv, D};
  std::vector<float> cs, sn;
  build_rope_tables(cfg_, context_, cs, sn);
  m.rope_cos = m.acts.tensor(DType::F32, {context_, D / 2});
  m.rope_sin = m.acts.tensor(DType::F32, {context_, D / 2});
  be.upload(m.rope_cos.t(), cs.data());
  be.upload(m.rope_sin.t(), sn.data());
  m.ids = m.acts.tensor(DType::I32, {rows});
  // The residual stream and what is added into it: f32 under f16 (residual_dtype).
  const DType res = residual_dtype(dt, opt_.narrow_residual);
  m.x = m.acts.tensor(res, {rows * C});
  m.ln = m.acts.tensor(dt, {rows * C});
  m.qkv = m.acts.tensor(dt, {rows * Q});
  m.att = m.acts.tensor(dt, {rows * Hq * D});
  m.proj = m.acts.tensor(res, {rows * C});
  m.h2 = m.acts.tensor(res, {rows * C});
  m.gate_up = m.acts.tensor(dt, {rows * 2 * I});
  m.act = m.acts.tensor(dt, {rows * I});
  m.rstd = m.acts.tensor(DType::F32, {rows});
  m.logits = m.acts.tensor(DType::F32, {S * V});
  m.step = m.acts.tensor(DType::I32, {2});
  m.seq_pos = m.acts.tensor(DType::I32, {S});
}

std::unique_ptr<InferenceModel> InferenceModel::load(const fs::path& path, Backend& backend,
                                                     const InferenceOptions& opt) {
  if (is_gguf_file(path)) return load_gguf(path, backend, opt);
  const ModelFiles files = locate_model(path);
  // A checkpoint of ours lists checksums: a damaged file is named before its bytes are used (the
  // optimizer shards are not read here).
  verify_checksums(files.dir, [](const std::string& name) { return !name.starts_with("optimizer."); });
  const ModelConfig cfg = read_hf_config(files.dir / "config.json");
  const ParamTable table(cfg);
  std::vector<float> w = read_model_weights(files.dir, table, cfg);
  if (!opt.lora.empty()) {
    const PeftAdapter adapter = read_peft_adapter(opt.lora, cfg);
    merge_lora(table, LoraTable(cfg, adapter.config), adapter.flat, w);
  }
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

int64_t InferenceModel::position(int64_t slot) const {
  LLM_CHECK(slot >= 0 && slot < slots(), "inference: slot ", slot, " of ", slots());
  return pos_[static_cast<size_t>(slot)];
}

void InferenceModel::truncate(int64_t slot, int64_t n) {
  const int64_t have = position(slot);
  LLM_CHECK(n >= 0 && n <= have, "inference: cannot keep ", n, " of ", have, " cached positions");
  pos_[static_cast<size_t>(slot)] = n;
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

// Checked here, on the host: a recorded step cannot check its ids on the device.
void InferenceModel::check_tokens(std::span<const int32_t> tokens, int64_t slot) const {
  LLM_CHECK(!tokens.empty(), "inference: no tokens to process");
  const int64_t pos = position(slot);
  LLM_CHECK(pos + static_cast<int64_t>(tokens.size()) <= context_, "inference: ", pos, " cached + ", tokens.size(),
            " new tokens exceed the context of ", context_, " positions");
  for (size_t i = 0; i < tokens.size(); ++i) {
    LLM_CHECK(tokens[i] >= 0 && tokens[i] < cfg_.vocab_size, "inference: token id ", tokens[i], " at position ", i,
              " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
  }
}

void InferenceModel::run(std::span<const int32_t> tokens, std::vector<float>* all, std::vector<float>* last) {
  check_tokens(tokens, 0);
  if (tokens.size() == 1 && last) return decode_step(tokens[0], last);
  Impl& m = *impl_;
  Backend& be = *backend_;
  const int64_t V = cfg_.vocab_size, pos0 = pos_[0];
  // The layers of the chunk at tokens[start, start + n), appended to slot 0's cache.
  auto chunk = [&](size_t start, int64_t n, FiniteWatch* watch) {
    Tensor ids;
    if (n == 1) {  // a one-token chunk takes the decode path, which reads the position from m.step
      const int32_t step[2] = {tokens[start], static_cast<int32_t>(pos_[0])};
      be.upload(m.step.t(), step);
      ids = m.step->range(0, 1);
    } else {
      ids = m.ids->range(0, n);
      be.upload(ids, tokens.data() + start);
    }
    issue_layers(ids, SeqRowsList{{SeqRows{0, pos_[0], n, m.step->range(1, 1)}}}, watch);
    pos_[0] += n;
  };
  const auto chunk_size = static_cast<size_t>(opt_.prefill_chunk);
  auto rows_of = [&](size_t start) { return std::min<int64_t>(opt_.prefill_chunk, int64_t(tokens.size() - start)); };
  if (all) all->reserve(tokens.size() * static_cast<size_t>(V));
  for (size_t start = 0; start < tokens.size(); start += chunk_size) {
    const int64_t n = rows_of(start);
    chunk(start, n, nullptr);
    const bool final_chunk = start + static_cast<size_t>(n) >= tokens.size();
    if (all) {
      // Row by row keeps the logits buffer at [V] whatever the chunk size.
      for (int64_t r = 0; r < n; ++r) {
        issue_head(std::span<const int64_t>(&r, 1));
        const size_t off = all->size();
        all->resize(off + static_cast<size_t>(V));
        be.download(m.logits->range(0, V), all->data() + off);
      }
    } else if (final_chunk) {
      const int64_t r = n - 1;
      issue_head(std::span<const int64_t>(&r, 1));
      last->resize(static_cast<size_t>(V));
      be.download(m.logits->range(0, V), last->data());
    }
  }
  check_logits(all ? *all : *last, [&](FiniteWatch& watch) {
    const int64_t pos_after = pos_[0];
    pos_[0] = pos0;
    int64_t n = 0;
    for (size_t start = 0; start < tokens.size(); start += chunk_size) chunk(start, n = rows_of(start), &watch);
    const int64_t r = n - 1;
    issue_head(std::span<const int64_t>(&r, 1), &watch);
    pos_[0] = pos_after;
  });
}

std::vector<float> InferenceModel::forward_batch(std::span<const SeqTokens> seqs) {
  Impl& m = *impl_;
  Backend& be = *backend_;
  LLM_CHECK(!seqs.empty() && static_cast<int64_t>(seqs.size()) <= slots(), "inference: a batch of ", seqs.size(),
            " sequences for ", slots(), " slots");
  SeqRowsList list;
  std::vector<int32_t> ids, positions;
  std::vector<int64_t> last_rows;
  std::vector<bool> seen(static_cast<size_t>(slots()), false);
  for (const SeqTokens& sq : seqs) {
    check_tokens(sq.tokens, sq.slot);
    LLM_CHECK(!seen[static_cast<size_t>(sq.slot)], "inference: slot ", sq.slot, " appears twice in one batch");
    seen[static_cast<size_t>(sq.slot)] = true;
    const int64_t n = static_cast<int64_t>(sq.tokens.size()), i = static_cast<int64_t>(list.seqs.size());
    list.seqs.push_back(SeqRows{sq.slot, position(sq.slot), n, m.seq_pos->range(i, 1)});
    ids.insert(ids.end(), sq.tokens.begin(), sq.tokens.end());
    positions.push_back(static_cast<int32_t>(position(sq.slot)));
    last_rows.push_back(static_cast<int64_t>(ids.size()) - 1);
  }
  const auto N = static_cast<int64_t>(ids.size()), S = static_cast<int64_t>(seqs.size()), V = cfg_.vocab_size;
  LLM_CHECK(N <= rows_, "inference: a batch of ", N, " tokens exceeds the ", rows_, " rows planned (prefill_chunk)");
  be.upload(m.ids->range(0, N), ids.data());
  be.upload(m.seq_pos->range(0, S), positions.data());
  issue_layers(m.ids->range(0, N), list);
  for (const SeqRows& r : list.seqs) pos_[static_cast<size_t>(r.slot)] += r.rows;
  issue_head(last_rows);
  std::vector<float> out(static_cast<size_t>(S * V));
  be.download(m.logits->range(0, S * V), out.data());
  check_logits(out, [&](FiniteWatch& watch) {
    issue_layers(m.ids->range(0, N), list, &watch);
    issue_head(last_rows, &watch);
  });
  return out;
}

void InferenceModel::decode_step(int32_t token, std::vector<float>* last) {
  Impl& m = *impl_;
  Backend& be = *backend_;
  const int32_t step[2] = {token, static_cast<int32_t>(pos_[0])};
  be.upload(m.step.t(), step);  // before the replay: the recorded ops read both from here
  const Tensor ids = m.step->range(0, 1);
  const SeqRowsList one{{SeqRows{0, pos_[0], 1, m.step->range(1, 1)}}};
  const int64_t row0 = 0;
  OpRecorder* const recorder = opt_.graphs && m.graph_error.empty() ? be.recorder() : nullptr;
  const bool graphs = recorder != nullptr;
  // Recorded at the second step: the first ran the same ops one by one, which sized the backend's
  // workspace and built its matmul plans (nothing may allocate while recording).
  if (graphs && !m.graph && m.eager_steps > 0) {
    recorder->begin();
    try {
      issue_layers(ids, one);
      issue_head(std::span<const int64_t>(&row0, 1));
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
    issue_layers(ids, one);
    issue_head(std::span<const int64_t>(&row0, 1));
    ++m.eager_steps;
  }
  ++pos_[0];
  last->resize(static_cast<size_t>(cfg_.vocab_size));
  be.download(m.logits->range(0, cfg_.vocab_size), last->data());
  check_logits(*last, [&](FiniteWatch& watch) {
    be.upload(m.step.t(), step);
    issue_layers(ids, one, &watch);
    issue_head(std::span<const int64_t>(&row0, 1), &watch);
  });
}

void InferenceModel::check_logits(std::span<const float> logits, const std::function<void(FiniteWatch&)>& rerun) {
  // On the host, over logits already downloaded: a scan of [rows, V] floats per call.
  if (std::all_of(logits.begin(), logits.end(), [](float v) { return std::isfinite(v); })) return;
  FiniteWatch watch(*backend_, cfg_.num_hidden_layers);
  rerun(watch);
  const DType dt = opt_.quant == QuantMode::None ? opt_.dtype : DType::F32;
  fail("inference: the logits are not finite (", dtype_name(dt), "): ", nonfinite_advice(watch, dt),
       dt == DType::F16 ? " (llmgen --dtype)" : "");
}

void InferenceModel::issue_layers(const Tensor& ids, const SeqRowsList& seqs, FiniteWatch* watch) {
  Impl& m = *impl_;
  Backend& be = *backend_;
  const BlockShape s(cfg_);
  const int64_t n = ids.numel(), C = s.C, I = s.I, Q = s.Q(), HqD = s.Hq * s.D;
  const Tensor x = m.x->range(0, n * C).view({n, C});    // [n, C] residual, updated in place
  const Tensor ln = m.ln->range(0, n * C).view({n, C});  // [n, C] both norms' output
  const Tensor rstd = m.rstd->range(0, n);               // [n] both norms' rstd
  BlockActs a;
  a.ln1 = a.ln2 = ln;
  a.rstd1 = a.rstd2 = rstd;
  a.qkv = m.qkv->range(0, n * Q).view({n, Q});                  // [n, (Hq + 2Hkv) D]
  a.att = m.att->range(0, n * HqD).view({n, HqD});              // [n, Hq D]
  a.h2 = m.h2->range(0, n * C).view({n, C});                    // [n, C]
  a.gate_up = m.gate_up->range(0, n * 2 * I).view({n, 2 * I});  // [n, 2I]
  a.act = m.act->range(0, n * I).view({n, I});                  // [n, I]
  a.proj = m.proj->range(0, n * C).view({n, C});                // [n, C]
  if (const QuantizedMatrix* table = m.embed.table()) {
    be.quant_embedding(ids, *table, x);
  } else {
    be.embedding_forward(ids, m.embed.dense, x);
  }
  if (watch) watch->check(-1, "embedding out", x);
  for (size_t l = 0; l < m.blocks.size(); ++l) {
    const KvCacheAttention attn(s, m.kv, static_cast<int>(l), seqs.seqs, m.rope_cos, m.rope_sin);
    const BlockProbe probe = watch ? watch->layer(static_cast<int>(l)) : BlockProbe();
    block_forward(be, s, m.blocks[l], attn, x, x, a, watch ? &probe : nullptr);
  }
}

void InferenceModel::issue_head(std::span<const int64_t> rows, FiniteWatch* watch) {
  Impl& m = *impl_;
  Backend& be = *backend_;
  const int64_t C = cfg_.hidden_size, V = cfg_.vocab_size, S = static_cast<int64_t>(rows.size());
  const Tensor ln = m.ln->range(0, S * C).view({S, C});  // [S, C] the final norm of each row asked for
  for (int64_t i = 0; i < S; ++i) {
    const int64_t r = rows[static_cast<size_t>(i)];
    be.rmsnorm_forward(m.x->range(r * C, C).view({1, C}), m.final_norm, static_cast<float>(cfg_.rms_norm_eps),
                       ln.range(i * C, C).view({1, C}), m.rstd->range(i, 1));
  }
  if (watch) watch->check(-1, "model.norm out", ln);
  m.head->view().forward(be, ln, m.logits->range(0, S * V).view({S, V}), nullptr);  // logits [S, V]
  if (watch) watch->check(-1, "logits", m.logits->range(0, S * V));
}

}  // namespace llm
