// Counter-based hashing for reproducible initialisation: a parameter's values are a function of
// (seed, name, index) alone, so any rank, any layout and a resumed run draw the same numbers.
#pragma once

#include <cstdint>
#include <string_view>

namespace llm {

// SplitMix64's finaliser: a well-mixed 64-bit value from a counter.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// FNV-1a of a name: the per-parameter key.
inline uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace llm
