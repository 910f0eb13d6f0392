// Token shards (*.tok): the header and every token, and manifest.json of a prepared directory.
// The first input byte picks which; the rest is the file.
#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "llm/error.h"
#include "llm/manifest.h"
#include "llm/shard.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  try {
    if (data[0] & 1) {
      const auto path = llm::fuzz::write_input("train_00000.tok", data + 1, size - 1);
      const llm::ShardFile f(path, (data[0] & 2) ? "" : "sentencepiece:0123456789abcdef");
      f.verify_tokens();
    } else {
      llm::fuzz::write_input(llm::kManifestName, data + 1, size - 1);
      const llm::Manifest m = llm::read_manifest(llm::fuzz::scratch_dir());
      for (const char* split : {"train", "val"}) (void)llm::shard_paths(llm::fuzz::scratch_dir(), m, split);
      (void)m.to_json();
    }
  } catch (const llm::Error&) {
  }
  return 0;
}
