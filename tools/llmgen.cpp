// llmgen: text generation with a Qwen2 model: one prompt (--prompt), a REPL reading prompts from
// a terminal or a pipe (plain completion or --chat), the perplexity of a file, or an
// OpenAI-compatible HTTP server (--serve). A thin layer over the library (include/llm/chat.h,
// generate.h, serve.h); docs/llmgen.md and docs/serving.md describe the behaviour.
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <csignal>
#include <filesystem>
#include <iostream>
#include <random>

#include "llm/chat.h"
#include "llm/error.h"
#include "llm/generate.h"
#include "llm/gguf_reader.h"
#include "llm/inference.h"
#include "llm/lora.h"
#include "llm/serve.h"

namespace {

// Set by the SIGINT handler and read between tokens. The one piece of global mutable state the
// project allows: a signal handler can safely do nothing but set a sig_atomic_t flag.
volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_sigint(int) { g_interrupted = 1; }

// Ctrl-C then stops the current answer instead of the program (SA_RESTART: reads resume).
// --serve takes SIGTERM the same way: the server drains and exits.
void install_sigint_handler(bool and_sigterm = false) {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  if (and_sigterm) sigaction(SIGTERM, &sa, nullptr);
}

llm::DType parse_dtype(const std::string& s, const llm::Backend& be) {
  return s == "auto" ? be.auto_compute_dtype() : llm::parse_float_dtype(s, "--dtype");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "llmgen: generate text with a Qwen2 model (an HF directory, a run directory or a checkpoint).\n"
      "--prompt answers once on stdout; without it prompts are read line by line (a terminal gets\n"
      "line editing; /help lists the commands); --chat uses the ChatML template; --perplexity\n"
      "scores a text file; --serve answers the OpenAI HTTP API."};
  std::string model_dir, prompt, system(llm::kQwenDefaultSystem), device = "auto", dtype = "auto", quant = "none";
  std::string ppl_file, cuda_graphs = "on";
  llm::FrontendOptions fo;
  int64_t ctx = 4096, quant_group = 64;
  uint64_t seed = 0;
  int threads = 0;
  bool chat = false, stats = false, json = false, serve = false;
  llm::ServeOptions so;
  int64_t parallel = 4;
  app.add_option("--model", model_dir, "model directory (HF, run or checkpoint)")->required();
  std::string lora_dir;
  app.add_option("--lora", lora_dir, "PEFT LoRA adapter directory (adapter_config.json), merged into --model at load");
  auto* prompt_opt = app.add_option("--prompt", prompt, "generate once for this prompt and exit");
  auto* chat_opt = app.add_flag("--chat", chat, "use the model's chat template (ChatML), keeping the conversation");
  app.add_option("--system", system, "chat system prompt (default: Qwen's)")->needs(chat_opt);
  app.add_option("--max-tokens", fo.gen.max_tokens, "tokens to generate at most (-1: until the context is full)")
      ->capture_default_str();
  app.add_option("--temp", fo.sampling.temperature, "temperature (0: greedy)")->capture_default_str();
  app.add_option("--top-k", fo.sampling.top_k, "keep the k most likely tokens (0: off)")->capture_default_str();
  app.add_option("--top-p", fo.sampling.top_p, "nucleus sampling mass in (0, 1] (1: off)")->capture_default_str();
  app.add_option("--min-p", fo.sampling.min_p, "drop tokens below min-p x the top probability (0: off)")
      ->capture_default_str();
  app.add_option("--repeat-penalty", fo.sampling.repeat_penalty, "HF repetition penalty (1: off)")
      ->capture_default_str();
  auto* seed_opt = app.add_option("--seed", seed, "random seed (default: a fresh one, shown with --stats)");
  app.add_option("--stop", fo.gen.stop, "stop when the text contains this string (repeatable; not printed)")
      ->allow_extra_args(false);
  auto* ctx_opt = app.add_option("--ctx", ctx, "context (KV cache) size in tokens")->capture_default_str();
  app.add_option("--device", device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0: all cores)")->capture_default_str();
  app.add_option("--dtype", dtype, "weights, activations and KV cache: auto | fp32 | bf16 | f16")
      ->capture_default_str();
  app.add_option("--quant", quant, "weight-only quantization: none | int8 | int4")->capture_default_str();
  app.add_option("--quant-group", quant_group, "columns per quantization scale (int8: 0 = one per row)")
      ->capture_default_str();
  bool int8_acts = false;
  app.add_flag("--int8-activations", int8_acts,
               "int8/int4 on the CPU: prompts and batched decode on int8-quantized activations (faster, not exact)");
  app.add_option("--cuda-graphs", cuda_graphs, "CUDA: replay each decode step as one recorded graph: on | off")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_flag("--stats", stats, "speed and memory on stderr after every answer");
  auto* ppl_opt = app.add_option("--perplexity", ppl_file, "print the perplexity of this text file");
  auto* json_opt = app.add_flag("--json", json, "with --perplexity: one JSON line");
  auto* serve_opt = app.add_flag("--serve", serve, "serve the OpenAI HTTP API (docs/serving.md)");
  app.add_option("--host", so.host, "--serve: address to listen on")->capture_default_str()->needs(serve_opt);
  app.add_option("--port", so.port, "--serve: port (0: any free port)")->capture_default_str()->needs(serve_opt);
  app.add_option("--parallel", parallel, "--serve: sequences decoded together (KV-cache slots)")
      ->capture_default_str()
      ->needs(serve_opt);
  app.add_option("--queue", so.queue, "--serve: requests waiting for a slot before 503")
      ->capture_default_str()
      ->needs(serve_opt);
  app.add_option("--api-key", so.api_key, "--serve: require Authorization: Bearer KEY")->needs(serve_opt);
  app.add_option("--served-model-name", so.model_name,
                 "--serve: the model's id in the API (default: the directory name)")
      ->needs(serve_opt);
  ppl_opt->excludes(prompt_opt)->excludes(chat_opt);
  json_opt->needs(ppl_opt);
  CLI11_PARSE(app, argc, argv);

