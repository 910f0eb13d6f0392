// Byte-level BPE by merge rank: the merge table and the merge loop, working on raw bytes (the
// GPT-2 byte-to-unicode spelling of tokenizer.json is undone at load time).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace llm::tok {

class BpeModel {
 public:
  // byte_ids[b]: id of the one-byte token for byte b.
  explicit BpeModel(std::span<const int32_t, 256> byte_ids);

  // Adds the merge of rank size() (merges are added in rank order). A pair listed twice keeps
  // the later rank, as HF and the JavaScript reference do (their rank maps are overwritten).
  void add_merge(int32_t left, int32_t right, int32_t merged);
  // Builds the lookup table; call once after the last add_merge().
  void finish();
  size_t size() const { return merges_.size(); }

  struct Merge {
    int32_t left, right, merged;
  };
  const std::vector<Merge>& merges() const { return merges_; }

  // Appends the ids of word (raw bytes, non-empty): repeatedly merges the adjacent pair of
  // lowest rank, the leftmost one among equals, until no pair has a merge.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  // The two implementations encode_word() picks from by length; exposed for the tests that
  // check they agree.
  void encode_word_short(std::string_view word, std::vector<int32_t>& out) const;
  void encode_word_heap(std::string_view word, std::vector<int32_t>& out) const;

  // Words up to this many bytes use the quadratic in-place loop (fast for short words); longer
  // ones the heap (n log n: long runs of letters or spaces cannot blow up).
  static constexpr size_t kShortWord = 64;

 private:
  struct Slot {
    uint64_t key;  // left << 32 | right; kEmpty when unused
    int32_t rank;
    int32_t merged;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  // The slot of (left, right), or nullptr when the pair has no merge.
  const Slot* find(int32_t left, int32_t right) const {
    const uint64_t k = key(left, right);
    size_t h = static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> shift_);
    while (true) {
      const Slot& s = table_[h];
      if (s.key == k) return &s;
      if (s.key == kEmpty) return nullptr;
      h = (h + 1) & mask_;
    }
  }

  int32_t byte_ids_[256];
  std::vector<Merge> merges_;
  std::vector<Slot> table_;
  size_t mask_ = 0;
  int shift_ = 64;
};

}  // namespace llm::tok
