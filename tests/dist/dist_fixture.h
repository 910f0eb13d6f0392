// Distributed training tests: the trainer fixture's corpus and config, run by llmtrain (its test
// build with hooks, llmtrain_hooked) under `mpirun --oversubscribe -np N` (or alone), and readers
// for what the runs leave: metrics.jsonl records and the optimizer state stitched from the
// per-rank shards.
#pragma once

#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <map>

#include "llm/safetensors.h"
#include "train/train_fixture.h"

namespace llm::test {

struct LaunchResult {
  int status = -1;  // exit status (-1: killed by a signal)
  std::string output;
  double seconds = 0;
};

class DistFixture : public TrainFixture {
 protected:
  void SetUp() override {
#ifndef LLM_HAVE_MPI
    GTEST_SKIP() << "built without MPI (LLM_MPI=OFF or MPI not found)";
#else
    TrainFixture::SetUp();
    // OpenMPI refuses to run as root without these (CI containers run as root).
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    write_bytes(dir / "c.json", config_json());
#endif
  }

  // Runs llmtrain on the fixture's config with io.run_dir = dir/run_name: np ranks under mpirun,
  // or one plain process for np = 0. env: NAME=VALUE for every rank.
  LaunchResult llmtrain(int np, const std::string& run_name, const std::vector<std::string>& sets,
                        const std::vector<std::string>& env = {}, const std::string& extra = "") const {
    const auto t0 = std::chrono::steady_clock::now();
    const int st = std::system(llmtrain_command(np, run_name, sets, env, extra).c_str());
    LaunchResult r;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.output = read_bytes(dir / (run_name + ".out"));
    return r;
  }

  // The shell command llmtrain() runs (output to dir/<run_name>.out).
  std::string llmtrain_command(int np, const std::string& run_name, const std::vector<std::string>& sets,
                               const std::vector<std::string>& env = {}, const std::string& extra = "") const {
    std::string cmd;
    if (np > 0) {
#ifdef LLM_MPIEXEC
      cmd = cat(LLM_MPIEXEC, " --oversubscribe --bind-to none -np ", np);
#endif
      for (const auto& e : env) cmd += " -x " + shell_quote(e);
    } else {
      cmd = "env";
      for (const auto& e : env) cmd += " " + shell_quote(e);
    }
    // llmtrain_hooked: llmtrain with the hooks of the LLM_TEST_* variables in env (tests/tools).
    cmd += cat(" ", LLM_TEST_TOOLS_DIR, "/llmtrain_hooked --config ", shell_quote((dir / "c.json").string()));
    // One thread per rank (ranks share the cores), and a finite timeout in case of a bug.
    for (const std::string& s : {std::string("train.threads=1"), std::string("dist.timeout_s=60"),
                                 "io.run_dir=" + (dir / run_name).string()}) {
      cmd += " --set " + shell_quote(s);
    }
    for (const auto& s : sets) cmd += " --set " + shell_quote(s);
    const std::filesystem::path out = dir / (run_name + ".out");
    return cmd + cat(" ", extra, " > ", shell_quote(out.string()), " 2>&1");
  }

  // The metrics.jsonl records of a run holding `key`.
  std::vector<nlohmann::json> records(const std::string& run_name, const std::string& key) const {
    std::ifstream in(dir / run_name / "metrics.jsonl");
    std::vector<nlohmann::json> out;
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      if (j.contains(key)) out.push_back(std::move(j));
    }
    return out;
  }

  // Tensor `name` ("master", "m", "v") of the whole flat layout, stitched from every rank's
  // optimizer shard of the checkpoint; checks the shards cover it exactly once.
  static std::vector<float> optimizer_flat(const std::filesystem::path& ckpt, const std::string& name) {
    std::map<int64_t, std::vector<float>> parts;
    for (const auto& e : std::filesystem::directory_iterator(ckpt)) {
      const std::string f = e.path().filename().string();
      if (!f.starts_with("optimizer.rank")) continue;
      const SafetensorsReader r(e.path());
      parts[std::stoll(r.metadata().at("begin"))] = r.read_f32(name);
    }
    std::vector<float> flat;
    for (const auto& [begin, values] : parts) {
      EXPECT_EQ(begin, int64_t(flat.size())) << ckpt << ": shards leave a gap or overlap";
      flat.insert(flat.end(), values.begin(), values.end());
    }
    return flat;
  }
};

}  // namespace llm::test
