// REPL commands, /set parsing and validation, and the read-answer loop over a scripted input.
#include <gtest/gtest.h>

#include <deque>
#include <sstream>

#include "gen_test_util.h"
#include "llm/chat.h"
#include "llm/error.h"
#include "test_util.h"

namespace llm::test {
namespace {

void expect_error(const std::function<void()>& f, const std::string& msg) {
  try {
    f();
    ADD_FAILURE() << "no error, expected: " << msg;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), msg);
  }
}

TEST(Repl, ParsesLines) {
  auto is = [](std::string_view line, ReplAction a, std::string text = "", std::string value = "") {
    const ReplCommand c = parse_repl_line(line);
    EXPECT_EQ(int(c.action), int(a)) << line;
    EXPECT_EQ(c.text, text) << line;
    EXPECT_EQ(c.value, value) << line;
  };
  is("hello world", ReplAction::Prompt, "hello world");
  is("hello\r", ReplAction::Prompt, "hello");
  is("  leading space kept", ReplAction::Prompt, "  leading space kept");
  is("   ", ReplAction::None);
  is("", ReplAction::None);
  is("//not a command", ReplAction::Prompt, "/not a command");
  is("/help", ReplAction::Help);
  is(" /reset ", ReplAction::Prompt, " /reset ");  // only a leading / makes a command
  is("/reset", ReplAction::Reset);
  is("/stats", ReplAction::Stats);
  is("/quit", ReplAction::Quit);
  is("/exit", ReplAction::Quit);
  is("/set", ReplAction::Set);
  is("/set temp 0.5", ReplAction::Set, "temp", "0.5");
  is("/set stop   two words  ", ReplAction::Set, "stop", "two words");
  expect_error([] { parse_repl_line("/bogus 1"); }, "/bogus: unknown command; /help lists the commands");
  expect_error([] { parse_repl_line("/reset now"); }, "/reset: takes no arguments");
}

TEST(Repl, SetsAndValidatesParameters) {
  FrontendOptions o;
  apply_setting(o, "temp", "0");
  apply_setting(o, "top-k", "5");
  apply_setting(o, "top-p", "0.5");
  apply_setting(o, "min-p", "0.1");
  apply_setting(o, "repeat-penalty", "1.2");
  apply_setting(o, "seed", "18446744073709551615");
  apply_setting(o, "max-tokens", "-1");
  apply_setting(o, "stop", "END");
  apply_setting(o, "stop", "\\n");
  apply_setting(o, "stats", "on");
  EXPECT_EQ(o.sampling.temperature, 0.0f);
  EXPECT_EQ(o.sampling.top_k, 5);
  EXPECT_EQ(o.sampling.top_p, 0.5f);
  EXPECT_EQ(o.sampling.min_p, 0.1f);
  EXPECT_EQ(o.sampling.repeat_penalty, 1.2f);
  EXPECT_EQ(o.sampling.seed, 18446744073709551615ull);
  EXPECT_EQ(o.gen.max_tokens, -1);
  EXPECT_EQ(o.gen.stop, (std::vector<std::string>{"END", "\\n"}));
  EXPECT_TRUE(o.stats);
  apply_setting(o, "stop", "");
  EXPECT_TRUE(o.gen.stop.empty());

  const FrontendOptions before = o;
  auto bad = [&](std::string_view name, std::string_view value, const std::string& msg) {
    expect_error([&] { apply_setting(o, name, value); }, msg);
    EXPECT_EQ(o.sampling.temperature, before.sampling.temperature);
    EXPECT_EQ(o.sampling.top_p, before.sampling.top_p);
    EXPECT_EQ(o.gen.max_tokens, before.gen.max_tokens);
  };
  bad("temp", "-1", "/set temp: -1 is not a temperature >= 0 (0: greedy)");
  bad("temp", "abc", "/set temp: \"abc\" is not a number");
  bad("temp", "", "/set temp: a value is needed");
  bad("top-p", "2", "/set top-p: 2 is outside (0, 1] (1: off)");
  bad("top-p", "0", "/set top-p: 0 is outside (0, 1] (1: off)");
  bad("top-k", "1.5", "/set top-k: \"1.5\" is not an integer in range");
  bad("max-tokens", "0", "/set max-tokens: 0 is not a positive count (-1: until the context is full)");
  bad("seed", "-3", "/set seed: \"-3\" is not an integer in range");
  bad("stats", "maybe", "/set stats: \"maybe\" is not on or off");
  bad("system", "x", "/set system: only in chat mode (--chat)");
  bad("warmth", "1",
      "/set warmth: unknown parameter; one of: temp, top-k, top-p, min-p, repeat-penalty, seed, max-tokens, stop, "
      "stats, system");
  o.chat = true;
  apply_setting(o, "system", "Be brief.");
  EXPECT_EQ(o.system, "Be brief.");
}

