// setup_data(): the tokenizer, the shards and the loaders of a training run.
#include "train/train_data.h"

#include "llm/error.h"
#include "llm/prepare.h"

namespace llm {

TrainData setup_data(const Config& cfg, Communicator& comm, std::ostream* log) {
  const bool lead = comm.rank() == 0;
  const TrainSection& tc = cfg.train;
  PrepareOptions popt = lead ? PrepareOptions::to_stderr() : PrepareOptions{};
  if (lead && log) popt.log = log, popt.tty = false;
  TrainData d;
  // The others wait for rank 0's preparation without a deadline: it can take hours.
  comm.set_timeout(0);
  comm.set_phase("data preparation (rank 0)");
  if (lead) {
    d.tokenizer = load_or_train_tokenizer(cfg.tokenizer, cfg.data, popt);
    if (!corpus_up_to_date(cfg.data, *d.tokenizer)) prepare_corpus(cfg.data, *d.tokenizer, popt);
  }
  comm.barrier();
  comm.set_timeout(cfg.dist.timeout_s);
  comm.set_phase("setup");
  if (!lead) d.tokenizer = load_tokenizer(cfg.tokenizer.path);
  LLM_CHECK(d.tokenizer->vocab_size() <= cfg.model.arch.vocab_size, "tokenizer: ", cfg.tokenizer.path.string(), " has ",
            d.tokenizer->vocab_size(), " ids but model.vocab_size is ", cfg.model.arch.vocab_size);
  LoaderOptions lo;
  lo.batch_size = tc.micro_batch;
  lo.seq_len = tc.seq_len;
  lo.rank = comm.rank();
  lo.world = comm.world();
  lo.seed = cfg.data.seed;
  lo.prefetch = cfg.data.prefetch_batches;
  d.loader = std::make_unique<ShardLoader>(
      TokenStream::from_manifest(cfg.data.out_dir, "train", d.tokenizer->fingerprint()), lo);
  EvalOptions eo;
  eo.batch_size = tc.micro_batch;
  eo.seq_len = tc.seq_len;
  eo.rank = comm.rank();
  eo.world = comm.world();
  eo.max_batches = tc.eval_batches;
  d.val =
      std::make_unique<EvalLoader>(TokenStream::from_manifest(cfg.data.out_dir, "val", d.tokenizer->fingerprint()), eo);
  return d;
}

}  // namespace llm
