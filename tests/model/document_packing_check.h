// Document masking through the whole model (acceptance: packing without cross-talk): a batch of
// packed rows (three conversations in one row, two in another, padding after) gives the same
// per-token logits, the same loss and the same gradients as the conversations run one by one
// as rows of their own, fp32, within 1e-5; recompute policies agree bitwise with it. Shared by
// tests/model (CpuBackend) and tests/cuda_train (the emulated CudaBackend).
#pragma once

#include <gtest/gtest.h>

#include <cmath>

#include "model/model_test_util.h"
#include "test_util.h"

namespace llm::test {

struct Doc {
  int64_t row, start, len;
};

inline std::vector<float> download_grads(Backend& be, const Qwen2Model& m) {
  std::vector<float> g(size_t(m.params().flat_size()));
  be.download(m.grads(), g.data());
  return g;
}

inline double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double ss = 0, worst = 0;
  for (float x : b) ss += double(x) * x;
  const double rms = std::sqrt(ss / double(b.size())) + 1e-12;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(double(a[i]) - b[i]) / std::max(rms, std::abs(double(b[i]))));
  return worst;
}

// The check itself, on any backend (fp32).
inline void check_document_packing(Backend& cpu) {
  auto g = rng();
  const ModelConfig c = odd_config();
  const auto w = random_weights(g, ParamTable(c));
  const int64_t B = 2, T = 40;
  const std::vector<Doc> docs = {{0, 0, 11}, {0, 11, 17}, {0, 28, 9}, {1, 0, 25}, {1, 25, 13}};
  std::uniform_int_distribution<int32_t> id(0, int32_t(c.vocab_size - 1));
  HostBatch packed{B, T, std::vector<int32_t>(size_t(B * T), 0), std::vector<int32_t>(size_t(B * T), -1)};
  std::vector<int32_t> positions(size_t(B * T));
  for (int64_t i = 0; i < B * T; ++i) positions[size_t(i)] = int32_t(i % T);  // padding counts on from the row
  for (const Doc& d : docs) {
    for (int64_t j = 0; j < d.len; ++j) {
      const size_t at = size_t(d.row * T + d.start + j);
      packed.ids[at] = id(g);
      // Like chat data: some targets ignored, none past the conversation's last token.
      packed.targets[at] = j + 1 < d.len && g() % 4 != 0 ? id(g) : -1;
      positions[at] = int32_t(j);
    }
  }
  // The padding after each row's last document: a document of its own.
  for (int64_t row = 0; row < B; ++row) {
    int64_t end = 0;
    for (const Doc& d : docs) end = d.row == row ? std::max(end, d.start + d.len) : end;
    for (int64_t t = end; t < T; ++t) positions[size_t(row * T + t)] = int32_t(t - end);
  }
  const TokenBatch pb{B, T, packed.ids, packed.targets, positions};

  ModelOptions o;
  o.max_batch = B;
  o.max_seq = T;
  Qwen2Model m(c, cpu, o);
  m.set_weights(w);
  m.zero_grads();
  const LossSum lp = m.forward(pb, true, 1.0f);
  m.backward();
  const std::vector<float> gp = download_grads(cpu, m);
  const std::vector<float> logits_p = m.logits(pb);

  m.zero_grads();
  double loss_sep = 0;
  int64_t count_sep = 0;
  const auto V = size_t(c.vocab_size);
  for (const Doc& d : docs) {
    const auto from = packed.ids.begin() + d.row * T + d.start;
    const std::vector<int32_t> ids(from, from + d.len);
    const auto tfrom = packed.targets.begin() + d.row * T + d.start;
    const std::vector<int32_t> targets(tfrom, tfrom + d.len);
    const TokenBatch one{1, d.len, ids, targets, {}};
    const std::vector<float> logits = m.logits(one);
    for (int64_t j = 0; j < d.len; ++j) {  // per-token logits, hence per-token losses, equal
      const size_t p = size_t(d.row * T + d.start + j);
      const std::vector<float> got(logits_p.begin() + long(p * V), logits_p.begin() + long((p + 1) * V));
      const std::vector<float> want(logits.begin() + long(size_t(j) * V), logits.begin() + long(size_t(j + 1) * V));
      ASSERT_LE(max_rel(got, want), 1e-5) << "token " << j << " of the document at row " << d.row << ", " << d.start;
    }
    const LossSum l = m.forward(one, true, 1.0f);  // gradients add up over the documents
    m.backward();
    loss_sep += l.sum;
    count_sep += l.count;
  }
  const std::vector<float> gs = download_grads(cpu, m);
  EXPECT_EQ(lp.count, count_sep);
  EXPECT_NEAR(lp.sum, loss_sep, 1e-5 * std::abs(loss_sep));
  // The weight gradients sum the same terms in another order (one product over the packed rows
  // against one per document): the whole within 1e-5 in norm, each element within 1e-4 of the scale.
  double diff = 0, norm = 0;
  for (size_t i = 0; i < gs.size(); ++i)
    diff += (double(gp[i]) - gs[i]) * (double(gp[i]) - gs[i]), norm += double(gs[i]) * gs[i];
  EXPECT_LE(std::sqrt(diff / norm), 1e-5);
  EXPECT_LE(max_rel(gp, gs), 1e-4);

  // Without positions the row attends across documents: a different function (the test can fail).
  // Compared per token, not through the loss sum, whose changes can cancel for some draws: every
  // document after a row's first sees the earlier ones and its logits move well past the 1e-5 above.
  const std::vector<float> logits_c = m.logits(TokenBatch{B, T, packed.ids, packed.targets, {}});
  for (const Doc& d : docs) {
    if (d.start == 0) continue;
    const size_t p = size_t(d.row * T + d.start);
    const std::vector<float> cross(logits_c.begin() + long(p * V), logits_c.begin() + long((p + size_t(d.len)) * V));
    const std::vector<float> masked(logits_p.begin() + long(p * V), logits_p.begin() + long((p + size_t(d.len)) * V));
    EXPECT_GT(max_rel(cross, masked), 1e-3) << "the document at row " << d.row << ", " << d.start;
  }

  // Selective and full recompute keep the positions for the backward: bitwise the same gradients.
  for (const Recompute rc : {Recompute::Selective, Recompute::Full}) {
    ModelOptions ro = o;
    ro.recompute = rc;
    Qwen2Model mr(c, cpu, ro);
    mr.set_weights(w);
    mr.zero_grads();
    mr.forward(pb, true, 1.0f);
    mr.backward();
    EXPECT_EQ(download_grads(cpu, mr), gp) << recompute_name(rc);
  }
}

}  // namespace llm::test
