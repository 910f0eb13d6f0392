// What a run reports of its model besides the training loss: the validation loss, and a sample
// of text generated at the end.
#pragma once

#include <iosfwd>

#include "llm/comm.h"
#include "llm/config.h"
#include "llm/loader.h"
#include "llm/model.h"
#include "llm/tokenizer.h"

namespace llm {

// Mean loss per target token over every rank's validation batches (collective).
double evaluate(Qwen2Model& model, const EvalLoader& val, Communicator& comm);

// What the trained model makes of io.sample_prompt: sampled (temperature 0.8, top-p 0.95, a fixed
// seed) so a user sees at once what the run learned. Errors here do not fail a finished run.
void print_sample(const Config& cfg, const Qwen2Model& model, const Tokenizer& tok, std::ostream& log);

}  // namespace llm
