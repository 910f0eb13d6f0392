// FNV-1a with 128 bits: the tokenizer fingerprint's hash. Not cryptographic; it only has to make
// an accidental mismatch between a shard's tokenizer and the configured one show. Values are fed
// in a fixed little-endian layout so that every machine computes the same digest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llm::tok {

class Fnv128 {
 public:
  void bytes(const void* data, size_t n);
  void u64(uint64_t v);
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  // Length-prefixed, so that ("ab","c") and ("a","bc") differ.
  void str(std::string_view s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
  // 32 lowercase hex digits, most significant first.
  std::string hex() const;

 private:
  // The offset basis 0x6c62272e07bb014262b821756295c58d.
  uint64_t hi_ = 0x6c62272e07bb0142ull;
  uint64_t lo_ = 0x62b821756295c58dull;
};

}  // namespace llm::tok
