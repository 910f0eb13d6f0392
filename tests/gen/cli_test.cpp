// The llmgen binary end to end on a model directory written here (random weights, a
// sentencepiece tokenizer trained on a small synthetic corpus): its output against the library
// on the same model, and one clear error with a non-zero exit for each kind of bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "gen_test_util.h"
#include "llm/chat.h"
#include "llm/generate.h"
#include "llm/hf_weights.h"
#include "test_util.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int status = -1;
  std::string out, err;
};

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

class LlmgenCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("llm_gen_cli_" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_ / "model");
    const auto corpus =
        std::make_shared<std::vector<std::string>>(write_sentencepiece_model(*dir_ / "model", base_seed()));
    // The same model without a tokenizer, and without weights.
    fs::create_directories(*dir_ / "notok");
    fs::copy(*dir_ / "model/config.json", *dir_ / "notok/config.json");
    fs::copy(*dir_ / "model/model.safetensors", *dir_ / "notok/model.safetensors");
    fs::create_directories(*dir_ / "noweights");
    fs::copy(*dir_ / "model/config.json", *dir_ / "noweights/config.json");
    fs::copy(*dir_ / "model/tokenizer.model", *dir_ / "noweights/tokenizer.model");
    fs::create_directories(*dir_ / "empty");
    // A model whose embedding has fewer rows than the tokenizer has ids.
    fs::create_directories(*dir_ / "smallvocab");
    {
      const ModelConfig small = small_gen_config(50);
      std::mt19937_64 sg(7);
      write_hf_config(*dir_ / "smallvocab/config.json", small, DType::F32);
      write_model_safetensors(*dir_ / "smallvocab/model.safetensors", ParamTable(small), peaked_weights(sg, small),
                              DType::F32);
      fs::copy(*dir_ / "model/tokenizer.model", *dir_ / "smallvocab/tokenizer.model");
    }
    // The same model with layer 0's gate and up scaled so that silu(gate) * up passes f16's 65504.
    fs::create_directories(*dir_ / "overflow");
    {
      const ModelConfig cfg = read_hf_config(*dir_ / "model/config.json");
      const ParamTable table(cfg);
      std::vector<float> w = read_model_weights(*dir_ / "model", table, cfg);
      for (const char* name : {"model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight"}) {
        const ParamInfo& p = table.at(name);
        for (int64_t i = 0; i < p.numel; ++i) w[size_t(p.offset + i)] *= 3000.0f;
      }
      fs::copy(*dir_ / "model/config.json", *dir_ / "overflow/config.json");
      write_model_safetensors(*dir_ / "overflow/model.safetensors", table, w, DType::F32);
      fs::copy(*dir_ / "model/tokenizer.model", *dir_ / "overflow/tokenizer.model");
    }
    write_text(*dir_ / "text.txt", (*corpus)[0] + "\n" + (*corpus)[1] + "\n" + (*corpus)[2] + "\n" + (*corpus)[3]);
    write_text(*dir_ / "empty.txt", "");
    write_text(*dir_ / "one.txt", "a");
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
  }

  static fs::path model() { return *dir_ / "model"; }
  static std::string binary() { return std::string(LLM_TOOLS_DIR) + "/llmgen"; }

  // Runs llmgen with args (already quoted where needed) and optional stdin text.
  static CliRun run(const std::string& args, const std::optional<std::string>& input = std::nullopt) {
    CliRun r;
    if (!fs::exists(binary())) {
      ADD_FAILURE() << binary() << " is not built: cmake --build <build dir> --target llmgen";
      return r;
    }
    const fs::path in = *dir_ / "stdin.txt", err = *dir_ / "stderr.txt";
    std::string cmd = binary() + " " + args + " 2> " + quote(err.string());
    if (input) {
      write_text(in, *input);
      cmd += " < " + quote(in.string());
    } else {
      cmd += " < /dev/null";
    }
    FILE* pipe = ::popen(cmd.c_str(), "r");
    if (!pipe) {
      ADD_FAILURE() << "popen failed: " << cmd;
      return r;
    }
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) r.out.append(buf, n);
    const int st = ::pclose(pipe);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.err = read_all(err);
    return r;
  }

  // The library's greedy answer on the same model directory.
  static std::string library_greedy(const std::string& input, int max_tokens, bool chat) {
    CpuBackend cpu(1);
    InferenceOptions io;
    io.context = 4096;
    auto m = InferenceModel::load(model(), cpu, io);
    FrontendOptions fo;
    fo.sampling.temperature = 0;
    fo.sampling.repeat_penalty = 1;
    fo.gen.max_tokens = max_tokens;
    fo.chat = chat;
    Frontend fe(*m, *m->tokenizer(), fo);
    std::ostringstream out, err;
    return fe.answer(input, out, err).text;
  }

  static void expect_failure(const std::string& args, const std::string& message) {
    const CliRun r = run(args);
    EXPECT_NE(r.status, 0) << args;
    EXPECT_NE(r.err.find(message), std::string::npos) << args << "\nstderr: " << r.err;
    EXPECT_EQ(r.out, "") << args;
  }

  static fs::path* dir_;
};
fs::path* LlmgenCli::dir_ = nullptr;

