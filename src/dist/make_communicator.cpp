// make_communicator(): MPI when an MPI launcher started this process, else the local one, so a
// plain `llmtrain` never initialises MPI (and needs no MPI runtime at all); and the communicator
// that carries a training run's gradients.
#include "dist/make_communicator.h"

#include <cstdlib>
#include <string>

#include "llm/comm.h"
#include "llm/error.h"
#if defined(LLM_HAVE_NCCL)
#include "backend/cuda/cuda_factory.h"
#endif

namespace llm {

namespace {

// Variables the launchers set in every process they start.
constexpr const char* kLauncherVars[] = {
    "OMPI_COMM_WORLD_SIZE",  // OpenMPI's mpirun
    "PMIX_RANK",             // PMIx: OpenMPI 5, srun --mpi=pmix
    "PMI_RANK",
    "PMI_SIZE",             // MPICH/Hydra, srun --mpi=pmi2
    "MV2_COMM_WORLD_SIZE",  // MVAPICH
};

// The world size the launcher announced, or -1 when it did not say.
long launcher_world_size() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"}) {
    if (const char* s = std::getenv(v)) return std::strtol(s, nullptr, 10);
  }
  return -1;
}

}  // namespace

bool launched_by_mpi() {
  for (const char* v : kLauncherVars) {
    if (std::getenv(v) != nullptr) return true;
  }
  return false;
}

std::unique_ptr<Communicator> make_communicator(const CommOptions& opt) {
  if (const char* force = std::getenv("LLM_DIST")) {
    const std::string f = force;
    if (f == "local") return make_local_communicator();
    if (f == "mpi") return make_mpi_communicator(opt);
    LLM_CHECK(f.empty() || f == "auto", "LLM_DIST: expected local, mpi or auto, got \"", f, "\"");
  }
  if (!launched_by_mpi()) return make_local_communicator();
  if (mpi_available()) return make_mpi_communicator(opt);
  // Without MPI every process would train alone on the same data and write the same files.
  const long n = launcher_world_size();
  LLM_CHECK(n == 1, "dist: started by an MPI launcher", n > 1 ? cat(" with ", n, " ranks") : std::string(),
            ", but this build has no MPI support (LLM_MPI=OFF, or MPI was not found at configure time): install "
            "libopenmpi-dev (scripts/setup.sh) and reconfigure, or run without mpirun");
  return make_local_communicator();
}

std::unique_ptr<Communicator> make_gradient_communicator(Communicator& host, Backend& backend, double timeout_s) {
  if (backend.device() != DeviceKind::CUDA || host.world() == 1) return nullptr;
#if defined(LLM_HAVE_NCCL)
  std::unique_ptr<Communicator> c = cuda::make_nccl_communicator(host, backend);
  c->set_timeout(timeout_s);
  return c;
#else
  (void)timeout_s;
  fail("dist: ", host.world(), " ranks on CUDA need a build with NCCL (found none at configure time)");
#endif
}

}  // namespace llm
