// load_tokenizer: picks the implementation from the path (a file or a directory).
#include <vector>

#include "llm/error.h"
#include "llm/tokenizer.h"
#include "tokenizer/qwen_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"

namespace llm {

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  LLM_CHECK(fs::exists(path, ec), path.string(), ": no such tokenizer file or directory");
  if (fs::is_directory(path, ec)) {
    if (fs::exists(path / "tokenizer.json")) return tok::load_qwen_tokenizer(path / "tokenizer.json");
    if (fs::exists(path / "tokenizer.model")) return tok::load_sentencepiece(path / "tokenizer.model");
    std::vector<fs::path> models;
    for (const auto& e : fs::directory_iterator(path)) {
      if (e.path().extension() == ".model") models.push_back(e.path());
    }
    LLM_CHECK(models.size() == 1, path.string(),
              ": expected tokenizer.json, tokenizer.model or exactly one *.model file, found ", models.size(),
              " *.model files");
    return tok::load_sentencepiece(models[0]);
  }
  if (path.extension() == ".json") return tok::load_qwen_tokenizer(path);
  return tok::load_sentencepiece(path);
}

}  // namespace llm
