// DeepSpeed config fields inside our config (docs/from-deepspeed.md): a user can paste the fields
// of a ds_config.json beside our sections and llmtrain translates them.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace llm {

// Moves the DeepSpeed fields found at the top level of a config (fp16, bf16, zero_optimization,
// gradient_accumulation_steps, train_micro_batch_size_per_gpu, optimizer, scheduler, ...) into
// our sections and removes them from root. Returns one note per field: the key it became, or why
// it was ignored. Throws, naming the field, when a field has no equivalent that keeps its meaning
// (ZeRO-3, a non-Adam optimizer, a linear-decay schedule) or disagrees with a key of ours given
// in the same file.
std::vector<std::string> translate_deepspeed_fields(nlohmann::json& root);

}  // namespace llm
