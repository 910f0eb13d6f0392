// llmgen --serve end to end, over 127.0.0.1 only: batching changes no result (concurrent
// greedy requests joining at different times get exactly what llmgen --prompt prints alone), the
// official openai npm client (tests/serve/js), a bounded load test with a queue that overflows,
// a client that disconnects mid-stream, and SIGTERM draining what is in flight.
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdio>
#include <regex>
#include <thread>

#include "gen/gen_test_util.h"
#include "serve/server_process.h"
#include "test_util.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kJsDir = fs::path(LLM_SOURCE_DIR) / "tests/serve/js";

// Runs a shell command; its stdout and exit status.
std::pair<std::string, int> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return {"", -1};
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int st = ::pclose(p);
  return {out, WIFEXITED(st) ? WEXITSTATUS(st) : -1};
}

// A metric's value from /metrics (-1 when absent).
double metric(const std::string& url, const std::string& name) {
  httplib::Client c(url);
  const auto r = c.Get("/metrics");
  if (!r || r->status != 200) return -1;
  const std::regex re("(^|\n)" + name + " ([0-9.e+-]+)");
  std::smatch m;
  return std::regex_search(r->body, m, re) ? std::stod(m[2]) : -1;
}

// Polls until the metric has the value (the scheduler frees slots between steps).
bool metric_reaches(const std::string& url, const std::string& name, double value) {
  for (int i = 0; i < 200; ++i) {
    if (metric(url, name) == value) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("llm_serve_" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    corpus_ = new std::vector<std::string>(write_sentencepiece_model(*dir_ / "model", base_seed()));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    delete corpus_;
  }
  static std::string model() { return (*dir_ / "model").string(); }
  static fs::path log(const std::string& name) { return *dir_ / (name + ".log"); }
  static bool have_node_client() {
    return fs::exists(kJsDir / "node_modules/openai") && run("node --version > /dev/null 2>&1").second == 0;
  }

  static fs::path* dir_;
  static std::vector<std::string>* corpus_;
};
fs::path* ServeTest::dir_ = nullptr;
std::vector<std::string>* ServeTest::corpus_ = nullptr;

TEST_F(ServeTest, ConcurrentGreedyRequestsGetWhatEachGetsAlone) {
  ServerProcess server(log("batching"), {"--model", model(), "--threads", "1", "--parallel", "4", "--ctx", "128"});
  ASSERT_TRUE(server.ready()) << server.stderr_text();
  constexpr int kRequests = 8, kTokens = 16;
  std::vector<std::string> prompts, got(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    // Prompts of different lengths: 1 to 8 words.
    std::istringstream words((*corpus_)[static_cast<size_t>(i)]);
    std::string p;
    int n = 0;
    for (std::string w; n <= i && words >> w; ++n) p += (p.empty() ? "" : " ") + w;
    prompts.push_back(p);
  }
  std::vector<std::jthread> clients;  // joined however the test ends
  for (int i = 0; i < kRequests; ++i) {
    clients.emplace_back([&, i] {
      // Joining at different times: some while others are prefilling or decoding.
      std::this_thread::sleep_for(std::chrono::milliseconds(15 * i));
      httplib::Client c(server.url());
      c.set_read_timeout(120, 0);
      // llmgen's default repetition penalty, so that llmgen --temp 0 alone is the reference.
      const json body = {
          {"prompt", prompts[size_t(i)]}, {"max_tokens", kTokens}, {"temperature", 0}, {"repeat_penalty", 1.05}};
      const auto r = c.Post("/v1/completions", body.dump(), "application/json");
      if (r && r->status == 200)
        got[size_t(i)] = json::parse(r->body)["choices"][0]["text"];
      else
        got[size_t(i)] = "<HTTP error " + (r ? std::to_string(r->status) + " " + r->body : std::string("none")) + ">";
    });
  }
  for (auto& t : clients) t.join();
  clients.clear();
  for (int i = 0; i < kRequests; ++i) {
    const auto [alone, status] = run(std::string(LLM_TOOLS_DIR) + "/llmgen --model '" + model() +
                                     "' --threads 1 --ctx 128 --temp 0 --max-tokens " + std::to_string(kTokens) +
                                     " --prompt '" + prompts[size_t(i)] + "' 2>/dev/null");
    ASSERT_EQ(status, 0);
    EXPECT_EQ(got[size_t(i)] + "\n", alone) << "prompt " << i << ": \"" << prompts[size_t(i)] << "\"";
  }
  EXPECT_TRUE(metric_reaches(server.url(), "llm_active_sequences", 0));
  EXPECT_EQ(metric(server.url(), "llm_generated_tokens_total") > 0, true);
  EXPECT_EQ(server.stop(), 0) << server.stderr_text();
}

TEST_F(ServeTest, TheOpenAiClientGetsAnswersStreamsAndErrors) {
  if (!have_node_client()) GTEST_SKIP() << "node or tests/serve/js/node_modules missing: run scripts/setup.sh";
  ServerProcess server(
      log("client"), {"--model", model(), "--threads", "1", "--parallel", "2", "--ctx", "256", "--api-key", "sekrit"});
  ASSERT_TRUE(server.ready()) << server.stderr_text();
  const auto [out, status] = run("cd '" + kJsDir.string() + "' && LLM_SERVE_URL=" + server.url() +
                                 " LLM_SERVE_KEY=sekrit timeout 300 node client_test.mjs 2>&1");
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find(" passed, 0 failed"), std::string::npos) << out;
  EXPECT_EQ(server.stop(), 0) << server.stderr_text();
}

