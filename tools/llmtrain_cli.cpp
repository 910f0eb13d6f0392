// llmtrain's command line (llmtrain_cli.h): train a Qwen2 model from a config (the default: the
// built-in tiny demo), prepare a corpus into shards, run a tokenizer over stdin, or export a model
// (GGUF, an HF directory, or GGUF + Ollama Modelfile). A thin layer over the library.
#include "llmtrain_cli.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <locale>
#include <optional>

#include "llm/checkpoint.h"
#include "llm/comm.h"
#include "llm/config.h"
#include "llm/error.h"
#include "llm/gguf.h"
#include "llm/lora.h"
#include "llm/memory_plan.h"
#include "llm/model.h"
#include "llm/model_export.h"
#include "llm/planner.h"
#include "llm/prepare.h"
#include "llm/stop_signal.h"
#include "llm/tokenizer.h"
#include "llm/trainer.h"

namespace {

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

llm::Config load(const std::string& file, std::vector<std::string> sets, const std::string& device, int threads) {
  if (!device.empty()) sets.push_back("train.device=" + device);
  if (threads >= 0) sets.push_back("train.threads=" + std::to_string(threads));
  return file.empty() ? llm::default_config(sets) : llm::load_config(file, sets);
}

void print_plan(const llm::Config& cfg, int world) {
  const llm::ParamTable t(cfg.model.arch);
  const auto& m = cfg.model.arch;
  std::cout << "model: " << with_commas(t.count()) << " parameters (" << (m.tie_word_embeddings ? "tied" : "untied")
            << " output layer), " << m.num_hidden_layers << " layers, hidden " << m.hidden_size << ", heads "
            << m.num_attention_heads << "/" << m.num_key_value_heads << ", head_dim " << m.head_dim()
            << ", intermediate " << m.intermediate_size << ", vocab " << m.vocab_size << "\n";
  std::cout << "train: seq_len " << cfg.train.seq_len << ", micro_batch " << cfg.train.micro_batch << ", grad_accum "
            << cfg.train.grad_accum << ", steps " << cfg.train.steps << ", precision "
            << llm::precision_name(cfg.train.precision) << ", recompute " << llm::recompute_name(cfg.train.recompute)
            << ", device " << cfg.train.device << "\n";
  std::cout << "run_dir: " << cfg.io.run_dir.string() << "\n";

  // The plan for the device the config names (auto: the CUDA plan when this build has CUDA).
  llm::PlanOptions po;
#if defined(LLM_HAVE_CUDA)
  const bool cuda = cfg.train.device != "cpu";
#else
  const bool cuda = cfg.train.device.starts_with("cuda");
#endif
  po.device = cuda ? llm::DeviceKind::CUDA : llm::DeviceKind::CPU;
  po.zero = cfg.dist.zero;
  po.world = world;
  po.ce_chunk_tokens = cfg.train.ce_chunk_tokens;
  llm::ModelOptions mo;
  mo.compute_dtype = cfg.train.precision == llm::Precision::Auto   ? (cuda ? llm::DType::BF16 : llm::DType::F32)
                     : cfg.train.precision == llm::Precision::BF16 ? llm::DType::BF16
                     : cfg.train.precision == llm::Precision::FP16 ? llm::DType::F16
                                                                   : llm::DType::F32;
  mo.recompute = cfg.train.recompute;
  mo.max_batch = cfg.train.micro_batch;
  mo.max_seq = cfg.train.seq_len;
  mo.lora = cfg.train.lora;
  const llm::MemoryPlan plan = llm::plan_training_memory(m, mo, po);
  std::cout << "memory plan per rank (" << (cuda ? "cuda" : "cpu") << ", " << llm::dtype_name(mo.compute_dtype)
            << ", recompute " << llm::recompute_name(mo.recompute) << "):\n";
  auto gib = [](size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0 * 1024.0); };
  for (const auto& line : plan.lines) {
    std::printf("  %-30s %9.3f GiB  %s\n", line.what.c_str(), gib(line.bytes), line.note.c_str());
  }
  std::printf("  %-30s %9.3f GiB\n", "total", gib(plan.total()));
  if (cuda) {
    for (double card : {16.0, 24.0}) {
      std::printf("  fits a %.0f GB card: %s\n", card, gib(plan.total()) * 1.0737 < card * 0.95 ? "yes" : "no");
    }
  }
}

