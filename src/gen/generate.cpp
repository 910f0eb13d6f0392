// The generation loop: prefill the prompt (reusing the cached prefix), then sample, stream and
// decode one token at a time until something stops it.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "llm/error.h"
#include "llm/generate.h"

namespace llm {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

void GenerateOptions::validate(std::string_view prefix) const {
  LLM_CHECK(max_tokens > 0 || max_tokens == -1, prefix, "max-tokens: ", max_tokens,
            " is not a positive count (-1: until the context is full)");
  for (const auto& s : stop) LLM_CHECK(!s.empty(), prefix, "stop: a stop string is empty");
}

TokenText::TokenText(const Tokenizer& tok, const GenerateOptions& opt)
    : tok_(&tok), show_special_(opt.show_special), filter_(opt.stop) {}

std::string TokenText::push(int32_t id) {
  if (!show_special_ && tok_->is_special(id)) return {};
  return filter_.push(utf8_.push(tok_->token_bytes(id)));
}

std::string TokenText::finish() {
  if (filter_.stopped()) return {};
  std::string rest = filter_.push(utf8_.flush());
  return rest + filter_.flush();
}

std::string_view stop_reason_text(StopReason r) {
  switch (r) {
    case StopReason::StopToken: return "end of text";
    case StopReason::StopString: return "stop string";
    case StopReason::MaxTokens: return "token limit";
    case StopReason::ContextFull: return "context full";
    case StopReason::Interrupted: return "interrupted";
  }
  return "?";
}

Session::Session(InferenceModel& model, const Tokenizer& tok) : model_(&model), tok_(&tok) {
  LLM_CHECK(tok.vocab_size() <= model.config().vocab_size, "generate: the tokenizer has ", tok.vocab_size(),
            " ids but the model's vocabulary is ", model.config().vocab_size);
  model_->reset();
}

void Session::reset() {
  model_->reset();
  cached_.clear();
}

std::vector<float> Session::prefill(std::span<const int32_t> tokens, int64_t* reused) {
  LLM_CHECK(!tokens.empty(), "prompt: no tokens");
  LLM_CHECK(static_cast<int64_t>(tokens.size()) <= model_->context(), "prompt: ", tokens.size(),
            " tokens do not fit the context of ", model_->context(), " tokens (--ctx)");
  const auto mismatch = std::mismatch(cached_.begin(), cached_.end(), tokens.begin(), tokens.end());
  // Keep at least the last prompt token to forward: its logits are what we sample from.
  const size_t common = std::min(static_cast<size_t>(mismatch.first - cached_.begin()), tokens.size() - 1);
  model_->truncate(static_cast<int64_t>(common));
  cached_.resize(common);
  if (reused) *reused = static_cast<int64_t>(common);
  std::vector<float> logits;
  try {
    logits = model_->forward(tokens.subspan(common));
  } catch (...) {
    reset();  // a failed forward may have filled part of the cache
    throw;
  }
  cached_.insert(cached_.end(), tokens.begin() + static_cast<std::ptrdiff_t>(common), tokens.end());
  return logits;
}

GenerateResult Session::generate(std::span<const int32_t> prompt, Sampler& sampler, const GenerateOptions& opt,
                                 const std::function<void(std::string_view)>& emit,
                                 const std::function<bool()>& interrupted) {
  opt.validate("--");
  GenerateResult r;
  GenerateStats& st = r.stats;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits = prefill(prompt, &st.reused_tokens);
  st.prompt_tokens = static_cast<int64_t>(prompt.size()) - st.reused_tokens;
  st.prefill_seconds = seconds_since(t0);

  // Only the tokenizer's ids can be sampled: a model's vocabulary may be padded beyond them.
  const size_t vocab = static_cast<size_t>(tok_->vocab_size());
  const std::vector<int32_t> stop_ids = tok_->stop_ids();
  std::vector<int32_t> context(prompt.begin(), prompt.end());  // what the repetition penalty sees
  TokenText detok(*tok_, opt);
  auto out = [&](const std::string& text) {
    if (text.empty()) return;
    r.text += text;
    if (emit) emit(text);
  };

  t0 = std::chrono::steady_clock::now();
  for (;;) {
    if (interrupted && interrupted()) {
      st.reason = StopReason::Interrupted;
      break;
    }
    const int32_t id = sampler.sample(std::span<const float>(logits).first(vocab), context);
    ++st.generated;
    if (std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end()) {
      st.reason = StopReason::StopToken;
      break;
    }
    r.tokens.push_back(id);
    context.push_back(id);
    out(detok.push(id));
    if (detok.stopped()) {
      st.reason = StopReason::StopString;
      break;
    }
    if (opt.max_tokens >= 0 && static_cast<int64_t>(r.tokens.size()) >= opt.max_tokens) {
      st.reason = StopReason::MaxTokens;
      break;
    }
    if (model_->position() >= model_->context()) {
      st.reason = StopReason::ContextFull;
      break;
    }
    const int32_t one[1] = {id};
    try {
      logits = model_->forward(one);
    } catch (...) {
      reset();
      throw;
    }
    cached_.push_back(id);
    ++st.decode_tokens;
  }
  if (!detok.stopped()) {
    out(detok.finish());
    if (detok.stopped()) st.reason = StopReason::StopString;
  }
  st.decode_seconds = seconds_since(t0);
  return r;
}

std::string format_stats(const GenerateStats& s, const InferenceModel& model) {
  auto rate = [](int64_t n, double secs) { return secs > 0 ? double(n) / secs : 0.0; };
  auto mib = [](size_t b) { return double(b) / (1024.0 * 1024.0); };
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "prefill: %lld tokens in %.3f s (%.1f tok/s, %lld cached) | decode: %lld tokens in %.3f s "
                "(%.1f tok/s, stop: %s) | memory: weights %.1f MiB, KV cache %.1f MiB (%lld positions, %lld used)",
                static_cast<long long>(s.prompt_tokens), s.prefill_seconds, rate(s.prompt_tokens, s.prefill_seconds),
                static_cast<long long>(s.reused_tokens), static_cast<long long>(s.generated), s.decode_seconds,
                rate(s.generated, s.decode_seconds), std::string(stop_reason_text(s.reason)).c_str(),
                mib(model.weight_bytes()), mib(model.kv_cache_bytes()), static_cast<long long>(model.context()),
                static_cast<long long>(model.position()));
  return buf;
}

}  // namespace llm
