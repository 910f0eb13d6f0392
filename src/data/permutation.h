// A pseudo-random permutation of [0, n) evaluated in O(1) time and memory: a Feistel network on
// the smallest even-bit power-of-two domain covering n, with cycle walking back into [0, n).
// The loader maps global sample positions to samples with it, so no order table is stored and
// any position (a restored cursor) is reached directly. Private to src/data; its output is part
// of the data order's definition, so it must not change.
#pragma once

#include <array>
#include <cstdint>

#include "hash.h"

namespace llm::data {

class Permutation {
 public:
  Permutation(uint64_t n, uint64_t seed, uint64_t epoch) : n_(n) {
    int bits = 2;
    while (bits < 64 && (uint64_t{1} << bits) < n) bits += 2;
    half_ = bits / 2;
    mask_ = (uint64_t{1} << half_) - 1;
    const uint64_t key = mix64(seed) ^ mix64(epoch ^ 0xA5A5A5A5DEADBEEFull);
    for (size_t r = 0; r < keys_.size(); ++r) keys_[r] = mix64(key + 0x9E3779B97F4A7C15ull * (r + 1));
  }

  // The image of i < n.
  uint64_t operator()(uint64_t i) const {
    do {
      i = round_trip(i);
    } while (i >= n_);
    return i;
  }

 private:
  uint64_t round_trip(uint64_t x) const {
    uint64_t l = x >> half_, r = x & mask_;
    for (uint64_t k : keys_) {
      const uint64_t f = mix64(r ^ k) & mask_;
      const uint64_t nl = r;
      r = l ^ f;
      l = nl;
    }
    return (l << half_) | r;
  }

  uint64_t n_;
  int half_ = 1;
  uint64_t mask_ = 1;
  std::array<uint64_t, 6> keys_{};
};

}  // namespace llm::data
