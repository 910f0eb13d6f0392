// Communicator: the collectives data parallelism needs, over whichever engine the run has: Local
// (one rank, no MPI needed at run time), Mpi (CPU buffers, OpenMPI) or Nccl (device buffers).
// Every rank calls the same collectives in the same order with the same sizes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "llm/tensor.h"

namespace llm {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes of this host (GPU binding)
  virtual std::string name() const = 0;

  // In place over contiguous f32 buffers on the backend's device.
  virtual void all_reduce_sum(const Tensor& t) = 0;
  // out [world * n] <- every rank's in [n], rank order. in may alias out's slice of this rank.
  virtual void all_gather(const Tensor& in, const Tensor& out) = 0;
  // out [n] <- the sum over ranks of slice `rank` of in [world * n].
  virtual void reduce_scatter_sum(const Tensor& in, const Tensor& out) = 0;
  virtual void broadcast(const Tensor& t, int root) = 0;
  virtual void barrier() = 0;
  // Host scalars.
  virtual double all_reduce_sum(double v) = 0;
  virtual double all_reduce_max(double v) = 0;
};

// One rank: every collective is the identity.
std::unique_ptr<Communicator> make_local_communicator();

}  // namespace llm
