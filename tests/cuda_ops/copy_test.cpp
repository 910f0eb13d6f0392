// copy / zero / fill on the CUDA backend (under the emulator in CI) against the CPU ops: every
// dtype pair, strided up to 4-D (a KV-cache write from the k heads of a fused qkv buffer), rows
// that are and are not 16-byte aligned, bit copies of integer tensors, and the error messages.
#include <algorithm>
#include <cstring>

#include "pair_util.h"

namespace llm::test {
namespace {

using CudaCopy = CudaPairTest;

TEST_F(CudaCopy, ConvertsEveryDtypePair) {
  for (DType from : float_dtypes()) {
    for (DType to : float_dtypes()) {
      for (int64_t n : {1, 31, 33, 4099}) {
        Pair src = rand_pair(from, {n}, 3.0f);
        Pair dst = rand_pair(to, {n});
        cpu.copy(src.h, dst.h);
        cuda.copy(src.d, dst.d);
        // Both round to nearest even from the same fp32 values: bit for bit.
        expect_equal(dst, cat("copy ", dtype_name(from), " -> ", dtype_name(to), " n ", n));
      }
    }
  }
}

TEST_F(CudaCopy, KvCacheWriteFromFusedHeads) {
  // k heads [B, T, Hkv, D] of a fused [B, T, Hq + 2 Hkv, D] buffer into rows [pos, pos + T) of a
  // [B, ctx, Hkv, D] cache: both sides strided in three dims, last dim dense.
  const int64_t B = 2, T = 5, Hq = 3, Hkv = 2, D = 12, ctx = 9, pos = 3;
  for (DType from : float_dtypes()) {
    for (DType to : float_dtypes()) {
      Pair qkv = rand_pair(from, {B, T, Hq + 2 * Hkv, D});
      Pair cache = rand_pair(to, {B, ctx, Hkv, D});
      const auto k_of = [&](const Tensor& t) { return t.slice(2, Hq, Hq + Hkv); };
      const auto rows_of = [&](const Tensor& t) { return t.slice(1, pos, pos + T); };
      cpu.copy(k_of(qkv.h.t()), rows_of(cache.h.t()));
      cuda.copy(k_of(qkv.d.t()), rows_of(cache.d.t()));
      expect_equal(cache, cat("kv write ", dtype_name(from), " -> ", dtype_name(to)));
    }
  }
}

TEST_F(CudaCopy, AlignedAndUnalignedRows) {
  // Column blocks of [N, 64] buffers: start 0 with a row stride of 64 elements (vector path),
  // start 3 (scalar path), 2-D and 3-D.
  for (DType dt : float_dtypes()) {
    for (int64_t c0 : {0, 3}) {
      Pair src = rand_pair(DType::F32, {33, 64});
      Pair dst = rand_pair(dt, {33, 64});
      cpu.copy(src.h.t().slice(1, c0, c0 + 40), dst.h.t().slice(1, 8, 48));
      cuda.copy(src.d.t().slice(1, c0, c0 + 40), dst.d.t().slice(1, 8, 48));
      expect_equal(dst, cat("2-D block at ", c0, " into ", dtype_name(dt)));
      cpu.copy(src.h.t().view({3, 11, 64}).slice(2, c0, c0 + 17), dst.h.t().view({3, 11, 64}).slice(2, c0, c0 + 17));
      cuda.copy(src.d.t().view({3, 11, 64}).slice(2, c0, c0 + 17), dst.d.t().view({3, 11, 64}).slice(2, c0, c0 + 17));
      expect_equal(dst, cat("3-D block at ", c0, " into ", dtype_name(dt)));
    }
  }
}

TEST_F(CudaCopy, SameDtypeIsABitCopy) {
  // Integer tensors copy as bits; so do f16 / bf16 NaN payloads.
  std::vector<int32_t> ids(4099);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i * 2654435761u);
  HostTensor h(DType::I32, {4099}, ids);
  OwnedTensor src = to_device(h), dst = dev.tensor(DType::I32, {4099});
  cuda.copy(src, dst);
  std::vector<int32_t> back(ids.size());
  cuda.download(dst, back.data());
  EXPECT_EQ(back, ids);

  std::vector<uint8_t> bytes(1001);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 37);
  OwnedTensor b1 = dev.tensor(DType::U8, {1001}), b2 = dev.tensor(DType::U8, {1001});
  cuda.upload(b1, bytes.data());
  cuda.copy(b1.t().range(1, 1000), b2.t().range(0, 1000));  // unaligned source
  std::vector<uint8_t> got(1001);
  cuda.download(b2, got.data());
  EXPECT_TRUE(std::equal(got.begin(), got.begin() + 1000, bytes.begin() + 1));

  const std::vector<uint16_t> nan_bits = {0x7c01, 0xfe12, 0x7fff, 0x3c00};
  OwnedTensor h1 = dev.tensor(DType::F16, {4}), h2 = dev.tensor(DType::F16, {4});
  cuda.upload(h1, nan_bits.data());
  cuda.copy(h1, h2);
  std::vector<uint16_t> nb(4);
  cuda.download(h2, nb.data());
  EXPECT_EQ(nb, nan_bits);
}

TEST_F(CudaCopy, ZeroAndFill) {
  for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::I32}) {
    for (int64_t n : {1, 31, 33, 4099}) {
      for (int64_t off : {0, 1}) {  // aligned, and one element in (scalar path)
        const int64_t total = n + 2;
        HostTensor h(dt, {total});
        OwnedTensor d = dev.tensor(dt, {total});
        std::vector<unsigned char> init(h.t().nbytes());
        for (size_t i = 0; i < init.size(); ++i) init[i] = static_cast<unsigned char>(i * 13 + 5);
        std::memcpy(h.t().data(), init.data(), init.size());
        cuda.upload(d, init.data());
        cpu.fill(h.t().range(off, n), -2.718281828f);
        cuda.fill(d.t().range(off, n), -2.718281828f);
        std::vector<unsigned char> got(init.size());
        cuda.download(d, got.data());
        EXPECT_EQ(std::memcmp(got.data(), h.t().data(), got.size()), 0) << "fill " << dtype_name(dt) << " n " << n;
        cpu.zero(h.t().range(off, n));
        cuda.zero(d.t().range(off, n));
        cuda.download(d, got.data());
        EXPECT_EQ(std::memcmp(got.data(), h.t().data(), got.size()), 0) << "zero " << dtype_name(dt) << " n " << n;
      }
    }
  }
}

TEST_F(CudaCopy, BadInputs) {
  OwnedTensor a = dev.tensor(DType::F32, {4, 6}), b = dev.tensor(DType::F32, {4, 5});
  OwnedTensor ids = dev.tensor(DType::I32, {4, 6}), bytes = dev.tensor(DType::I8, {8});
  HostTensor host(DType::F32, {4, 6});
  expect_error([&] { cuda.copy(a, b); }, "copy: ", "differ in shape");
  expect_error([&] { cuda.copy(ids, a); }, "copy: ", "cannot convert i32 to f32");
  expect_error([&] { cuda.copy(host, a); }, "copy: ", "CPU tensor");
  expect_error([&] { cuda.fill(a.t().slice(1, 0, 3), 1.0f); }, "fill: ", "not contiguous");
  expect_error([&] { cuda.fill(bytes, 1.0f); }, "fill: ", "expected a float dtype");
  expect_error([&] { cuda.zero(a.t().slice(1, 1, 3)); }, "zero: ", "not contiguous");
}

}  // namespace
}  // namespace llm::test
