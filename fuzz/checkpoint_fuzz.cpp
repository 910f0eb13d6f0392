// The JSON files of a checkpoint directory (docs/long-runs.md): trainer_state.json as resuming reads
// it (read_trainer_state, TrainerState::from_json with its data cursor, the loss scaler's state)
// and checksums.json as resuming and llmgen check it (verify_checksums, over a directory holding
// one real file that the seeds list with its true size and hash, and one they list wrongly).
#include "fuzz_util.h"
#include "llm/checkpoint.h"
#include "llm/checksum.h"
#include "llm/optimizer.h"
#include "train/trainer_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path dir = llm::fuzz::scratch_dir() / "ckpt";
  static const bool made = [&] {
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "model.safetensors", std::ios::binary) << "sixteen bytes!!\n";
    std::ofstream(dir / "config.json", std::ios::binary) << "{}\n";
    return true;
  }();
  (void)made;
  llm::fuzz::write_input("ckpt/trainer_state.json", data, size);
  try {
    const llm::TrainerState s = llm::TrainerState::from_json(llm::read_trainer_state(dir), "trainer_state.json");
    llm::LossScaler scaler(true, 65536.0, 2000, 0.5, 100);
    scaler.from_json(s.loss_scaler, "trainer_state.json: loss_scaler");
  } catch (const llm::Error& e) {
    llm::fuzz::rejected(e);
  }
  llm::fuzz::write_input("ckpt/checksums.json", data, size);
  try {
    (void)llm::verify_checksums(dir);
  } catch (const llm::Error& e) {
    llm::fuzz::rejected(e);
  }
  return 0;
}