// llmtrain export: the chosen writer, then what was written (stderr) and, for Ollama, the two
// commands that install and run the model (stdout).
int run_export(const std::string& to, const std::string& model, const std::string& out, const std::string& type,
               const std::string& dtype, const std::string& shard, const CLI::App& cmd) {
  LLM_CHECK(to == "gguf" || to == "hf" || to == "ollama", "--to: \"", to,
            "\" is not a supported format (gguf, hf, ollama)");
  LLM_CHECK(to == "hf" || cmd.count("--dtype") + cmd.count("--max-shard-size") == 0,
            "--dtype and --max-shard-size are for --to hf; use --type for ", to);
  LLM_CHECK(to != "hf" || cmd.count("--type") == 0, "--type is for --to gguf or ollama; use --dtype for hf");
  if (to == "hf") {
    llm::HfExportOptions o;
    if (dtype == "bf16") {
      o.dtype = llm::DType::BF16;
    } else if (dtype == "f16") {
      o.dtype = llm::DType::F16;
    } else {
      LLM_CHECK(dtype == "f32", "--dtype: \"", dtype, "\" is not one of: bf16, f16, f32");
      o.dtype = llm::DType::F32;
    }
    o.max_shard_bytes = llm::parse_byte_size(shard, "--max-shard-size");
    const auto r = llm::export_hf(model, out, o);
    std::cerr << "export: " << r.dir.string() << " (" << r.weight_bytes << " bytes of weights in " << r.shards
              << (r.shards == 1 ? " file" : " shards") << "; files:";
    for (const auto& f : r.files) std::cerr << " " << f;
    std::cerr << ")\n";
    return 0;
  }
  const auto file_type = llm::parse_gguf_file_type(type.empty() ? (to == "ollama" ? "q4_k_m" : "f16") : type, "--type");
  auto print = [](const llm::GgufExportResult& r, const std::filesystem::path& file) {
    std::cerr << "export: " << file.string() << " (" << r.bytes << " bytes; tensors:";
    for (const auto& [t, n] : r.tensors_by_type) std::cerr << " " << n << " " << t;
    std::cerr << ")\n";
  };
  if (to == "gguf") {
    const auto r = llm::export_gguf(model, out, file_type);
    print(r, r.file);
    return 0;
  }
  const auto r = llm::export_ollama(model, out, file_type);
  print(r.gguf_result, r.gguf);
  std::cerr << "export: " << r.modelfile.string() << "\n";
  std::cout << "ollama create " << r.name << " -f " << r.modelfile.string() << "\nollama run " << r.name << "\n";
  return 0;
}

}  // namespace

