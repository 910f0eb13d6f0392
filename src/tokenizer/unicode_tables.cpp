#include "tokenizer/unicode_tables.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#pragma GCC diagnostic pop

#include "llm/error.h"
#include "tokenizer/utf8.h"

namespace llm::tok {

namespace {

const UNormalizer2* nfc_instance() {
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* n = unorm2_getNFCInstance(&err);
  LLM_CHECK(U_SUCCESS(err) && n, "tokenizer: ICU has no NFC normaliser: ", u_errorName(err));
  return n;
}

// JavaScript's \s (ECMAScript WhiteSpace and LineTerminator): TAB VT FF SP NBSP ZWNBSP, every
// Zs character, LF CR LS PS. Unlike Rust/Oniguruma's \s it includes U+FEFF and excludes U+0085;
// the JavaScript reference decides, so this is the set used.
bool js_space(int32_t cp) {
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0xA0:
    case 0xFEFF:
    case 0x2028:
    case 0x2029: return true;
    default: return u_charType(cp) == U_SPACE_SEPARATOR;
  }
}

// Converts valid UTF-8 to NFC with ICU (UTF-8 -> UTF-16 -> normalise -> UTF-8).
void icu_nfc(std::string_view s, std::string& out) {
  UErrorCode err = U_ZERO_ERROR;
  std::u16string src(s.size(), u'\0');  // UTF-16 never needs more units than UTF-8 has bytes
  int32_t len = 0;
  u_strFromUTF8(reinterpret_cast<UChar*>(src.data()), static_cast<int32_t>(src.size()), &len, s.data(),
                static_cast<int32_t>(s.size()), &err);
  LLM_CHECK(U_SUCCESS(err), "tokenizer: NFC: UTF-8 to UTF-16 failed: ", u_errorName(err));
  src.resize(static_cast<size_t>(len));
  const UNormalizer2* nfc = nfc_instance();
  // NFC output can be longer than its input (e.g. some singletons expand): ask for the size.
  std::u16string dst(src.size() + 16, u'\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    err = U_ZERO_ERROR;
    len = unorm2_normalize(nfc, reinterpret_cast<const UChar*>(src.data()), static_cast<int32_t>(src.size()),
                           reinterpret_cast<UChar*>(dst.data()), static_cast<int32_t>(dst.size()), &err);
    if (err != U_BUFFER_OVERFLOW_ERROR) break;
    dst.resize(static_cast<size_t>(len));
  }
  LLM_CHECK(U_SUCCESS(err), "tokenizer: NFC normalisation failed: ", u_errorName(err));
  dst.resize(static_cast<size_t>(len));
  std::string utf8(dst.size() * 3, '\0');
  err = U_ZERO_ERROR;
  u_strToUTF8(utf8.data(), static_cast<int32_t>(utf8.size()), &len, reinterpret_cast<const UChar*>(dst.data()),
              static_cast<int32_t>(dst.size()), &err);
  LLM_CHECK(U_SUCCESS(err), "tokenizer: NFC: UTF-16 to UTF-8 failed: ", u_errorName(err));
  out.append(utf8.data(), static_cast<size_t>(len));
}

}  // namespace

CharClass UnicodeTables::slow_class(int32_t cp) {
  if (cp == '\r' || cp == '\n') return CharClass::kNewline;
  if (js_space(cp)) return CharClass::kSpace;
  const uint32_t mask = U_GET_GC_MASK(cp);
  if (mask & U_GC_L_MASK) return CharClass::kLetter;
  if (mask & U_GC_N_MASK) return CharClass::kNumber;
  return CharClass::kOther;
}

bool UnicodeTables::slow_nfc_inert(int32_t cp) {
  return u_getIntPropertyValue(cp, UCHAR_NFC_QUICK_CHECK) == UNORM_YES && u_getCombiningClass(cp) == 0;
}

UnicodeTables::UnicodeTables() : bmp_(0x10000) {
  for (int32_t cp = 0; cp < 0x10000; ++cp) {
    bmp_[cp] = static_cast<uint8_t>(static_cast<uint8_t>(slow_class(cp)) | (slow_nfc_inert(cp) ? kNfcInert : 0));
  }
}

bool UnicodeTables::is_nfc_inert(std::string_view s) const {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const Utf8Char c = decode_utf8(s, i);
    if (c.cp >= 0 && !nfc_inert(c.cp)) return false;
    i += c.len;
  }
  return true;
}

void UnicodeTables::append_nfc(std::string_view s, std::string& out) const {
  if (is_nfc_inert(s)) {
    out.append(s);
    return;
  }
  // Normalise each maximal valid run on its own; ill-formed bytes pass through.
  size_t run = 0;
  for (size_t i = 0; i < s.size();) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const Utf8Char c = decode_utf8(s, i);
    if (c.cp >= 0) {
      i += c.len;
      continue;
    }
    const std::string_view valid = s.substr(run, i - run);
    if (is_nfc_inert(valid)) {
      out.append(valid);
    } else {
      icu_nfc(valid, out);
    }
    out.append(s.substr(i, static_cast<size_t>(c.len)));
    i += c.len;
    run = i;
  }
  const std::string_view valid = s.substr(run);
  if (is_nfc_inert(valid)) {
    out.append(valid);
  } else {
    icu_nfc(valid, out);
  }
}

}  // namespace llm::tok
