// evaluate() and print_sample().
#include "train/evaluation.h"

#include <cmath>
#include <ostream>

#include "llm/checkpoint.h"
#include "llm/generate.h"
#include "llm/inference.h"
#include "llm/sampler.h"

namespace llm {

double evaluate(Qwen2Model& model, const EvalLoader& val, Communicator& comm) {
  double sum = 0, count = 0;
  for (int64_t i = 0; i < val.num_batches(); ++i) {
    const Batch b = val.batch(i);
    const LossSum l = model.forward(TokenBatch{b.B, b.T, b.ids, b.targets, b.positions}, false);
    sum += l.sum;
    count += double(l.count);
  }
  double both[2] = {sum, count};
  comm.all_reduce_sum(both);
  sum = both[0];
  count = both[1];
  return count > 0 ? sum / count : NAN;
}

void print_sample(const Config& cfg, const Qwen2Model& model, const Tokenizer& tok, std::ostream& log) {
  try {
    InferenceOptions io;
    io.context = std::min<int64_t>(cfg.model.arch.max_position_embeddings, 1024);
    io.dtype = model.weights().dtype();
    InferenceModel inf(cfg.model.arch, download_weights(model), model.backend(), io);
    Session session(inf, tok);
    SamplingParams sp;
    sp.temperature = 0.8f;
    sp.top_p = 0.95f;
    sp.top_k = 0;
    sp.repeat_penalty = 1.1f;
    sp.seed = 1;
    Sampler sampler(sp);
    GenerateOptions go;
    go.max_tokens = cfg.io.sample_tokens;
    const std::vector<int32_t> prompt = tok.encode(cfg.io.sample_prompt);
    log << "sample: " << cfg.io.sample_prompt;
    session.generate(prompt, sampler, go, [&](std::string_view text) { log << text << std::flush; });
    log << "\n";
  } catch (const std::exception& e) {
    log << "\nsample: not generated: " << e.what() << "\n";
  }
}

}  // namespace llm
