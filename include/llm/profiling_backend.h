// ProfilingBackend: wraps any backend and accounts the wall time of every op by name
// (synchronising the device after each, so GPU times are real). For llmbench --profile.
#pragma once

#include <map>
#include <string>

#include "llm/backend.h"

namespace llm {

struct OpTime {
  double seconds = 0;
  int64_t calls = 0;
  double flops = 0;  // matmul rows: 2 M N K summed over the calls; 0 for the other ops
};

std::unique_ptr<Backend> make_profiling_backend(std::unique_ptr<Backend> inner, std::map<std::string, OpTime>* times);

}  // namespace llm
