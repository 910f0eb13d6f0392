// manifest.json: the record of one corpus preparation (docs/data.md). It lists the train and
// validation shards in stream order and carries the "signature" (tokenizer fingerprint, input
// files with sizes and mtimes, the settings that decide the shards): preparing again with an
// equal signature is a no-op. Its presence marks the preparation complete.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace llm {

inline constexpr const char* kManifestName = "manifest.json";
inline constexpr int kManifestVersion = 1;

struct ShardInfo {
  std::string file;  // relative to the manifest's directory
  uint64_t tokens = 0;
  uint64_t documents = 0;
};

struct Manifest {
  std::string tokenizer_kind;
  std::string tokenizer_fingerprint;
  uint32_t vocab_size = 0;
  int32_t eot_id = -1;
  std::vector<ShardInfo> train, val;
  uint64_t train_tokens = 0, val_tokens = 0, train_documents = 0, val_documents = 0;
  uint64_t input_bytes = 0;
  // Chat data: the shards carry token flags; trained tokens are those flagged kTokenTrained (each
  // assistant reply and its <|im_end|>), the only targets the loss sees.
  bool token_flags = false;
  uint64_t train_trained_tokens = 0, val_trained_tokens = 0;
  uint64_t conversations = 0;  // chat documents among the documents of both splits
  nlohmann::json signature;    // compared whole to decide whether preparation is up to date
  nlohmann::json config;       // the effective tokenizer and data sections used

  nlohmann::json to_json() const;
  // where: the file, for messages.
  static Manifest from_json(const nlohmann::json& j, const std::string& where);
};

// Reads <data_dir>/manifest.json; errors name the file.
Manifest read_manifest(const std::filesystem::path& data_dir);
// The shard paths of a split ("train" or "val"), in stream order.
std::vector<std::filesystem::path> shard_paths(const std::filesystem::path& data_dir, const Manifest& m,
                                               const std::string& split);

}  // namespace llm
