// The device-side CUDA API under the emulator: barriers, warp shuffles and votes, atomics,
// fences. Every synchronizing call takes a defaulted std::source_location, so diagnostics name
// the line of the call without macros.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <type_traits>

#include "block.h"
#include "half.h"
#include "types.h"

namespace llm::emu {

namespace detail {
[[noreturn]] void outside_kernel(const char* what);

inline EmuThread& thread() {
  EmuThread* t = t_thread;
  if (!t) [[unlikely]]
    outside_kernel("threadIdx");
  return *t;
}
inline BlockRunner& block() {
  BlockRunner* b = t_block;
  if (!b) [[unlikely]]
    outside_kernel("a device function");
  return *b;
}

template <class T>
inline uint64_t to_bits(const T& v) {
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

// The types CUDA's shuffles accept (cuda_fp16.h / cuda_bf16.h add the 16-bit ones).
template <class T>
inline constexpr bool is_shuffle_type =
    std::is_same_v<T, int> || std::is_same_v<T, unsigned int> || std::is_same_v<T, long> ||
    std::is_same_v<T, unsigned long> || std::is_same_v<T, long long> || std::is_same_v<T, unsigned long long> ||
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, __half> || std::is_same_v<T, __half2> ||
    std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __nv_bfloat162>;

template <class T>
inline T shuffle(WarpOp op, unsigned mask, T var, int param, int width, const std::source_location& where) {
  static_assert(is_shuffle_type<T>,
                "__shfl*_sync: T must be int, unsigned, long, long long (and unsigned), float, double, __half, "
                "__half2, __nv_bfloat16 or __nv_bfloat162, as in CUDA");
  WarpArrival a;
  a.op = op;
  a.mask = mask;
  a.value = to_bits(var);
  a.param = param;
  a.width = width;
  a.where = where;
  return from_bits<T>(block().warp_collective(a).result);
}

inline uint64_t vote(WarpOp op, unsigned mask, uint64_t value, const std::source_location& where) {
  WarpArrival a;
  a.op = op;
  a.mask = mask;
  a.value = value;
  a.where = where;
  return block().warp_collective(a).result;
}
}  // namespace detail

// A constant here; in CUDA it is a built-in variable, so nvcc (in CI) rejects it in constant expressions.
inline constexpr int warpSize = 32;

template <class T>
inline T* dynamic_shared() {
  return reinterpret_cast<T*>(detail::block().dynamic_smem);
}

// ---- barriers --------------------------------------------------------------------------------------
inline void __syncthreads(std::source_location where = std::source_location::current()) {
  detail::block().barrier(BarrierOp::Sync, 1, where);
}
inline int __syncthreads_count(int predicate, std::source_location where = std::source_location::current()) {
  return detail::block().barrier(BarrierOp::Count, predicate, where);
}
inline int __syncthreads_and(int predicate, std::source_location where = std::source_location::current()) {
  return detail::block().barrier(BarrierOp::And, predicate, where);
}
inline int __syncthreads_or(int predicate, std::source_location where = std::source_location::current()) {
  return detail::block().barrier(BarrierOp::Or, predicate, where);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, std::source_location where = std::source_location::current()) {
  detail::vote(WarpOp::SyncWarp, mask, 0, where);
}

// ---- shuffles ------------------------------------------------------------------------------------
template <class T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32,
                     std::source_location where = std::source_location::current()) {
  return detail::shuffle(WarpOp::ShflIdx, mask, var, src_lane, width, where);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32,
                        std::source_location where = std::source_location::current()) {
  return detail::shuffle(WarpOp::ShflUp, mask, var, static_cast<int>(delta), width, where);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32,
                          std::source_location where = std::source_location::current()) {
  return detail::shuffle(WarpOp::ShflDown, mask, var, static_cast<int>(delta), width, where);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32,
                         std::source_location where = std::source_location::current()) {
  return detail::shuffle(WarpOp::ShflXor, mask, var, lane_mask, width, where);
}

// ---- votes and matches ------------------------------------------------------------------------------
inline unsigned __ballot_sync(unsigned mask, int predicate,
                              std::source_location where = std::source_location::current()) {
  return static_cast<unsigned>(detail::vote(WarpOp::Ballot, mask, predicate != 0, where));
}
inline int __any_sync(unsigned mask, int predicate, std::source_location where = std::source_location::current()) {
  return static_cast<int>(detail::vote(WarpOp::Any, mask, predicate != 0, where));
}
inline int __all_sync(unsigned mask, int predicate, std::source_location where = std::source_location::current()) {
  return static_cast<int>(detail::vote(WarpOp::All, mask, predicate != 0, where));
}
inline unsigned __activemask(std::source_location where = std::source_location::current()) {
  return detail::block().activemask(where);
}
template <class T>
inline unsigned __match_any_sync(unsigned mask, T value, std::source_location where = std::source_location::current()) {
  static_assert(std::is_arithmetic_v<T> && (sizeof(T) == 4 || sizeof(T) == 8), "__match_any_sync: 32/64-bit T");
  return static_cast<unsigned>(detail::vote(WarpOp::MatchAny, mask, detail::to_bits(value), where));
}
template <class T>
inline unsigned __match_all_sync(unsigned mask, T value, int* pred,
                                 std::source_location where = std::source_location::current()) {
  static_assert(std::is_arithmetic_v<T> && (sizeof(T) == 4 || sizeof(T) == 8), "__match_all_sync: 32/64-bit T");
  WarpArrival a;
  a.op = WarpOp::MatchAll;
  a.mask = mask;
  a.value = detail::to_bits(value);
  a.where = where;
  const WarpArrival& r = detail::block().warp_collective(a);
  *pred = r.predicate;
  return static_cast<unsigned>(r.result);
}

// sm_80 warp reductions.
inline unsigned __reduce_add_sync(unsigned mask, unsigned v, std::source_location w = std::source_location::current()) {
  return static_cast<unsigned>(detail::vote(WarpOp::ReduceAddU, mask, v, w));
}
inline int __reduce_add_sync(unsigned mask, int v, std::source_location w = std::source_location::current()) {
  return static_cast<int>(static_cast<unsigned>(detail::vote(WarpOp::ReduceAddU, mask, static_cast<unsigned>(v), w)));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v, std::source_location w = std::source_location::current()) {
  return static_cast<unsigned>(detail::vote(WarpOp::ReduceMinU, mask, v, w));
}
inline int __reduce_min_sync(unsigned mask, int v, std::source_location w = std::source_location::current()) {
  return static_cast<int>(static_cast<unsigned>(detail::vote(WarpOp::ReduceMinI, mask, static_cast<unsigned>(v), w)));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v, std::source_location w = std::source_location::current()) {
  return static_cast<unsigned>(detail::vote(WarpOp::ReduceMaxU, mask, v, w));
}
inline int __reduce_max_sync(unsigned mask, int v, std::source_location w = std::source_location::current()) {
  return static_cast<int>(static_cast<unsigned>(detail::vote(WarpOp::ReduceMaxI, mask, static_cast<unsigned>(v), w)));
}
inline unsigned __reduce_and_sync(unsigned mask, unsigned v, std::source_location w = std::source_location::current()) {
  return static_cast<unsigned>(detail::vote(WarpOp::ReduceAnd, mask, v, w));
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned v, std::source_location w = std::source_location::current()) {
  return static_cast<unsigned>(detail::vote(WarpOp::ReduceOr, mask, v, w));
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned v, std::source_location w = std::source_location::current()) {
  return static_cast<unsigned>(detail::vote(WarpOp::ReduceXor, mask, v, w));
}

// ---- atomics (relaxed, like CUDA's; real atomics because blocks run on several OS threads) -----
namespace detail {
template <class T>
inline std::atomic_ref<T> atomic_at(T* address, const char* op) {
  if (reinterpret_cast<uintptr_t>(address) % alignof(T) != 0) [[unlikely]] {
    block().fail_current(cat(op, " on address ", static_cast<const void*>(address), ", which is not aligned to ",
                             alignof(T), " bytes (a misaligned address error on a GPU)"));
  }
  return std::atomic_ref<T>(*address);
}
template <class T, class F>
inline T atomic_update(T* address, const char* op, F f) {
  auto ref = atomic_at(address, op);
  T old = ref.load(std::memory_order_relaxed);
  while (!ref.compare_exchange_weak(old, f(old), std::memory_order_relaxed)) {
  }
  return old;
}
}  // namespace detail

#define LLM_EMU_ATOMIC_FETCH(name, T, method) \
  inline T name(T* address, T v) { return detail::atomic_at(address, #name).method(v, std::memory_order_relaxed); }
LLM_EMU_ATOMIC_FETCH(atomicAdd, int, fetch_add)
LLM_EMU_ATOMIC_FETCH(atomicAdd, unsigned int, fetch_add)
LLM_EMU_ATOMIC_FETCH(atomicAdd, unsigned long long, fetch_add)
LLM_EMU_ATOMIC_FETCH(atomicAdd, float, fetch_add)
LLM_EMU_ATOMIC_FETCH(atomicAdd, double, fetch_add)
LLM_EMU_ATOMIC_FETCH(atomicSub, int, fetch_sub)
LLM_EMU_ATOMIC_FETCH(atomicSub, unsigned int, fetch_sub)
LLM_EMU_ATOMIC_FETCH(atomicExch, int, exchange)
LLM_EMU_ATOMIC_FETCH(atomicExch, unsigned int, exchange)
LLM_EMU_ATOMIC_FETCH(atomicExch, unsigned long long, exchange)
LLM_EMU_ATOMIC_FETCH(atomicExch, float, exchange)
LLM_EMU_ATOMIC_FETCH(atomicAnd, int, fetch_and)
LLM_EMU_ATOMIC_FETCH(atomicAnd, unsigned int, fetch_and)
LLM_EMU_ATOMIC_FETCH(atomicAnd, unsigned long long, fetch_and)
LLM_EMU_ATOMIC_FETCH(atomicOr, int, fetch_or)
LLM_EMU_ATOMIC_FETCH(atomicOr, unsigned int, fetch_or)
LLM_EMU_ATOMIC_FETCH(atomicOr, unsigned long long, fetch_or)
LLM_EMU_ATOMIC_FETCH(atomicXor, int, fetch_xor)
LLM_EMU_ATOMIC_FETCH(atomicXor, unsigned int, fetch_xor)
LLM_EMU_ATOMIC_FETCH(atomicXor, unsigned long long, fetch_xor)
#undef LLM_EMU_ATOMIC_FETCH

#define LLM_EMU_ATOMIC_MINMAX(T)                                                                  \
  inline T atomicMin(T* address, T v) {                                                           \
    return detail::atomic_update(address, "atomicMin", [v](T old) { return v < old ? v : old; }); \
  }                                                                                               \
  inline T atomicMax(T* address, T v) {                                                           \
    return detail::atomic_update(address, "atomicMax", [v](T old) { return v > old ? v : old; }); \
  }
LLM_EMU_ATOMIC_MINMAX(int)
LLM_EMU_ATOMIC_MINMAX(unsigned int)
LLM_EMU_ATOMIC_MINMAX(long long)
LLM_EMU_ATOMIC_MINMAX(unsigned long long)
#undef LLM_EMU_ATOMIC_MINMAX

#define LLM_EMU_ATOMIC_CAS(T)                                                                               \
  inline T atomicCAS(T* address, T compare, T v) {                                                          \
    detail::atomic_at(address, "atomicCAS").compare_exchange_strong(compare, v, std::memory_order_relaxed); \
    return compare; /* the old value either way */                                                          \
  }
LLM_EMU_ATOMIC_CAS(int)
LLM_EMU_ATOMIC_CAS(unsigned int)
LLM_EMU_ATOMIC_CAS(unsigned long long)
LLM_EMU_ATOMIC_CAS(unsigned short)
#undef LLM_EMU_ATOMIC_CAS

inline unsigned int atomicInc(unsigned int* address, unsigned int limit) {
  return detail::atomic_update(address, "atomicInc", [limit](unsigned old) { return old >= limit ? 0u : old + 1u; });
}
inline unsigned int atomicDec(unsigned int* address, unsigned int limit) {
  return detail::atomic_update(address, "atomicDec",
                               [limit](unsigned old) { return (old == 0 || old > limit) ? limit : old - 1u; });
}
inline __half atomicAdd(__half* address, __half v) {
  const unsigned short old = detail::atomic_update(reinterpret_cast<unsigned short*>(address), "atomicAdd",
                                                   [v](unsigned short b) { return (__ushort_as_half(b) + v).__x; });
  return __ushort_as_half(old);
}
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* address, __nv_bfloat16 v) {
  const unsigned short old = detail::atomic_update(reinterpret_cast<unsigned short*>(address), "atomicAdd",
                                                   [v](unsigned short b) { return (__ushort_as_bfloat16(b) + v).__x; });
  return __ushort_as_bfloat16(old);
}

// ---- fences and miscellany ------------------------------------------------------------------------
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_signal_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
[[noreturn]] inline void __trap(std::source_location where = std::source_location::current()) {
  detail::block().fail_current(cat("__trap() at ", short_path(where.file_name()), ":", where.line()));
}
inline long long clock64() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
inline void __nanosleep(unsigned) {}
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
template <class T>
inline T __ldcs(const T* p) {
  return *p;
}
template <class T>
inline T __ldcg(const T* p) {
  return *p;
}
template <class T>
inline void __stcs(T* p, T v) {
  *p = v;
}
template <class T>
inline void __stcg(T* p, T v) {
  *p = v;
}

}  // namespace llm::emu