// Lines from a list; an empty optional stands for readline giving up on Ctrl-C (which sets
// *ctrl_c, as the signal handler would).
class ScriptedLines final : public LineSource {
 public:
  explicit ScriptedLines(std::deque<std::optional<std::string>> lines, bool* ctrl_c = nullptr)
      : lines_(std::move(lines)), ctrl_c_(ctrl_c) {}
  std::optional<std::string> read_line(const std::string& prompt) override {
    prompts_ += prompt;
    if (lines_.empty()) return std::nullopt;
    auto l = lines_.front();
    lines_.pop_front();
    if (!l && ctrl_c_) *ctrl_c_ = true;
    return l;
  }
  std::string prompts_;

 private:
  std::deque<std::optional<std::string>> lines_;
  bool* ctrl_c_;
};

class ReplLoop : public ::testing::Test {
 protected:
  void SetUp() override {
    g_ = rng();
    weights_ = peaked_weights(g_, cfg_);
    tok_.set_stop_ids({});
  }
  std::unique_ptr<InferenceModel> model() {
    InferenceOptions io;
    io.context = 64;
    return std::make_unique<InferenceModel>(cfg_, weights_, cpu_, io);
  }
  std::string greedy_answer(const std::string& prompt, int n) {
    auto m = model();
    Session s(*m, tok_);
    SamplingParams p;
    p.temperature = 0;
    p.repeat_penalty = 1;
    Sampler smp(p);
    GenerateOptions o;
    o.max_tokens = n;
    return s.generate(tok_.encode(prompt), smp, o, {}).text;
  }

  std::mt19937_64 g_;
  ModelConfig cfg_ = small_gen_config();
  std::vector<float> weights_;
  CpuBackend cpu_{1};
  ByteTokenizer tok_;
};

TEST_F(ReplLoop, AnswersPromptsRunsCommandsAndStopsAtQuit) {
  auto m = model();
  FrontendOptions fo;
  fo.gen.max_tokens = 3;
  Frontend fe(*m, tok_, fo);
  ScriptedLines in(
      {"/set temp 0", "/set repeat-penalty 1", "abc", "/bogus", "/stats", "", "xyz", "/set", "/quit", "never"});
  std::ostringstream out, err;
  const int failed = run_repl(fe, in, ReplIo{out, err, false, {}, {}});
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(out.str(), greedy_answer("abc", 3) + "\n" + greedy_answer("xyz", 3) + "\n");
  EXPECT_NE(err.str().find("error: /bogus: unknown command"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("prefill: 3 tokens"), std::string::npos) << err.str();  // /stats after "abc"
  EXPECT_NE(err.str().find("temp 0 (greedy)"), std::string::npos) << err.str();    // /set
  EXPECT_EQ(in.prompts_, "");                                                      // not interactive: no prompts
}

TEST_F(ReplLoop, CtrlCAtThePromptCancelsTheLineAndInterruptsAnswers) {
  auto m = model();
  FrontendOptions fo;
  fo.sampling.temperature = 0;
  fo.gen.max_tokens = 10;
  Frontend fe(*m, tok_, fo);
  bool flag = false;
  ScriptedLines in({std::nullopt, "abc"}, &flag);  // Ctrl-C at the first prompt
  std::ostringstream out, err;
  const ReplIo io{out, err, true, [&] { return flag; }, [&] { flag = false; }};
  EXPECT_EQ(run_repl(fe, in, io), 0);
  EXPECT_EQ(in.prompts_, "> > > ");  // the cancelled line, "abc", then the end
  EXPECT_EQ(fe.last_stats()->generated, 10);

  // Ctrl-C during the answer stops it, and the end of input after it still ends the loop.
  int calls = 0;
  ScriptedLines in2({"abc", "/stats"});
  const ReplIo io2{out, err, true, [&] { return flag = flag || ++calls == 3; }, [&] { flag = false; }};
  EXPECT_EQ(run_repl(fe, in2, io2), 0);
  EXPECT_EQ(fe.last_stats()->reason, StopReason::Interrupted);
  EXPECT_EQ(fe.last_stats()->generated, 2);
  EXPECT_EQ(in2.prompts_, "> > > ");
  EXPECT_NE(err.str().find("[interrupted]"), std::string::npos);
}

}  // namespace
}  // namespace llm::test