  try {
    // Everything that can be checked without the model first: a bad flag should not cost a load.
    fo.sampling.seed = seed_opt->count() ? seed : (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
    fo.sampling.validate("--");
    fo.gen.validate("--");
    LLM_CHECK(ctx > 0, "--ctx: ", ctx, " is not a positive number of tokens");
    LLM_CHECK(threads >= 0, "--threads: ", threads, " is negative (0: all cores)");
    LLM_CHECK(quant_group >= 0, "--quant-group: ", quant_group, " is negative");
    llm::InferenceOptions io;
    io.context = ctx;
    io.quant = llm::parse_quant(quant, "--quant");
    io.quant_group = quant_group;
    io.int8_activations = int8_acts;
    LLM_CHECK(!int8_acts || io.quant != llm::QuantMode::None,
              "--int8-activations: only with --quant int8 or int4 (GGUF blocks always compute this way)");
    LLM_CHECK(!int8_acts || quant_group % 32 == 0, "--int8-activations: --quant-group ", quant_group,
              " is not a multiple of 32 (the blocks of the integer dot products)");
    io.graphs = cuda_graphs == "on";
    if (!lora_dir.empty()) io.lora = llm::locate_adapter(lora_dir);  // checked before the model is loaded
    if (serve) {
      LLM_CHECK(parallel > 0, "--parallel: ", parallel, " is not a positive number of sequences");
      LLM_CHECK(so.port >= 0 && so.port <= 65535, "--port: ", so.port, " is not a port number");
      LLM_CHECK(so.queue >= 0, "--queue: ", so.queue, " is negative");
      LLM_CHECK(!prompt_opt->count() && ppl_file.empty(), "--serve: not with --prompt or --perplexity");
      io.slots = parallel;
      if (so.model_name.empty()) {
        // The directory's name; for a run's `latest` or step_N, the run's.
        std::filesystem::path p = std::filesystem::absolute(model_dir).lexically_normal();
        if (!p.has_filename()) p = p.parent_path();
        if (p.filename() == "latest" || p.filename().string().starts_with("step_")) p = p.parent_path();
        so.model_name = p.filename().string();
      }
    }
    if (dtype != "auto") llm::parse_float_dtype(dtype, "--dtype");
    if (!ppl_file.empty()) {
      LLM_CHECK(std::filesystem::is_regular_file(ppl_file), ppl_file, ": no such file (--perplexity)");
    }
    if (!llm::is_gguf_file(model_dir)) {  // a GGUF file carries its tokenizer
      const llm::ModelFiles files = llm::locate_model(model_dir);
      LLM_CHECK(!files.tokenizer.empty(), model_dir, ": no tokenizer (tokenizer.json or tokenizer.model) in ",
                files.dir.string(), "; llmgen needs one to turn text into tokens");
    }

    const auto backend = llm::make_backend(device, threads);
    io.dtype = parse_dtype(dtype, *backend);
    const auto model = llm::InferenceModel::load(model_dir, *backend, io);
    const llm::Tokenizer& tok = *model->tokenizer();
    if (model->context() < ctx && ctx_opt->count() > 0) {  // the default quietly fits the model
      std::cerr << "llmgen: --ctx " << ctx << " capped at the model's " << model->context() << " positions\n";
    }

    if (!ppl_file.empty()) {
      const std::vector<int32_t> ids = llm::perplexity_tokens(tok, ppl_file);
      const bool tty = ::isatty(2) != 0;
      const llm::PerplexityResult r = llm::perplexity(*model, ids, [&](int64_t w, int64_t n) {
        if (tty && n > 1) std::cerr << "\rperplexity: window " << w << "/" << n << std::flush;
      });
      if (tty && r.windows > 1) std::cerr << "\n";
      if (json) {
        std::cout << llm::perplexity_json(r) << "\n";
      } else {
        std::cout << "perplexity: " << ppl_file << ": " << r.tokens << " tokens, " << r.predicted << " predicted in "
                  << r.windows << " window(s) of up to " << model->context() << ": mean NLL " << r.nll_mean
                  << " nats, perplexity " << r.ppl << "\n";
      }
      return 0;
    }

    if (serve) {
      llm::Server server(*model, tok, so);
      install_sigint_handler(true);
      llm::serve_until(server, so, [] { return g_interrupted != 0; });
      return 0;
    }

    fo.chat = chat;
    fo.system = system;
    fo.stats = stats;
    if (stats) std::cerr << "llmgen: " << backend->name() << ", seed " << fo.sampling.seed << "\n";
    if (prompt_opt->count()) {
      llm::Frontend fe(*model, tok, fo);
      fe.answer(prompt, std::cout, std::cerr);
      if (stats && backend->recorder() != nullptr) {
        std::cerr << "llmgen: decode steps replayed from a CUDA graph: " << model->graph_replays()
                  << (model->graph_error().empty() ? "" : " (graphs off: " + model->graph_error() + ")") << "\n";
      }
      return 0;
    }

    const bool interactive = ::isatty(0) != 0;
    fo.stats = stats || interactive;
    llm::Frontend fe(*model, tok, fo);
    install_sigint_handler();
    const auto lines = interactive ? llm::terminal_line_source() : llm::stream_line_source(std::cin);
    const llm::ReplIo rio{std::cout, std::cerr, interactive, [] { return g_interrupted != 0; },
                          [] { g_interrupted = 0; }};
    const int failed = llm::run_repl(fe, *lines, rio);
    return failed > 0 && !interactive ? 1 : 0;
  } catch (const std::exception& e) {
    std::cout << std::flush;
    std::cerr << "llmgen: error: " << e.what() << "\n";
    return 1;
  }
}
