// The training tests' hooks: fault injection, weight hashes, sample logs, a checkpoint delay.
#include "train_test_hooks.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "llm/error.h"
#include "llm/loader.h"

namespace llm::test {

namespace {

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// Appends "step row_hash" for each row of b to DIR/samples.rankNNNNN.txt.
void log_samples(const std::filesystem::path& dir, int64_t step, int rank, const Batch& b) {
  char name[48];
  std::snprintf(name, sizeof name, "samples.rank%05d.txt", rank);
  std::ofstream out(dir / name, std::ios::app);
  LLM_CHECK(out.good(), (dir / name).string(), ": cannot open for appending");
  for (int64_t r = 0; r < b.B; ++r) {
    // ids and targets of the row: the sample's seq_len + 1 tokens.
    uint64_t h = fnv1a(b.ids.data() + r * b.T, size_t(b.T) * sizeof(int32_t));
    h = fnv1a(b.targets.data() + r * b.T, size_t(b.T) * sizeof(int32_t), h);
    out << step << " " << h << "\n";
  }
}

}  // namespace

TrainHooks train_hooks_from_env() {
  TrainHooks h;
  if (const char* f = std::getenv("LLM_TEST_DIST_FAULT")) {
    char kind[8] = {};
    long long at_step = 0;
    int at_rank = 0;
    LLM_CHECK(std::sscanf(f, "%7[a-z]:%d:%lld", kind, &at_rank, &at_step) == 3 &&
                  (std::string(kind) == "kill" || std::string(kind) == "hang" || std::string(kind) == "throw"),
              "LLM_TEST_DIST_FAULT: expected kill|hang|throw:RANK:STEP, got \"", f, "\"");
    h.before_step = [fault = std::string(kind), at_rank, at_step](int64_t step, int rank) {
      if (rank != at_rank || step != at_step) return;
      if (fault == "kill") ::kill(::getpid(), SIGKILL);
      if (fault == "throw") fail("LLM_TEST_DIST_FAULT: an error on rank ", rank, " before step ", step);
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));  // hang: alive, never arriving
    };
  }
  if (const char* ms = std::getenv("LLM_TEST_STEP_DELAY_MS")) {
    // Slow steps: a signal or a kill then lands inside the run, at a step the test cannot foresee.
    h.before_step = [delay = std::atoi(ms), fault = std::move(h.before_step)](int64_t step, int rank) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      if (fault) fault(step, rank);
    };
  }
  if (const char* f = std::getenv("LLM_TEST_FILE_LIMIT")) {
    // A disk that fills up: from step S on, files may not grow beyond BYTES (RLIMIT_FSIZE: write(2)
    // fails with EFBIG, SIGXFSZ ignored); from step LIFT on (0: never) the limit is gone again.
    long long at_step = 0, bytes = 0, lift = 0;
    LLM_CHECK(std::sscanf(f, "%lld:%lld:%lld", &at_step, &bytes, &lift) == 3,
              "LLM_TEST_FILE_LIMIT: expected STEP:BYTES:LIFT_STEP, got \"", f, "\"");
    h.before_step = [at_step, bytes, lift, prev = std::move(h.before_step)](int64_t step, int rank) {
      if (prev) prev(step, rank);
      if (step != at_step && step != lift) return;
      ::signal(SIGXFSZ, SIG_IGN);
      struct rlimit rl {};
      ::getrlimit(RLIMIT_FSIZE, &rl);
      rl.rlim_cur = step == at_step ? static_cast<rlim_t>(bytes) : rl.rlim_max;
      LLM_CHECK(::setrlimit(RLIMIT_FSIZE, &rl) == 0, "LLM_TEST_FILE_LIMIT: setrlimit failed");
    };
  }
  if (const char* p = std::getenv("LLM_TEST_PARAM_HASH"); p && std::string(p) != "0") {
    h.after_step = [](int64_t, const Qwen2Model& model, Communicator& comm) {
      return nlohmann::json{{"param_hash", param_hashes(model, comm)}};
    };
  }
  if (const char* d = std::getenv("LLM_TEST_SAMPLE_LOG")) {
    h.on_batch = [dir = std::filesystem::path(d)](int64_t step, int rank, const Batch& b) {
      log_samples(dir, step, rank, b);
    };
  }
  if (const char* ms = std::getenv("LLM_TEST_CHECKPOINT_DELAY_MS")) {
    h.before_checkpoint_commit = [delay = std::atoi(ms)](const std::filesystem::path&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    };
  }
  return h;
}

std::vector<std::string> param_hashes(const Qwen2Model& model, Communicator& comm) {
  const Tensor& w = model.weights();
  std::vector<unsigned char> bytes(w.nbytes());
  model.backend().download(w, bytes.data());
  const uint64_t h = fnv1a(bytes.data(), bytes.size());
  // Two exact 32-bit halves per rank, each rank filling its own slots of a sum.
  std::vector<double> slots(2 * size_t(comm.world()), 0.0);
  slots[2 * size_t(comm.rank())] = double(h >> 32);
  slots[2 * size_t(comm.rank()) + 1] = double(h & 0xffffffffu);
  comm.all_reduce_sum(slots);
  std::vector<std::string> out;
  for (int r = 0; r < comm.world(); ++r) {
    char hex[20];
    std::snprintf(hex, sizeof hex, "%08llx%08llx", static_cast<unsigned long long>(slots[2 * size_t(r)]),
                  static_cast<unsigned long long>(slots[2 * size_t(r) + 1]));
    out.emplace_back(hex);
  }
  return out;
}

}  // namespace llm::test
