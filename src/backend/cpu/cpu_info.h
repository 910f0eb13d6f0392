// What a CPU figure depends on, for benchmarks to print beside it: the processor and its vector
// extensions, the BLAS library and the kernels it picked, oneDNN's ISA, and the environment
// variables that change either.
#pragma once

#include <nlohmann/json.hpp>

namespace llm::cpu {

// {"model": "AMD EPYC ...", "isa": ["avx2", "avx512f", ...], "blas": "OpenBLAS 0.3.21 ...",
//  "blas_core": "Haswell", "onednn": "oneDNN 2.6.3 (avx512_core_bf16)",
//  "env": {"OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": null, ...}}
nlohmann::json cpu_environment();

}  // namespace llm::cpu
