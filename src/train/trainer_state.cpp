// TrainerState <-> trainer_state.json, and reading that file (checkpoint.h).
#include "train/trainer_state.h"

#include "llm/checkpoint.h"
#include "llm/config_reader.h"
#include "llm/dtype.h"
#include "llm/error.h"

namespace llm {

nlohmann::json TrainerState::to_json() const {
  nlohmann::json j = {{"step", step},
                      {"adam_steps", adam_steps},
                      {"tokens_seen", tokens_seen},
                      {"data_cursor", data_cursor.to_json()},
                      {"loss_scaler", loss_scaler},
                      {"compute_dtype", compute_dtype},
                      {"seed", seed},
                      {"rng", {{"data_order_seed", data_order_seed}, {"init_seed", seed}}},
                      {"elapsed_s", elapsed_s},
                      {"world_size", world_size},
                      {"config", config}};
  if (first_val_loss) j["first_val_loss"] = *first_val_loss;
  return j;
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& where) {
  TrainerState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.adam_steps = j.at("adam_steps").get<int64_t>();
    s.tokens_seen = j.at("tokens_seen").get<uint64_t>();
    s.elapsed_s = j.value("elapsed_s", 0.0);
    if (j.contains("first_val_loss") && j["first_val_loss"].is_number())
      s.first_val_loss = j["first_val_loss"].get<double>();
    s.compute_dtype = j.at("compute_dtype").get<std::string>();
    s.data_cursor = DataCursor::from_json(j.at("data_cursor"), where + ": data_cursor");
    s.loss_scaler = j.at("loss_scaler");
    s.seed = j.value("seed", uint64_t(0));
    if (j.contains("rng") && j["rng"].is_object()) s.data_order_seed = j["rng"].value("data_order_seed", uint64_t(0));
    s.world_size = j.value("world_size", 1);
    s.config = j.value("config", nlohmann::json());
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": ", e.what());
  }
  return s;
}

nlohmann::json read_trainer_state(const std::filesystem::path& ckpt) {
  const std::filesystem::path file = ckpt / "trainer_state.json";
  const nlohmann::json j = read_json_file(file);
  LLM_CHECK(j.is_object() && j.contains("format") && j["format"].is_number_integer(), file.string(),
            ": not a trainer state (no format version)");
  LLM_CHECK(j["format"].get<int>() == kCheckpointFormat, file.string(), ": checkpoint format ", j["format"].get<int>(),
            " is not supported (this build reads ", kCheckpointFormat, ")");
  return j;
}

std::string_view precision_setting(std::string_view dtype) {
  if (dtype == dtype_name(DType::F32)) return "fp32";
  if (dtype == dtype_name(DType::BF16)) return "bf16";
  if (dtype == dtype_name(DType::F16)) return "fp16";
  return {};
}

}  // namespace llm
