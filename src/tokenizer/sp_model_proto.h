// A minimal reader of sentencepiece's ModelProto wire format: just the piece types, which the
// processor's API does not expose for user-defined pieces (is_special needs them).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace llm::tok {

// sentencepiece's SentencePiece.Type values.
enum class SpPieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// Types of the model's pieces in id order; nullopt when the bytes are not a well-formed protobuf.
std::optional<std::vector<SpPieceType>> sp_piece_types(std::string_view model);

}  // namespace llm::tok
