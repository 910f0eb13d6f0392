// Kernels that exercise the CUDA emulator (and, built by nvcc, the same semantics on a GPU).
// All pointers are device pointers; every launcher checks cudaGetLastError.
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"

namespace llm::LLM_CUDA_NS::harness {

enum class Shuffle : int { Idx = 0, Up = 1, Down = 2, Xor = 3 };

// One warp: out[lane] = __shfl*_sync(0xffffffff, in[lane], param, width).
void shuffle(const int* in, int* out, Shuffle mode, int param, int width);
// One warp, divergent: even lanes run a ballot/any/all over mask 0x55555555 with pred_even,
// odd lanes over 0xaaaaaaaa with pred_odd. out[3*lane + {0,1,2}] = ballot, any, all.
void divergent_votes(const int* pred, unsigned* out);
// One warp, divergent: lanes 0-15 xor-reduce in[] among themselves (mask 0x0000ffff), lanes
// 16-31 compute an inclusive prefix sum with __shfl_up_sync (mask 0xffff0000). out[lane].
void divergent_shuffles(const float* in, float* out);
// One block of `threads` (a power of two, 64..1024): block sum of in[0, threads) where only
// warp 0 runs the second stage, over the lanes named by a ballot. out[0].
void block_reduce_warp0(const float* in, float* out, int threads);
// One block of `threads`: out[0..2] = __syncthreads_count / _and / _or of (in[t] != 0).
void syncthreads_votes(const int* in, int* out, int threads);
// `blocks` x 256 threads, thread t of the grid handles value v[t]:
// counters[0] += 1 (atomicAdd int), counters[1] = max(v), counters[2] += 1 via an atomicCAS
// loop, fsum[0] += float(v) (integers: exact in any order), dsum[0] += v.
void atomics(const int* v, int* counters, float* fsum, double* dsum, int blocks);
// One warp: out[lane] = __match_any_sync(0xffffffff, key[lane]).
void match_any(const int* key, unsigned* out);
// One warp, tensor cores: d [16, 8] = a [16, 16] . b [16, 8] + c [16, 8], all row-major fp32 in
// memory; a and b are rounded to bf16 (or f16) when loaded into fragments.
void mma_tile(const float* a, const float* b, const float* c, float* d, bool bf16);
enum class MmaShape : int { M16N8K8F16 = 0, M16N8K16F16 = 1, M16N8K16BF16 = 2 };
// One warp, one mma.sync of `shape` on fragments given register by register: lane l's registers
// are a[4l..4l+3] (m16n8k8 reads two), b[2l..2l+1] (m16n8k8 reads one), c[4l..4l+3]; d[4l..4l+3]
// receives its outputs.
void mma_fragments(const unsigned* a, const unsigned* b, const float* c, float* d, MmaShape shape);
// One block of `threads` (<= 1024): out[t] = in[t - 1] (out[0] = in[0]) passed through
// dynamic shared memory. with_barrier = false is a planted race: no __syncthreads between the
// writes and the reads (right in thread order, wrong in reverse or random order).
void shared_neighbour(const float* in, float* out, int threads, bool with_barrier);
// One thread: out[0] = buf[0] + ... + buf[n - 1].
void sum(const float* buf, int n, float* out);

// ---- planted bugs (emulator tests only; never launched on a GPU) ---------------------------------
void bug_barrier_divergence(int* out);        // two __syncthreads on different lines
void bug_exit_before_barrier(int* out);       // half the block returns, the rest waits
void bug_barrier_shuffle_deadlock(int* out);  // half at __syncthreads, half in a shuffle
void bug_shuffle_reads_exited(int* out);      // lanes 16-31 return; 0-15 read them
void bug_mask_mismatch(int* out);             // lanes disagree on the mask
void bug_out_of_bounds(float* buf, int n);    // writes buf[n]
void bug_shared_out_of_bounds(int* out);      // writes past dynamic shared memory
void bug_misaligned_atomic(int* buf);         // atomicAdd on an odd address
void bug_spin(const int* flag);               // waits for *flag != 0, which never comes
// One warp: lanes take three branches by lane % 3 and record __activemask() (emulator only:
// convergence after divergence is not guaranteed on a GPU).
void activemask_groups(unsigned* out);
// An empty kernel over `blocks` x `threads`, and one that does `syncs` __syncthreads: emulator
// throughput measurements.
void empty_kernel(int blocks, int threads);
void sync_kernel(int blocks, int threads, int syncs, int* out);

}  // namespace llm::LLM_CUDA_NS::harness
