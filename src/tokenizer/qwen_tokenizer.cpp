#include "tokenizer/qwen_tokenizer.h"

#include "llm/atomic_file.h"
#include "llm/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/fingerprint.h"
#include "tokenizer/qwen_pretokenizer.h"
#include "tokenizer/utf8.h"

namespace llm::tok {

namespace {

std::vector<AddedToken> with_normalized(const std::vector<AddedToken>& all, bool normalized) {
  std::vector<AddedToken> out;
  for (const AddedToken& t : all) {
    if (t.normalized == normalized) out.push_back(t);
  }
  return out;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

}  // namespace

std::string clean_up_tokenization(std::string s) {
  static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) replace_all(s, from, to);
  return s;
}

QwenTokenizer::QwenTokenizer(QwenParts parts) : p_(std::move(parts)) {
  raw_matcher_ = AddedTokenMatcher(with_normalized(p_.added, false), &tables_);
  normalized_matcher_ = AddedTokenMatcher(with_normalized(p_.added, true), &tables_);
  special_.assign(p_.id_bytes.size(), 0);
  for (const AddedToken& t : p_.added) {
    added_ids_[t.content] = t.id;
    special_[static_cast<size_t>(t.id)] = t.special ? 1 : 0;
  }
  for (int b = 0; b < 256; ++b) byte_ids_[b] = p_.vocab.at(std::string(1, static_cast<char>(b)));
  fingerprint_ = compute_fingerprint();
}

std::vector<int32_t> QwenTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  std::vector<Segment> segments, inner;
  std::vector<std::string_view> pieces;
  std::string normalized;
  raw_matcher_.split(text, segments);
  for (const Segment& seg : segments) {
    if (seg.token >= 0) {
      out.push_back(seg.token);
      continue;
    }
    std::string_view t = seg.text;
    if (p_.nfc && !tables_.is_nfc_inert(t)) {
      normalized.clear();
      tables_.append_nfc(t, normalized);
      t = normalized;
    }
    if (normalized_matcher_.empty()) {
      encode_text(t, pieces, out);
      continue;
    }
    inner.clear();
    normalized_matcher_.split(t, inner);
    for (const Segment& s : inner) {
      if (s.token >= 0) {
        out.push_back(s.token);
      } else {
        encode_text(s.text, pieces, out);
      }
    }
  }
  return out;
}

void QwenTokenizer::encode_text(std::string_view text, std::vector<std::string_view>& pieces,
                                std::vector<int32_t>& out) const {
  pieces.clear();
  qwen_pretokenize(tables_, text, pieces);
  for (const std::string_view piece : pieces) encode_piece(piece, out);
}

void QwenTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_ids_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  if (p_.ignore_merges) {
    // HF ignore_merges: a word that is itself in the vocabulary is taken whole.
    if (const auto it = p_.vocab.find(std::string(piece)); it != p_.vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (piece.size() > WordCache::kMaxWordBytes) {
    p_.bpe->encode_word(piece, out);
    return;
  }
  const uint64_t h = WordCache::hash(piece);
  if (cache_.get(piece, h, out)) return;
  const size_t before = out.size();
  p_.bpe->encode_word(piece, out);
  cache_.put(piece, h, std::span<const int32_t>(out.data() + before, out.size() - before));
}

void QwenTokenizer::check_id(int32_t id, const char* where) const {
  LLM_CHECK(id >= 0 && id < vocab_size(), where, ": id ", id, " is outside [0, ", vocab_size(), ")");
  LLM_CHECK(p_.assigned[static_cast<size_t>(id)], where, ": id ", id, " belongs to no token in ",
            p_.json_path.string());
}

std::string QwenTokenizer::decode(std::span<const int32_t> ids) const {
  std::string bytes;
  for (const int32_t id : ids) {
    check_id(id, "decode");
    bytes += p_.id_bytes[static_cast<size_t>(id)];
  }
  std::string text;
  text.reserve(bytes.size());
  append_utf8_lossy(text, bytes);
  return p_.clean_up_spaces ? clean_up_tokenization(std::move(text)) : text;
}

std::string QwenTokenizer::token_bytes(int32_t id) const {
  check_id(id, "token_bytes");
  return p_.id_bytes[static_cast<size_t>(id)];
}

int32_t QwenTokenizer::token_id(std::string_view piece) const {
  if (const auto it = added_ids_.find(std::string(piece)); it != added_ids_.end()) return it->second;
  const std::optional<std::string> bytes = byte_level_to_bytes(piece);
  if (!bytes) return -1;
  const auto it = p_.vocab.find(*bytes);
  return it == p_.vocab.end() ? -1 : it->second;
}

bool QwenTokenizer::is_special(int32_t id) const {
  check_id(id, "is_special");
  return special_[static_cast<size_t>(id)] != 0;
}

void QwenTokenizer::save(const std::filesystem::path& dir) const {
  LLM_CHECK(std::filesystem::is_directory(dir), dir.string(), ": tokenizer save: not a directory");
  write_file_atomic(dir / "tokenizer.json", p_.json_bytes);
  if (p_.config_bytes) write_file_atomic(dir / "tokenizer_config.json", *p_.config_bytes);
}

// The canonical serialisation (docs/tokenizers.md): everything that decides ids or decoded text,
// in a fixed binary layout, independent of how the JSON was formatted or ordered.
std::string QwenTokenizer::compute_fingerprint() const {
  Fnv128 h;
  h.str("llm.tokenizer.qwen-bpe.v1");
  h.str(p_.nfc ? "normalizer=NFC" : "normalizer=none");
  h.str("pre_tokenizer=qwen2-split+byte-level");
  h.u64(p_.ignore_merges);
  h.u64(p_.clean_up_spaces);
  h.u64(p_.id_bytes.size());
  for (size_t id = 0; id < p_.id_bytes.size(); ++id) {
    h.u64(p_.assigned[id]);
    h.str(p_.id_bytes[id]);
  }
  const auto& merges = p_.bpe->merges();
  h.u64(merges.size());
  for (const BpeModel::Merge& m : merges) {
    h.i64(m.left);
    h.i64(m.right);
  }
  h.u64(p_.added.size());
  for (const AddedToken& t : p_.added) {
    h.i64(t.id);
    h.str(t.content);
    h.u64((t.single_word ? 1u : 0u) | (t.lstrip ? 2u : 0u) | (t.rstrip ? 4u : 0u) | (t.normalized ? 8u : 0u) |
          (t.special ? 16u : 0u));
  }
  return h.hex();
}

}  // namespace llm::tok
