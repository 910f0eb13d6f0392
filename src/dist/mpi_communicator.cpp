// MpiCommunicator: the Communicator over MPI (OpenMPI on CPU buffers).
//
// Every collective is nonblocking (MPI_Iallreduce, MPI_Ireduce, MPI_Ibcast, MPI_Ibarrier) and
// waited for by polling MPI_Testall against a deadline, so a rank that died or hangs cannot
// block the others forever. On a timeout rank 0 takes a roll call on a separate communicator:
// every rank that is itself waiting in a collective answers from its polling loop, and the
// ranks that do not answer are the ones that never arrived. Rank 0 prints one message naming
// them and the collective, then MPI_Abort ends the job (the documented exception to "no abort
// below main": a hung job cannot be stopped any other way). A non-zero rank whose collective
// times out keeps answering for a grace period; if rank 0 does not end the job by then, rank 0
// is the one missing and that rank says so.
//
// MPI errors return (MPI_ERRORS_RETURN) and become llm::Error with MPI_Error_string's text.
#include "llm/comm.h"

#if LLM_HAVE_MPI

#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <iostream>
#include <string_view>
#include <thread>
#include <vector>

#include "dist/ranges.h"
#include "llm/error.h"

namespace llm {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kRollCallTag = 1;    // rank 0 -> r: "are you waiting?" (payload: rank 0's collective number)
constexpr int kRollAnswerTag = 2;  // r -> rank 0: "yes, in collective number ..."
constexpr int kTimeoutExitCode = 3;

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return cat("MPI error ", code);
  return std::string(text, static_cast<size_t>(len));
}

void check_mpi(int rc, const std::string& what) {
  if (rc != MPI_SUCCESS) fail(what, ": ", mpi_error(rc));
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size(); ++i) s += cat(i ? ", " : "", ranks[i]);
  return s;
}

// What a collective is, for messages; formatted only when something goes wrong.
struct Op {
  std::string_view name;
  int64_t count;
  std::string_view unit;
};

// The host memory of a tensor the MPI calls read and write.
char* host_bytes(const Tensor& t, const char* op) {
  LLM_CHECK(t.device() == DeviceKind::CPU, op, ": tensor ", t.shape_str(),
            " is in device memory; the MPI communicator moves host buffers (use NCCL with CUDA)");
  LLM_CHECK(t.is_contiguous(), op, ": tensor ", t.shape_str(), " is not contiguous");
  return static_cast<char*>(t.data());
}

float* host_f32(const Tensor& t, const char* op) {
  LLM_CHECK(t.dtype() == DType::F32, op, ": tensor ", t.shape_str(), " must be f32");
  return reinterpret_cast<float*>(host_bytes(t, op));
}

