// gguf_metadata.h: ModelConfig and Tokenizer from a GGUF file's metadata.
#include "gen/gguf_metadata.h"

#include "llm/error.h"
#include "tokenizer/gguf_vocab.h"

namespace llm {

ModelConfig gguf_model_config(const GgufFile& f) {
  const std::string file = f.path().string();
  const std::string_view arch = f.get_string("general.architecture");
  LLM_CHECK(arch == "qwen2", file, ": general.architecture is \"", arch,
            "\"; only qwen2 models (Qwen2, Qwen2.5) can be run");
  ModelConfig c;
  c.hidden_size = f.get_int("qwen2.embedding_length");
  c.num_hidden_layers = f.get_int("qwen2.block_count");
  c.intermediate_size = f.get_int("qwen2.feed_forward_length");
  c.num_attention_heads = f.get_int("qwen2.attention.head_count");
  c.num_key_value_heads =
      f.has("qwen2.attention.head_count_kv") ? f.get_int("qwen2.attention.head_count_kv") : c.num_attention_heads;
  if (f.has("qwen2.context_length")) c.max_position_embeddings = f.get_int("qwen2.context_length");
  c.rope_theta = f.has("qwen2.rope.freq_base") ? f.get_float("qwen2.rope.freq_base") : 10000.0;  // llama.cpp's default
  c.rms_norm_eps = f.get_float("qwen2.attention.layer_norm_rms_epsilon");
  for (const char* k : {"qwen2.attention.key_length", "qwen2.attention.value_length"}) {
    if (f.has(k) && c.num_attention_heads > 0) {
      LLM_CHECK(f.get_int(k) * c.num_attention_heads == c.hidden_size, file, ": ", k, " = ", f.get_int(k),
                " is not embedding_length / head_count (other head sizes are not supported)");
    }
  }
  LLM_CHECK(!f.has("qwen2.rope.scaling.type") || f.get_string("qwen2.rope.scaling.type") == "none", file,
            ": qwen2.rope.scaling.type ", f.get_string("qwen2.rope.scaling.type"), " is not supported");
  const GgufFile::TensorInfo& embd = f.tensor("token_embd.weight");
  LLM_CHECK(embd.shape.size() == 2, f.where(embd.info_offset), "tensor token_embd.weight is not 2-D");
  c.vocab_size = embd.shape[0];
  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  if (f.has("tokenizer.ggml.bos_token_id")) c.bos_token_id = f.get_int("tokenizer.ggml.bos_token_id");
  if (f.has("tokenizer.ggml.eos_token_id")) c.eos_token_id = f.get_int("tokenizer.ggml.eos_token_id");
  c.validate(file + " (qwen2.* metadata)");
  return c;
}

std::unique_ptr<Tokenizer> gguf_tokenizer(const GgufFile& f) {
  tok::GgufVocab v;
  v.model = std::string(f.get_string("tokenizer.ggml.model"));
  if (f.has("tokenizer.ggml.pre")) v.pre = std::string(f.get_string("tokenizer.ggml.pre"));
  for (std::string_view s : f.get_string_array("tokenizer.ggml.tokens")) v.tokens.emplace_back(s);
  if (f.has("tokenizer.ggml.token_type")) {
    for (int64_t t : f.get_int_array("tokenizer.ggml.token_type")) v.types.push_back(static_cast<int32_t>(t));
  }
  if (f.has("tokenizer.ggml.scores")) v.scores = f.get_float_array("tokenizer.ggml.scores");
  if (f.has("tokenizer.ggml.merges")) {
    for (std::string_view s : f.get_string_array("tokenizer.ggml.merges")) v.merges.emplace_back(s);
  }
  auto id = [&](const char* key) {
    if (!f.has(key)) return int32_t{-1};
    const int64_t i = f.get_int(key);
    LLM_CHECK(i >= 0 && i < static_cast<int64_t>(v.tokens.size()), f.path().string(), ": ", key, " ", i,
              " is outside the vocabulary of ", v.tokens.size(), " tokens");
    return static_cast<int32_t>(i);
  };
  v.eos = id("tokenizer.ggml.eos_token_id");
  v.bos = id("tokenizer.ggml.bos_token_id");
  v.unk = id("tokenizer.ggml.unknown_token_id");
  v.pad = id("tokenizer.ggml.padding_token_id");
  if (f.has("tokenizer.ggml.add_space_prefix")) v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix");
  return tok::tokenizer_from_gguf_vocab(v, f.path());
}

}  // namespace llm
