// Perplexity of a token sequence: one pass when it fits the context, otherwise overlapping
// windows (stride context/2) that each score only the tokens the previous window did not reach,
// so every scored token sees at least context/2 - 1 tokens before it (docs/llmgen.md).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "llm/error.h"
#include "llm/generate.h"

namespace llm {

std::vector<PerplexityWindow> perplexity_windows(int64_t tokens, int64_t context) {
  LLM_CHECK(tokens >= 2, "perplexity: ", tokens, " tokens; at least 2 are needed (one to predict from)");
  LLM_CHECK(context >= 2, "perplexity: a context of ", context, " tokens; at least 2 are needed");
  if (tokens <= context) return {{0, tokens, 1}};
  const int64_t stride = context / 2;
  std::vector<PerplexityWindow> w;
  for (int64_t start = 0, scored_to = 1;; start += stride) {
    const int64_t end = std::min(start + context, tokens);
    w.push_back({start, end, scored_to});
    scored_to = end;
    if (end == tokens) break;
  }
  return w;
}

PerplexityResult perplexity(InferenceModel& model, std::span<const int32_t> ids,
                            const std::function<void(int64_t, int64_t)>& progress) {
  const auto windows = perplexity_windows(static_cast<int64_t>(ids.size()), model.context());
  const size_t V = static_cast<size_t>(model.config().vocab_size);
  // Rows of logits per forward_all call: bounds host memory at this many x V floats.
  constexpr int64_t kRows = 64;
  double nll = 0.0;
  int64_t scored = 0;
  for (size_t wi = 0; wi < windows.size(); ++wi) {
    const PerplexityWindow& w = windows[wi];
    model.reset();
    // Positions [start, score_from - 1) only fill the cache; the logits after position p predict p + 1.
    const auto at = [&](int64_t p) { return ids.begin() + p; };
    if (w.score_from - 1 > w.start) model.forward({at(w.start), at(w.score_from - 1)});
    for (int64_t p = w.score_from - 1; p < w.end - 1; p += kRows) {
      const int64_t n = std::min(kRows, w.end - 1 - p);
      const std::vector<float> rows = model.forward_all({at(p), at(p + n)});
      for (int64_t r = 0; r < n; ++r) {
        const float* row = rows.data() + static_cast<size_t>(r) * V;
        double mx = row[0];
        for (size_t v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
        double sum = 0.0;
        for (size_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - mx);
        const int32_t target = ids[static_cast<size_t>(p + r + 1)];
        LLM_CHECK(target >= 0 && static_cast<size_t>(target) < V, "perplexity: token ", target, " at position ",
                  p + r + 1, " is outside the model's vocabulary");
        nll += mx + std::log(sum) - double(row[static_cast<size_t>(target)]);
        ++scored;
      }
    }
    if (progress) progress(static_cast<int64_t>(wi) + 1, static_cast<int64_t>(windows.size()));
  }
  model.reset();
  PerplexityResult r;
  r.tokens = static_cast<int64_t>(ids.size());
  r.predicted = scored;
  r.windows = static_cast<int64_t>(windows.size());
  r.nll_mean = nll / double(scored);
  r.ppl = std::exp(r.nll_mean);
  return r;
}

std::vector<int32_t> perplexity_tokens(const Tokenizer& tok, const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  LLM_CHECK(in.good() && !std::filesystem::is_directory(file), file.string(), ": cannot read the perplexity file");
  std::ostringstream s;
  s << in.rdbuf();
  const std::string text = s.str();
  LLM_CHECK(!text.empty(), file.string(), ": the perplexity file is empty");
  std::vector<int32_t> ids = tok.encode(text);
  LLM_CHECK(ids.size() >= 2, file.string(), ": the text is ", ids.size(), ids.size() == 1 ? " token" : " tokens",
            "; perplexity needs at least 2 (one to predict from)");
  return ids;
}

std::string perplexity_json(const PerplexityResult& r) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "{\"tokens\": %lld, \"predicted\": %lld, \"nll_mean\": %.17g, \"ppl\": %.17g}",
                static_cast<long long>(r.tokens), static_cast<long long>(r.predicted), r.nll_mean, r.ppl);
  return buf;
}

}  // namespace llm
