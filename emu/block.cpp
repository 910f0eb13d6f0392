#include "block.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <tuple>

#include "device_api.h"
#include "warp_ops.h"

namespace llm::emu {
namespace {

constexpr size_t kRedzone = 64;  // bytes of canary around dynamic shared memory
constexpr unsigned char kCanary = 0xcb;
constexpr unsigned char kSmemFill = 0xff;  // fresh shared memory reads as NaN, as a hint

bool same_site(const std::source_location& a, const std::source_location& b) {
  return a.line() == b.line() && std::strcmp(a.file_name(), b.file_name()) == 0;
}

std::string site(const std::source_location& w) { return cat(short_path(w.file_name()), ":", w.line()); }

std::string hex(unsigned m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", m);
  return buf;
}

// "3, 5-7" for the set bits / values.
std::string ranges(const std::vector<unsigned>& v) {
  std::string out;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += j == i ? cat(v[i]) : cat(v[i], "-", v[j]);
    i = j + 1;
  }
  return out;
}

std::vector<unsigned> bits_of(unsigned mask) {
  std::vector<unsigned> v;
  for (unsigned m = mask; m; m &= m - 1) v.push_back(static_cast<unsigned>(std::countr_zero(m)));
  return v;
}

std::string lanes(unsigned mask) { return cat(std::popcount(mask) == 1 ? "lane " : "lanes ", ranges(bits_of(mask))); }

bool is_shuffle(WarpOp op) {
  return op == WarpOp::ShflIdx || op == WarpOp::ShflUp || op == WarpOp::ShflDown || op == WarpOp::ShflXor;
}

std::string describe(const WarpArrival& a) {
  std::string s = a.op == WarpOp::Custom && a.custom ? a.custom->name : warp_op_name(a.op);
  return cat(s, "(mask ", hex(a.mask), ") at ", site(a.where));
}

const char* barrier_name(BarrierOp op) {
  switch (op) {
    case BarrierOp::Sync: return "__syncthreads";
    case BarrierOp::Count: return "__syncthreads_count";
    case BarrierOp::And: return "__syncthreads_and";
    case BarrierOp::Or: return "__syncthreads_or";
  }
  return "?";
}

}  // namespace

BlockRunner::BlockRunner(size_t stack_bytes) : stacks_(stack_bytes) { fiber_init_thread_context(scheduler_); }

BlockRunner::~BlockRunner() = default;

void BlockRunner::run(const KernelLaunch& launch, uint3 idx) {
  launch_ = &launch;
  block_idx = idx;
  block_dim = launch.block;
  grid_dim = launch.grid;
  const unsigned n = block_dim.x * block_dim.y * block_dim.z;
  stacks_.reserve(n);
  threads_.resize(n);
  ready_.assign(n, nullptr);
  ready_bits_.assign((n + 63) / 64, 0);
  ready_head_ = ready_count_ = 0;
  schedule_ = launch.schedule;
  rng_ = launch.seed ^
         (0x9e3779b97f4a7c15ull * (1 + idx.x + uint64_t{launch.grid.x} * (idx.y + uint64_t{launch.grid.y} * idx.z)));
  if (rng_ == 0) rng_ = 1;  // xorshift's one fixed point
  warps_.assign((n + 31) / 32, WarpState{});
  for (unsigned w = 0; w < warps_.size(); ++w) {
    const unsigned lanes_here = n - w * 32 >= 32 ? 32 : n - w * 32;
    warps_[w].exists = lanes_here == 32 ? ~0u : (1u << lanes_here) - 1u;
  }
  exited_ = 0;
  barrier_.waiting = 0;
  barrier_.waiters.clear();
  failure_ = nullptr;
  cancelling_ = false;
  prepare_smem(launch.smem_bytes);

  for (unsigned i = 0; i < n; ++i) {
    EmuThread& t = threads_[i];
    t.idx = uint3{i % block_dim.x, (i / block_dim.x) % block_dim.y, i / (block_dim.x * block_dim.y)};
    t.linear = i;
    t.warp = i / 32;
    t.lane = i % 32;
    t.state = ThreadState::Ready;
    t.started = false;
    t.cancel = false;
    t.arrival = WarpArrival{};
    fiber_prepare(t.ctx, stacks_[i], &BlockRunner::thread_main, &t);
    push_ready(&t);
  }

  t_block = this;
  while (true) {
    if (!failure_ && ready_count_ > 0) {
      EmuThread* t = pop_ready();
      fiber_switch(scheduler_, t->ctx);  // back here when nothing is runnable (or on failure)
      continue;
    }
    if (failure_ || exited_ == n) break;
    if (resolve_activemasks()) continue;
    failure_ = std::make_exception_ptr(KernelError(cat(block_prefix(), ": ", deadlock_report())));
  }
  if (failure_) {
    cancel_all();
    t_block = nullptr;
    t_thread = nullptr;
    std::rethrow_exception(failure_);
  }
  t_block = nullptr;
  t_thread = nullptr;
  check_smem_redzones();
}