namespace llm {

int llmtrain_main(int argc, char** argv, const TrainHooks& hooks) {
  CLI::App app{
      "llmtrain: pretrain or continue pretraining a Qwen2 model.\n"
      "Without --config it trains the built-in tiny demo (configs/tiny.json) on the CPU."};
  app.require_subcommand(0, 1);
  std::string config, device;
  std::vector<std::string> sets;
  int threads = -1;
  bool resume = false, dry_run = false;
  int64_t stop_at = -1;
  auto add_config = [&](CLI::App* a) {
    a->add_option("--config", config, "config file (JSON); default: the built-in tiny demo")->check(CLI::ExistingFile);
    a->add_option("--set", sets, "override a config value: section.key=value (repeatable)");
  };
  add_config(&app);
  app.add_option("--device", device, "auto | cpu | cuda | cuda:N (overrides train.device)");
  app.add_option("--threads", threads, "CPU threads, 0 = all cores (overrides train.threads)");
  app.add_flag("--resume", resume, "continue from the newest complete checkpoint in io.run_dir");
  app.add_option("--stop-at", stop_at, "stop with a checkpoint after this step (the schedule still spans train.steps)");
  app.add_flag("--dry-run", dry_run, "print the model and the plan, allocate nothing");
  int world = 1;
  app.add_option("--world", world, "with --dry-run: plan for this many ranks (ZeRO splits)")
      ->check(CLI::PositiveNumber);
  std::string gpu;
  app.add_option("--gpu", gpu,
                 "with --dry-run: plan for this card (t4, v100-16, v100-32, a10, l4, a100-40, a100-80, h100, "
                 "rtx3090, rtx4090, all): memory, tokens/s and MFU per precision, recompute and micro-batch");

  auto* prepare = app.add_subcommand("prepare", "tokenize the configured corpus into shards (skipped when up to date)");
  bool force = false, verify = false;
  add_config(prepare);
  prepare->add_flag("--force", force, "prepare even if the shards are up to date");
  prepare->add_flag("--verify", verify, "then read every token of every shard and check it (header checksums, ids)");

  auto* tokenize = app.add_subcommand("tokenize", "ids of stdin lines as JSON arrays, one per line (or --decode)");
  std::string tok_path;
  llm::TokenizeStreamOptions topt;
  tokenize->add_option("--tokenizer", tok_path, "tokenizer.json, a directory holding it, or a sentencepiece .model")
      ->required();
  tokenize->add_flag("--jsonl", topt.jsonl, "input lines are JSON strings");
  tokenize->add_flag("--decode", topt.decode, "input lines are JSON arrays of ids; print the texts as JSON strings");
  tokenize->add_option("--threads", topt.threads, "threads (0: all cores)");

  auto* export_cmd = app.add_subcommand("export", "write a model for llama.cpp (GGUF), Hugging Face tools or Ollama");
  std::string export_model, export_to = "gguf", export_type, export_out, export_dtype = "bf16", export_shard = "5GB";
  export_cmd->add_option("--model", export_model, "run, checkpoint or HF Qwen2 directory")->required();
  export_cmd->add_option("--to", export_to,
                         "gguf (a file) | hf (a directory) | ollama (a directory: GGUF + Modelfile)");
  export_cmd->add_option(
      "--type", export_type,
      "gguf/ollama: f32 | f16 | bf16 | q8_0 | q4_0 | q4_k_m (default: f16 for gguf, q4_k_m for ollama)");
  export_cmd->add_option("--dtype", export_dtype, "hf: bf16 | f16 | f32 safetensors (default bf16)");
  export_cmd->add_option("--max-shard-size", export_shard, "hf: split weights above this size (default 5GB)");
  export_cmd->add_option("--out", export_out, "the .gguf file (gguf) or the directory (hf, ollama) to write")
      ->required();
  std::string export_lora;
  export_cmd->add_option("--lora", export_lora, "PEFT LoRA adapter (or LoRA run) directory merged into --model first");
  bool export_merge = false;
  export_cmd->add_flag("--merge-lora", export_merge, "with --lora: merge the adapter (the only way one is exported)");

  auto* merge_cmd = app.add_subcommand("merge-lora", "merge a PEFT LoRA adapter into its base: an HF model directory");
  std::string merge_model, merge_lora_dir, merge_out, merge_dtype = "f32";
  merge_cmd->add_option("--model", merge_model, "the base: run, checkpoint or HF Qwen2 directory")->required();
  merge_cmd->add_option("--lora", merge_lora_dir, "PEFT adapter directory or LoRA run directory")->required();
  merge_cmd->add_option("--out", merge_out, "the HF model directory to write")->required();
  merge_cmd->add_option("--dtype", merge_dtype, "f32 | bf16 | f16 (default f32)");

  CLI11_PARSE(app, argc, argv);
  // Training under mpirun: one rank per process. Created (MPI_Init) only for training, so the
  // other commands never need an MPI runtime; destroyed (MPI_Finalize) before main returns.
  std::unique_ptr<llm::Communicator> comm;
  try {
    if (tokenize->parsed()) {
      std::ios::sync_with_stdio(false);
      const auto tok = llm::load_tokenizer(tok_path);
      llm::tokenize_stream(*tok, std::cin, std::cout, topt);
      return 0;
    }
    if (merge_cmd->parsed()) {
      llm::merge_lora_directory(merge_model, merge_lora_dir, merge_out, llm::parse_float_dtype(merge_dtype, "--dtype"));
      std::cerr << "merge-lora: " << merge_out << "\n";
      return 0;
    }
    if (export_cmd->parsed()) {
      // --lora: the merged model (fp32) in a temporary directory next to the output, exported from there.
      LLM_CHECK(export_merge == !export_lora.empty(), "--merge-lora and --lora go together (the adapter is merged)");
      std::optional<llm::TempMergedModel> merged;
      if (!export_lora.empty()) merged.emplace(export_model, export_lora, export_out);
      return run_export(export_to, merged ? merged->dir().string() : export_model, export_out, export_type,
                        export_dtype, export_shard, *export_cmd);
    }
    LLM_CHECK(gpu.empty() || dry_run, "--gpu: only with --dry-run (the planner)");
    const llm::Config cfg = load(config, sets, device, threads);
    auto print_notes = [&] {
      for (const auto& n : cfg.notes) std::cerr << "config: deepspeed " << n << "\n";
    };
    if (prepare->parsed() || dry_run) print_notes();
    if (prepare->parsed()) {
      llm::PrepareOptions po = llm::PrepareOptions::to_stderr();
      po.force = force;
      const llm::PrepareResult r = llm::prepare_corpus(cfg.data, cfg.tokenizer, po);
      if (r.up_to_date) std::cerr << "prepare: " << cfg.data.out_dir.string() << " is up to date\n";
      if (verify) {
        const uint64_t n = llm::verify_prepared_corpus(cfg.data.out_dir, nullptr);
        std::cerr << "verify: " << cfg.data.out_dir.string() << ": every shard intact, " << n << " tokens checked\n";
      }
      return 0;
    }
    if (dry_run) {
      print_plan(cfg, world);
      if (!gpu.empty()) {
        std::cout << "\n";
        llm::print_gpu_plans(cfg, gpu, world, std::cout);
      }
      return 0;
    }
    llm::TrainOptions to;
    to.resume = resume || cfg.io.resume;
    to.stop_at = stop_at;
    comm = llm::make_communicator();
    to.comm = comm.get();
    to.hooks = hooks;
    if (comm->rank() == 0) print_notes();
    // SIGTERM/SIGINT (preemption, Ctrl-C, mpirun forwarding either): finish the step, checkpoint, exit 75.
    const llm::StopSignals stop;
    to.stop_requested = [&stop] { return stop.requested(); };
    const llm::TrainResult r = llm::train(cfg, to);
    if (r.stopped) {
      if (comm->rank() == 0) {
        std::cerr << "stopped by signal " << stop.signal() << " after step " << r.steps_done
                  << "; checkpoint: " << r.last_checkpoint.string() << " (continue with --resume)\n";
      }
      return llm::kExitStopped;
    }
    if (comm->rank() != 0) return 0;
    std::cerr << "done: " << r.steps_done << " steps in " << static_cast<int>(r.seconds) << " s";
    if (r.first_val_loss && r.last_val_loss) {
      std::cerr << ", validation loss " << *r.first_val_loss << " -> " << *r.last_val_loss;
    }
    std::cerr << "\nmodel: " << r.last_checkpoint.string() << "  (llmgen --model " << cfg.io.run_dir.string()
              << "/latest)\n";
    return 0;
  } catch (const llm::CheckpointWriteError& e) {
    // Thrown on every rank alike: no rank waits in a collective, no abort needed.
    if (!comm || comm->rank() == 0) std::cerr << "llmtrain: error: " << e.what() << "\n";
    return llm::kExitSaveFailed;
  } catch (const std::exception& e) {
    if (comm && comm->world() > 1) {
      // A rank that failed alone must not leave the others waiting in their next collective.
      std::cerr << "llmtrain: error (rank " << comm->rank() << " of " << comm->world() << "): " << e.what() << "\n"
                << std::flush;
      comm->abort_job(1);
    }
    std::cerr << "llmtrain: error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace llm
