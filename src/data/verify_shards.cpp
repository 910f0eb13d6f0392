// llmtrain prepare --verify: every shard the manifest lists, opened (header checksum, magic,
// sizes, fingerprint) and read token by token, and its counts compared with the manifest's.
#include <ostream>

#include "llm/error.h"
#include "llm/manifest.h"
#include "llm/prepare.h"
#include "llm/shard.h"

namespace llm {

uint64_t verify_prepared_corpus(const std::filesystem::path& data_dir, std::ostream* log) {
  const Manifest m = read_manifest(data_dir);
  uint64_t tokens = 0;
  for (const char* split : {"train", "val"}) {
    const auto& infos = std::string(split) == "train" ? m.train : m.val;
    const auto paths = shard_paths(data_dir, m, split);
    for (size_t i = 0; i < paths.size(); ++i) {
      const ShardFile f(paths[i], m.tokenizer_fingerprint);
      LLM_CHECK(f.header().vocab_size == m.vocab_size, paths[i].string(), ": vocab size ", f.header().vocab_size,
                ", the manifest says ", m.vocab_size);
      LLM_CHECK(f.size() == infos[i].tokens && f.header().document_count == infos[i].documents, paths[i].string(), ": ",
                f.size(), " tokens and ", f.header().document_count, " documents, the manifest says ", infos[i].tokens,
                " and ", infos[i].documents);
      f.verify_tokens();
      tokens += f.size();
      if (log) *log << "verify: " << paths[i].string() << ": " << f.size() << " tokens ok\n";
    }
  }
  return tokens;
}

}  // namespace llm
