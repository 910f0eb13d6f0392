// Trainer, checkpoint, tokenizer, KV cache, sampler and quantization agreeing end to end.
#include "e2e/e2e_fixture.h"

namespace llm::test {
namespace {

TEST_F(EndToEnd, MemorisedTextIsReproducedGreedilyByLlmgen) {
  const std::string text = kMemorised;
  // From its first words (a cue from the middle would be out of distribution: the model only
  // ever saw those words after the ones before them).
  for (const std::string& cue : {std::string("All human beings are")}) {
    const std::string expected = text.substr(text.find(cue) + cue.size());
    const Proc p = run_tool("llmgen",
                            cat("--model ", path("memorised/latest").string(), " --prompt ", shell_quote(cue),
                                " --temp 0 --repeat-penalty 1 --max-tokens 200 --threads 2"),
                            dir_->path());
    ASSERT_EQ(p.status, 0) << p.err;
    // The continuation starts with the memorised text (it may run on into a second copy).
    const std::string got = p.out.substr(0, std::min(p.out.size(), expected.size()));
    EXPECT_EQ(got, expected.substr(0, got.size())) << "cue: " << cue;
    EXPECT_GE(got.size(), std::min<size_t>(expected.size(), 200)) << "stopped early: " << p.out;
  }
}

double perplexity(const std::string& quant) {
  const Proc p = run_tool("llmgen",
                          cat("--model ", EndToEnd::dir_->path().string(), "/general/latest --perplexity ",
                              (EndToEnd::dir_->path() / "heldout.txt").string(), " --json --quant ", quant,
                              " --quant-group 32 --threads 2"),
                          EndToEnd::dir_->path());
  EXPECT_EQ(p.status, 0) << p.err;
  return nlohmann::json::parse(p.out)["ppl"].get<double>();
}

TEST_F(EndToEnd, QuantizedPerplexityStaysCloseToFp32) {
  // Held-out text: fortunes of another file than the one the model was trained on.
  std::ifstream in(kHeldOutFile, std::ios::binary);
  std::string text(6000, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  text = text.substr(text.find("\n%\n") + 3);
  write_bytes(path("heldout.txt"), text);
  const double fp32 = perplexity("none"), int8 = perplexity("int8"), int4 = perplexity("int4");
  std::printf("held-out perplexity: fp32 %.3f, int8 %.3f (%+.2f%%), int4 %.3f (%+.2f%%)\n", fp32, int8,
              100 * (int8 / fp32 - 1), int4, 100 * (int4 / fp32 - 1));
  EXPECT_LT(fp32, 640.0 / 4) << "the model did not learn";
  EXPECT_LE(std::abs(int8 / fp32 - 1), 0.01);
  EXPECT_LE(std::abs(int4 / fp32 - 1), 0.10);
}

}  // namespace
}  // namespace llm::test
