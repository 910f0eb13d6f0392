// Checkpoints (DESIGN.md section 5): run_dir/step_NNNNNNNN/ holding model.safetensors and
// config.json (loadable by HF as they are), the tokenizer files, optimizer.rankNNNNN.safetensors
// (fp32 master, m, v of each rank's range) and trainer_state.json. A checkpoint is built under a
// temporary name and renamed into place when complete; run_dir/latest (a symlink) names the
// newest complete one. One protocol for all resumable state.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <optional>

#include "llm/comm.h"
#include "llm/error.h"
#include "llm/model.h"
#include "llm/optimizer.h"
#include "llm/tokenizer.h"

namespace llm {

inline constexpr int kCheckpointFormat = 1;

std::filesystem::path checkpoint_dir(const std::filesystem::path& run_dir, int64_t step);

// A checkpoint could not be written (a full disk, an I/O error, on any rank). Thrown on every rank
// alike; the temporary directory is gone and the previous checkpoints are untouched.
class CheckpointWriteError : public Error {
 public:
  using Error::Error;
};

// Writes the checkpoint of `step` collectively: every rank writes its optimizer shard, rank 0
// the rest; then rank 0 renames it into place, points `latest` at it and removes all but the
// newest keep_last. `state` is trainer_state.json (rank 0's). before_commit, when set, runs on
// rank 0 with the complete temporary directory just before the rename (tests kill the process
// there). Returns the checkpoint directory. Rank 0 records every file's checksum in checksums.json.
// Failures: CheckpointWriteError on every rank (see above).
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, int64_t step, const Qwen2Model& model,
                                      const AdamW& opt, const Tokenizer* tokenizer, const nlohmann::json& state,
                                      int64_t keep_last, Communicator& comm,
                                      const std::function<void(const std::filesystem::path&)>& before_commit = {});

// Rank 0 at the start of a run: removes what an interrupted save left in run_dir (temporary and
// half-deleted checkpoint directories, temporary files) and puts back a checkpoint that a crash
// left renamed aside in commit_directory.
void clean_run_dir(const std::filesystem::path& run_dir);

// The newest complete checkpoint of run_dir (what `latest` names, else the highest step_*
// directory holding a trainer_state.json), or nullopt.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir);

// trainer_state.json of a checkpoint, checked for its format version.
nlohmann::json read_trainer_state(const std::filesystem::path& ckpt);

// Fills the optimizer's range (master, m, v) from the optimizer shards of ckpt, whatever world
// size wrote them, and re-derives the compute weights. Errors name the file and what is missing.
void load_optimizer_state(const std::filesystem::path& ckpt, AdamW& opt);

// Host fp32 copy of the model's compute weights [flat_size].
std::vector<float> download_weights(const Qwen2Model& model);

}  // namespace llm