void BlockRunner::thread_main(void* arg) {
  auto* me = static_cast<EmuThread*>(arg);
  t_thread = me;
  BlockRunner* self = t_block;
  me->started = true;
  if (!me->cancel) {
    try {
      self->launch_->invoke(self->launch_->args);
    } catch (const FiberCancel&) {
      // the block is being abandoned
    } catch (...) {
      self->record_failure(std::current_exception());
    }
  }
  self->thread_exited(me);
  self->finish(me);
}

EmuThread* BlockRunner::current() const { return t_thread; }

void BlockRunner::push_ready(EmuThread* t) {
  ++ready_count_;
  if (schedule_ == static_cast<uint8_t>(EmuSettings::Schedule::Order)) {
    ready_[(ready_head_ + ready_count_ - 1) % ready_.size()] = t;
  } else {
    ready_bits_[t->linear / 64] |= uint64_t{1} << (t->linear % 64);
  }
}

EmuThread* BlockRunner::pop_ready() {
  --ready_count_;
  if (schedule_ == static_cast<uint8_t>(EmuSettings::Schedule::Order)) {
    EmuThread* t = ready_[ready_head_];
    ready_head_ = (ready_head_ + 1) % ready_.size();
    return t;
  }
  size_t word = 0;
  int bit = 0;
  if (schedule_ == static_cast<uint8_t>(EmuSettings::Schedule::Reverse)) {
    word = ready_bits_.size() - 1;
    while (ready_bits_[word] == 0) --word;
    bit = 63 - std::countl_zero(ready_bits_[word]);
  } else {
    // xorshift64*: the k-th runnable thread for a uniform k.
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    uint64_t k = (rng_ * 0x2545f4914f6cdd1dull >> 11) % (ready_count_ + 1);
    while (true) {
      const auto here = static_cast<uint64_t>(std::popcount(ready_bits_[word]));
      if (k < here) break;
      k -= here;
      ++word;
    }
    uint64_t w = ready_bits_[word];
    for (; k > 0; --k) w &= w - 1;
    bit = std::countr_zero(w);
  }
  ready_bits_[word] &= ~(uint64_t{1} << bit);
  return &threads_[word * 64 + static_cast<size_t>(bit)];
}

void BlockRunner::suspend(EmuThread* me) {
  EmuThread* next = (!failure_ && !cancelling_ && ready_count_ > 0) ? pop_ready() : nullptr;
  if (next != me) {
    fiber_switch(me->ctx, next ? next->ctx : scheduler_);
    t_thread = me;
  }
  if (me->cancel) throw FiberCancel{};
}

void BlockRunner::finish(EmuThread* me) {
  EmuThread* next = (!failure_ && !cancelling_ && ready_count_ > 0) ? pop_ready() : nullptr;
  fiber_switch(me->ctx, next ? next->ctx : scheduler_, /*from_finished=*/true);
  __builtin_unreachable();
}

void BlockRunner::record_failure(std::exception_ptr e) {
  if (!failure_) failure_ = std::move(e);
}

void BlockRunner::thread_exited(EmuThread* me) {
  me->state = ThreadState::Exited;
  ++exited_;
  WarpState& w = warps_[me->warp];
  const unsigned bit = 1u << me->lane;
  w.exited |= bit;
  if (cancelling_ || failure_) return;
  try {
    if (barrier_.waiting > 0) {
      std::vector<unsigned> waiting;
      for (const EmuThread* t : barrier_.waiters) waiting.push_back(t->linear);
      fail_thread(*me, cat("returned from the kernel while ", thread_ranges(waiting), " wait at ",
                           barrier_name(barrier_.op), " at ", site(barrier_.where),
                           ": every thread of a block must reach every barrier (barrier divergence)"));
    }
    // Collectives that were waiting for this lane may be complete now.
    for (unsigned p = w.pending; p; p &= p - 1) {
      const unsigned l = static_cast<unsigned>(std::countr_zero(p));
      const EmuThread& t = threads_[me->warp * 32 + l];
      if ((w.pending & (1u << l)) && (t.arrival.mask & bit)) try_complete(me->warp, t.arrival.mask, nullptr);
    }
  } catch (...) {
    record_failure(std::current_exception());
  }
}

