// The continuous-batching loop: admit queued requests into free slots, forward one batch (every
// decoding sequence's next token plus one prefill chunk), sample, stream text, free finished slots.
#include "serve/scheduler.h"

#include <algorithm>

#include "llm/error.h"

namespace llm::serve {

bool GenJob::take(std::string& out, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, wait, [&] { return done_ || !pending_.empty(); });
  out += pending_;
  pending_.clear();
  return done_;
}

void GenJob::append(std::string_view text, int64_t completion_tokens) {
  {
    std::lock_guard lock(mu_);
    pending_ += text;
    completion_tokens_ = completion_tokens;
  }
  cv_.notify_all();
}

void GenJob::finish(StopReason reason, std::string error) {
  {
    std::lock_guard lock(mu_);
    done_ = true;
    reason_ = reason;
    error_ = std::move(error);
  }
  cv_.notify_all();
}

// A sequence holding a slot: its prompt fed in chunks, then one sampled token per step.
struct BatchScheduler::Seq {
  Seq(std::shared_ptr<GenJob> j, int64_t s, const Tokenizer& tok)
      : job(std::move(j)),
        slot(s),
        sampler(job->sampling()),
        text(tok, job->gen()),
        context(job->prompt().begin(), job->prompt().end()) {}
  std::shared_ptr<GenJob> job;
  int64_t slot;
  Sampler sampler;
  TokenText text;
  std::vector<int32_t> context;  // prompt + sampled: what the repetition penalty sees
  size_t fed = 0;                // prompt tokens forwarded so far
  int32_t next = -1;             // the sampled token to forward next (decode)
  int64_t generated = 0;
  bool done = false;
};

BatchScheduler::BatchScheduler(InferenceModel& model, const Tokenizer& tok, int64_t max_queue)
    : model_(&model),
      tok_(&tok),
      max_queue_(max_queue),
      slot_used_(static_cast<size_t>(model.slots()), false),
      thread_([this] { loop(); }) {}

BatchScheduler::~BatchScheduler() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

BatchScheduler::Submit BatchScheduler::submit(std::shared_ptr<GenJob> job) {
  {
    std::lock_guard lock(mu_);
    if (draining_ || stop_) return Submit::Draining;
    // Free slots take requests at once; beyond them, max_queue_ may wait.
    const int64_t free_slots = model_->slots() - stats_.active;
    if (static_cast<int64_t>(queue_.size()) >= max_queue_ + free_slots) return Submit::QueueFull;
    queue_.push_back(std::move(job));
    stats_.queued = static_cast<int64_t>(queue_.size());
  }
  cv_.notify_all();
  return Submit::Accepted;
}

void BatchScheduler::drain() {
  std::unique_lock lock(mu_);
  draining_ = true;
  cv_.notify_all();
  cv_.wait(lock, [&] { return queue_.empty() && stats_.active == 0; });
}

SchedulerStats BatchScheduler::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void BatchScheduler::loop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || !active_.empty(); });
      if (stop_) break;
    }
    admit();
    if (!active_.empty()) step();
  }
  for (auto& s : active_) s->job->finish(StopReason::Interrupted, "the server is shutting down");
  std::lock_guard lock(mu_);
  for (auto& j : queue_) j->finish(StopReason::Interrupted, "the server is shutting down");
  queue_.clear();
}

void BatchScheduler::admit() {
  std::lock_guard lock(mu_);
  while (!queue_.empty()) {
    const auto free = std::find(slot_used_.begin(), slot_used_.end(), false);
    if (free == slot_used_.end()) break;
    std::shared_ptr<GenJob> job = std::move(queue_.front());
    queue_.pop_front();
    if (job->cancelled()) {
      job->finish(StopReason::Interrupted);
      continue;
    }
    const auto slot = static_cast<int64_t>(free - slot_used_.begin());
    *free = true;
    model_->reset(slot);
    active_.push_back(std::make_unique<Seq>(std::move(job), slot, *tok_));
  }
  stats_.queued = static_cast<int64_t>(queue_.size());
  stats_.active = static_cast<int64_t>(active_.size());
}

