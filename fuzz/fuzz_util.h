// Shared by the fuzz targets: loaders that take a path get the input as a file in a private
// temporary directory; llm::Error (a rejected input) is the expected outcome, anything else that
// escapes (another exception, a crash, a sanitizer report) is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "llm/error.h"

namespace llm::fuzz {

// This process's scratch directory (created once; libFuzzer runs one input at a time).
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const auto d = std::filesystem::temp_directory_path() / ("llm_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline std::filesystem::path write_input(const std::string& name, const uint8_t* data, size_t size) {
  const auto p = scratch_dir() / name;
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return p;
}

// Called with each rejected input's error: silent, unless LLM_FUZZ_VERBOSE is set (to see how far
// a seed gets: `LLM_FUZZ_VERBOSE=1 build-fuzz/gguf_fuzz -runs=1 fuzz/corpus/gguf/*`).
inline void rejected(const llm::Error& e) {
  static const bool verbose = std::getenv("LLM_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "rejected: %s\n", e.what());
}

}  // namespace llm::fuzz