int BlockRunner::barrier(BarrierOp op, int predicate, const std::source_location& where) {
  EmuThread* me = current();
  if (me->cancel) throw FiberCancel{};
  if (exited_ > 0) {
    std::vector<unsigned> gone;
    for (const EmuThread& t : threads_)
      if (t.state == ThreadState::Exited) gone.push_back(t.linear);
    fail_thread(*me, cat("reached ", barrier_name(op), " at ", site(where), " after ", thread_ranges(gone),
                         " returned from the kernel: every thread of a block must reach every barrier",
                         " (barrier divergence)"));
  }
  if (barrier_.waiting > 0 && (barrier_.op != op || !same_site(barrier_.where, where))) {
    std::vector<unsigned> waiting;
    for (const EmuThread* t : barrier_.waiters) waiting.push_back(t->linear);
    fail_thread(*me, cat("reached ", barrier_name(op), " at ", site(where), " while ", thread_ranges(waiting),
                         " wait at ", barrier_name(barrier_.op), " at ", site(barrier_.where),
                         ": all threads of a block must reach the same barrier (barrier divergence)"));
  }
  if (barrier_.waiting == 0) {
    barrier_.op = op;
    barrier_.where = where;
    barrier_.count = 0;
  }
  barrier_.count += predicate != 0 ? 1 : 0;
  ++barrier_.waiting;
  barrier_.waiters.push_back(me);
  me->state = ThreadState::AtBarrier;
  me->where = where;
  if (barrier_.waiting == threads_.size() - exited_) {
    int result = 0;
    switch (op) {
      case BarrierOp::Sync: break;
      case BarrierOp::Count: result = barrier_.count; break;
      case BarrierOp::And: result = barrier_.count == static_cast<int>(barrier_.waiting); break;
      case BarrierOp::Or: result = barrier_.count > 0; break;
    }
    const bool in_order = schedule_ == static_cast<uint8_t>(EmuSettings::Schedule::Order);
    for (EmuThread* t : barrier_.waiters) {
      t->state = ThreadState::Ready;
      t->barrier_result = result;
      if (t != me || !in_order) push_ready(t);
    }
    barrier_.waiters.clear();
    barrier_.waiting = 0;
    if (in_order) return result;  // the last thread to arrive goes on
  }
  suspend(me);
  return me->barrier_result;
}

const WarpArrival& BlockRunner::warp_collective(const WarpArrival& arrival) {
  EmuThread* me = current();
  if (me->cancel) throw FiberCancel{};
  const unsigned bit = 1u << me->lane;
  if (!(arrival.mask & bit)) {
    fail_thread(*me, cat(describe(arrival), " does not name the calling lane ", me->lane,
                         ": each calling thread must have its own bit set in the mask"));
  }
  if (is_shuffle(arrival.op) && (arrival.width < 1 || arrival.width > 32 || (arrival.width & (arrival.width - 1)))) {
    fail_thread(*me, cat(describe(arrival), ": width ", arrival.width, " is not a power of two in [1, 32]"));
  }
  me->arrival = arrival;
  me->state = ThreadState::AtWarpOp;
  me->where = arrival.where;
  warps_[me->warp].pending |= bit;
  // In thread order the last lane to arrive goes on; otherwise the schedule picks again.
  if (!try_complete(me->warp, arrival.mask, me) || schedule_ != static_cast<uint8_t>(EmuSettings::Schedule::Order)) {
    suspend(me);
  }
  return me->arrival;
}

