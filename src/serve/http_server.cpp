// The HTTP side of the server (cpp-httplib from Debian): routes, the API key, request limits,
// server-sent events, Prometheus metrics, and the drain on stop. Generation is the scheduler's.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "llm/chat.h"
#include "llm/error.h"
#include "llm/serve.h"
#include "serve/openai_api.h"
#include "serve/scheduler.h"

namespace llm {

using nlohmann::json;
using serve::ApiError;
using serve::Endpoint;

struct Server::Impl {
  Impl(InferenceModel& m, const Tokenizer& t, const ServeOptions& o)
      : model(m), tok(t), opt(o), scheduler(m, t, o.queue) {
    try {
      check_chat_tokenizer(t);
      chat_ok = true;
    } catch (const Error& e) {
      chat_error = e.what();
    }
  }

  InferenceModel& model;
  const Tokenizer& tok;
  ServeOptions opt;
  serve::BatchScheduler scheduler;
  httplib::Server http;
  bool chat_ok = false;
  std::string chat_error;
  std::atomic<bool> draining{false};
  std::once_flag stop_once;
  std::atomic<int64_t> in_flight{0};  // HTTP exchanges not yet completed
  std::atomic<int64_t> next_id{0};
  std::mutex metrics_mu;
  std::map<int, int64_t> requests_by_status;
  int port = -1;

  void routes();
  void completion(Endpoint e, const httplib::Request& req, httplib::Response& res);
  bool authorized(const httplib::Request& req, httplib::Response& res) const;
  std::string metrics_text();
};

namespace {

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(e.body().dump(), "application/json");
}

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Counts an exchange from the handler's start until its response is fully written.
struct InFlight {
  explicit InFlight(std::atomic<int64_t>& n) : n_(&n) { ++*n_; }
  ~InFlight() { --*n_; }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  std::atomic<int64_t>* n_;
};

}  // namespace

bool Server::Impl::authorized(const httplib::Request& req, httplib::Response& res) const {
  if (opt.api_key.empty()) return true;
  if (req.get_header_value("Authorization") == "Bearer " + opt.api_key) return true;
  send_error(res, ApiError{401, "missing or wrong API key (Authorization: Bearer KEY)", "invalid_request_error", "",
                           "invalid_api_key"});
  return false;
}

