// NcclCommunicator: the device-buffer collectives of data parallelism over NCCL, on the CUDA
// backend's stream; rank, world, host scalars and barriers from the MPI communicator that started
// the job (which also broadcasts NCCL's unique id). Only in real CUDA builds with NCCL.
#include "backend/cuda/cuda_backend.h"

#if !LLM_CUDA_EMULATED && defined(LLM_HAVE_NCCL)
#include <nccl.h>

#include <chrono>
#include <thread>

#include "backend/cuda/cuda_factory.h"
#include "dist/ranges.h"
#include "llm/comm.h"

namespace llm::cuda {

namespace {

ncclDataType_t nccl_type(DType t, const char* op) {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::F16: return ncclFloat16;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 10, 0)
    case DType::BF16: return ncclBfloat16;
#endif
    case DType::I32: return ncclInt32;
    case DType::U8: return ncclUint8;
    case DType::I8: return ncclInt8;
    default: break;
  }
  fail(op, ": NCCL cannot move ", dtype_name(t));
}

// The device memory a collective reads and writes: NCCL takes any pointer and would read or write
// past a host buffer or one of the wrong size without a word, so both are refused first.
void check_on_device(const char* op, const Tensor& t) {
  LLM_CHECK(t.device() == DeviceKind::CUDA, op, ": tensor ", t.shape_str(),
            " is in host memory; the NCCL communicator moves device buffers");
}

// ncclGroupStart .. ncclGroupEnd as a scope: an exception thrown between them (a failed check of
// one call) still closes the group, so the communicator is not left inside an open group where
// every later collective would be queued and never launched.
class NcclGroup {
 public:
  NcclGroup() = default;
  ~NcclGroup() {
    if (open_) ncclGroupEnd();  // unwinding: the error being thrown is the one to report
  }
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;
  ncclResult_t start() {
    const ncclResult_t r = ncclGroupStart();
    open_ = r == ncclSuccess;
    return r;
  }
  ncclResult_t end() {
    open_ = false;
    return ncclGroupEnd();
  }