bool BlockRunner::try_complete(unsigned w, unsigned mask, const EmuThread* trigger) {
  WarpState& ws = warps_[w];
  const unsigned live = ws.exists & ~ws.exited;
  const unsigned group = mask & live;
  if (group == 0 || (ws.pending & group) != group) return false;

  EmuThread* lane_thread[32] = {};
  for (unsigned g = group; g; g &= g - 1) {
    const unsigned l = static_cast<unsigned>(std::countr_zero(g));
    lane_thread[l] = &threads_[w * 32 + l];
  }
  const EmuThread& ref = (trigger && (group >> trigger->lane & 1u)) ? *trigger : *lane_thread[std::countr_zero(group)];
  const WarpArrival& r = ref.arrival;
  for (unsigned g = group; g; g &= g - 1) {
    const EmuThread& t = *lane_thread[std::countr_zero(g)];
    const WarpArrival& a = t.arrival;
    const bool same = a.op == r.op && a.mask == r.mask && a.custom == r.custom &&
                      (a.op == WarpOp::SyncWarp || same_site(a.where, r.where));
    if (!same) {
      fail_thread(t,
                  cat("is at ", describe(a), " while lane ", ref.lane, " is at ", describe(r),
                      ": all non-exited lanes named in a mask must execute the same intrinsic with the", " same mask"));
    }
  }

  const WarpArrival* arrivals[32] = {};
  for (unsigned g = group; g; g &= g - 1) {
    const unsigned l = static_cast<unsigned>(std::countr_zero(g));
    arrivals[l] = &lane_thread[l]->arrival;
  }
  uint64_t results[32] = {};
  int predicates[32] = {};
  const BadRead bad =
      compute_collective(arrivals, group, ws.exists, ws.exited, launch_->strict_shuffles, results, predicates);
  if (bad.lane >= 0) {
    const EmuThread& t = *lane_thread[static_cast<unsigned>(bad.lane)];
    fail_thread(t, cat(describe(t.arrival), " reads lane ", bad.source, ", which ", bad.why,
                       ": the value would be undefined on a GPU"));
  }

  for (unsigned g = group; g; g &= g - 1) {
    const unsigned l = static_cast<unsigned>(std::countr_zero(g));
    EmuThread* t = lane_thread[l];
    t->arrival.result = results[l];
    t->arrival.predicate = predicates[l];
    t->state = ThreadState::Ready;
    if (t != trigger || schedule_ != static_cast<uint8_t>(EmuSettings::Schedule::Order)) push_ready(t);
  }
  ws.pending &= ~group;
  return true;
}

unsigned BlockRunner::activemask(const std::source_location& where) {
  EmuThread* me = current();
  if (me->cancel) throw FiberCancel{};
  me->state = ThreadState::AtActiveMask;
  me->where = where;
  warps_[me->warp].activemask_pending |= 1u << me->lane;
  suspend(me);
  return static_cast<unsigned>(me->arrival.result);
}

// __activemask() answers which lanes execute it together. Lanes wait there until the whole
// block is blocked (so every lane of the warp that will take this path has arrived); the lanes
// waiting at the same source line form the mask.
bool BlockRunner::resolve_activemasks() {
  bool any = false;
  for (unsigned w = 0; w < warps_.size(); ++w) {
    WarpState& ws = warps_[w];
    while (ws.activemask_pending) {
      const unsigned first = static_cast<unsigned>(std::countr_zero(ws.activemask_pending));
      const std::source_location where = threads_[w * 32 + first].where;
      unsigned group = 0;
      for (unsigned p = ws.activemask_pending; p; p &= p - 1) {
        const unsigned l = static_cast<unsigned>(std::countr_zero(p));
        if (same_site(threads_[w * 32 + l].where, where)) group |= 1u << l;
      }
      for (unsigned g = group; g; g &= g - 1) {
        EmuThread& t = threads_[w * 32 + static_cast<unsigned>(std::countr_zero(g))];
        t.arrival.result = group;
        t.state = ThreadState::Ready;
        push_ready(&t);
      }
      ws.activemask_pending &= ~group;
      any = true;
    }
  }
  return any;
}

std::string BlockRunner::deadlock_report() const {
  std::ostringstream out;
  out << "deadlock: no thread of the block can proceed";
  if (barrier_.waiting > 0) {
    std::vector<unsigned> waiting;
    for (const EmuThread* t : barrier_.waiters) waiting.push_back(t->linear);
    out << "\n  " << thread_ranges(waiting) << " wait at " << barrier_name(barrier_.op) << " at "
        << site(barrier_.where);
  }
  for (unsigned w = 0; w < warps_.size(); ++w) {
    const WarpState& ws = warps_[w];
    // Group the waiting lanes by what they wait at.
    std::map<std::tuple<std::string, unsigned>, unsigned> groups;
    for (unsigned p = ws.pending; p; p &= p - 1) {
      const unsigned l = static_cast<unsigned>(std::countr_zero(p));
      const WarpArrival& a = threads_[w * 32 + l].arrival;
      groups[{describe(a), a.mask}] |= 1u << l;
    }
    const unsigned live = ws.exists & ~ws.exited;
    for (const auto& [key, members] : groups) {
      const unsigned mask = std::get<1>(key);
      const unsigned missing = mask & live & ~members;
      out << "\n  warp " << w << " " << lanes(members) << " wait at " << std::get<0>(key);
      if (missing & ~ws.pending) out << " for " << lanes(missing & ~ws.pending) << " (waiting elsewhere)";
      if (missing & ws.pending) {
        out << "; " << lanes(missing & ws.pending)
            << " named in the mask wait at a different warp intrinsic or with another mask";
      }
    }
  }
  return out.str();
}

