// A bounded, thread-safe cache of BPE results per pre-tokenized word. Text repeats its words, so
// most lookups hit and skip the merge loop.
//
// Each thread works on its own part (chosen by hashing the thread id into kParts), so the hot
// words that every thread looks up ("the", " of") do not make the threads fight over one lock or
// cache line; two threads that land on the same part share it correctly under its mutex. A part
// keeps two generations of an open-addressing table whose keys and ids live in arenas (no
// allocation per entry): when the current one is full it becomes the previous one and a fresh one
// starts; a hit in the previous generation is copied forward. So hot words survive, memory stays
// bounded, and no per-entry bookkeeping is needed.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace llm::tok {

class WordCache {
 public:
  static constexpr size_t kParts = 64;
  // Words longer than this are not cached (the JavaScript reference uses the same bound, 256).
  static constexpr size_t kMaxWordBytes = 255;

  // Up to entries_per_generation words per generation of each part.
  explicit WordCache(size_t entries_per_generation = 16384);
  ~WordCache();
  WordCache(const WordCache&) = delete;
  WordCache& operator=(const WordCache&) = delete;

  // FNV-1a 64 with a final mix: short words are the common case.
  static uint64_t hash(std::string_view word) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char c : word) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
    return h ^ (h >> 29);
  }

  // Appends the cached ids of word to out and returns true; false when absent.
  bool get(std::string_view word, uint64_t h, std::vector<int32_t>& out) const;
  void put(std::string_view word, uint64_t h, std::span<const int32_t> ids) const;

 private:
  struct Table;
  struct Part;
  Part& my_part() const;

  std::unique_ptr<Part[]> parts_;  // mutable state behind const methods: a cache
  size_t capacity_;
};

}  // namespace llm::tok
