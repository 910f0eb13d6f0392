// The communicators of a training run beside make_communicator() (llm/comm.h): the one that
// carries the gradients.
#pragma once

#include <memory>

#include "llm/backend.h"
#include "llm/comm.h"

namespace llm {

// Gradients live on the backend's device: on CUDA with several ranks they travel over NCCL
// (set up through `host`, with timeout_s), scalars and barriers stay on `host`. Returns nullptr
// when `host` carries the gradients itself (the CPU, or one rank); an error when several CUDA
// ranks meet a build without NCCL.
std::unique_ptr<Communicator> make_gradient_communicator(Communicator& host, Backend& backend, double timeout_s);

}  // namespace llm
