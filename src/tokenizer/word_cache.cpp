#include "tokenizer/word_cache.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <thread>

namespace llm::tok {

// One generation: open addressing (linear probing, at most half full), keys and ids in arenas.
struct WordCache::Table {
  struct Slot {
    uint64_t hash;
    uint32_t key_off, ids_off;
    uint16_t key_len, ids_len;  // ids_len 0 marks an empty slot (a word has at least one id)
  };
  std::vector<Slot> slots;
  std::string keys;
  std::vector<int32_t> ids;
  size_t used = 0;

  void reset(size_t capacity) {
    size_t cap = 16;
    while (cap < 2 * capacity) cap *= 2;
    slots.assign(cap, Slot{0, 0, 0, 0, 0});
    keys.clear();
    ids.clear();
    used = 0;
  }
  // The slot holding word, or the empty slot where it would go.
  Slot& find(std::string_view word, uint64_t h) {
    const size_t mask = slots.size() - 1;
    for (size_t i = static_cast<size_t>(h) & mask;; i = (i + 1) & mask) {
      Slot& s = slots[i];
      if (s.ids_len == 0) return s;
      if (s.hash == h && s.key_len == word.size() &&
          std::memcmp(keys.data() + s.key_off, word.data(), word.size()) == 0) {
        return s;
      }
    }
  }
  void insert(Slot& empty, std::string_view word, uint64_t h, std::span<const int32_t> word_ids) {
    empty = Slot{h, static_cast<uint32_t>(keys.size()), static_cast<uint32_t>(ids.size()),
                 static_cast<uint16_t>(word.size()), static_cast<uint16_t>(word_ids.size())};
    keys.append(word);
    ids.insert(ids.end(), word_ids.begin(), word_ids.end());
    ++used;
  }
};

struct WordCache::Part {
  std::mutex mu;
  bool ready = false;  // tables are allocated on first use: most parts stay empty
  Table current, previous;
};

WordCache::WordCache(size_t entries_per_generation)
    : parts_(std::make_unique<Part[]>(kParts)), capacity_(std::max<size_t>(entries_per_generation, 1)) {}

WordCache::~WordCache() = default;

WordCache::Part& WordCache::my_part() const {
  return parts_[std::hash<std::thread::id>{}(std::this_thread::get_id()) % kParts];
}

bool WordCache::get(std::string_view word, uint64_t h, std::vector<int32_t>& out) const {
  Part& p = my_part();
  std::lock_guard<std::mutex> lock(p.mu);
  if (!p.ready) return false;
  Table::Slot& s = p.current.find(word, h);
  if (s.ids_len != 0) {
    const int32_t* ids = p.current.ids.data() + s.ids_off;
    out.insert(out.end(), ids, ids + s.ids_len);
    return true;
  }
  const Table::Slot& old = p.previous.find(word, h);
  if (old.ids_len == 0) return false;
  const std::span<const int32_t> ids(p.previous.ids.data() + old.ids_off, old.ids_len);
  out.insert(out.end(), ids.begin(), ids.end());
  if (p.current.used < capacity_) p.current.insert(s, word, h, ids);  // a hot word moves forward
  return true;
}

void WordCache::put(std::string_view word, uint64_t h, std::span<const int32_t> ids) const {
  if (ids.empty() || word.size() > kMaxWordBytes || ids.size() > 0xFFFF) return;
  Part& p = my_part();
  std::lock_guard<std::mutex> lock(p.mu);
  if (!p.ready) {
    p.current.reset(capacity_);
    p.previous.reset(capacity_);
    p.ready = true;
  }
  if (p.current.used >= capacity_) {
    std::swap(p.current, p.previous);
    p.current.reset(capacity_);
  }
  Table::Slot& s = p.current.find(word, h);
  if (s.ids_len == 0) p.current.insert(s, word, h, ids);
}

}  // namespace llm::tok
