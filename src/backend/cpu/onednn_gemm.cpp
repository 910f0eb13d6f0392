// OnednnGemm: dnnl::matmul primitives for bf16 operands, cached by shape, and dnnl_sgemm for fp32.
#include "backend/cpu/onednn_gemm.h"

#include <bit>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <unordered_map>

#include "llm/error.h"

namespace llm::cpu {

namespace {

constexpr size_t kMaxCachedPrimitives = 256;

// ta, tb, M, N, K, lda, ldb, ldc, alpha, beta, bf16 c, bias.
using Key =
    std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, uint32_t, uint32_t, bool, bool>;

bool isa_has_bf16(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_amx: return true;
    default: return false;
  }
}

bool isa_is_avx512(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::avx512_core:
    case dnnl::cpu_isa::avx512_core_vnni:
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_amx: return true;
    default: return false;
  }
}

const char* isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    default: return "other";
  }
}

}  // namespace

struct OnednnGemm::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::mutex mutex;  // the cache and the stream: one product at a time (each uses every thread)
  std::map<Key, dnnl::matmul> cache;
};

OnednnGemm::OnednnGemm()
    : impl_(std::make_unique<Impl>()),
      bf16_native_(isa_has_bf16(dnnl::get_effective_cpu_isa())),
      avx512_(isa_is_avx512(dnnl::get_effective_cpu_isa())) {}
OnednnGemm::~OnednnGemm() = default;

void OnednnGemm::bf16_product(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* a,
                              int64_t lda, const uint16_t* b, int64_t ldb, float beta, void* c, bool c_bf16,
                              int64_t ldc, const float* bias) {
  using dt = dnnl::memory::data_type;
  // oneDNN scales before it adds the bias; the one caller with a bias multiplies by 1.
  LLM_CHECK(bias == nullptr || alpha == 1.0f, "matmul: internal: a bias with alpha ", alpha);
  // Transposition as strides: op(a) [M, K] is a [K, M] read with strides (1, lda).
  const dnnl::memory::desc a_md({M, K}, dt::bf16, ta ? dnnl::memory::dims{1, lda} : dnnl::memory::dims{lda, 1});
  const dnnl::memory::desc b_md({K, N}, dt::bf16, tb ? dnnl::memory::dims{1, ldb} : dnnl::memory::dims{ldb, 1});
  const dnnl::memory::desc c_md({M, N}, c_bf16 ? dt::bf16 : dt::f32, dnnl::memory::dims{ldc, 1});
  const dnnl::memory::desc bias_md =
      bias ? dnnl::memory::desc({1, N}, dt::f32, dnnl::memory::dims{N, 1}) : dnnl::memory::desc();
  const Key key{ta,
                tb,
                M,
                N,
                K,
                lda,
                ldb,
                ldc,
                std::bit_cast<uint32_t>(alpha),
                std::bit_cast<uint32_t>(beta),
                c_bf16,
                bias != nullptr};
  std::lock_guard<std::mutex> lock(impl_->mutex);
  auto it = impl_->cache.find(key);
  if (it == impl_->cache.end()) {
    // Prompts of every length make a new M each: bound the cache (a primitive holds its JIT code).
    if (impl_->cache.size() >= kMaxCachedPrimitives) impl_->cache.clear();
    dnnl::primitive_attr attr;
    if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
    if (beta != 0.0f) {
      dnnl::post_ops ops;
      ops.append_sum(beta);  // dst = alpha * a @ b + beta * dst
      attr.set_post_ops(ops);
    }
    try {
      const dnnl::matmul::desc d =
          bias ? dnnl::matmul::desc(a_md, b_md, bias_md, c_md) : dnnl::matmul::desc(a_md, b_md, c_md);
      const dnnl::matmul::primitive_desc pd(d, attr, impl_->engine);
      it = impl_->cache.emplace(key, dnnl::matmul(pd)).first;
    } catch (const dnnl::error& e) {
      fail("matmul: oneDNN bf16 matmul ", M, "x", N, "x", K, ": ", e.what());
    }
  }
  dnnl::memory am(a_md, impl_->engine, const_cast<uint16_t*>(a));
  dnnl::memory bm(b_md, impl_->engine, const_cast<uint16_t*>(b));
  dnnl::memory cm(c_md, impl_->engine, c);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
  if (bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(bias_md, impl_->engine, const_cast<float*>(bias)));
  it->second.execute(impl_->stream, args);
  impl_->stream.wait();
}

void OnednnGemm::f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t lda,
                     const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
  LLM_CHECK(st == dnnl_success, "matmul: dnnl_sgemm ", M, "x", N, "x", K, " failed with status ", int(st));
}

std::string onednn_description() {
  const dnnl_version_t* v = dnnl_version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) + " (" +
         isa_name(dnnl::get_effective_cpu_isa()) + ")";
}

}  // namespace llm::cpu