bool g_mpi_claimed = false;  // MPI can be initialised once per process

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const CommOptions& opt) : chunk_(opt.chunk_elems) {
    LLM_CHECK(chunk_ > 0 && chunk_ * 8 <= INT_MAX, "dist: chunk_elems ", chunk_, " must be in [1, ", INT_MAX / 8, "]");
    LLM_CHECK(!g_mpi_claimed, "dist: MPI was already initialised by this process (one MPI communicator per process)");
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    LLM_CHECK(!finalized, "dist: MPI was already finalised in this process");
    if (!inited) {
      int provided = 0;
      // FUNNELED: only the main thread calls MPI (the loader's prefetch thread never does).
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "dist: MPI_Init_thread");
      owns_init_ = true;
    }
    g_mpi_claimed = true;
    check_mpi(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "dist: MPI_Comm_set_errhandler");
    // Own communicators: the collectives, and the roll calls, which must never match a
    // collective's messages. Both inherit MPI_ERRORS_RETURN.
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "dist: MPI_Comm_dup");
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &ctl_), "dist: MPI_Comm_dup");
    check_mpi(MPI_Comm_rank(comm_, &rank_), "dist: MPI_Comm_rank");
    check_mpi(MPI_Comm_size(comm_, &world_), "dist: MPI_Comm_size");
    MPI_Comm node = MPI_COMM_NULL;
    check_mpi(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
              "dist: MPI_Comm_split_type(SHARED)");
    check_mpi(MPI_Comm_rank(node, &local_rank_), "dist: MPI_Comm_rank(node)");
    MPI_Comm_free(&node);
    hosts_ = int(all_reduce_sum(local_rank_ == 0 ? 1.0 : 0.0));
    if (rank_ != 0) {
      check_mpi(MPI_Irecv(&roll_call_, 1, MPI_INT64_T, 0, kRollCallTag, ctl_, &roll_req_),
                "dist: MPI_Irecv(roll call)");
    }
  }

  ~MpiCommunicator() override {
    if (roll_req_ != MPI_REQUEST_NULL) {
      MPI_Cancel(&roll_req_);
      MPI_Wait(&roll_req_, MPI_STATUS_IGNORE);
    }
    if (answer_req_ != MPI_REQUEST_NULL) MPI_Wait(&answer_req_, MPI_STATUS_IGNORE);
    MPI_Comm_free(&ctl_);
    MPI_Comm_free(&comm_);
    if (owns_init_) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  std::string name() const override {
    return cat("mpi (", world_, world_ == 1 ? " rank" : " ranks", " on ", hosts_, hosts_ == 1 ? " host)" : " hosts)");
  }
  void set_timeout(double seconds) override { timeout_ = seconds; }
  void set_phase(const std::string& phase) override { phase_ = phase; }

  void all_reduce_sum(const Tensor& t) override {
    float* p = host_f32(t, "all_reduce_sum");
    const int64_t n = t.numel();
    for (int64_t off = 0; off < n; off += chunk_) {
      const int c = static_cast<int>(std::min(chunk_, n - off));
      MPI_Request req = MPI_REQUEST_NULL;
      check_mpi(MPI_Iallreduce(MPI_IN_PLACE, p + off, c, MPI_FLOAT, MPI_SUM, comm_, &req),
                "all_reduce_sum: MPI_Iallreduce");
      wait({&req, 1}, {"all_reduce_sum", n, "f32"});
    }
  }

  void all_gather(const Tensor& in, const Tensor& out) override {
    check_all_gather(in, out, world_, rank_);
    const int64_t n = in.numel();
    const Tensor mine = out.range(rank_ * n, n);
    if (in.data() != mine.data())
      std::memcpy(host_bytes(mine, "all_gather"), host_bytes(in, "all_gather"), in.nbytes());
    all_gather_ranges(out, even_offsets(n));
  }

  void reduce_scatter_sum(const Tensor& in, const Tensor& out) override {
    check_reduce_scatter(in, out, world_, rank_);
    const int64_t n = out.numel();
    reduce_scatter_ranges_sum(in, out, even_offsets(n));
  }

  void all_gather_ranges(const Tensor& buf, std::span<const int64_t> offsets) override {
    check_ranges("all_gather_ranges", buf, offsets, world_);
    char* p = host_bytes(buf, "all_gather_ranges");
    const auto esize = static_cast<int64_t>(dtype_size(buf.dtype()));
    // Round j moves chunk j of every rank's range: one broadcast per owner, all in flight.
    std::vector<MPI_Request> reqs;
    for (int64_t j = 0;; ++j) {
      reqs.clear();
      bool more = false;
      for (int r = 0; r < world_; ++r) {
        const int64_t lo = offsets[size_t(r)] + j * chunk_, hi = std::min(lo + chunk_, offsets[size_t(r) + 1]);
        if (lo >= hi) continue;
        more = true;
        reqs.push_back(MPI_REQUEST_NULL);
        check_mpi(MPI_Ibcast(p + lo * esize, static_cast<int>((hi - lo) * esize), MPI_BYTE, r, comm_, &reqs.back()),
                  "all_gather_ranges: MPI_Ibcast");
      }
      if (!more) break;
      wait(reqs, {"all_gather_ranges", buf.numel(), dtype_name(buf.dtype())});
    }
  }

  void reduce_scatter_ranges_sum(const Tensor& in, const Tensor& out, std::span<const int64_t> offsets) override {
    check_reduce_scatter_ranges(in, out, offsets, world_, rank_);
    float* src = host_f32(in, "reduce_scatter_ranges_sum");
    float* dst = host_f32(out, "reduce_scatter_ranges_sum");
    const int64_t mine = offsets[size_t(rank_)];
    const bool in_place = dst == src + mine;
    std::vector<MPI_Request> reqs;
    for (int64_t j = 0;; ++j) {
      reqs.clear();
      bool more = false;
      for (int r = 0; r < world_; ++r) {
        const int64_t lo = offsets[size_t(r)] + j * chunk_, hi = std::min(lo + chunk_, offsets[size_t(r) + 1]);
        if (lo >= hi) continue;
        more = true;
        reqs.push_back(MPI_REQUEST_NULL);
        const int c = static_cast<int>(hi - lo);
        if (r == rank_) {  // the owner receives the sum of its range
          check_mpi(MPI_Ireduce(in_place ? MPI_IN_PLACE : src + lo, dst + (lo - mine), c, MPI_FLOAT, MPI_SUM, r, comm_,
                                &reqs.back()),
                    "reduce_scatter_ranges_sum: MPI_Ireduce");
        } else {
          check_mpi(MPI_Ireduce(src + lo, nullptr, c, MPI_FLOAT, MPI_SUM, r, comm_, &reqs.back()),
                    "reduce_scatter_ranges_sum: MPI_Ireduce");
        }
      }
      if (!more) break;
      wait(reqs, {"reduce_scatter_ranges_sum", in.numel(), "f32"});
    }
  }

  void broadcast(const Tensor& t, int root) override {
    check_broadcast(t, root, world_);
    char* p = host_bytes(t, "broadcast");
    const auto bytes = static_cast<int64_t>(t.nbytes()), step = chunk_ * 4;
    for (int64_t off = 0; off < bytes; off += step) {
      MPI_Request req = MPI_REQUEST_NULL;
      check_mpi(MPI_Ibcast(p + off, static_cast<int>(std::min(step, bytes - off)), MPI_BYTE, root, comm_, &req),
                "broadcast: MPI_Ibcast");
      wait({&req, 1}, {"broadcast", t.numel(), dtype_name(t.dtype())});
    }
  }

  void barrier() override {
    MPI_Request req = MPI_REQUEST_NULL;
    check_mpi(MPI_Ibarrier(comm_, &req), "barrier: MPI_Ibarrier");
    wait({&req, 1}, {"barrier", 0, ""});
  }

  double all_reduce_sum(double v) override { return scalar(v, MPI_SUM, "all_reduce_sum"); }
  double all_reduce_max(double v) override { return scalar(v, MPI_MAX, "all_reduce_max"); }
  void all_reduce_sum(std::span<double> v) override {
    LLM_CHECK(v.size() <= size_t(INT_MAX), "all_reduce_sum: ", v.size(), " host values are too many for one call");
    MPI_Request req = MPI_REQUEST_NULL;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_SUM, comm_, &req),
              "all_reduce_sum: MPI_Iallreduce");
    wait({&req, 1}, {"all_reduce_sum", int64_t(v.size()), "f64"});
  }

  void abort_job(int code) noexcept override {
    if (world_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
  }

 private:
  std::vector<int64_t> even_offsets(int64_t n) const {
    std::vector<int64_t> o(size_t(world_) + 1);
    for (int r = 0; r <= world_; ++r) o[size_t(r)] = r * n;
    return o;
  }

  double scalar(double v, MPI_Op op, const char* name) {
    MPI_Request req = MPI_REQUEST_NULL;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, op, comm_, &req), cat(name, ": MPI_Iallreduce"));
    wait({&req, 1}, {name, 1, "f64"});
    return v;
  }

  // Polls until every request completes; answers roll calls meanwhile; ends the job at the deadline.
  void wait(std::span<MPI_Request> reqs, const Op& op) {
    ++seq_;
    const auto start = Clock::now();
    for (int64_t polls = 0;; ++polls) {
      int done = 0;
      const int rc = MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE);
      if (rc != MPI_SUCCESS) fail(describe(op), " failed on rank ", rank_, ": ", mpi_error(rc));
      if (done) return;
      answer_roll_call();
      const double waited = std::chrono::duration<double>(Clock::now() - start).count();
      if (timeout_ > 0 && waited > timeout_) timed_out(op, waited);
      // Spin briefly (most collectives finish within microseconds), then yield the core, and
      // once the wait is long (a rank is late: no data is moving fast) sleep between tests.
      // Ranks may share cores (--oversubscribe), and MPI_Test is what drives the progress;
      // measured on 2 ranks, sleeping after 100 ms costs a 64 MB all-reduce nothing.
      if (polls < 200) continue;
      if (waited < 0.1) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  }

  std::string describe(const Op& op) const {
    std::string s = cat("dist: ", op.name);
    if (op.count > 0) s += cat(" of ", op.count, " ", op.unit);
    s += cat(" (collective #", seq_, phase_.empty() ? "" : ", " + phase_, ")");
    return s;
  }

  // A non-zero rank: if rank 0 asked who is waiting, say which collective this rank is in.
  void answer_roll_call() {
    if (roll_req_ == MPI_REQUEST_NULL) return;
    int asked = 0;
    if (MPI_Test(&roll_req_, &asked, MPI_STATUS_IGNORE) != MPI_SUCCESS || !asked) return;
    answer_ = seq_;
    MPI_Isend(&answer_, 1, MPI_INT64_T, 0, kRollAnswerTag, ctl_, &answer_req_);
  }

  [[noreturn]] void timed_out(const Op& op, double waited) {
    const double grace = std::clamp(timeout_ / 2, 2.0, 30.0);
    std::string msg = cat(describe(op), " timed out on rank ", rank_, " after ", std::round(waited * 10) / 10,
                          " s (dist.timeout_s = ", timeout_, "): ");
    if (rank_ == 0) {
      // Roll call: ranks blocked in a collective answer from their polling loop at once.
      std::vector<int64_t> ask(size_t(world_), seq_), answer(size_t(world_), -1);
      std::vector<MPI_Request> sends(size_t(world_), MPI_REQUEST_NULL), recvs(size_t(world_), MPI_REQUEST_NULL);
      for (int r = 1; r < world_; ++r) {
        MPI_Isend(&ask[size_t(r)], 1, MPI_INT64_T, r, kRollCallTag, ctl_, &sends[size_t(r)]);
        MPI_Irecv(&answer[size_t(r)], 1, MPI_INT64_T, r, kRollAnswerTag, ctl_, &recvs[size_t(r)]);
      }
      std::vector<bool> answered(size_t(world_), false);
      answered[0] = true;
      const auto start = Clock::now();
      while (std::chrono::duration<double>(Clock::now() - start).count() < grace) {
        bool all = true;
        for (int r = 1; r < world_; ++r) {
          int flag = 0;
          if (!answered[size_t(r)] && MPI_Test(&recvs[size_t(r)], &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && flag) {
            answered[size_t(r)] = true;
          }
          all = all && answered[size_t(r)];
        }
        if (all) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      std::vector<int> missing, elsewhere;
      for (int r = 1; r < world_; ++r) {
        if (!answered[size_t(r)])
          missing.push_back(r);
        else if (answer[size_t(r)] != seq_)
          elsewhere.push_back(r);
      }
      if (!missing.empty()) {
        msg += cat("rank(s) ", rank_list(missing), " did not arrive (dead, hung, or slower than the timeout)");
      } else {
        msg += "every rank is waiting, so the transport itself is stuck";
      }
      for (int r : elsewhere) {
        msg += cat("; rank ", r, " waits in collective #", answer[size_t(r)],
                   " instead (the ranks called different "
                   "collectives: a bug)");
      }
    } else {
      // Rank 0 takes the roll call and ends the job; keep answering until it does.
      const auto start = Clock::now();
      while (std::chrono::duration<double>(Clock::now() - start).count() < 2 * grace) {
        answer_roll_call();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      msg += cat("rank 0 did not take a roll call within ", 2 * grace,
                 " s, so rank 0 did not arrive (dead, hung, or slower than the timeout)");
    }
    std::cerr << msg << ". Stopping the job.\n" << std::flush;
    MPI_Abort(MPI_COMM_WORLD, kTimeoutExitCode);
    std::terminate();  // MPI_Abort does not return; this only tells the compiler so
  }

  MPI_Comm comm_ = MPI_COMM_NULL;  // the collectives
  MPI_Comm ctl_ = MPI_COMM_NULL;   // roll calls
  int rank_ = 0, world_ = 1, local_rank_ = 0, hosts_ = 1;
  bool owns_init_ = false;
  int64_t chunk_;
  double timeout_ = 600;
  std::string phase_;
  int64_t seq_ = 0;  // collectives waited for so far (the same on every rank)
  int64_t roll_call_ = 0, answer_ = 0;
  MPI_Request roll_req_ = MPI_REQUEST_NULL, answer_req_ = MPI_REQUEST_NULL;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions& opt) {
  return std::make_unique<MpiCommunicator>(opt);
}

bool mpi_available() { return true; }

}  // namespace llm

#else  // no MPI in this build

namespace llm {

std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions&) {
  fail(
      "dist: this build has no MPI support (configured with LLM_MPI=OFF, or MPI was not found): install "
      "libopenmpi-dev (scripts/setup.sh) and reconfigure");
}

bool mpi_available() { return false; }

}  // namespace llm

#endif
