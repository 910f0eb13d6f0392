// Test hooks of the distributed training tests (tests/dist), read from the environment once per
// run. None is active unless its variable is set.
//   LLM_TEST_DIST_FAULT=kill:R:S | hang:R:S | throw:R:S
//                                             rank R SIGKILLs itself, stops responding, or
//                                             throws an llm::Error just before step S (1-based)
//   LLM_TEST_PARAM_HASH=1                     metrics.jsonl records a hash of every rank's
//                                             weights after each step ("param_hash", rank order)
//   LLM_TEST_SAMPLE_LOG=DIR                   each rank appends "step row_hash" per sample it
//                                             trains on to DIR/samples.rankNNNNN.txt
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "llm/comm.h"
#include "llm/loader.h"
#include "llm/model.h"

namespace llm {

class DistTestHooks {
 public:
  static DistTestHooks from_env();

  // Fault injection before step `step` (1-based) on rank `rank`.
  void before_step(int64_t step, int rank) const;
  bool param_hash() const { return param_hash_; }
  // Every rank's weight hash as 16 hex digits, rank order (collective: every rank calls it).
  static std::vector<std::string> param_hashes(const Qwen2Model& model, Communicator& comm);
  // Appends the rows of b to this rank's sample log.
  void log_samples(int64_t step, int rank, const Batch& b) const;

 private:
  std::string fault_;  // "kill" or "hang"
  int fault_rank_ = -1;
  int64_t fault_step_ = -1;
  bool param_hash_ = false;
  std::filesystem::path sample_log_;
};

}  // namespace llm
