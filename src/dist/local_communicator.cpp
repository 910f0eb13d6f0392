// LocalCommunicator: the single-rank Communicator (no MPI at run time).
#include "dist/ranges.h"
#include "llm/comm.h"
#include "llm/error.h"

namespace llm {

namespace {

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string name() const override { return "local (1 rank)"; }
  void set_timeout(double) override {}
  void set_phase(const std::string&) override {}
  void all_reduce_sum(const Tensor&) override {}
  void all_gather(const Tensor& in, const Tensor& out) override {
    LLM_CHECK(in.numel() == out.numel(), "all_gather: in ", in.shape_str(), " and out ", out.shape_str(),
              " differ for one rank");
    LLM_CHECK(in.data() == out.data(), "all_gather: one rank expects in to alias out");
  }
  void reduce_scatter_sum(const Tensor& in, const Tensor& out) override {
    LLM_CHECK(in.numel() == out.numel() && in.data() == out.data(),
              "reduce_scatter_sum: one rank expects out to alias in");
  }
  void all_gather_ranges(const Tensor& buf, std::span<const int64_t> offsets) override {
    check_ranges("all_gather_ranges", buf, offsets, 1);
  }
  void reduce_scatter_ranges_sum(const Tensor& in, const Tensor& out, std::span<const int64_t> offsets) override {
    check_ranges("reduce_scatter_ranges_sum", in, offsets, 1);
    LLM_CHECK(out.numel() == in.numel() && out.data() == in.data(),
              "reduce_scatter_ranges_sum: one rank expects out to alias in");
  }
  void broadcast(const Tensor&, int root) override {
    LLM_CHECK(root == 0, "broadcast: root ", root, " does not exist in a world of 1");
  }
  void barrier() override {}
  double all_reduce_sum(double v) override { return v; }
  double all_reduce_max(double v) override { return v; }
  void all_reduce_sum(std::span<double>) override {}
  void abort_job(int) noexcept override {}
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator() { return std::make_unique<LocalCommunicator>(); }

}  // namespace llm
