// InferenceModel::load_gguf: a Qwen2 GGUF file (llama.cpp's architecture "qwen2") as an
// InferenceModel. The inverse of src/io/gguf_export.cpp: config from qwen2.*, tensors by
// llama.cpp's names, tokenizer from tokenizer.ggml.*.
#include <algorithm>

#include "gen/gguf_metadata.h"
#include "gen/weight_source.h"
#include "llm/error.h"
#include "llm/gguf.h"
#include "llm/gguf_reader.h"
#include "llm/inference.h"

namespace llm {

namespace {

// The weights of a GGUF file, by HF parameter name.
class GgufWeights final : public WeightSource {
 public:
  GgufWeights(const GgufFile& f, const ModelConfig& cfg) : f_(f), table_(cfg) {}

  void read_f32(const std::string& name, float* out, int64_t n) const override {
    const GgufFile::TensorInfo& t = checked(name);
    LLM_CHECK(t.rows * t.cols == n, f_.path().string(), ": tensor ", t.name, " has ", t.rows * t.cols,
              " values, expected ", n);
    ggml_dequantize(t.type, t.data, n, out);
  }
  const GgufFile::TensorInfo* blocks(const std::string& name) const override {
    const GgufFile::TensorInfo& t = checked(name);
    const bool is_float = t.type == GgmlType::F32 || t.type == GgmlType::F16 || t.type == GgmlType::BF16;
    return is_float ? nullptr : &t;
  }

 private:
  // The tensor of an HF parameter, its shape checked against the config's.
  const GgufFile::TensorInfo& checked(const std::string& name) const {
    const ParamInfo& p = table_.at(name);
    const GgufFile::TensorInfo& t = f_.tensor(gguf_tensor_name(p));
    LLM_CHECK(t.shape == p.shape, f_.where(t.info_offset), "tensor ", t.name, " is ", shape_str(t.shape),
              " but the qwen2.* metadata make it ", shape_str(p.shape));
    return t;
  }
  static std::string shape_str(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += cat(i ? ", " : "", s[i]);
    return out + "]";
  }

  const GgufFile& f_;
  ParamTable table_;
};

}  // namespace

std::unique_ptr<InferenceModel> InferenceModel::load_gguf(const std::filesystem::path& file, Backend& backend,
                                                          const InferenceOptions& opt) {
  const GgufFile f(file);
  const ModelConfig cfg = gguf_model_config(f);
  std::unique_ptr<Tokenizer> tok = gguf_tokenizer(f);
  LLM_CHECK(tok->vocab_size() <= cfg.vocab_size, file.string(), ": the tokenizer has ", tok->vocab_size(),
            " ids but token_embd.weight has ", cfg.vocab_size, " rows");
  auto model = std::make_unique<InferenceModel>(cfg, GgufWeights(f, cfg), backend, opt);
  model->tokenizer_ = std::move(tok);
  if (f.has("tokenizer.chat_template")) model->chat_template_ = std::string(f.get_string("tokenizer.chat_template"));
  return model;
}

}  // namespace llm
