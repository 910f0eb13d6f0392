// A tiny Qwen2 trained in the test (once per process, on the CPU, ~20 s on 2 cores): a
// sentencepiece tokenizer on the first 40 KB of Debian's fortunes "cookie" file (the corpus
// configs/tiny.json uses), then 200 steps on copies of its first six fortunes until the model
// knows them (training loss ~0.1). Small enough that the emulated CUDA backend generates dozens
// of tokens in a fraction of a second; trained enough that its greedy continuations are the
// fortunes' text, with margins of several logits between the top two tokens. (200 steps on the
// whole 40 KB leave a model at loss ~4 whose greedy output repeats one or two tokens, with
// near-ties at almost every step: a poor test of token equality.)
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "io/io_test_util.h"
#include "llm/config.h"
#include "llm/inference.h"
#include "llm/tokenizer.h"
#include "llm/trainer.h"
#include "test_util.h"

namespace llm::test {

inline const char* kCookieFortunes = "/usr/share/games/fortunes/cookie";

namespace cuda_gen_detail {

namespace fs = std::filesystem;

// A complete model directory from an earlier process (loads, has its tokenizer).
inline bool usable(const fs::path& run) {
  try {
    CpuBackend cpu(1);
    InferenceOptions io;
    io.context = 8;
    return InferenceModel::load(run, cpu, io)->tokenizer() != nullptr;
  } catch (const std::exception&) {
    return false;
  }
}

// Trains into dir (dir/run is the run directory); "" or the reason it could not.
inline std::string train_into(const fs::path& dir) {
  std::ifstream in(kCookieFortunes, std::ios::binary);
  if (!in.good()) return cat(kCookieFortunes, " is missing (Debian package fortunes): run scripts/setup.sh");
  std::string text(40000, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  text.resize(text.rfind("\n%\n") + 1);
  // 1. The tokenizer, on the first 40 KB of fortunes.
  SentencePieceTrainOptions so;
  so.vocab_size = 384;
  so.special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  so.threads = 1;
  std::vector<std::string> docs;
  for (size_t at = 0; at < text.size();) {
    const size_t end = std::min(text.find("\n%\n", at), text.size());
    docs.push_back(text.substr(at, end - at));
    at = end + 3;
  }
  train_sentencepiece_on(docs, so, dir / "tok.model");
  // 2. The model, on numbered copies of the first fortunes (the validation split goes by a
  // document's hash, so copies must differ).
  std::string first;
  for (size_t i = 0; i < 6; ++i) first += docs[i] + "\n";
  std::string copies;
  for (int i = 0; i < 64; ++i) copies += cat("(", i, ") ", first, "%\n");
  write_bytes(dir / "fortunes.txt", copies);
  const nlohmann::json cfg = {
      {"model",
       {{"vocab_size", so.vocab_size},
        {"hidden_size", 64},
        {"intermediate_size", 192},
        {"num_hidden_layers", 2},
        {"num_attention_heads", 4},
        {"num_key_value_heads", 2},
        {"max_position_embeddings", 256},
        {"tie_word_embeddings", true}}},
      {"tokenizer", {{"kind", "sentencepiece"}, {"path", (dir / "tok.model").string()}}},
      {"data",
       {{"inputs", {{{"path", (dir / "fortunes.txt").string()}, {"doc_separator", "%"}}}},
        {"out_dir", (dir / "shards").string()},
        {"val_fraction", 0.02}}},
      {"train",
       {{"device", "cpu"}, {"threads", 2}, {"seq_len", 64}, {"micro_batch", 8}, {"steps", 200}, {"eval_every", 0}}},
      {"optim", {{"lr", 0.01}, {"warmup_steps", 10}, {"weight_decay", 0.0}}},
      {"io", {{"run_dir", (dir / "run").string()}}}};
  std::ostringstream log;
  TrainOptions o;
  o.log = &log;
  const TrainResult r = train(parse_config(cfg.dump(), "tiny_cuda_gen.json", dir), o);
  std::printf("trained tiny model: loss %.3f after %lld steps in %.1f s\n", r.last_loss,
              static_cast<long long>(r.steps_done), r.seconds);
  return "";
}

}  // namespace cuda_gen_detail

// The run directory of the trained model. Training is deterministic (fixed seed, 2 threads), so
// the model is kept in the build tree (test_cache/) and shared by the test processes (ctest runs
// every test in its own): the first process trains, in a directory of its own renamed into
// place when complete, while the others wait on a lock file. Bump the version in the
// name when the recipe changes. Fails the test when the fortunes package is missing.
inline std::filesystem::path trained_tiny_model() {
  namespace fs = std::filesystem;
  static fs::path run;
  static std::string error;
  if (run.empty() && error.empty()) {
    const fs::path root = fs::path(LLM_TOOLS_DIR) / "test_cache";
    const fs::path done = root / "cuda_gen_tiny_v1";
    fs::create_directories(root);
    // One process trains; the others (ctest -j) wait for it on the lock instead of training too.
    const int lock = ::open((root / "cuda_gen_tiny_v1.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock >= 0) ::flock(lock, LOCK_EX);
    if (!cuda_gen_detail::usable(done / "run")) {
      std::error_code ec;
      fs::remove_all(done, ec);  // incomplete or from an incompatible build
      const fs::path mine = root / cat("cuda_gen_tiny_tmp_", ::getpid());
      fs::remove_all(mine, ec);
      fs::create_directories(mine);
      error = cuda_gen_detail::train_into(mine);
      fs::rename(mine, done, ec);  // complete or not there: never half-written
      if (ec) fs::remove_all(mine, ec);
    }
    if (lock >= 0) ::close(lock);  // releases the lock
    if (error.empty()) run = done / "run";
  }
  if (!error.empty()) {
    ADD_FAILURE() << error;
    return {};
  }
  return run;
}

}  // namespace llm::test
