#include "backend/cpu/cpu_info.h"

#include <cblas.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "backend/cpu/onednn_gemm.h"

namespace llm::cpu {

nlohmann::json cpu_environment() {
  std::string model;
  std::set<std::string> flags;
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line) && (model.empty() || flags.empty());) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos || colon + 2 > line.size()) continue;
    if (line.rfind("model name", 0) == 0 && model.empty()) model = line.substr(colon + 2);
    if (line.rfind("flags", 0) == 0 && flags.empty()) {
      std::istringstream words(line.substr(colon + 2));
      for (std::string w; words >> w;) flags.insert(w);
    }
  }
  // The extensions the GEMM kernels choose between (names as /proc/cpuinfo spells them).
  nlohmann::json isa = nlohmann::json::array();
  for (const char* f : {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
                        "amx_tile", "amx_bf16", "amx_int8"}) {
    if (flags.count(f) != 0) isa.push_back(f);
  }
  nlohmann::json env = nlohmann::json::object();
  for (const char* v : {"OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                        "OMP_PROC_BIND", "ONEDNN_MAX_CPU_ISA"}) {
    const char* value = std::getenv(v);
    env[v] = value != nullptr ? nlohmann::json(value) : nlohmann::json(nullptr);
  }
  return {{"model", model.empty() ? "unknown" : model},
          {"isa", isa},
          {"blas", openblas_get_config()},
          {"blas_core", openblas_get_corename()},
          {"onednn", onednn_description()},
          {"env", env}};
}

}  // namespace llm::cpu
