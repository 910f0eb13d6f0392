// The data of a training run: the tokenizer, the corpus prepared into shards (by rank 0, the
// others waiting), this rank's slice of the training stream and of the validation batches.
#pragma once

#include <iosfwd>
#include <memory>

#include "llm/comm.h"
#include "llm/config.h"
#include "llm/loader.h"
#include "llm/tokenizer.h"

namespace llm {

struct TrainData {
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ShardLoader> loader;  // this rank's training batches (prefetched)
  std::unique_ptr<EvalLoader> val;      // this rank's validation batches
};

// Rank 0 loads (or trains) the tokenizer and prepares the corpus when it is out of date, logging
// to `log` (nullptr: stderr, in place on a terminal); every rank then opens its slice. Leaves
// comm in phase "setup" with the configured timeout.
TrainData setup_data(const Config& cfg, Communicator& comm, std::ostream* log);

}  // namespace llm
