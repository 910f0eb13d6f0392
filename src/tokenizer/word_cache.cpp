#include "tokenizer/word_cache.h"

namespace llm::tok {

WordCache::WordCache(size_t max_entries_per_shard)
    : shards_(std::make_unique<Shard[]>(kShards)), max_per_shard_(max_entries_per_shard) {
  size_t cap = 16;
  while (cap < 2 * max_entries_per_shard) cap *= 2;
  mask_ = cap - 1;
  for (size_t s = 0; s < kShards; ++s) shards_[s].slots.assign(cap, Slot{0, 0, 0, 0, 0});
}

bool WordCache::get(std::string_view word, uint64_t h, std::vector<int32_t>& out) const {
  Shard& s = shards_[shard_of(h)];
  std::lock_guard<std::mutex> lock(s.mu);
  for (size_t i = static_cast<size_t>(h) & mask_;; i = (i + 1) & mask_) {
    const Slot& slot = s.slots[i];
    if (slot.ids_len == 0) return false;
    if (slot.hash == h && slot.key_len == word.size() &&
        std::memcmp(s.keys.data() + slot.key_off, word.data(), word.size()) == 0) {
      const int32_t* ids = s.ids.data() + slot.ids_off;
      out.insert(out.end(), ids, ids + slot.ids_len);
      return true;
    }
  }
}

void WordCache::put(std::string_view word, uint64_t h, std::span<const int32_t> ids) const {
  if (ids.empty() || word.size() > kMaxWordBytes || ids.size() > 0xFFFF) return;
  Shard& s = shards_[shard_of(h)];
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.used >= max_per_shard_) {
    std::fill(s.slots.begin(), s.slots.end(), Slot{0, 0, 0, 0, 0});
    s.keys.clear();
    s.ids.clear();
    s.used = 0;
  }
  size_t i = static_cast<size_t>(h) & mask_;
  for (;; i = (i + 1) & mask_) {
    const Slot& slot = s.slots[i];
    if (slot.ids_len == 0) break;
    if (slot.hash == h && slot.key_len == word.size() &&
        std::memcmp(s.keys.data() + slot.key_off, word.data(), word.size()) == 0) {
      return;  // another thread put it meanwhile
    }
  }
  s.slots[i] = Slot{h, static_cast<uint32_t>(s.keys.size()), static_cast<uint32_t>(s.ids.size()),
                    static_cast<uint16_t>(word.size()), static_cast<uint16_t>(ids.size())};
  s.keys.append(word);
  s.ids.insert(s.ids.end(), ids.begin(), ids.end());
  ++s.used;
}

}  // namespace llm::tok
