// A bounded, thread-safe cache of BPE results per pre-tokenized word. Text repeats its words, so
// most lookups hit and skip the merge loop. Sharded by hash so that encode_batch's threads rarely
// wait on each other. Each shard is an open-addressing table whose keys and ids live in two
// arenas (no allocation per entry); a full shard is simply cleared, which keeps memory bounded.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace llm::tok {

class WordCache {
 public:
  static constexpr size_t kShards = 64;
  // Words longer than this are not cached (the JavaScript reference uses the same bound, 256).
  static constexpr size_t kMaxWordBytes = 255;

  // Up to max_entries_per_shard words per shard (the table has twice as many slots).
  explicit WordCache(size_t max_entries_per_shard = 4096);

  // FNV-1a 64: short words are the common case, where it beats a general-purpose hash.
  static uint64_t hash(std::string_view word) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char c : word) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
    return h ^ (h >> 29);
  }

  // Appends the cached ids of word to out and returns true; false when absent.
  bool get(std::string_view word, uint64_t h, std::vector<int32_t>& out) const;
  void put(std::string_view word, uint64_t h, std::span<const int32_t> ids) const;

 private:
  struct Slot {
    uint64_t hash;
    uint32_t key_off, ids_off;
    uint16_t key_len, ids_len;  // ids_len 0 marks an empty slot (a word has at least one id)
  };
  struct Shard {
    std::mutex mu;
    std::vector<Slot> slots;
    std::string keys;
    std::vector<int32_t> ids;
    size_t used = 0;
  };
  static size_t shard_of(uint64_t h) { return static_cast<size_t>(h >> 58) % kShards; }

  std::unique_ptr<Shard[]> shards_;  // mutable state behind const methods: a cache
  size_t max_per_shard_;
  size_t mask_;
};

}  // namespace llm::tok
