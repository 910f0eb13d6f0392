// Corpus preparation throughput on the demo corpus (or any config's data section):
//   prepare_throughput [CONFIG=configs/tiny.json] [THREADS...]
// Trains the configured sentencepiece tokenizer first when it is missing (timed separately),
// then prepares into a temporary directory once per thread count and prints MB/s, tokens/s and
// the speed-up over the first thread count. Relative paths resolve against the working
// directory, as llmtrain does.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "llm/error.h"
#include "llm/prepare.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  try {
    const fs::path config = argc > 1 ? argv[1] : "configs/tiny.json";
    std::vector<int> threads;
    for (int i = 2; i < argc; ++i) threads.push_back(std::stoi(argv[i]));
    if (threads.empty()) {
      const int all = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      threads = {1};
      if (all > 1) threads.push_back(all);
    }

    std::ifstream in(config);
    LLM_CHECK(in.good(), config, ": cannot open the config file");
    std::stringstream ss;
    ss << in.rdbuf();
    const nlohmann::json root = nlohmann::json::parse(ss.str());
    const fs::path base = fs::current_path();
    llm::ConfigReader tr(root.value("tokenizer", nlohmann::json::object()), "tokenizer");
    const llm::TokenizerConfig tok_config = llm::parse_tokenizer_config(tr, base);
    llm::DataConfig data = llm::parse_data_config(root.value("data", nlohmann::json::object()), base);

    const auto t0 = std::chrono::steady_clock::now();
    const bool trained = !fs::exists(tok_config.path);
    const auto tok = llm::load_or_train_tokenizer(tok_config, data, llm::PrepareOptions::to_stderr());
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("tokenizer: %s (%s, vocab %d) %s in %.2f s\n", tok_config.path.c_str(), tok->kind().c_str(),
                tok->vocab_size(), trained ? "trained" : "loaded", load_s);

    const fs::path tmp = fs::temp_directory_path() / llm::cat("llm-prepare-bench-", ::getpid());
    data.out_dir = tmp / "data";
    std::printf("\n%8s %10s %10s %12s %9s %9s %12s %8s\n", "threads", "MB", "documents", "tokens", "seconds", "MB/s",
                "tokens/s", "speedup");
    double first_rate = 0;
    for (int t : threads) {
      data.threads = t;
      llm::PrepareOptions opt;
      opt.force = true;
      const llm::PrepareResult r = llm::prepare_corpus(data, *tok, opt);
      const double mbps = r.bytes / 1e6 / r.seconds;
      if (first_rate == 0) first_rate = mbps;
      std::printf("%8d %10.2f %10llu %12llu %9.2f %9.2f %12.0f %7.2fx\n", t, r.bytes / 1e6,
                  static_cast<unsigned long long>(r.documents), static_cast<unsigned long long>(r.tokens), r.seconds,
                  mbps, double(r.tokens) / r.seconds, mbps / first_rate);
    }
    fs::remove_all(tmp);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "prepare_throughput: " << e.what() << "\n";
    return 1;
  }
}