void Server::Impl::completion(Endpoint e, const httplib::Request& req, httplib::Response& res) {
  auto in_flight_guard = std::make_shared<InFlight>(in_flight);
  if (!authorized(req, res)) return;
  try {
    serve::ApiRequest r = serve::parse_request(e, req.body, opt.defaults, opt.default_max_tokens);
    if (!r.model.empty() && r.model != opt.model_name) {
      throw ApiError{404, "the model '" + r.model + "' does not exist; this server serves '" + opt.model_name + "'",
                     "invalid_request_error", "model", "model_not_found"};
    }
    std::vector<int32_t> prompt;
    if (e == Endpoint::Chat) {
      if (!chat_ok) throw ApiError{400, chat_error, "invalid_request_error", "messages", ""};
      prompt = tok.encode(render_chatml(r.messages, true));
    } else {
      prompt = tok.encode(r.prompt);
    }
    const char* prompt_field = e == Endpoint::Chat ? "messages" : "prompt";
    const int64_t ctx = model.context(), n = static_cast<int64_t>(prompt.size());
    if (n == 0)
      throw ApiError{400, std::string("'") + prompt_field + "' gives no tokens", "invalid_request_error", prompt_field,
                     ""};
    if (n >= ctx) {
      throw ApiError{
          400,
          "the prompt has " + std::to_string(n) + " tokens; the context is " + std::to_string(ctx) + " tokens (--ctx)",
          "invalid_request_error", prompt_field, "context_length_exceeded"};
    }
    if (n + r.gen.max_tokens > ctx) {
      if (r.max_tokens_given) {
        throw ApiError{400,
                       "max_tokens " + std::to_string(r.gen.max_tokens) + " + the prompt's " + std::to_string(n) +
                           " tokens exceed the context of " + std::to_string(ctx) + " tokens (--ctx)",
                       "invalid_request_error", "max_tokens", "context_length_exceeded"};
      }
      r.gen.max_tokens = ctx - n;  // the default: as much as fits
    }
    try {
      r.sampling.validate("");
    } catch (const Error& err) {
      throw ApiError{400, err.what(), "invalid_request_error", "", ""};
    }
    auto job = std::make_shared<serve::GenJob>(prompt, r.sampling, r.gen, r.ignore_eos);
    switch (scheduler.submit(job)) {
      case serve::BatchScheduler::Submit::Accepted: break;
      case serve::BatchScheduler::Submit::QueueFull:
        res.set_header("Retry-After", "1");
        throw ApiError{503, "every slot is busy and the queue is full; retry shortly", "server_error", "",
                       "overloaded"};
      case serve::BatchScheduler::Submit::Draining:
        res.set_header("Retry-After", "5");
        throw ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"};
    }
    const serve::ResponseMeta meta{(e == Endpoint::Chat ? "chatcmpl-" : "cmpl-") + std::to_string(++next_id),
                                   unix_seconds(), opt.model_name};
    if (!r.stream) {
      std::string text;
      while (!job->take(text, std::chrono::milliseconds(1000))) {
      }
      if (!job->error().empty()) throw ApiError{500, job->error(), "server_error", "", ""};
      res.set_content(serve::response_json(e, meta, text, job->reason(), n, job->completion_tokens()).dump(),
                      "application/json");
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    auto first = std::make_shared<bool>(true);
    res.set_chunked_content_provider(
        "text/event-stream",
        [job, first, meta, e, n, include_usage = r.include_usage](size_t, httplib::DataSink& sink) {
          std::string text;
          const bool done = job->take(text, std::chrono::milliseconds(100));
          if (!sink.is_writable()) {
            job->cancel();
            return false;
          }
          auto event = [&](const json& j) {
            const std::string s = "data: " + j.dump() + "\n\n";
            return sink.write(s.data(), s.size());
          };
          if (!text.empty()) {
            if (!event(serve::chunk_json(e, meta, text, *first, std::nullopt))) return job->cancel(), false;
            *first = false;
          }
          if (done) {
            if (!job->error().empty()) {
              event(ApiError{500, job->error(), "server_error", "", ""}.body());
            } else {
              if (*first) event(serve::chunk_json(e, meta, "", true, std::nullopt));
              event(serve::chunk_json(e, meta, "", false, job->reason()));
              if (include_usage) event(serve::usage_chunk_json(e, meta, n, job->completion_tokens()));
            }
            static constexpr char kDone[] = "data: [DONE]\n\n";
            sink.write(kDone, sizeof kDone - 1);
            sink.done();
          }
          return true;
        },
        [job, in_flight_guard](bool success) {
          if (!success) job->cancel();  // the client went away: free its slot
        });
  } catch (const ApiError& err) {
    send_error(res, err);
  } catch (const std::exception& err) {
    send_error(res, ApiError{500, err.what(), "server_error", "", ""});
  }
}

std::string Server::Impl::metrics_text() {
  const serve::SchedulerStats s = scheduler.stats();
  std::ostringstream o;
  o << "# HELP llm_requests_total HTTP requests answered, by status.\n# TYPE llm_requests_total counter\n";
  {
    std::lock_guard lock(metrics_mu);
    for (const auto& [status, count] : requests_by_status) {
      o << "llm_requests_total{status=\"" << status << "\"} " << count << "\n";
    }
  }
  o << "# HELP llm_prompt_tokens_total Prompt tokens forwarded.\n# TYPE llm_prompt_tokens_total counter\n"
    << "llm_prompt_tokens_total " << s.prompt_tokens << "\n"
    << "# HELP llm_generated_tokens_total Tokens generated.\n# TYPE llm_generated_tokens_total counter\n"
    << "llm_generated_tokens_total " << s.generated_tokens << "\n"
    << "# HELP llm_queue_depth Requests waiting for a slot.\n# TYPE llm_queue_depth gauge\n"
    << "llm_queue_depth " << s.queued << "\n"
    << "# HELP llm_active_sequences Sequences holding a KV-cache slot.\n# TYPE llm_active_sequences gauge\n"
    << "llm_active_sequences " << s.active << "\n"
    << "# HELP llm_slots KV-cache slots (--parallel).\n# TYPE llm_slots gauge\n"
    << "llm_slots " << model.slots() << "\n"
    << "# HELP llm_tokens_per_second Tokens (prompt and generated) per second of forward time.\n"
    << "# TYPE llm_tokens_per_second gauge\n"
    << "llm_tokens_per_second "
    << (s.busy_seconds > 0 ? double(s.prompt_tokens + s.generated_tokens) / s.busy_seconds : 0.0) << "\n"
    << "# HELP llm_busy_seconds_total Time spent in forward passes and sampling.\n"
    << "# TYPE llm_busy_seconds_total counter\nllm_busy_seconds_total " << s.busy_seconds << "\n";
  return o.str();
}

void Server::Impl::routes() {
  http.Post("/v1/chat/completions",
            [this](const httplib::Request& q, httplib::Response& r) { completion(Endpoint::Chat, q, r); });
  http.Post("/v1/completions",
            [this](const httplib::Request& q, httplib::Response& r) { completion(Endpoint::Completion, q, r); });
  http.Get("/v1/models", [this](const httplib::Request& q, httplib::Response& r) {
    if (!authorized(q, r)) return;
    const json m = {{"id", opt.model_name},
                    {"object", "model"},
                    {"created", unix_seconds()},
                    {"owned_by", "llm"},
                    {"meta", {{"n_ctx", model.context()}, {"slots", model.slots()}}}};
    r.set_content(json{{"object", "list"}, {"data", json::array({m})}}.dump(), "application/json");
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& r) {
    if (draining) {
      r.status = 503;
      r.set_content(R"({"status":"shutting down"})", "application/json");
    } else {
      r.set_content(R"({"status":"ok"})", "application/json");
    }
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& r) {
    r.set_content(metrics_text(), "text/plain; version=0.0.4");
  });
  http.set_error_handler([](const httplib::Request&, httplib::Response& r) {
    if (!r.body.empty()) return;  // a handler's own error body
    const std::string msg = r.status == 404   ? "no such route"
                            : r.status == 413 ? "the request body is too large"
                                              : "request error";
    send_error(r, ApiError{r.status, msg, "invalid_request_error", "", ""});
  });
  http.set_logger([this](const httplib::Request&, const httplib::Response& r) {
    std::lock_guard lock(metrics_mu);
    ++requests_by_status[r.status];
  });
  http.set_payload_max_length(opt.max_body_bytes);
  http.set_read_timeout(30, 0);
  // Every waiting and streaming exchange holds a worker thread.
  const auto workers = static_cast<size_t>(model.slots() + opt.queue + 8);
  http.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
}

Server::Server(InferenceModel& model, const Tokenizer& tok, const ServeOptions& opt)
    : impl_(std::make_unique<Impl>(model, tok, opt)) {
  LLM_CHECK(opt.queue >= 0, "--queue: ", opt.queue, " is negative");
  LLM_CHECK(!opt.model_name.empty(), "serve: the model needs a name");
  impl_->routes();
}

Server::~Server() { stop(); }

int Server::bind() {
  Impl& m = *impl_;
  m.port = m.opt.port == 0 ? m.http.bind_to_any_port(m.opt.host)
                           : (m.http.bind_to_port(m.opt.host, m.opt.port) ? m.opt.port : -1);
  LLM_CHECK(m.port > 0, "--host/--port: cannot listen on ", m.opt.host, ":", m.opt.port,
            " (address in use, not an address of this machine, or not allowed)");
  return m.port;
}

void Server::run() {
  LLM_CHECK(impl_->port > 0, "serve: run() before bind()");
  impl_->http.listen_after_bind();
}

void Server::stop() {
  Impl& m = *impl_;
  std::call_once(m.stop_once, [&m] {
    m.draining = true;
    m.scheduler.drain();
    // Let the handlers write what the finished sequences produced before the sockets close.
    for (int i = 0; i < 300 && m.in_flight > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    m.http.stop();
  });
}

void serve_until(Server& server, const ServeOptions& opt, const std::function<bool()>& stop_requested) {
  const int port = server.bind();
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      if (stop_requested()) {
        std::cerr << "llmgen: stopping: finishing the requests in flight\n";
        server.stop();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  std::cerr << "llmgen: serving '" << opt.model_name << "' on http://" << opt.host << ":" << port
            << " (OpenAI API: /v1/chat/completions, /v1/completions, /v1/models; /health, /metrics)" << std::endl;
  server.run();
  done = true;
  watcher.join();
}

}  // namespace llm