const std::string kGreedy = " --device cpu --threads 1 --temp 0 --repeat-penalty 1";

TEST_F(LlmgenCli, PromptPrintsExactlyTheLibrarysAnswer) {
  const CliRun r = run("--model " + quote(model().string()) + " --prompt 'the cat sat' --max-tokens 12" + kGreedy);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, library_greedy("the cat sat", 12, false) + "\n");
  EXPECT_EQ(r.err.find("capped"), std::string::npos) << "the default context fits the model quietly: " << r.err;
  // An explicit --ctx beyond the model is capped with a note.
  const CliRun big =
      run("--model " + quote(model().string()) + " --prompt 'the cat sat' --max-tokens 12 --ctx 4096" + kGreedy);
  ASSERT_EQ(big.status, 0) << big.err;
  EXPECT_EQ(big.out, r.out);
  EXPECT_NE(big.err.find("--ctx 4096 capped at the model's 256 positions"), std::string::npos) << big.err;
}

TEST_F(LlmgenCli, ChatPromptUsesTheTemplate) {
  const CliRun r =
      run("--model " + quote(model().string()) + " --chat --prompt 'hello world' --max-tokens 10" + kGreedy);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, library_greedy("hello world", 10, true) + "\n");
}

TEST_F(LlmgenCli, SameSeedSameTextAndStatsOnStderr) {
  const std::string args =
      "--model " + quote(model().string()) +
      " --prompt 'a dog' --max-tokens 20 --device cpu --threads 1 --temp 1.2 --top-k 0 --top-p 1 --seed 42";
  const CliRun a = run(args), b = run(args + " --stats");
  ASSERT_EQ(a.status, 0) << a.err;
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(b.err.find("seed 42"), std::string::npos) << b.err;
  EXPECT_NE(b.err.find("prefill: "), std::string::npos) << b.err;
  EXPECT_NE(b.err.find("tok/s"), std::string::npos) << b.err;
  EXPECT_NE(b.err.find("memory: weights "), std::string::npos) << b.err;
  EXPECT_EQ(a.err.find("prefill: "), std::string::npos) << a.err;
}

