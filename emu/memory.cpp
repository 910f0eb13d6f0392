#include "memory.h"

#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <set>

#include "fiber.h"
#include "launch_info.h"
#include "llm/error.h"

namespace llm::emu {
namespace {

constexpr size_t kAlign = 256;    // cudaMalloc's alignment
constexpr size_t kFront = 256;    // guard bytes before a buffer
constexpr size_t kMinBack = 256;  // at least this many after it
constexpr unsigned char kCanary = 0xcd;
constexpr unsigned char kPoison = 0xff;  // EmuSettings::poison

struct Allocation {
  char* base = nullptr;  // what malloc returned
  char* user = nullptr;  // what the caller got
  size_t size = 0;       // what the caller asked for
  size_t total = 0;
  std::source_location where;
};

struct Registry {
  std::mutex m;
  std::map<const char*, Allocation> device;  // by user pointer
  std::set<const void*> pinned;
  size_t in_use = 0;
};

Registry& registry() {
  static Registry r;
  return r;
}

// The allocation containing p, or nullptr. Caller holds the lock.
const Allocation* find(Registry& r, const void* p, const char** user) {
  const char* c = static_cast<const char*>(p);
  auto it = r.device.upper_bound(c);
  if (it == r.device.begin()) return nullptr;
  --it;
  if (c < it->first || c >= it->first + (it->second.size ? it->second.size : 1)) return nullptr;
  *user = it->first;
  return &it->second;
}

size_t back_bytes(size_t size) { return (size + kAlign - 1) / kAlign * kAlign - size + kMinBack; }

void arm(char* user, const Allocation& a) {
  std::memset(a.base, kCanary, kFront);
  std::memset(user + a.size, kCanary, back_bytes(a.size));
  asan_poison(a.base, kFront);
  asan_poison(user + a.size, back_bytes(a.size));
}

}  // namespace

void* device_alloc(size_t bytes, const std::source_location& where) {
  const size_t total = kFront + bytes + back_bytes(bytes);
  char* base = static_cast<char*>(std::aligned_alloc(kAlign, total));
  if (!base) return nullptr;
  char* user = base + kFront;
  Allocation a{base, user, bytes, total, where};
  arm(user, a);
  // A GPU's fresh memory holds whatever was there; the host's is usually zeros, which hides reads
  // of never-written memory. Poisoned, they read as NaN (or -1).
  if (emu_settings().poison) std::memset(user, kPoison, bytes);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  r.device[user] = a;
  r.in_use += bytes;
  return user;
}

bool device_free(void* p) {
  Registry& r = registry();
  Allocation a;
  {
    std::lock_guard<std::mutex> lock(r.m);
    auto it = r.device.find(static_cast<const char*>(p));
    if (it == r.device.end()) return false;
    a = it->second;
    r.in_use -= a.size;
    r.device.erase(it);
  }
  asan_unpoison(a.base, a.total);
  std::free(a.base);
  return true;
}

bool is_device_range(const void* p, size_t bytes) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  const char* user = nullptr;
  const Allocation* a = find(r, p, &user);
  if (!a) return false;
  return static_cast<size_t>(static_cast<const char*>(p) - user) + bytes <= a->size;
}

bool is_device_pointer(const void* p) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  const char* user = nullptr;
  return find(r, p, &user) != nullptr;
}

void* pinned_alloc(size_t bytes) {
  void* p = std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign + kAlign);
  if (!p) return nullptr;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  r.pinned.insert(p);
  return p;
}

bool pinned_free(void* p) {
  Registry& r = registry();
  {
    std::lock_guard<std::mutex> lock(r.m);
    if (r.pinned.erase(p) == 0) return false;
  }
  std::free(p);
  return true;
}

size_t device_bytes_in_use() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  return r.in_use;
}

std::string check_device_redzones() {
  if (asan_enabled()) return "";  // ASan reported the bad access when it happened
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  std::string report;
  for (auto& entry : r.device) {
    const Allocation& a = entry.second;
    char* user = a.user;
    const char* where = nullptr;
    size_t offset = 0;
    for (size_t i = 0; i < kFront; ++i) {
      if (static_cast<unsigned char>(a.base[i]) != kCanary) {
        where = "before the start of";
        offset = kFront - i;
        break;
      }
    }
    const size_t back = back_bytes(a.size);
    if (!where) {
      for (size_t i = 0; i < back; ++i) {
        if (static_cast<unsigned char>(user[a.size + i]) != kCanary) {
          where = "past the end of";
          offset = i;
          break;
        }
      }
    }
    if (!where) continue;
    if (report.empty()) {
      report = cat("out-of-bounds write ", where, " a ", a.size, "-byte device buffer (cudaMalloc at ",
                   short_path(a.where.file_name()), ":", a.where.line(), "): byte ", where[0] == 'b' ? "-" : "+",
                   where[0] == 'b' ? offset : a.size + offset,
                   " was overwritten (found by the red-zone check after the launch)");
    }
    arm(user, a);
  }
  return report;
}

}  // namespace llm::emu