void BlockRunner::cancel_all() {
  cancelling_ = true;
  for (EmuThread& t : threads_) {
    if (t.state == ThreadState::Exited) continue;
    if (!t.started) {
      t.state = ThreadState::Exited;
      continue;
    }
    t.cancel = true;
    fiber_switch(scheduler_, t.ctx);  // it unwinds, exits and switches back here
  }
  t_thread = nullptr;
}

std::string BlockRunner::block_prefix() const {
  const KernelLaunch& l = *launch_;
  return cat("cuda emulator: kernel ", l.kernel_name, " (launched at ", short_path(l.file), ":", l.line, ") block (",
             block_idx.x, ",", block_idx.y, ",", block_idx.z, ")");
}

std::string BlockRunner::thread_name(const EmuThread& t) const {
  return cat("(", t.idx.x, ",", t.idx.y, ",", t.idx.z, ") [warp ", t.warp, " lane ", t.lane, "]");
}

std::string BlockRunner::thread_ranges(const std::vector<unsigned>& linear) const {
  std::vector<unsigned> sorted = linear;
  std::sort(sorted.begin(), sorted.end());
  const bool one_d = block_dim.y == 1 && block_dim.z == 1;
  return cat(sorted.size() == 1 ? "thread " : "threads ", ranges(sorted), one_d ? "" : " (linear index)");
}

void BlockRunner::fail_thread(const EmuThread& t, const std::string& what) const {
  throw KernelError(cat(block_prefix(), " thread ", thread_name(t), ": ", what));
}

void BlockRunner::fail_current(const std::string& what) const {
  const EmuThread* t = current();
  if (!t) throw KernelError(cat("cuda emulator: ", what, " (outside a kernel)"));
  fail_thread(*t, what);
}

void BlockRunner::prepare_smem(size_t bytes) {
  const size_t needed = bytes + 2 * kRedzone + 128;
  if (needed > smem_capacity_) {
    if (smem_buffer_) asan_unpoison(smem_buffer_.get(), smem_capacity_);
    smem_buffer_ = std::make_unique<char[]>(needed);
    smem_capacity_ = needed;
  }
  char* base = smem_buffer_.get();
  asan_unpoison(base, smem_capacity_);
  // The region starts 128-byte aligned (CUDA guarantees at least 16).
  const auto addr = reinterpret_cast<uintptr_t>(base) + kRedzone;
  char* start = base + ((addr + 127) / 128 * 128 - reinterpret_cast<uintptr_t>(base));
  dynamic_smem = start;
  dynamic_smem_bytes = bytes;
  std::memset(base, kCanary, static_cast<size_t>(start - base));
  std::memset(start, kSmemFill, bytes);
  std::memset(start + bytes, kCanary, kRedzone);
  asan_poison(base, static_cast<size_t>(start - base));
  asan_poison(start + bytes, kRedzone);
}

void BlockRunner::check_smem_redzones() const {
  if (asan_enabled()) return;  // AddressSanitizer reported the access when it happened
  const char* base = smem_buffer_.get();
  for (const char* p = base; p < dynamic_smem; ++p) {
    if (static_cast<unsigned char>(*p) != kCanary) {
      throw KernelError(cat(block_prefix(), ": wrote ", dynamic_smem - p, " bytes before the start of its ",
                            dynamic_smem_bytes, " bytes of dynamic shared memory"));
    }
  }
  const char* end = dynamic_smem + dynamic_smem_bytes;
  for (size_t i = 0; i < kRedzone; ++i) {
    if (static_cast<unsigned char>(end[i]) != kCanary) {
      throw KernelError(cat(block_prefix(), ": wrote byte ", dynamic_smem_bytes + i, " of its ", dynamic_smem_bytes,
                            "-byte dynamic shared memory (out of bounds)"));
    }
  }
}

}  // namespace llm::emu

namespace llm::emu::detail {
void outside_kernel(const char* what) {
  throw Error(cat("cuda emulator: ", what, " used outside a kernel launched with LLM_LAUNCH"));
}
}  // namespace llm::emu::detail
