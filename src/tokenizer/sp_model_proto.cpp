#include "tokenizer/sp_model_proto.h"

#include <cstdint>

namespace llm::tok {

namespace {

// Protobuf wire format: each field is a varint key (number << 3 | wire type) and a value.
class Wire {
 public:
  explicit Wire(std::string_view s) : s_(s) {}
  bool done() const { return i_ >= s_.size(); }
  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (i_ >= s_.size()) return false;
      const uint8_t b = static_cast<uint8_t>(s_[i_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  // Reads a field; for length-delimited ones `bytes` is the payload.
  bool field(uint32_t& number, uint32_t& type, uint64_t& value, std::string_view& bytes) {
    uint64_t key;
    if (!varint(key)) return false;
    number = static_cast<uint32_t>(key >> 3);
    type = static_cast<uint32_t>(key & 7);
    switch (type) {
      case 0: return varint(value);
      case 1: return advance(8);
      case 5: return advance(4);
      case 2: {
        uint64_t len;
        if (!varint(len) || len > s_.size() - i_) return false;
        bytes = s_.substr(i_, static_cast<size_t>(len));
        i_ += static_cast<size_t>(len);
        return true;
      }
      default: return false;  // groups (3, 4) are not used by sentencepiece
    }
  }

 private:
  bool advance(size_t n) {
    if (n > s_.size() - i_) return false;
    i_ += n;
    return true;
  }
  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::optional<std::vector<SpPieceType>> sp_piece_types(std::string_view model) {
  std::vector<SpPieceType> types;
  Wire top(model);
  while (!top.done()) {
    uint32_t number, type;
    uint64_t value = 0;
    std::string_view bytes;
    if (!top.field(number, type, value, bytes)) return std::nullopt;
    if (number != 1 || type != 2) continue;  // ModelProto.pieces = 1
    Wire piece(bytes);
    SpPieceType t = SpPieceType::kNormal;
    while (!piece.done()) {
      uint32_t n2, t2;
      uint64_t v2 = 0;
      std::string_view b2;
      if (!piece.field(n2, t2, v2, b2)) return std::nullopt;
      if (n2 == 3 && t2 == 0) t = static_cast<SpPieceType>(v2);  // SentencePiece.type = 3
    }
    types.push_back(t);
  }
  return types;
}

}  // namespace llm::tok