TEST_F(ServeTest, LoadWithAnOverflowingQueueAnswersEveryRequestAndLeaksNothing) {
  if (!have_node_client()) GTEST_SKIP() << "node or tests/serve/js/node_modules missing: run scripts/setup.sh";
  ServerProcess server(log("load"), {"--model", model(), "--threads", "1", "--parallel", "4", "--queue", "4", "--ctx",
                                     "192", "--api-key", "k"});
  ASSERT_TRUE(server.ready()) << server.stderr_text();
  const std::string cmd = "cd '" + kJsDir.string() + "' && LLM_SERVE_URL=" + server.url() +
                          " LLM_SERVE_KEY=k timeout 300 node load_test.mjs ";
  // 8 holders: the 4 slots and the 4 queue places stay taken until a request meets the 503.
  const auto [warm, ws] = run(cmd + "50 16 8");
  ASSERT_EQ(ws, 0) << warm;
  const long rss_warm = server.rss_kib();
  const auto [out, status] = run(cmd + "200 16 8");
  ASSERT_EQ(status, 0) << out;
  const json summary = json::parse(out);
  EXPECT_EQ(summary["ok"], 200) << out;
  EXPECT_GT(summary["retries"].get<int>(), 0)
      << "16 clients on a full server (4 slots, a queue of 4) should have met a 503";
  EXPECT_TRUE(metric_reaches(server.url(), "llm_active_sequences", 0));
  EXPECT_EQ(metric(server.url(), "llm_queue_depth"), 0);
  // Memory flat: what the first 50 requests grew is all there is. (Not under AddressSanitizer,
  // whose quarantine keeps freed memory resident on purpose.)
#if !defined(__SANITIZE_ADDRESS__)
  EXPECT_LT(server.rss_kib() - rss_warm, 16 * 1024) << "RSS " << rss_warm << " KiB -> " << server.rss_kib() << " KiB";
#else
  (void)rss_warm;
#endif
  std::cout << "load: " << out;
  EXPECT_EQ(server.stop(), 0) << server.stderr_text();
}

TEST_F(ServeTest, AClientThatLeavesMidStreamFreesItsSlot) {
  ServerProcess server(log("disconnect"),
                       {"--model", model(), "--threads", "1", "--parallel", "1", "--queue", "0", "--ctx", "256"});
  ASSERT_TRUE(server.ready()) << server.stderr_text();
  {
    httplib::Client c(server.url());
    int chunks = 0;
    const json body = {{"prompt", "the cat"}, {"max_tokens", 200}, {"stream", true}, {"stop", json::array()}};
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 2; };  // then hang up
    c.send(req);
    EXPECT_GE(chunks, 1);
  }
  EXPECT_TRUE(metric_reaches(server.url(), "llm_active_sequences", 0)) << "the slot was not freed";
  // With one slot and no queue, the next request is served only if the slot came back.
  httplib::Client c(server.url());
  const auto r = c.Post("/v1/completions", R"({"prompt": "a dog", "max_tokens": 3})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  // A body past the limit is refused before it is parsed.
  const auto big = c.Post("/v1/completions", std::string(size_t(5) << 20, 'x'), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_NE(big->body.find("\"error\""), std::string::npos) << big->body;
  EXPECT_EQ(server.stop(), 0) << server.stderr_text();
}

TEST_F(ServeTest, SigtermFinishesTheRequestsInFlightThenExits) {
  ServerProcess server(log("drain"), {"--model", model(), "--threads", "1", "--parallel", "2", "--ctx", "256"});
  ASSERT_TRUE(server.ready()) << server.stderr_text();
  // A streamed request: SIGTERM arrives once its first event has, so it is in flight; the drain
  // must still deliver every token, the finish and [DONE].
  httplib::Client c(server.url());
  c.set_read_timeout(120, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = R"({"prompt": "the cat", "max_tokens": 200, "ignore_eos": true, "stream": true,
                 "stream_options": {"include_usage": true}})";
  req.set_header("Content-Type", "application/json");
  std::string events;
  bool signalled = false;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    events.append(data, n);
    if (!signalled) {
      signalled = true;
      ::kill(server.pid(), SIGTERM);
    }
    return true;
  };
  const auto r = c.send(req);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(signalled);
  EXPECT_NE(events.find(R"("completion_tokens":200)"), std::string::npos) << events.substr(events.size() - 300);
  EXPECT_NE(events.find(R"("finish_reason":"length")"), std::string::npos);
  EXPECT_EQ(events.substr(events.size() - 14), "data: [DONE]\n\n");
  // Then it exits by itself, with status 0, having said why.
  EXPECT_EQ(server.stop(), 0) << server.stderr_text();
  EXPECT_NE(server.stderr_text().find("stopping"), std::string::npos);
}

}  // namespace
}  // namespace llm::test