 private:
  bool open_ = false;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& host, CudaBackend& backend) : host_(host), backend_(backend) {
    ncclUniqueId id{};
    if (host_.rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    // The id travels as host bytes through the MPI communicator.
    host_.broadcast(Tensor(&id, DType::U8, {int64_t(sizeof(id))}), 0);
    check(ncclCommInitRank(&comm_, host_.world(), id, host_.rank()), "ncclCommInitRank");
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
  }

  int rank() const override { return host_.rank(); }
  int world() const override { return host_.world(); }
  int local_rank() const override { return host_.local_rank(); }
  std::string name() const override { return cat("nccl ", NCCL_MAJOR, ".", NCCL_MINOR, " (", host_.name(), ")"); }
  void set_timeout(double s) override {
    timeout_s_ = s;
    host_.set_timeout(s);
  }
  void set_phase(const std::string& p) override {
    phase_ = p;
    host_.set_phase(p);
  }

  void all_reduce_sum(const Tensor& t) override {
    const char* op = "all_reduce_sum";
    check_on_device(op, t);
    check_f32_buffer(op, "tensor", t);
    check(ncclAllReduce(t.data(), t.data(), size_t(t.numel()), nccl_type(t.dtype(), op), ncclSum, comm_,
                        backend_.stream()),
          op);
    wait(op);
  }
  void all_gather(const Tensor& in, const Tensor& out) override {
    const char* op = "all_gather";
    check_on_device(op, in);
    check_on_device(op, out);
    check_all_gather(in, out, world(), rank());
    check(ncclAllGather(in.data(), out.data(), size_t(in.numel()), nccl_type(in.dtype(), op), comm_, backend_.stream()),
          op);
    wait(op);
  }
  void reduce_scatter_sum(const Tensor& in, const Tensor& out) override {
    const char* op = "reduce_scatter_sum";
    check_on_device(op, in);
    check_on_device(op, out);
    check_reduce_scatter(in, out, world(), rank());
    check(ncclReduceScatter(in.data(), out.data(), size_t(out.numel()), nccl_type(in.dtype(), op), ncclSum, comm_,
                            backend_.stream()),
          op);
    wait(op);
  }
  void all_gather_ranges(const Tensor& buf, std::span<const int64_t> offsets) override {
    const char* op = "all_gather_ranges";
    check_on_device(op, buf);
    check_ranges(op, buf, offsets, world());
    const size_t es = dtype_size(buf.dtype());
    const ncclDataType_t type = nccl_type(buf.dtype(), op);
    NcclGroup group;
    check(group.start(), op);
    for (int r = 0; r < world(); ++r) {
      const auto n = size_t(offsets[size_t(r) + 1] - offsets[size_t(r)]);
      char* p = buf.ptr<char>() + size_t(offsets[size_t(r)]) * es;
      if (n > 0) check(ncclBroadcast(p, p, n, type, r, comm_, backend_.stream()), op);
    }
    check(group.end(), op);
    wait(op);
  }
  void reduce_scatter_ranges_sum(const Tensor& in, const Tensor& out, std::span<const int64_t> offsets) override {
    const char* op = "reduce_scatter_ranges_sum";
    check_on_device(op, in);
    check_on_device(op, out);
    check_reduce_scatter_ranges(in, out, offsets, world(), rank());
    // The element type and size come from the tensors (checked above), not from an assumption.
    const ncclDataType_t type = nccl_type(in.dtype(), op);
    const size_t es = dtype_size(in.dtype());
    NcclGroup group;
    check(group.start(), op);
    for (int r = 0; r < world(); ++r) {
      const auto n = size_t(offsets[size_t(r) + 1] - offsets[size_t(r)]);
      char* src = in.ptr<char>() + size_t(offsets[size_t(r)]) * es;
      char* dst = r == rank() ? out.ptr<char>() : src;
      if (n > 0) check(ncclReduce(src, dst, n, type, ncclSum, r, comm_, backend_.stream()), op);
    }
    check(group.end(), op);
    wait(op);
  }
  void broadcast(const Tensor& t, int root) override {
    const char* op = "broadcast";
    if (t.device() == DeviceKind::CPU) return host_.broadcast(t, root);
    check_broadcast(t, root, world());
    check(
        ncclBroadcast(t.data(), t.data(), size_t(t.numel()), nccl_type(t.dtype(), op), root, comm_, backend_.stream()),
        op);
    wait(op);
  }
  void barrier() override { host_.barrier(); }
  double all_reduce_sum(double v) override { return host_.all_reduce_sum(v); }
  double all_reduce_max(double v) override { return host_.all_reduce_max(v); }
  void all_reduce_sum(std::span<double> v) override { host_.all_reduce_sum(v); }
  void abort_job(int code) noexcept override {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    host_.abort_job(code);
  }

 private:
  void check(ncclResult_t r, const char* op) {
    LLM_CHECK(r == ncclSuccess, "dist: ", op, " (", phase_, ", rank ", rank(),
              "): NCCL error: ", ncclGetErrorString(r));
  }
  // Polls the stream against the deadline: a rank that died or hangs leaves NCCL waiting
  // forever, so past the timeout the communicator is aborted with a message naming the phase.
  void wait(const char* op) {
    const auto start = std::chrono::steady_clock::now();
    while (true) {
      const cudaError_t e = cudaStreamQuery(backend_.stream());
      if (e == cudaSuccess) return;
      LLM_CHECK(e == cudaErrorNotReady, "dist: ", op, ": CUDA error ", cudaGetErrorString(e));
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      check(async, op);
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (timeout_s_ > 0 && waited > timeout_s_) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        fail("dist: ", op, " (", phase_, ") timed out on rank ", rank(), " after ", int(waited),
             " s (dist.timeout_s): another rank stopped responding");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  Communicator& host_;
  CudaBackend& backend_;
  ncclComm_t comm_ = nullptr;
  double timeout_s_ = 600;
  std::string phase_ = "setup";
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host, Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  LLM_CHECK(cuda != nullptr, "dist: NCCL needs the CUDA backend, got ", backend.name());
  return std::make_unique<NcclCommunicator>(host, *cuda);
}

}  // namespace llm::cuda
#endif
