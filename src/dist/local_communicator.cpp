// LocalCommunicator: the single-rank Communicator (no MPI at run time).
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
  void all_reduce_sum(const Tensor&) override {}
  void all_gather(const Tensor& in, const Tensor& out) override {
    LLM_CHECK(in.numel() == out.numel(), "all_gather: in ", in.shape_str(), " and out ", out.shape_str(),
              " differ for one rank");
    LLM_CHECK(in.data() == out.data(), "all_gather: one rank expects in to alias out");
  }
  void reduce_scatter_sum(const Tensor& in, const Tensor& out) override {
    LLM_CHECK(in.numel() == out.numel() && in.data() == out.data(), "reduce_scatter_sum: one rank expects out to alias in");
  }
  void broadcast(const Tensor&, int root) override {
    LLM_CHECK(root == 0, "broadcast: root ", root, " does not exist in a world of 1");
  }
  void barrier() override {}
  double all_reduce_sum(double v) override { return v; }
  double all_reduce_max(double v) override { return v; }
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator() { return std::make_unique<LocalCommunicator>(); }

}  // namespace llm