void BatchScheduler::finish(Seq& s, StopReason reason, const std::string& error) {
  if (error.empty() && !s.text.stopped()) {
    const std::string rest = s.text.finish();
    if (s.text.stopped()) reason = StopReason::StopString;
    s.job->append(rest, s.generated);
  }
  s.job->finish(reason, error);
  s.done = true;
  model_->reset(s.slot);
  slot_used_[static_cast<size_t>(s.slot)] = false;
}

void BatchScheduler::step() {
  const auto t0 = std::chrono::steady_clock::now();
  // The batch: every decoding sequence's next token first, then prefill chunks in admission
  // order while rows are left (at most one chunk of prefill_chunk tokens per step).
  std::vector<SeqTokens> batch;
  std::vector<Seq*> in_batch;
  std::vector<int32_t> one_token(active_.size());
  int64_t rows = model_->batch_rows(), prefill_rows = model_->options().prefill_chunk;
  for (size_t i = 0; i < active_.size(); ++i) {
    Seq& s = *active_[i];
    if (s.job->cancelled()) {
      finish(s, StopReason::Interrupted);
    } else if (s.fed == s.job->prompt().size()) {
      one_token[i] = s.next;
      batch.push_back(SeqTokens{s.slot, std::span<const int32_t>(&one_token[i], 1)});
      in_batch.push_back(&s);
      --rows;
    }
  }
  int64_t prompt_rows = 0;
  for (auto& sp : active_) {
    Seq& s = *sp;
    const auto left = static_cast<int64_t>(s.job->prompt().size() - s.fed);
    if (s.done || left == 0 || rows <= 0 || prefill_rows <= 0) continue;
    const int64_t n = std::min({left, rows, prefill_rows});
    batch.push_back(
        SeqTokens{s.slot, std::span<const int32_t>(s.job->prompt()).subspan(s.fed, static_cast<size_t>(n))});
    in_batch.push_back(&s);
    rows -= n;
    prefill_rows -= n;
    prompt_rows += n;
  }
  int64_t sampled = 0;
  if (!batch.empty()) {
    std::vector<float> logits;
    try {
      logits = model_->forward_batch(batch);
    } catch (const std::exception& e) {
      for (Seq* s : in_batch) finish(*s, StopReason::Interrupted, e.what());
    }
    const auto V = static_cast<size_t>(model_->config().vocab_size);
    const auto vocab = static_cast<size_t>(tok_->vocab_size());  // a padded vocabulary is never sampled
    const std::vector<int32_t> stop_ids = tok_->stop_ids();
    for (size_t i = 0; i < in_batch.size() && !logits.empty(); ++i) {
      Seq& s = *in_batch[i];
      if (s.fed < s.job->prompt().size()) {
        s.fed += batch[i].tokens.size();
        if (s.fed < s.job->prompt().size()) continue;  // more prompt to feed: these logits are not the last
      }
      const int32_t id = s.sampler.sample(std::span<const float>(logits).subspan(i * V, vocab), s.context);
      ++s.generated;
      ++sampled;
      if (!s.job->ignore_eos() && std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end()) {
        finish(s, StopReason::StopToken);
        continue;
      }
      s.context.push_back(id);
      s.next = id;
      s.job->append(s.text.push(id), s.generated);
      if (s.text.stopped()) {
        finish(s, StopReason::StopString);
      } else if (s.job->gen().max_tokens >= 0 && s.generated >= s.job->gen().max_tokens) {
        finish(s, StopReason::MaxTokens);
      } else if (model_->position(s.slot) >= model_->context()) {
        finish(s, StopReason::ContextFull);
      }
    }
  }
  std::erase_if(active_, [](const auto& s) { return s->done; });
  std::lock_guard lock(mu_);
  stats_.active = static_cast<int64_t>(active_.size());
  stats_.prompt_tokens += prompt_rows;
  stats_.generated_tokens += sampled;
  stats_.busy_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (active_.empty()) cv_.notify_all();  // drain() waits for this
}

}  // namespace llm::serve
