// Merging a PEFT adapter into its base model: an HF directory that any tool (llmgen, llmtrain
// export, transformers) loads without knowing about LoRA.
#include <unistd.h>

#include "llm/atomic_file.h"
#include "llm/checkpoint.h"
#include "llm/error.h"
#include "llm/hf_weights.h"
#include "llm/inference.h"
#include "llm/lora.h"

namespace llm {

namespace fs = std::filesystem;

fs::path locate_adapter(const fs::path& dir) {
  if (fs::is_regular_file(dir / "adapter_config.json")) return dir;
  if (auto ck = latest_checkpoint(dir); ck && fs::is_regular_file(*ck / "adapter_config.json")) return *ck;
  fail(dir.string(), ": no adapter_config.json (expected a PEFT adapter directory or a LoRA run's directory)");
}

void merge_lora_directory(const fs::path& base_model, const fs::path& adapter, const fs::path& out_dir, DType dtype) {
  const ModelFiles files = locate_model(base_model);
  const ModelConfig cfg = read_hf_config(files.dir / "config.json");
  const ParamTable table(cfg);
  const PeftAdapter ad = read_peft_adapter(locate_adapter(adapter), cfg);
  std::vector<float> w = read_model_weights(files.dir, table, cfg);
  merge_lora(table, LoraTable(cfg, ad.config), ad.flat, w);

  const fs::path tmp = out_dir.parent_path() / cat(".", out_dir.filename().string(), ".tmp.", ::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  write_model_safetensors(tmp / "model.safetensors", table, w, dtype);
  write_hf_config(tmp / "config.json", cfg, dtype);
  // The tokenizer and generation files travel with the weights.
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                           "special_tokens_map.json", "generation_config.json", "added_tokens.json"}) {
    if (fs::is_regular_file(files.dir / name)) fs::copy_file(files.dir / name, tmp / name);
  }
  if (!files.tokenizer.empty() && !fs::exists(tmp / files.tokenizer.filename()))
    fs::copy_file(files.tokenizer, tmp / files.tokenizer.filename());
  fsync_dir(tmp);
  commit_directory(tmp, out_dir);
}

TempMergedModel::TempMergedModel(const fs::path& base_model, const fs::path& adapter, const fs::path& near)
    : dir_(fs::absolute(near).parent_path() / cat(".", near.filename().string(), ".merged.", ::getpid())) {
  merge_lora_directory(base_model, adapter, dir_, DType::F32);
}

TempMergedModel::~TempMergedModel() {
  std::error_code ec;
  fs::remove_all(dir_, ec);  // best effort: a leftover is a hidden directory, named after the output
}

}  // namespace llm
