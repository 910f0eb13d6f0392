#include "tokenizer/sentencepiece_tokenizer.h"

#include "tokenizer/sentencepiece_headers.h"

#include <algorithm>

#include "llm/atomic_file.h"
#include "llm/error.h"
#include "tokenizer/file_util.h"
#include "tokenizer/fingerprint.h"
#include "tokenizer/sp_model_proto.h"
#include "tokenizer/utf8.h"

namespace llm::tok {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";     // ▁, sentencepiece's space
constexpr std::string_view kUnkSurface = " \xE2\x81\x87 ";  // " ⁇ ", sentencepiece's default

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(std::string model_bytes, const std::filesystem::path& path) : bytes_(std::move(model_bytes)) {
    const auto status = sp_.LoadFromSerializedProto(bytes_);
    LLM_CHECK(status.ok(), path.string(), ": not a sentencepiece model: ", status.ToString());
    const int n = sp_.GetPieceSize();
    LLM_CHECK(n > 0, path.string(), ": not a sentencepiece model: it has no pieces");
    const auto types = sp_piece_types(bytes_);
    LLM_CHECK(types && static_cast<int>(types->size()) == n, path.string(),
              ": not a sentencepiece model: its piece list cannot be read");
    pieces_.resize(static_cast<size_t>(n));
    special_.resize(static_cast<size_t>(n));
    for (int id = 0; id < n; ++id) {
      const SpPieceType t = (*types)[static_cast<size_t>(id)];
      special_[static_cast<size_t>(id)] =
          t == SpPieceType::kControl || t == SpPieceType::kUnknown || t == SpPieceType::kUserDefined;
      pieces_[static_cast<size_t>(id)] = surface(id, path);
    }
    // A model with add_dummy_prefix puts ▁ before the first word; its decode drops that space.
    std::vector<std::string> first;
    LLM_CHECK(sp_.Encode("a", &first).ok(), path.string(), ": sentencepiece cannot encode \"a\"");
    dummy_prefix_ = !first.empty() && first[0].starts_with(kSpaceMark);

    eot_ = token_id("<|endoftext|>");
    if (eot_ < 0) eot_ = sp_.eos_id();
    LLM_CHECK(eot_ >= 0, path.string(), ": the model has neither <|endoftext|> nor </s>: no end-of-text id");
    for (const int32_t id : {eot_, token_id("<|im_end|>"), static_cast<int32_t>(sp_.eos_id())}) {
      if (id >= 0 && std::find(stop_.begin(), stop_.end(), id) == stop_.end()) stop_.push_back(id);
    }
    Fnv128 h;
    h.str("llm.tokenizer.sentencepiece.v1");
    h.str(bytes_);
    fingerprint_ = h.hex();
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    LLM_CHECK(status.ok(), "sentencepiece encode: ", status.ToString());
    return std::vector<int32_t>(ids.begin(), ids.end());
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::string bytes;
    bool first = true;
    for (const int32_t id : ids) {
      check_id(id, "decode");
      const std::string& s = pieces_[static_cast<size_t>(id)];
      if (first && !s.empty()) {
        first = false;
        // As sentencepiece's decoder: the dummy prefix space of the first piece is dropped.
        if (dummy_prefix_ && s[0] == ' ' && !sp_.IsByte(id) && !sp_.IsUnknown(id)) {
          bytes.append(s, 1);
          continue;
        }
      }
      bytes += s;
    }
    std::string text;
    append_utf8_lossy(text, bytes);
    return text;
  }

  std::string token_bytes(int32_t id) const override {
    check_id(id, "token_bytes");
    return pieces_[static_cast<size_t>(id)];
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  int32_t eot_id() const override { return eot_; }
  std::vector<int32_t> stop_ids() const override { return stop_; }
  int32_t token_id(std::string_view piece) const override {
    const int id = sp_.PieceToId(piece);  // the unknown id for absent pieces
    return id >= 0 && id < sp_.GetPieceSize() && sp_.IdToPiece(id) == piece ? id : -1;
  }
  bool is_special(int32_t id) const override {
    check_id(id, "is_special");
    return special_[static_cast<size_t>(id)];
  }
  std::string fingerprint() const override { return fingerprint_; }
  std::string kind() const override { return "sentencepiece"; }
  void save(const std::filesystem::path& dir) const override {
    LLM_CHECK(std::filesystem::is_directory(dir), dir.string(), ": tokenizer save: not a directory");
    write_file_atomic(dir / "tokenizer.model", bytes_);
  }

 private:
  void check_id(int32_t id, const char* where) const {
    LLM_CHECK(id >= 0 && id < vocab_size(), where, ": id ", id, " is outside [0, ", vocab_size(), ")");
  }

  // The bytes a piece stands for: control pieces none, <unk> sentencepiece's " ⁇ ", byte pieces
  // <0xAB> their byte, others their text with ▁ as a space.
  std::string surface(int id, const std::filesystem::path& path) const {
    if (sp_.IsControl(id)) return "";
    if (sp_.IsUnknown(id)) return std::string(kUnkSurface);
    const std::string& piece = sp_.IdToPiece(id);
    if (sp_.IsByte(id)) {
      const int hi = piece.size() == 6 ? hex_digit(piece[3]) : -1, lo = piece.size() == 6 ? hex_digit(piece[4]) : -1;
      LLM_CHECK(piece.starts_with("<0x") && piece.ends_with(">") && hi >= 0 && lo >= 0, path.string(), ": byte piece ",
                id, " is \"", piece, "\", expected <0xAB>");
      return std::string(1, static_cast<char>(hi * 16 + lo));
    }
    std::string out;
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, kSpaceMark.size(), kSpaceMark) == 0) {
        out += ' ';
        i += kSpaceMark.size();
      } else {
        out += piece[i++];
      }
    }
    return out;
  }

  std::string bytes_;
  sentencepiece::SentencePieceProcessor sp_;
  std::vector<std::string> pieces_;
  std::vector<bool> special_;
  bool dummy_prefix_ = false;
  int32_t eot_ = -1;
  std::vector<int32_t> stop_;
  std::string fingerprint_;
};

}  // namespace

std::unique_ptr<Tokenizer> sentencepiece_from_bytes(std::string model_bytes, const std::filesystem::path& path) {
  return std::make_unique<SentencePieceTokenizer>(std::move(model_bytes), path);
}

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& path) {
  return sentencepiece_from_bytes(read_file_bytes(path), path);
}

}  // namespace llm::tok
