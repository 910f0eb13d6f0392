// BatchScheduler: continuous batching over one InferenceModel. Requests wait in a bounded queue
// for a KV-cache slot; every step forwards, in one forward_batch, the last sampled token of every
// decoding sequence plus at most one prefill chunk of a newly admitted prompt, so a long prompt
// never stalls the others for longer than one chunk. A finished or cancelled sequence frees its
// slot at once. One thread (the scheduler's) touches the model.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "llm/generate.h"
#include "llm/inference.h"
#include "llm/sampler.h"
#include "llm/tokenizer.h"

namespace llm::serve {

// One generation request and its output, shared by the HTTP handler (reader) and the scheduler
// (writer).
class GenJob {
 public:
  // ignore_eos: the tokenizer's stop ids do not end the generation (benchmarks, fixed lengths).
  GenJob(std::vector<int32_t> prompt, const SamplingParams& sampling, const GenerateOptions& gen, bool ignore_eos)
      : prompt_(std::move(prompt)), sampling_(sampling), gen_(gen), ignore_eos_(ignore_eos) {}

  const std::vector<int32_t>& prompt() const { return prompt_; }
  const SamplingParams& sampling() const { return sampling_; }
  const GenerateOptions& gen() const { return gen_; }
  bool ignore_eos() const { return ignore_eos_; }

  // Reader side: waits up to `wait` for text or the end; moves the new text into `out`.
  // Returns true once the job is done and all its text was taken.
  bool take(std::string& out, std::chrono::milliseconds wait);
  void cancel() { cancelled_ = true; }  // the client went away: free the slot at the next step
  bool cancelled() const { return cancelled_; }
  // Valid once take() returned true.
  StopReason reason() const { return reason_; }
  const std::string& error() const { return error_; }
  int64_t completion_tokens() const { return completion_tokens_; }  // so far; final once done

  // Writer side (the scheduler).
  void append(std::string_view text, int64_t completion_tokens);
  void finish(StopReason reason, std::string error = {});

 private:
  std::vector<int32_t> prompt_;
  SamplingParams sampling_;
  GenerateOptions gen_;
  bool ignore_eos_ = false;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;
  bool done_ = false;
  StopReason reason_ = StopReason::MaxTokens;
  std::string error_;
  std::atomic<int64_t> completion_tokens_{0};  // read while the scheduler writes it (time to first token)
};

struct SchedulerStats {
  int64_t queued = 0;
  int64_t active = 0;
  int64_t prompt_tokens = 0;     // forwarded, all requests
  int64_t generated_tokens = 0;  // sampled, all requests
  double busy_seconds = 0;       // time spent in forward passes and sampling
};

class BatchScheduler {
 public:
  // max_queue: requests that may wait for a slot; more are refused.
  BatchScheduler(InferenceModel& model, const Tokenizer& tok, int64_t max_queue);
  ~BatchScheduler();
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  enum class Submit { Accepted, QueueFull, Draining };
  Submit submit(std::shared_ptr<GenJob> job);
  // Refuses new requests, finishes those admitted or queued, then returns.
  void drain();
  SchedulerStats stats() const;

 private:
  struct Seq;
  void loop();
  void admit();
  void step();
  void finish(Seq& s, StopReason reason, const std::string& error = {});

  InferenceModel* model_;
  const Tokenizer* tok_;
  int64_t max_queue_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<GenJob>> queue_;
  bool draining_ = false, stop_ = false;
  SchedulerStats stats_;
  // Scheduler thread only:
  std::vector<std::unique_ptr<Seq>> active_;  // admission order
  std::vector<bool> slot_used_;
  std::thread thread_;
};

}  // namespace llm::serve
