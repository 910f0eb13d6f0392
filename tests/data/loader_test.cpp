#include "llm/loader.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "data_test_util.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;
using Window = std::vector<int32_t>;  // ids then targets of one sample

// A random token stream cut into shards of awkward sizes (one may be empty).
struct Corpus {
  TempDir dir;
  std::vector<int32_t> tokens;
  std::vector<fs::path> shards;

  Corpus(std::mt19937_64& g, size_t n, int nshards, int32_t vocab = 5000) {
    std::uniform_int_distribution<int32_t> d(0, vocab - 1);
    tokens.resize(n);
    for (auto& t : tokens) t = d(g);
    std::vector<size_t> cuts = {0, n};
    for (int i = 1; i < nshards; ++i) cuts.push_back(g() % (n + 1));
    std::sort(cuts.begin(), cuts.end());
    for (size_t i = 0; i + 1 < cuts.size(); ++i) {
      shards.push_back(dir / ("train_" + std::to_string(i) + ".tok"));
      write_shard(shards.back(), std::span<const int32_t>(tokens).subspan(cuts[i], cuts[i + 1] - cuts[i]),
                  static_cast<uint32_t>(vocab), "fp", 0);
    }
  }
  TokenStream stream() const { return TokenStream(shards, "fp"); }

  // Brute force: the sample windows, straight from the definition in loader.h.
  std::vector<Window> all_windows(int64_t T) const {
    std::vector<Window> out;
    for (size_t s = 0; (s + 1) * size_t(T) + 1 <= tokens.size(); ++s) {
      Window w(tokens.begin() + static_cast<std::ptrdiff_t>(s * T),
               tokens.begin() + static_cast<std::ptrdiff_t>(s * T + T));
      w.insert(w.end(), tokens.begin() + static_cast<std::ptrdiff_t>(s * T + 1),
               tokens.begin() + static_cast<std::ptrdiff_t>(s * T + T + 1));
      out.push_back(std::move(w));
    }
    return out;
  }
};

Window row_of(const Batch& b, int64_t row) {
  Window w(b.ids.begin() + row * b.T, b.ids.begin() + (row + 1) * b.T);
  w.insert(w.end(), b.targets.begin() + row * b.T, b.targets.begin() + (row + 1) * b.T);
  return w;
}

void sort_windows(std::vector<Window>& v) { std::sort(v.begin(), v.end()); }

TEST(ShardLoader, EveryEpochSampleOnceAcrossRanks) {
  auto g = rng();
  for (int world : {1, 2, 3, 1, 2, 3}) {
    const int64_t B = 2 + int64_t(g() % 3), T = 2 + int64_t(g() % 8);
    // N not a multiple of B: some rank's batch holds the end of one epoch and the start of the next.
    uint64_t samples = 50 + g() % 150;
    if (samples % uint64_t(B) == 0) ++samples;
    Corpus c(g, samples * uint64_t(T) + 1 + g() % uint64_t(T), 1 + int(g() % 4));
    std::vector<Window> expected = c.all_windows(T);
    const uint64_t N = expected.size();
    ASSERT_EQ(N, samples);
    sort_windows(expected);
    const uint64_t seed = g();
    std::vector<std::unique_ptr<ShardLoader>> ranks;
    for (int r = 0; r < world; ++r) {
      ranks.push_back(std::make_unique<ShardLoader>(
          c.stream(),
          LoaderOptions{.batch_size = B, .seq_len = T, .rank = r, .world = world, .seed = seed, .prefetch = 3}));
    }
    ASSERT_EQ(ranks[0]->samples_per_epoch(), N);
    // Two epochs: the step that crosses the boundary must complete the first and start the second.
    std::vector<std::vector<Window>> seen(3);
    const uint64_t step = uint64_t(world * B);
    for (uint64_t pos = 0; pos < 2 * N; pos += step) {
      for (int r = 0; r < world; ++r) {
        const Batch b = ranks[size_t(r)]->next();
        ASSERT_EQ(b.position, pos);
        ASSERT_EQ(b.B, B);
        ASSERT_EQ(b.rows, B);
        ASSERT_EQ(b.ids.size(), size_t(B * T));
        for (int64_t row = 0; row < B; ++row) {
          const uint64_t p = pos + uint64_t(r * B + row);
          seen[p / N].push_back(row_of(b, row));
        }
      }
    }
    for (int e = 0; e < 2; ++e) {
      sort_windows(seen[size_t(e)]);
      EXPECT_EQ(seen[size_t(e)], expected) << "world " << world << " B " << B << " T " << T << " epoch " << e;
    }
  }
}

