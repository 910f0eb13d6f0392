// Communicator: the collectives data parallelism needs, over whichever engine the run has: Local
// (one rank, no MPI needed at run time), Mpi (CPU buffers, OpenMPI) or Nccl (device buffers).
// Every rank calls the same collectives in the same order with the same sizes.
//
// Failure model: a collective that does not complete within the timeout (a rank died, hangs, or
// took longer than dist.timeout_s to arrive) ends the whole job with one message naming the
// collective and the rank(s) that did not arrive (docs/multi-node.md, "Timeouts"). Errors the
// transport reports come back as llm::Error naming the collective.
//
// For NCCL (device buffers, later): the range collectives map to one ncclReduce /
// ncclBroadcast per owner inside ncclGroupStart/End (MPI does the same with MPI_Ireduce /
// MPI_Ibcast), the timeout to polling ncclCommGetAsyncError against the deadline, then
// ncclCommAbort.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
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

  // Longest wait of one collective, in seconds; <= 0 waits forever (e.g. while rank 0 alone
  // prepares the corpus, which may take hours).
  virtual void set_timeout(double seconds) = 0;
  // Where the job is ("step 12", "checkpoint"), for timeout messages.
  virtual void set_phase(const std::string& phase) = 0;

  // In place over contiguous f32 buffers on the backend's device.
  virtual void all_reduce_sum(const Tensor& t) = 0;
  // out [world * n] <- every rank's in [n], rank order. in may alias out's slice of this rank.
  virtual void all_gather(const Tensor& in, const Tensor& out) = 0;
  // out [n] <- the sum over ranks of slice `rank` of in [world * n]. out may alias that slice.
  virtual void reduce_scatter_sum(const Tensor& in, const Tensor& out) = 0;

  // Uneven partitions (ZeRO): rank r owns [offsets[r], offsets[r + 1]) of a flat buffer;
  // offsets has world + 1 entries, from 0 to the buffer's numel, non-decreasing.
  // In place over buf (any dtype): every rank's range is copied to all ranks.
  virtual void all_gather_ranges(const Tensor& buf, std::span<const int64_t> offsets) = 0;
  // out [offsets[rank + 1] - offsets[rank]] f32 <- the sum over ranks of in's range of this
  // rank (in [offsets[world]] f32). out may alias that range of in; the rest of in is left
  // unspecified (it is scratch to the caller).
  virtual void reduce_scatter_ranges_sum(const Tensor& in, const Tensor& out, std::span<const int64_t> offsets) = 0;

  virtual void broadcast(const Tensor& t, int root) = 0;
  virtual void barrier() = 0;
  // Host scalars.
  virtual double all_reduce_sum(double v) = 0;
  virtual double all_reduce_max(double v) = 0;
  // Host doubles, in place (gathering per-rank values: each rank fills its own slot).
  virtual void all_reduce_sum(std::span<double> v) = 0;

  // Ends every rank of the job now with exit code `code` (MPI_Abort): for a rank that failed
  // alone, which must not leave the others waiting for it. One rank: returns, the caller exits.
  virtual void abort_job(int code) noexcept = 0;
};

struct CommOptions {
  // Largest number of elements one MPI call moves; bigger buffers go in chunks (MPI counts
  // are int, and a chunk bounds the time between timeout checks).
  int64_t chunk_elems = int64_t(1) << 24;
};

// One rank: every collective is the identity.
std::unique_ptr<Communicator> make_local_communicator();

// True when an MPI launcher started this process: mpirun (OMPI_COMM_WORLD_SIZE), PMIx
// (PMIX_RANK: srun --mpi=pmix, OpenMPI 5), Hydra/PMI (PMI_RANK, PMI_SIZE), MVAPICH.
bool launched_by_mpi();

// MPI when launched_by_mpi() (LLM_DIST=local or LLM_DIST=mpi forces one), else Local, so a
// plain run never initialises MPI. Launched by mpirun with more than one rank in a build
// without MPI: an error.
std::unique_ptr<Communicator> make_communicator(const CommOptions& opt = {});

// Initialises MPI (once per process; MPI_Finalize when the communicator is destroyed) and
// wraps MPI_COMM_WORLD. An error in a build without MPI.
std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions& opt = {});

// True in builds with MPI support (LLM_MPI).
bool mpi_available();

}  // namespace llm