TEST_F(LlmgenCli, PipedPromptsAreAnsweredLineByLine) {
  const std::string args = "--model " + quote(model().string()) + " --max-tokens 6" + kGreedy;
  const CliRun r = run(args, std::string("the cat\n\nhello world\n"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, library_greedy("the cat", 6, false) + "\n" + library_greedy("hello world", 6, false) + "\n");
  // A bad line is reported, the others answered, and the exit status says something failed.
  const CliRun bad = run(args, std::string("/bogus\nthe cat\n"));
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("error: /bogus: unknown command"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.out, library_greedy("the cat", 6, false) + "\n");
}

TEST_F(LlmgenCli, PerplexityJsonMatchesTheLibrary) {
  const fs::path text = *dir_ / "text.txt";
  const CliRun r = run("--model " + quote(model().string()) + " --perplexity " + quote(text.string()) +
                       " --json --ctx 24 --device cpu --threads 1");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  CpuBackend cpu(1);
  InferenceOptions io;
  io.context = 24;
  auto m = InferenceModel::load(model(), cpu, io);
  const auto ids = perplexity_tokens(*m->tokenizer(), text);
  ASSERT_GT(ids.size(), 24u) << "the text should need several windows";
  const PerplexityResult want = perplexity(*m, ids);
  EXPECT_EQ(j["tokens"].get<int64_t>(), int64_t(ids.size()));
  EXPECT_EQ(j["predicted"].get<int64_t>(), int64_t(ids.size()) - 1);
  EXPECT_NEAR(j["nll_mean"].get<double>(), want.nll_mean, 1e-9 * want.nll_mean);
  EXPECT_NEAR(j["ppl"].get<double>(), want.ppl, 1e-9 * want.ppl);

  const CliRun plain = run("--model " + quote(model().string()) + " --perplexity " + quote(text.string()) +
                           " --ctx 24 --device cpu --threads 1");
  ASSERT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.out.rfind("perplexity: ", 0), 0u) << plain.out;
}

TEST_F(LlmgenCli, EachBadInputIsOneClearError) {
  const std::string m = " --model " + quote(model().string());
  expect_failure("--model " + quote((*dir_ / "missing").string()) + " --prompt x", "missing: no such model directory");
  expect_failure("--model " + quote((*dir_ / "empty").string()) + " --prompt x",
                 "empty: no config.json and no checkpoint");
  expect_failure("--model " + quote((*dir_ / "noweights").string()) + " --prompt x", "model.safetensors");
  expect_failure("--model " + quote((*dir_ / "notok").string()) + " --prompt x",
                 "notok: no tokenizer (tokenizer.json or tokenizer.model)");
  expect_failure(m + " --prompt x --temp -1", "llmgen: error: --temp: -1 is not a temperature >= 0");
  expect_failure(m + " --prompt x --top-p 0", "llmgen: error: --top-p: 0 is outside (0, 1]");
  expect_failure(m + " --prompt x --top-p 1.5", "llmgen: error: --top-p: 1.5 is outside (0, 1]");
  expect_failure(m + " --prompt x --ctx 0", "llmgen: error: --ctx: 0 is not a positive number of tokens");
  expect_failure(m + " --prompt x --quant int3", "llmgen: error: --quant: \"int3\" is not one of: none, int8, int4");
  expect_failure(m + " --prompt x --max-tokens 0", "llmgen: error: --max-tokens: 0 is not a positive count");
  expect_failure(m + " --prompt x --dtype fp8", "--dtype");
  expect_failure(m + " --perplexity " + quote((*dir_ / "empty.txt").string()), "the perplexity file is empty");
  expect_failure(m + " --perplexity " + quote((*dir_ / "one.txt").string()),
                 "token; perplexity needs at least 2 (one to predict from)");
  expect_failure(m + " --perplexity " + quote((*dir_ / "nofile.txt").string()), "nofile.txt: no such file");
  expect_failure(m + " --json", "--json requires --perplexity");
  expect_failure(m + " --prompt x --perplexity " + quote((*dir_ / "text.txt").string()), "excludes");
  expect_failure(m + " --prompt x --stop a b", "The following argument was not expected: b");
  expect_failure(m + " --prompt x --system hi", "--system requires --chat");
  expect_failure("--model " + quote((*dir_ / "smallvocab").string()) + " --prompt x",
                 "ids but the model's vocabulary is 50");
  // A forward that overflows f16: the layer and tensor are named.
  expect_failure("--model " + quote((*dir_ / "overflow").string()) + " --prompt x --dtype f16" + kGreedy,
                 "the logits are not finite (f16): the first non-finite forward value is at layer 0 (model.layers.0) "
                 "mlp silu(gate) * up");
  // A prompt longer than the context.
  expect_failure(m + " --ctx 8 --prompt 'the cat sat on a mat and then it was happy and the dog ran far away'",
                 "context");
}

}  // namespace
}  // namespace llm::test