TEST(ShardLoader, EpochsHaveDifferentOrders) {
  auto g = rng();
  Corpus c(g, 4000, 2);
  ShardLoader l(c.stream(), {.batch_size = 1, .seq_len = 8, .seed = g()});
  const uint64_t N = l.samples_per_epoch();
  std::vector<Window> e0, e1;
  for (uint64_t i = 0; i < N; ++i) e0.push_back(row_of(l.next(), 0));
  for (uint64_t i = 0; i < N; ++i) e1.push_back(row_of(l.next(), 0));
  EXPECT_NE(e0, e1);
  EXPECT_NE(e0, c.all_windows(8));  // shuffled, not in stream order
  sort_windows(e0);
  sort_windows(e1);
  EXPECT_EQ(e0, e1);
}

std::vector<Batch> take(ShardLoader& l, size_t n) {
  std::vector<Batch> out;
  for (size_t i = 0; i < n; ++i) out.push_back(l.next());
  return out;
}

void expect_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].position, b[i].position) << i;
    EXPECT_EQ(a[i].ids, b[i].ids) << i;
    EXPECT_EQ(a[i].targets, b[i].targets) << i;
  }
}

TEST(ShardLoader, SameSeedSameBatchesOtherSeedOtherOrder) {
  auto g = rng();
  Corpus c(g, 3000, 3);
  const uint64_t seed = g();
  LoaderOptions o{.batch_size = 3, .seq_len = 7, .rank = 1, .world = 2, .seed = seed, .prefetch = 2};
  ShardLoader a(c.stream(), o), b(c.stream(), o);
  const size_t steps = 2 * a.samples_per_epoch() / 6 + 3;  // past an epoch boundary
  expect_same(take(a, steps), take(b, steps));
  o.seed = seed + 1;
  ShardLoader other(c.stream(), o);
  ShardLoader again(c.stream(), {.batch_size = 3, .seq_len = 7, .rank = 1, .world = 2, .seed = seed, .prefetch = 2});
  EXPECT_NE(take(other, 5)[4].ids, take(again, 5)[4].ids);
}

TEST(ShardLoader, CursorRestoresExactlyAcrossAnEpochBoundary) {
  auto g = rng();
  Corpus c(g, 2000 + g() % 500, 3);
  const LoaderOptions o{.batch_size = 4, .seq_len = 5, .rank = 0, .world = 1, .seed = g(), .prefetch = 4};
  ShardLoader a(c.stream(), o);
  const uint64_t N = a.samples_per_epoch();
  const uint64_t steps_per_epoch = N / 4;
  // Save mid-epoch, a few steps before the boundary, then read across it.
  const size_t before = size_t(steps_per_epoch) - 2 - g() % 3;
  take(a, before);
  const DataCursor saved = a.cursor();
  EXPECT_EQ(saved.position(), before * 4);
  const std::string text = saved.to_json().dump();
  const std::vector<Batch> rest = take(a, 8);
  ASSERT_GT(rest.back().epoch, 0u);  // the boundary was crossed

  ShardLoader b(c.stream(), o);
  take(b, 3);  // restoring also works on a loader that has moved on
  b.restore(DataCursor::from_json(nlohmann::json::parse(text), "trainer_state.data"));
  EXPECT_EQ(b.cursor(), saved);
  expect_same(take(b, 8), rest);
  EXPECT_EQ(b.cursor(), a.cursor());
}

