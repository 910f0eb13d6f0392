// Frontend: one input -> one streamed answer, in plain (completion) or chat mode.
#include <algorithm>
#include <ostream>

#include "llm/chat.h"
#include "llm/error.h"

namespace llm {

namespace {
const FrontendOptions& validated(const FrontendOptions& opt) {
  opt.sampling.validate("--");
  opt.gen.validate("--");
  return opt;
}
}  // namespace

Frontend::Frontend(InferenceModel& model, const Tokenizer& tok, const FrontendOptions& opt)
    : opt_(validated(opt)), session_(model, tok), sampler_(opt.sampling), history_(opt.system) {
  if (opt_.chat) check_chat_tokenizer(tok);
}

void Frontend::set_options(const FrontendOptions& opt) {
  validated(opt);
  LLM_CHECK(opt.chat == opt_.chat, "frontend: the chat mode cannot change");
  sampler_.set_params(opt.sampling);
  if (opt.system != opt_.system) history_.set_system(opt.system);
  opt_ = opt;
}

void Frontend::reset() {
  history_.clear();
  session_.reset();
  last_.reset();
}

int64_t Frontend::chat_budget() const {
  // Room for the answer: max_tokens, but at most half the context (all of it would leave none
  // for the history); -1 (until the context is full) reserves half.
  const int64_t ctx = session_.model().context();
  const int64_t reserve = opt_.gen.max_tokens > 0 ? std::min(opt_.gen.max_tokens, ctx / 2) : ctx / 2;
  return ctx - reserve;
}

GenerateResult Frontend::answer(std::string_view input, std::ostream& out, std::ostream& err,
                                const std::function<bool()>& interrupted) {
  std::vector<int32_t> prompt;
  if (opt_.chat) {
    int64_t dropped = 0;
    prompt = history_.begin_turn(session_.tokenizer(), std::string(input), chat_budget(), &dropped);
    if (dropped > 0) err << "[chat: dropped the " << dropped << " oldest turn(s) to fit the context]\n";
  } else {
    prompt = session_.tokenizer().encode(input);
  }
  auto emit = [&](std::string_view text) { out << text << std::flush; };
  GenerateResult r = session_.generate(prompt, sampler_, opt_.gen, emit, interrupted);
  if (opt_.chat) history_.end_turn(r.text);
  last_ = r.stats;
  out << "\n" << std::flush;  // before the notices, so a terminal shows them on a line of their own
  if (r.stats.reason == StopReason::ContextFull) {
    err << "[context full: " << session_.model().context() << " tokens; " << (opt_.chat ? "/reset" : "a shorter prompt")
        << " or a larger --ctx]\n";
  } else if (r.stats.reason == StopReason::Interrupted) {
    err << "[interrupted]\n";
  }
  if (opt_.stats) err << format_stats(r.stats, session_.model()) << "\n";
  return r;
}

}  // namespace llm
