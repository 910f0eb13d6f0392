#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <climits>
#include <queue>

#include "llm/error.h"

namespace llm::tok {

BpeModel::BpeModel(std::span<const int32_t, 256> byte_ids) { std::copy(byte_ids.begin(), byte_ids.end(), byte_ids_); }

void BpeModel::add_merge(int32_t left, int32_t right, int32_t merged) { merges_.push_back({left, right, merged}); }

void BpeModel::finish() {
  size_t cap = 16;
  while (cap < merges_.size() * 2) cap *= 2;  // load factor <= 1/2
  table_.assign(cap, Slot{kEmpty, 0, 0});
  mask_ = cap - 1;
  shift_ = 64 - __builtin_ctzll(cap);
  for (size_t rank = 0; rank < merges_.size(); ++rank) {
    const Merge& m = merges_[rank];
    const uint64_t k = key(m.left, m.right);
    size_t h = static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> shift_);
    while (table_[h].key != kEmpty && table_[h].key != k) h = (h + 1) & mask_;
    table_[h] = Slot{k, static_cast<int32_t>(rank), m.merged};  // a repeated pair: later rank wins
  }
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() <= kShortWord) {
    encode_word_short(word, out);
  } else {
    encode_word_heap(word, out);
  }
}

void BpeModel::encode_word_short(std::string_view word, std::vector<int32_t>& out) const {
  const size_t n = word.size();
  LLM_CHECK(n > 0 && n <= kShortWord, "BpeModel::encode_word_short: word of ", n, " bytes");
  // ids[i]: symbol i; rank[i], merged[i]: the merge of (ids[i], ids[i+1]), INT_MAX when none.
  int32_t ids[kShortWord], rank[kShortWord], merged[kShortWord];
  for (size_t i = 0; i < n; ++i) ids[i] = byte_ids_[static_cast<uint8_t>(word[i])];
  auto look = [&](size_t i) {
    const Slot* s = find(ids[i], ids[i + 1]);
    rank[i] = s ? s->rank : INT_MAX;
    merged[i] = s ? s->merged : -1;
  };
  size_t m = n;
  for (size_t i = 0; i + 1 < m; ++i) look(i);
  while (m > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < m; ++i) {
      if (rank[i] < rank[best]) best = i;  // strict: the leftmost of equal ranks wins
    }
    if (rank[best] == INT_MAX) break;
    ids[best] = merged[best];
    // Remove symbol best+1 and the pair entry that started at it.
    for (size_t i = best + 1; i + 1 < m; ++i) ids[i] = ids[i + 1];
    for (size_t i = best + 1; i + 2 < m; ++i) {
      rank[i] = rank[i + 1];
      merged[i] = merged[i + 1];
    }
    --m;
    if (best > 0) look(best - 1);
    if (best + 1 < m) look(best);
  }
  out.insert(out.end(), ids, ids + m);
}

void BpeModel::encode_word_heap(std::string_view word, std::vector<int32_t>& out) const {
  const size_t n = word.size();
  struct Sym {
    int32_t id, prev, next;
    bool alive;
  };
  std::vector<Sym> sym(n);
  for (size_t i = 0; i < n; ++i) {
    sym[i] = {byte_ids_[static_cast<uint8_t>(word[i])], static_cast<int32_t>(i) - 1,
              i + 1 < n ? static_cast<int32_t>(i + 1) : -1, true};
  }
  // (rank, position of the pair's left symbol): the smallest pops first, so among equal ranks
  // the leftmost pair merges first, as in the reference.
  using Item = std::pair<int32_t, int32_t>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
  auto push = [&](int32_t pos) {
    const int32_t nx = sym[pos].next;
    if (nx < 0) return;
    if (const Slot* s = find(sym[pos].id, sym[nx].id)) heap.push({s->rank, pos});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    const auto [rank, pos] = heap.top();
    heap.pop();
    Sym& a = sym[pos];
    if (!a.alive || a.next < 0) continue;
    const Slot* s = find(a.id, sym[a.next].id);
    if (!s || s->rank != rank) continue;  // stale: the pair at pos changed since it was pushed
    Sym& b = sym[a.next];
    a.id = s->merged;
    b.alive = false;
    a.next = b.next;
    if (a.next >= 0) sym[a.next].prev = pos;
    if (a.prev >= 0) push(a.prev);
    push(pos);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace llm::tok
