#include "tokenizer/fingerprint.h"

namespace llm::tok {

namespace {
__extension__ typedef unsigned __int128 u128;
// The FNV 128-bit prime, 2^88 + 2^8 + 0x3b.
constexpr u128 kPrime = (static_cast<u128>(1) << 88) | 0x13b;
}  // namespace

void Fnv128::bytes(const void* data, size_t n) {
  u128 h = (static_cast<u128>(hi_) << 64) | lo_;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= kPrime;
  }
  hi_ = static_cast<uint64_t>(h >> 64);
  lo_ = static_cast<uint64_t>(h);
}

void Fnv128::u64(uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  bytes(b, 8);
}

std::string Fnv128::hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(32, '0');
  for (int i = 0; i < 16; ++i) {
    s[static_cast<size_t>(15 - i)] = kDigits[(hi_ >> (4 * i)) & 0xF];
    s[static_cast<size_t>(31 - i)] = kDigits[(lo_ >> (4 * i)) & 0xF];
  }
  return s;
}

}  // namespace llm::tok
