// encode_batch and tokenize_stream: the parallel front ends of Tokenizer::encode/decode.
#include <omp.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <exception>
#include <istream>
#include <ostream>

#include "llm/error.h"
#include "llm/tokenizer.h"
#include "tokenizer/json_string.h"

namespace llm {

namespace {

int resolve_threads(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

// Runs fn(i) for i in [0, n) on `threads` threads. fn's exceptions are caught per item into
// errors[i] (an exception must not leave an OpenMP region).
template <class F>
void parallel_items(size_t n, int threads, std::vector<std::string>& errors, F&& fn) {
  errors.assign(n, std::string());
  const auto count = static_cast<int64_t>(n);
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
  for (int64_t i = 0; i < count; ++i) {
    try {
      fn(static_cast<size_t>(i));
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(i)] = e.what();
      if (errors[static_cast<size_t>(i)].empty()) errors[static_cast<size_t>(i)] = "unknown error";
    }
  }
}

std::string describe(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return cat(v.type_name(), " ", s);
}

void append_ids_json(std::string& out, const std::vector<int32_t>& ids) {
  out += '[';
  char buf[16];
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    const auto r = std::to_chars(buf, buf + sizeof buf, ids[i]);
    out.append(buf, r.ptr);
  }
  out += "]\n";
}

std::string encode_line(const Tokenizer& tok, const std::string& line, bool jsonl) {
  std::string out;
  if (!jsonl) {
    append_ids_json(out, tok.encode(line));
    return out;
  }
  std::string text;
  if (tok::parse_json_string_line(line, text)) {
    append_ids_json(out, tok.encode(text));
    return out;
  }
  // Not a plain JSON string line: nlohmann decides, and words the error.
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    fail("not a JSON string: ", e.what());
  } catch (const nlohmann::json::out_of_range&) {  // error 406
    fail("expected a JSON string, got a number beyond a double");
  }
  LLM_CHECK(j.is_string(), "expected a JSON string, got ", describe(j));
  append_ids_json(out, tok.encode(j.get_ref<const std::string&>()));
  return out;
}

std::string decode_line(const Tokenizer& tok, const std::string& line) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    fail("not a JSON array of ids: ", e.what());
  } catch (const nlohmann::json::out_of_range&) {  // error 406
    fail("expected a JSON array of ids, got a number beyond a double (ids are below the vocabulary size)");
  }
  LLM_CHECK(j.is_array(), "expected a JSON array of ids, got ", describe(j));
  std::vector<int32_t> ids;
  ids.reserve(j.size());
  for (size_t k = 0; k < j.size(); ++k) {
    const nlohmann::json& v = j[k];
    LLM_CHECK(v.is_number_integer(), "element ", k, ": expected an integer id, got ", describe(v));
    const int64_t id = v.get<int64_t>();
    LLM_CHECK(id >= 0 && id < tok.vocab_size(), "element ", k, ": id ", id, " is outside [0, ", tok.vocab_size(), ")");
    ids.push_back(static_cast<int32_t>(id));
  }
  return nlohmann::json(tok.decode(ids)).dump() + "\n";
}

}  // namespace

std::vector<std::vector<int32_t>> encode_batch(const Tokenizer& tok, std::span<const std::string> texts, int threads) {
  std::vector<std::vector<int32_t>> out(texts.size());
  std::vector<std::string> errors;
  parallel_items(texts.size(), resolve_threads(threads), errors, [&](size_t i) { out[i] = tok.encode(texts[i]); });
  for (size_t i = 0; i < errors.size(); ++i) {
    LLM_CHECK(errors[i].empty(), "encode_batch: text ", i, ": ", errors[i]);
  }
  return out;
}

void tokenize_stream(const Tokenizer& tok, std::istream& in, std::ostream& out, const TokenizeStreamOptions& opt) {
  const int threads = resolve_threads(opt.threads);
  // Blocks of lines: large enough to keep the threads busy, small enough to stream.
  constexpr size_t kBlockLines = 8192;
  constexpr size_t kBlockBytes = size_t{8} << 20;
  std::vector<std::string> lines, results, errors;
  size_t first_line = 1;  // 1-based number of lines[0]
  while (true) {
    lines.clear();
    size_t bytes = 0;
    std::string line;
    while (lines.size() < kBlockLines && bytes < kBlockBytes && std::getline(in, line)) {
      bytes += line.size();
      lines.push_back(std::move(line));
    }
    LLM_CHECK(!in.bad(), "tokenize: read error on the input after line ", first_line + lines.size() - 1);
    if (lines.empty()) break;
    results.assign(lines.size(), std::string());
    parallel_items(lines.size(), threads, errors, [&](size_t i) {
      results[i] = opt.decode ? decode_line(tok, lines[i]) : encode_line(tok, lines[i], opt.jsonl);
    });
    for (size_t i = 0; i < lines.size(); ++i) {
      if (!errors[i].empty()) {
        out.flush();
        fail("tokenize: line ", first_line + i, ": ", errors[i]);
      }
      out.write(results[i].data(), static_cast<std::streamsize>(results[i].size()));
    }
    out.flush();
    LLM_CHECK(out.good(), "tokenize: write error on the output after line ", first_line + lines.size() - 1);
    first_line += lines.size();
  }
}

}  // namespace llm
