// LoRA: train.lora validation, the adapter table, PEFT-style initial values and the merge.
#include "llm/lora.h"

#include <cmath>

#include "data/hash.h"
#include "llm/error.h"

namespace llm {

namespace {

constexpr int64_t kAlign = 64;  // each A and B starts on a 64-element boundary, like the base groups
int64_t align_up(int64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

std::string module_list() {
  std::string s;
  for (auto m : kLoraModules) s += (s.empty() ? "" : ", ") + std::string(m);
  return s;
}

}  // namespace

std::vector<int> LoraConfig::module_indices() const {
  std::vector<int> out;
  for (size_t i = 0; i < kLoraModules.size(); ++i) {
    for (const auto& t : target_modules) {
      if (t == kLoraModules[i]) {
        out.push_back(static_cast<int>(i));
        break;
      }
    }
  }
  return out;
}

void validate_lora_config(const LoraConfig& c, const std::string& where) {
  LLM_CHECK(c.rank > 0, where, ".rank: must be positive, got ", c.rank);
  LLM_CHECK(c.alpha > 0 && std::isfinite(c.alpha), where, ".alpha: must be positive, got ", c.alpha);
  LLM_CHECK(c.dropout >= 0 && c.dropout < 1, where, ".dropout: must be in [0, 1), got ", c.dropout);
  LLM_CHECK(!c.target_modules.empty(), where, ".target_modules: empty; choose from ", module_list());
  for (size_t i = 0; i < c.target_modules.size(); ++i) {
    const std::string& t = c.target_modules[i];
    bool known = false;
    for (auto m : kLoraModules) known = known || t == m;
    LLM_CHECK(known, where, ".target_modules[", i, "]: \"", t,
              "\" is not a linear layer of a Qwen2 block; choose from ", module_list());
    for (size_t j = 0; j < i; ++j) {
      LLM_CHECK(c.target_modules[j] != t, where, ".target_modules[", i, "]: \"", t, "\" is listed twice");
    }
  }
}

int lora_block_of(int module) {
  static constexpr int kBlock[7] = {0, 0, 0, 1, 2, 2, 3};
  return kBlock[module];
}

LoraTable::LoraTable(const ModelConfig& m, const LoraConfig& lora) : cfg_(lora) {
  validate_lora_config(lora, "train.lora");
  const int64_t C = m.hidden_size, I = m.intermediate_size, D = m.head_dim();
  const int64_t HqD = m.num_attention_heads * D, HkvD = m.num_key_value_heads * D, r = lora.rank;
  struct Shape {
    const char* part;  // self_attn or mlp
    int64_t in, out, col0;
  };
  const Shape shapes[7] = {{"self_attn", C, HqD, 0},
                           {"self_attn", C, HkvD, HqD},
                           {"self_attn", C, HkvD, HqD + HkvD},
                           {"self_attn", HqD, C, 0},
                           {"mlp", C, I, 0},
                           {"mlp", C, I, I},
                           {"mlp", I, C, 0}};
  const std::vector<int> modules = lora.module_indices();
  for (int l = 0; l < static_cast<int>(m.num_hidden_layers); ++l) {
    for (int mod : modules) {
      const Shape& s = shapes[mod];
      LoraAdapterInfo a;
      a.layer = l;
      a.module = mod;
      a.in = s.in;
      a.out = s.out;
      a.col0 = s.col0;
      a.a_offset = flat_size_;
      flat_size_ = align_up(flat_size_ + r * s.in);
      a.b_offset = flat_size_;
      flat_size_ = align_up(flat_size_ + s.out * r);
      count_ += r * (s.in + s.out);
      const std::string name = cat("model.layers.", l, ".", s.part, ".", kLoraModules[static_cast<size_t>(mod)]);
      a.peft_prefix = "base_model.model." + name;
      a.base_weight = name + ".weight";
      adapters_.push_back(std::move(a));
    }
  }
}

std::vector<const LoraAdapterInfo*> LoraTable::of_block(int layer, int block) const {
  std::vector<const LoraAdapterInfo*> out;
  for (const auto& a : adapters_) {
    if (a.layer == layer && lora_block_of(a.module) == block) out.push_back(&a);
  }
  return out;
}

std::vector<float> init_lora_values(const LoraTable& t, uint64_t seed) {
  std::vector<float> flat(static_cast<size_t>(t.flat_size()), 0.0f);  // B and the padding: zero
  const int64_t r = t.config().rank;
  for (const LoraAdapterInfo& a : t.adapters()) {
    const uint64_t key = data::mix64(seed) ^ data::fnv1a(a.peft_prefix + ".lora_A.weight");
    const double bound = 1.0 / std::sqrt(static_cast<double>(a.in));
    for (int64_t i = 0; i < r * a.in; ++i) {
      const double u = static_cast<double>(data::mix64(key ^ static_cast<uint64_t>(i)) >> 11) * 0x1p-53;  // [0, 1)
      flat[static_cast<size_t>(a.a_offset + i)] = static_cast<float>((2.0 * u - 1.0) * bound);
    }
  }
  return flat;
}

void merge_lora(const ParamTable& table, const LoraTable& lora, std::span<const float> adapters,
                std::span<float> base_flat) {
  LLM_CHECK(static_cast<int64_t>(adapters.size()) == lora.flat_size(), "merge_lora: ", adapters.size(),
            " adapter values, expected ", lora.flat_size());
  LLM_CHECK(static_cast<int64_t>(base_flat.size()) == table.flat_size(), "merge_lora: ", base_flat.size(),
            " base values, expected ", table.flat_size());
  const int64_t r = lora.config().rank;
  const double s = lora.config().scale();
  for (const LoraAdapterInfo& a : lora.adapters()) {
    const ParamInfo& p = table.at(a.base_weight);
    LLM_CHECK(p.shape == std::vector<int64_t>({a.out, a.in}), "merge_lora: ", a.base_weight, " is not [", a.out, ", ",
              a.in, "]");
    const float* A = adapters.data() + a.a_offset;  // [r, in]
    const float* B = adapters.data() + a.b_offset;  // [out, r]
    float* W = base_flat.data() + p.offset;         // [out, in]
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < a.out; ++o) {
      for (int64_t i = 0; i < a.in; ++i) {
        double acc = 0;
        for (int64_t k = 0; k < r; ++k) acc += double(B[o * r + k]) * double(A[k * a.in + i]);
        W[o * a.in + i] = static_cast<float>(double(W[o * a.in + i]) + s * acc);
      }
    }
  }
}

}  // namespace llm