TEST(ShardLoader, ResumeWithAnotherWorldSizeStillSeesEachSampleOnce) {
  auto g = rng();
  Corpus c(g, 1500, 2);
  const int64_t T = 4;
  std::vector<Window> expected = c.all_windows(T);
  const uint64_t N = expected.size();
  sort_windows(expected);
  const uint64_t seed = g();
  std::vector<Window> seen;
  // Two ranks with B = 3 for a few steps, then three ranks with B = 2 to the end of the epoch.
  std::vector<std::unique_ptr<ShardLoader>> two;
  for (int r = 0; r < 2; ++r)
    two.push_back(std::make_unique<ShardLoader>(
        c.stream(), LoaderOptions{.batch_size = 3, .seq_len = T, .rank = r, .world = 2, .seed = seed}));
  for (int s = 0; s < 7; ++s) {
    for (auto& l : two) {
      const Batch b = l->next();
      for (int64_t row = 0; row < b.B; ++row) seen.push_back(row_of(b, row));
    }
  }
  const DataCursor cur = two[0]->cursor();
  EXPECT_EQ(cur, two[1]->cursor());  // the cursor does not depend on the rank
  std::vector<std::unique_ptr<ShardLoader>> three;
  for (int r = 0; r < 3; ++r) {
    three.push_back(std::make_unique<ShardLoader>(
        c.stream(), LoaderOptions{.batch_size = 2, .seq_len = T, .rank = r, .world = 3, .seed = seed}));
    three.back()->restore(cur);
  }
  for (uint64_t pos = cur.position(); pos < N; pos += 6) {
    for (int r = 0; r < 3; ++r) {
      const Batch b = three[size_t(r)]->next();
      for (int64_t row = 0; row < b.B; ++row) {
        if (pos + uint64_t(r * 2 + row) < N) seen.push_back(row_of(b, row));
      }
    }
  }
  sort_windows(seen);
  EXPECT_EQ(seen, expected);
}

TEST(ShardLoader, CursorErrors) {
  auto g = rng();
  Corpus c(g, 500, 1);
  ShardLoader l(c.stream(), {.batch_size = 2, .seq_len = 4, .seed = 7});
  DataCursor cur = l.cursor();
  cur.seed = 8;
  expect_error([&] { l.restore(cur); }, {"data cursor", "seed 8", "uses 7"});
  cur = l.cursor();
  cur.samples_per_epoch += 1;
  expect_error([&] { l.restore(cur); }, {"data cursor", "samples per epoch", "prepared again"});
  cur = l.cursor();
  cur.seq_len = 5;
  expect_error([&] { l.restore(cur); }, {"data cursor", "seq_len 5", "uses 4"});
  nlohmann::json j = l.cursor().to_json();
  j.erase("seed");
  expect_error([&] { DataCursor::from_json(j, "state.data"); }, {"state.data.seed", "non-negative integer"});
  j = l.cursor().to_json();
  j["bogus"] = 1;
  expect_error([&] { DataCursor::from_json(j, "state.data"); }, {"state.data.bogus", "unknown key", "seq_len"});
  j = l.cursor().to_json();
  j["sample"] = j["samples_per_epoch"];
  expect_error([&] { DataCursor::from_json(j, "state.data"); }, {"state.data", "not below samples_per_epoch"});
}

TEST(ShardLoader, TooFewTokensForOneSample) {
  auto g = rng();
  Corpus c(g, 8, 2);
  expect_error([&] { ShardLoader l(c.stream(), {.batch_size = 1, .seq_len = 8}); },
               {"data loader", "8 tokens", "seq_len + 1 = 9"});
  expect_error([&] { ShardLoader l(c.stream(), {.batch_size = 1, .seq_len = 2, .rank = 2, .world = 2}); },
               {"data loader", "rank 2"});
}

