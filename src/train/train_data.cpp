// setup_data(): the tokenizer, the shards and the loaders of a training run.
#include "train/train_data.h"

#include <iostream>

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
  TokenStream train = TokenStream::from_manifest(cfg.data.out_dir, "train", d.tokenizer->fingerprint());
  // "auto": packed chat data needs document attention, text keeps plain causal rows.
  const bool document =
      cfg.data.attention == "document" || (cfg.data.attention == "auto" && train.has_token_flags() && cfg.data.packing);
  LoaderOptions lo;
  lo.batch_size = tc.micro_batch;
  lo.seq_len = tc.seq_len;
  lo.rank = comm.rank();
  lo.world = comm.world();
  lo.seed = cfg.data.seed;
  lo.prefetch = cfg.data.prefetch_batches;
  lo.document_attention = document;
  lo.packing = cfg.data.packing;
  d.loader = std::make_unique<ShardLoader>(std::move(train), lo);
  const SampleSet& set = d.loader->sample_set();
  if (lead && set.packed()) {
    std::ostream& out = log ? *log : std::cerr;
    out << "data: " << d.loader->samples_per_epoch() << " rows of " << tc.seq_len << " tokens per epoch, "
        << set.trained_targets() << " tokens trained on" << (document ? ", document attention" : "") << "\n";
    if (set.skipped_documents() > 0) {
      out << "data: warning: " << set.skipped_documents() << " conversation(s) longer than seq_len " << tc.seq_len
          << " skipped (" << set.skipped_tokens() << " tokens)\n";
    }
  }
  EvalOptions eo;
  eo.batch_size = tc.micro_batch;
  eo.seq_len = tc.seq_len;
  eo.rank = comm.rank();
  eo.world = comm.world();
  eo.max_batches = tc.eval_batches;
  eo.document_attention = document;
  eo.packing = cfg.data.packing;
  d.val =
      std::make_unique<EvalLoader>(TokenStream::from_manifest(cfg.data.out_dir, "val", d.tokenizer->fingerprint()), eo);
  return d;
}

}  // namespace llm
