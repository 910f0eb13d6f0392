#include "launch.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "block.h"
#include "memory.h"
#include "profile.h"
#include "runtime.h"

namespace llm::emu {
namespace {

constexpr int kDefaultSmemLimit = 48 * 1024;  // without cudaFuncSetAttribute (every profile)

EmuSettings settings_from_env() {
  EmuSettings s;
  if (const char* v = std::getenv("LLM_EMU_THREADS")) s.worker_threads = static_cast<unsigned>(std::atoi(v));
  if (const char* v = std::getenv("LLM_EMU_STACK_KB")) s.stack_bytes = static_cast<size_t>(std::atol(v)) * 1024;
  if (const char* v = std::getenv("LLM_EMU_TIMEOUT_S")) s.watchdog_seconds = std::atof(v);
  if (const char* v = std::getenv("LLM_EMU_STRICT")) s.strict_shuffles = std::atoi(v) != 0;
  if (const char* v = std::getenv("LLM_EMU_PROFILE")) s.sm = parse_emu_profile(v);
  if (const char* v = std::getenv("LLM_EMU_SCHEDULE")) parse_emu_schedule(v, s);
  if (const char* v = std::getenv("LLM_EMU_POISON")) s.poison = std::atoi(v) != 0;
  return s;
}

// splitmix64: decorrelates the per-launch seeds.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

EmuSettings resolve(EmuSettings s) {
  if (s.worker_threads == 0) s.worker_threads = std::max(1u, std::thread::hardware_concurrency());
  if (s.stack_bytes == 0) s.stack_bytes = asan_enabled() ? 256 * 1024 : 64 * 1024;
  if (s.watchdog_seconds <= 0) s.watchdog_seconds = 900;
  return s;
}

std::mutex& settings_mutex() {
  static std::mutex m;
  return m;
}
EmuSettings& settings_storage() {
  static EmuSettings s = resolve(settings_from_env());
  return s;
}

// OS threads that run blocks; the launching thread works too, so `total` counts it.
class WorkerPool {
 public:
  explicit WorkerPool(unsigned total) {
    for (unsigned i = 1; i < total; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  unsigned size() const { return static_cast<unsigned>(threads_.size()) + 1; }

  // Runs job on every worker and on the caller; returns when all have returned.
  void run(const std::function<void()>& job) {
    {
      std::lock_guard<std::mutex> lock(m_);
      job_ = &job;
      ++generation_;
      active_ = static_cast<unsigned>(threads_.size());
    }
    cv_.notify_all();
    job();
    std::unique_lock<std::mutex> lock(m_);
    done_.wait(lock, [&] { return active_ == 0; });
    job_ = nullptr;
  }

 private:
  void loop() {
    uint64_t seen = 0;
    while (true) {
      const std::function<void()>* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
      }
      (*job)();
      std::lock_guard<std::mutex> lock(m_);
      if (--active_ == 0) done_.notify_all();
    }
  }

  std::mutex m_;
  std::condition_variable cv_, done_;
  const std::function<void()>* job_ = nullptr;
  uint64_t generation_ = 0;
  unsigned active_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Stops the process when a launch runs past the time limit: a spinning kernel cannot be
// interrupted any other way, and a message naming it beats a silent CI timeout.
class Watchdog {
 public:
  Watchdog() : thread_([this] { loop(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void begin(std::string what, double seconds) {
    std::lock_guard<std::mutex> lock(m_);
    what_ = std::move(what);
    seconds_ = seconds;
    deadline_ = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
    ++launch_;
    active_ = true;
    cv_.notify_all();
  }
  void end() {
    std::lock_guard<std::mutex> lock(m_);
    active_ = false;
    cv_.notify_all();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(m_);
    while (!stop_) {
      if (!active_) {
        cv_.wait(lock);
        continue;
      }
      const uint64_t launch = launch_;
      const auto deadline = deadline_;
      if (cv_.wait_until(lock, deadline, [&] { return stop_ || !active_ || launch_ != launch; })) continue;
      std::fprintf(stderr,
                   "cuda emulator: %s has run for more than %.0f s (LLM_EMU_TIMEOUT_S); a thread is probably "
                   "spinning on a condition that needs another block or thread to progress. Stopping.\n",
                   what_.c_str(), seconds_);
      std::fflush(stderr);
      std::abort();  // the one place the emulator stops the process: a runaway kernel
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false, active_ = false;
  uint64_t launch_ = 0;
  std::string what_;
  double seconds_ = 0;
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;
};

struct Device {
  std::mutex launch_mutex;  // one kernel at a time: streams are synchronous
  std::unique_ptr<WorkerPool> pool;
  std::mutex limits_mutex;
  std::map<void (*)(), int> smem_limits;
  uint64_t launches = 0;  // since set_emu_settings, under launch_mutex: seeds each launch's random schedule
};

Device& device() {
  static Device d;
  return d;
}

Watchdog& watchdog() {
  static Watchdog w;
  return w;
}

// One BlockRunner per OS thread that runs blocks; rebuilt when the stack size changes.
BlockRunner& runner_for_this_thread(size_t stack_bytes) {
  thread_local std::unique_ptr<BlockRunner> runner;
  thread_local size_t runner_stack = 0;
  if (!runner || runner_stack != stack_bytes) {
    runner = std::make_unique<BlockRunner>(stack_bytes);
    runner_stack = stack_bytes;
  }
  return *runner;
}

cudaError_t validate(const KernelLaunch& l) {
  const dim3 b = l.block, g = l.grid;
  const uint64_t threads = uint64_t{b.x} * b.y * b.z;
  if (b.x == 0 || b.y == 0 || b.z == 0 || threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64) {
    return cudaErrorInvalidConfiguration;
  }
  if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535) {
    return cudaErrorInvalidConfiguration;
  }
  // The kernel's opt-in, and never more than the device has (the profile may have changed since).
  if (l.smem_bytes >
      static_cast<size_t>(std::min(max_dynamic_smem(l.kernel_id), device_profile().smem_optin_per_block))) {
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

}  // namespace

int parse_emu_profile(const std::string& value) {
  if (value == "8.0" || value == "80") return 80;
  if (value == "7.5" || value == "75") return 75;
  if (value == "7.0" || value == "70") return 70;
  fail("cuda emulator: LLM_EMU_PROFILE=", value, " is not a device profile: use 8.0 (A100), 7.5 (T4) or 7.0 (V100)");
}

void parse_emu_schedule(const std::string& value, EmuSettings& s) {
  if (value == "order") {
    s.schedule = EmuSettings::Schedule::Order;
  } else if (value == "reverse") {
    s.schedule = EmuSettings::Schedule::Reverse;
  } else if (value == "random") {
    s.schedule = EmuSettings::Schedule::Random;
  } else if (value.starts_with("random:") && value.size() > 7 &&
             value.find_first_not_of("0123456789", 7) == std::string::npos && value.size() <= 7 + 19) {
    s.schedule = EmuSettings::Schedule::Random;
    s.seed = std::stoull(value.substr(7));
  } else {
    fail("cuda emulator: LLM_EMU_SCHEDULE=", value, " is not a schedule: use order, reverse, random or random:SEED");
  }
}

EmuSettings emu_settings() {
  std::lock_guard<std::mutex> lock(settings_mutex());
  return settings_storage();
}

void set_emu_settings(const EmuSettings& s) {
  std::lock_guard<std::mutex> lock(settings_mutex());
  settings_storage() = resolve(s);
  // The random schedule of the n-th launch after this call depends only on the seed and n.
  Device& d = device();
  std::lock_guard<std::mutex> launch_lock(d.launch_mutex);
  d.launches = 0;
}

std::string short_path(const char* file) {
#ifdef LLM_EMU_SOURCE_DIR
  const std::string_view root = LLM_EMU_SOURCE_DIR;
  const std::string_view f = file;
  if (f.size() > root.size() + 1 && f.substr(0, root.size()) == root && f[root.size()] == '/') {
    return std::string(f.substr(root.size() + 1));
  }
#endif
  return file;
}

int max_dynamic_smem(void (*kernel_id)()) {
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.limits_mutex);
  const auto it = d.smem_limits.find(kernel_id);
  return it == d.smem_limits.end() ? kDefaultSmemLimit : it->second;
}

cudaError_t set_max_dynamic_smem(void (*kernel_id)(), int bytes) {
  if (!kernel_id) return cudaErrorInvalidDeviceFunction;
  if (bytes < 0 || bytes > device_profile().smem_optin_per_block) return cudaErrorInvalidValue;
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.limits_mutex);
  d.smem_limits[kernel_id] = bytes;
  return cudaSuccess;
}

void capture_launch(const KernelLaunch& launch, cudaStream_t stream, std::shared_ptr<const void> args) {
  if (t_block) {
    throw KernelError(cat("cuda emulator: kernel ", launch.kernel_name, " launched from device code at ",
                          short_path(launch.file), ":", launch.line, ": dynamic parallelism is not emulated"));
  }
  if (const cudaError_t e = validate(launch); e != cudaSuccess) {
    capture_refuse(stream);  // invalidates the capture, as a failed launch does
    set_last_error(e);
    return;
  }
  capture_work(stream, [launch, args = std::move(args)](cudaStream_t s) { launch_erased(launch, s); });
}

void launch_erased(const KernelLaunch& launch, cudaStream_t stream) {
  if (t_block) {
    throw KernelError(cat("cuda emulator: kernel ", launch.kernel_name, " launched from device code at ",
                          short_path(launch.file), ":", launch.line, ": dynamic parallelism is not emulated"));
  }
  if (!stream_is_valid(stream)) {
    set_last_error(cudaErrorInvalidResourceHandle);
    return;
  }
  if (const cudaError_t e = validate(launch); e != cudaSuccess) {
    set_last_error(e);
    return;
  }
  const EmuSettings s = emu_settings();
  KernelLaunch l = launch;
  l.strict_shuffles = s.strict_shuffles;
  l.sm = s.sm;
  l.schedule = static_cast<uint8_t>(s.schedule);
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.launch_mutex);
  l.seed = mix(s.seed ^ mix(++d.launches));
  if (!d.pool || d.pool->size() != s.worker_threads) {
    d.pool.reset();
    d.pool = std::make_unique<WorkerPool>(s.worker_threads);
  }

  const std::string what = cat("kernel ", l.kernel_name, " (launched at ", short_path(l.file), ":", l.line, ")");
  const uint64_t gx = l.grid.x, gy = l.grid.y;
  const uint64_t blocks = gx * gy * l.grid.z;
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::exception_ptr error;
  const size_t stack_bytes = s.stack_bytes;
  const std::function<void()> job = [&] {
    BlockRunner* runner = nullptr;
    while (!failed.load(std::memory_order_relaxed)) {
      const uint64_t b = next.fetch_add(1, std::memory_order_relaxed);
      if (b >= blocks) break;
      const uint3 idx{static_cast<unsigned>(b % gx), static_cast<unsigned>(b / gx % gy),
                      static_cast<unsigned>(b / (gx * gy))};
      try {
        if (!runner) runner = &runner_for_this_thread(stack_bytes);
        runner->run(l, idx);
      } catch (...) {
        std::lock_guard<std::mutex> elock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };

  watchdog().begin(what, s.watchdog_seconds);
  if (blocks == 1 || d.pool->size() == 1) {
    job();
  } else {
    d.pool->run(job);
  }
  watchdog().end();
  if (error) std::rethrow_exception(error);
  const std::string corrupted = check_device_redzones();
  if (!corrupted.empty()) throw KernelError(cat("cuda emulator: ", what, ": ", corrupted));
}

}  // namespace llm::emu