TEST(ShardLoader, BadTokenFoundByThePrefetchThreadIsRethrown) {
  auto g = rng();
  TempDir dir;
  std::vector<int32_t> ids(400, 5);
  const size_t k = 100 + g() % 200;
  ids[k] = 999;  // written with vocab 1000, then the header is patched to vocab 999
  const fs::path p = dir / "t.tok";
  write_shard(p, ids, 1000, "fp", 1);
  {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    const unsigned char v[4] = {0xE7, 0x03, 0, 0};  // 999
    f.write(reinterpret_cast<const char*>(v), 4);
    f.seekp(248);  // the header checksum zeroed: a shard from before checksums, read unchecked
    const unsigned char zeros[8] = {};
    f.write(reinterpret_cast<const char*>(zeros), 8);
  }
  ShardLoader l(TokenStream({p}, "fp"), {.batch_size = 2, .seq_len = 10, .seed = g(), .prefetch = 2});
  const std::string msg = expect_error(
      [&] {
        for (int i = 0; i < 100; ++i) l.next();
      },
      {p.string(), "token " + std::to_string(k) + " at byte offset " + std::to_string(256 + 2 * k), "is 999"});
  EXPECT_FALSE(msg.empty());
}

TEST(ShardLoader, DestroyedMidEpochWithoutHanging) {
  auto g = rng();
  Corpus c(g, 50000, 3);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) {
    ShardLoader l(c.stream(), {.batch_size = 8, .seq_len = 16, .seed = g(), .prefetch = 1 + i % 4});
    for (int k = 0; k < i % 5; ++k) l.next();
    if (i % 7 == 0) l.restore(l.cursor());
  }  // each destructor stops a thread that is blocked on a full queue or mid-batch
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
}

TEST(EvalLoader, FixedOrderSplitAcrossRanksWithPadding) {
  auto g = rng();
  for (int world : {1, 2, 3}) {
    const int64_t B = 1 + int64_t(g() % 4), T = 2 + int64_t(g() % 6);
    Corpus c(g, 100 + g() % 300, 2);
    const std::vector<Window> expected = c.all_windows(T);  // in stream order
    std::vector<EvalLoader> ranks;
    for (int r = 0; r < world; ++r)
      ranks.emplace_back(c.stream(), EvalOptions{.batch_size = B, .seq_len = T, .rank = r, .world = world});
    const int64_t nb = ranks[0].num_batches();
    EXPECT_EQ(uint64_t(nb), (expected.size() + uint64_t(world * B) - 1) / uint64_t(world * B));
    std::vector<Window> seen;
    for (int64_t i = 0; i < nb; ++i) {
      for (auto& l : ranks) {
        ASSERT_EQ(l.num_batches(), nb);
        const Batch b = l.batch(i);
        ASSERT_EQ(b.ids.size(), size_t(B * T));
        for (int64_t row = 0; row < B; ++row) {
          if (row < b.rows) {
            seen.push_back(row_of(b, row));
          } else {
            for (int64_t t = 0; t < T; ++t) ASSERT_EQ(b.targets[size_t(row * T + t)], -1);
          }
        }
      }
    }
    EXPECT_EQ(seen, expected) << "world " << world;
    // Deterministic: asking again gives the same batch.
    EXPECT_EQ(ranks.back().batch(nb - 1).ids, ranks.back().batch(nb - 1).ids);
  }
  Corpus c(g, 1000, 1);
  EvalLoader capped(c.stream(), {.batch_size = 2, .seq_len = 4, .max_batches = 3});
  EXPECT_EQ(capped.num_batches(), 3);
  expect_error([&] { capped.batch(3); }, {"eval loader", "batch 3", "[0, 3)"});
}

TEST(TokenStream, ShardsFromDifferentTokenizersAreRejected) {
  TempDir dir;
  const std::vector<int32_t> ids = {1, 2, 3};
  write_shard(dir / "a.tok", ids, 100, "fp-a", 1);
  write_shard(dir / "b.tok", ids, 100, "fp-b", 1);
  expect_error(
      [&] {
        TokenStream s({dir / "a.tok", dir / "b.tok"}, "");
      },
      {(dir / "b.tok").string(), "fp-b", "fp-a", "one tokenizer"});
  expect_error([&] { TokenStream s({dir / "a.tok"}, "fp-b"); }, {(dir / "a.tok").string(), "fp-a", "fp-b"});
}

}  // namespace
}  // namespace llm::test
