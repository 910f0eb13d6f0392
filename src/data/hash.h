// Small deterministic hashing used to split documents and shuffle samples. The results are part
// of the data format's behaviour (the same seed must give the same split and order everywhere),
// so these must never change.
#pragma once

#include <cstdint>
#include <string_view>

namespace llm::data {

// SplitMix64's finaliser: a bijective, well-mixed 64-bit hash.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// FNV-1a over bytes (also the per-parameter key of the counter-based initialisers).
inline uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// FNV-1a finished with mix64: identifies a document's text for the split.
inline uint64_t text_hash(std::string_view s) { return mix64(fnv1a(s)); }

// A uniform double in [0, 1) from a seed and an index.
inline double unit_hash(uint64_t seed, uint64_t index) {
  return static_cast<double>(mix64(seed ^ mix64(index)) >> 11) * 0x1.0p-53;
}

}  // namespace llm::data
