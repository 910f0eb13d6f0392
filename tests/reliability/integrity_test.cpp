// Integrity: one flipped bit in a checkpoint tensor is named by llmgen --model and by --resume
// before the bytes are used; one flipped bit in a shard header is caught when the shard opens;
// llmtrain prepare --verify reads every token and names a bad one.
#include "llm/shard.h"
#include "reliability/reliability_fixture.h"

namespace llm::test {

namespace {

void flip_bit(const std::filesystem::path& file, uint64_t offset, int bit) {
  std::string b = read_bytes(file);
  ASSERT_LT(offset, b.size()) << file;
  b[offset] = static_cast<char>(b[offset] ^ (1 << bit));
  write_bytes(file, b);
}

// Runs a command line with output to `out`; the exit status.
int run(const std::string& cmd, const std::filesystem::path& out) {
  const int st = std::system((cmd + " > " + shell_quote(out.string()) + " 2>&1").c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace

TEST_F(ReliabilityFixture, AFlippedBitInACheckpointIsNamedByLlmgenAndByResume) {
  const std::vector<std::string> sets = {"train.steps=4", "train.eval_every=0"};
  ASSERT_EQ(llmtrain(0, "run", sets).status, 0) << read_bytes(dir / "run.out");
  std::mt19937_64 rng(std::random_device{}());
  namespace fs = std::filesystem;
  // Generation: a bit somewhere in the tensor data of model.safetensors.
  fs::copy(dir / "run/step_00000004", dir / "gen_copy", fs::copy_options::recursive);
  const auto model_bytes = fs::file_size(dir / "gen_copy/model.safetensors");
  flip_bit(dir / "gen_copy/model.safetensors", model_bytes / 2 + rng() % (model_bytes / 2), int(rng() % 8));
  EXPECT_NE(run(cat(LLM_TOOLS_DIR, "/llmgen --model ", shell_quote((dir / "gen_copy").string()), " --prompt hi"),
                dir / "gen.out"),
            0);
  EXPECT_NE(read_bytes(dir / "gen.out").find("gen_copy/model.safetensors: damaged"), std::string::npos)
      << read_bytes(dir / "gen.out");
  // The intact checkpoint loads.
  EXPECT_EQ(
      run(cat(LLM_TOOLS_DIR, "/llmgen --model ", shell_quote((dir / "run").string()), " --prompt hi --max-tokens 2"),
          dir / "gen_ok.out"),
      0)
      << read_bytes(dir / "gen_ok.out");

  // Resume: a bit of the optimizer state.
  const fs::path opt = dir / "run/step_00000004/optimizer.rank00000.safetensors";
  flip_bit(opt, fs::file_size(opt) - 1 - rng() % 1000, int(rng() % 8));
  const auto r = llmtrain(0, "run", {"train.steps=6", "train.eval_every=0"}, {}, "--resume");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("optimizer.rank00000.safetensors: damaged"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "run/step_00000006"));
}

TEST_F(ReliabilityFixture, AFlippedBitInAShardHeaderIsCaughtAndPrepareVerifyReadsEveryToken) {
  ASSERT_EQ(llmtrain(0, "run", {"train.steps=1"}).status, 0) << read_bytes(dir / "run.out");
  namespace fs = std::filesystem;
  const std::string prep = cat(LLM_TOOLS_DIR, "/llmtrain prepare --verify --config ",
                               shell_quote((dir / "c.json").string()), " --set data.out_dir=");
  ASSERT_EQ(run(prep + shell_quote((dir / "shards").string()), dir / "v.out"), 0) << read_bytes(dir / "v.out");
  EXPECT_NE(read_bytes(dir / "v.out").find("every shard intact"), std::string::npos);

  std::mt19937_64 rng(std::random_device{}());
  // Every bit of the header is covered: counts, fingerprint, reserved bytes and the checksum.
  for (int trial = 0; trial < 8; ++trial) {
    fs::remove_all(dir / "bad");
    fs::copy(dir / "shards", dir / "bad", fs::copy_options::recursive);
    const uint64_t at = trial == 0 ? 24 : rng() % kShardHeaderBytes;  // 24: the token count
    flip_bit(dir / "bad/train_00000.tok", at, int(rng() % 8));
    EXPECT_THROW(ShardFile(dir / "bad/train_00000.tok"), Error) << "byte " << at;
  }
  // A token id out of range in the data, found by --verify (the header intact).
  fs::remove_all(dir / "bad");
  fs::copy(dir / "shards", dir / "bad", fs::copy_options::recursive);
  std::string b = read_bytes(dir / "bad/val_00000.tok");
  b[kShardHeaderBytes + 6] = b[kShardHeaderBytes + 7] = '\xff';  // token 3 = 65535 >= vocab 512
  write_bytes(dir / "bad/val_00000.tok", b);
  EXPECT_EQ(run(prep + shell_quote((dir / "bad").string()), dir / "v2.out"), 1) << read_bytes(dir / "v2.out");
  EXPECT_NE(read_bytes(dir / "v2.out").find("token 3 at byte offset 262 is 65535"), std::string::npos)
      << read_bytes(dir / "v2.out");
}

}  // namespace llm::test
