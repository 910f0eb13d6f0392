// The OpenAI-compatible HTTP server (llmgen --serve): /v1/chat/completions, /v1/completions,
// /v1/models, /health, /metrics, with continuous batching over one InferenceModel whose KV-cache
// slots are the parallel sequences. docs/serving.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "llm/inference.h"
#include "llm/sampler.h"
#include "llm/tokenizer.h"

namespace llm {

struct ServeOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8080;                 // 0: any free port
  int64_t queue = 64;              // requests waiting for a slot before 503 (Retry-After)
  std::string api_key;             // when set: "Authorization: Bearer KEY" on /v1/*
  size_t max_body_bytes = size_t(4) << 20;
  std::string model_name;            // the id in /v1/models and responses
  int64_t default_max_tokens = 512;  // when a request gives no max_tokens (capped by the context)
  // Sampling when a request does not say: OpenAI's defaults (temperature 1, top_p 1) and no
  // top-k, min-p or repetition penalty.
  SamplingParams defaults{1.0f, 0, 1.0f, 0.0f, 1.0f, 0};
};

class Server {
 public:
  // The model's slots() are the sequences served at once (InferenceOptions::slots).
  Server(InferenceModel& model, const Tokenizer& tok, const ServeOptions& opt);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int bind();  // binds host:port; returns the port (error naming the address when it cannot)
  void run();  // accepts until stop(); returns after draining
  // Refuses new requests (503), lets admitted and queued ones finish, then stops listening.
  // Safe from any thread; idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// bind(), print the address line to stderr, and run() until stop_requested() (polled; the
// caller's SIGTERM/SIGINT handler sets what it reads), then stop(): the drain.
void serve_until(Server& server, const ServeOptions& opt, const std::function<bool()>& stop_requested);

}  // namespace llm
