// The training tests' hooks (llm::TrainHooks), read from the environment by llmtrain_hooked, the
// test build of llmtrain that tests/dist and tests/train run as a subprocess (under mpirun or
// alone). None is active unless its variable is set.
//   LLM_TEST_DIST_FAULT=kill:R:S | hang:R:S | throw:R:S
//                                             rank R SIGKILLs itself, stops responding, or
//                                             throws an llm::Error just before step S (1-based)
//   LLM_TEST_STEP_DELAY_MS=N                  every rank sleeps N ms before each step
//   LLM_TEST_FILE_LIMIT=S:BYTES:L             from step S on, no file may grow beyond BYTES
//                                             (write(2) fails, as on a full disk); from step L
//                                             on (0: never) the limit is lifted
//   LLM_TEST_PARAM_HASH=1                     metrics.jsonl records a hash of every rank's
//                                             weights after each step ("param_hash", rank order)
//   LLM_TEST_SAMPLE_LOG=DIR                   each rank appends "step row_hash" per sample it
//                                             trains on to DIR/samples.rankNNNNN.txt
//   LLM_TEST_CHECKPOINT_DELAY_MS=N            rank 0 holds each finished checkpoint N ms under its
//                                             temporary name before committing it (a test kills
//                                             the process at exactly this point)
#pragma once

#include <string>
#include <vector>

#include "llm/comm.h"
#include "llm/model.h"
#include "llm/trainer.h"

namespace llm::test {

// The hooks the LLM_TEST_* variables ask for; an error names a malformed variable.
TrainHooks train_hooks_from_env();

// Every rank's weight hash as 16 hex digits, rank order (collective: every rank calls it).
std::vector<std::string> param_hashes(const Qwen2Model& model, Communicator& comm);

}  // namespace llm::test
