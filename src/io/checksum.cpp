// checksums.json: {"algorithm": "xxh3_64", "files": {"name": {"bytes": N, "xxh3_64": "16 hex digits"}}}.
#include "llm/checksum.h"
#include "llm/config_reader.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <system_error>

#include "llm/atomic_file.h"
#include "llm/error.h"

namespace llm {

namespace fs = std::filesystem;

namespace {

std::string hex64(uint64_t v) {
  char s[20];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(v));
  return s;
}

// Closes the descriptor on every path out.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

struct StateDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};

}  // namespace

uint64_t xxh3_bytes(const void* data, size_t n) { return XXH3_64bits(data, n); }

uint64_t xxh3_file(const fs::path& file) {
  Fd f{::open(file.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) {
    const int err = errno;
    fail(file.string(), ": cannot open to check it: ", std::generic_category().message(err));
  }
  std::unique_ptr<XXH3_state_t, StateDeleter> st(XXH3_createState());
  LLM_CHECK(st && XXH3_64bits_reset(st.get()) == XXH_OK, file.string(), ": cannot start a checksum");
  std::vector<char> buf(size_t(1) << 20);
  for (;;) {
    const ssize_t r = ::read(f.fd, buf.data(), buf.size());
    if (r < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      fail(file.string(), ": read failed: ", std::generic_category().message(err));
    }
    if (r == 0) break;
    XXH3_64bits_update(st.get(), buf.data(), static_cast<size_t>(r));
  }
  return XXH3_64bits_digest(st.get());
}

void write_checksums(const fs::path& dir, const std::vector<std::string>& files) {
  nlohmann::json entries = nlohmann::json::object();
  for (const auto& name : files) {
    const fs::path p = dir / name;
    entries[name] = {{"bytes", fs::file_size(p)}, {"xxh3_64", hex64(xxh3_file(p))}};
  }
  const nlohmann::json j = {{"algorithm", "xxh3_64"}, {"files", entries}};
  write_file_atomic(dir / kChecksumsFile, j.dump(2) + "\n");
}

bool verify_checksums(const fs::path& dir, const std::function<bool(const std::string&)>& wanted) {
  const fs::path file = dir / kChecksumsFile;
  std::error_code ec;
  if (!fs::exists(file, ec)) return false;
  const nlohmann::json j = read_json_file(file);  // a damaged checksum list is an error too
  LLM_CHECK(j.is_object() && j.value("algorithm", "") == "xxh3_64" && j.contains("files") && j["files"].is_object(),
            file.string(), ": expected {\"algorithm\": \"xxh3_64\", \"files\": {...}}");
  for (const auto& [name, e] : j["files"].items()) {
    if (wanted && !wanted(name)) continue;
    LLM_CHECK(e.is_object() && e.contains("bytes") && e["bytes"].is_number_unsigned() && e.contains("xxh3_64") &&
                  e["xxh3_64"].is_string(),
              file.string(), ": entry \"", name, "\" needs \"bytes\" and \"xxh3_64\"");
    LLM_CHECK(name.find('/') == std::string::npos && name != ".." && !name.empty(), file.string(), ": entry \"", name,
              "\" is not a file name");
    const fs::path p = dir / name;
    LLM_CHECK(fs::exists(p, ec), p.string(), ": missing (listed in ", file.string(), ")");
    const uint64_t bytes = fs::file_size(p, ec);
    const uint64_t want_bytes = e["bytes"].get<uint64_t>();
    LLM_CHECK(!ec && bytes == want_bytes, p.string(), ": damaged: ", bytes, " bytes, ", file.string(), " recorded ",
              want_bytes);
    const std::string got = hex64(xxh3_file(p)), want = e["xxh3_64"].get<std::string>();
    LLM_CHECK(got == want, p.string(), ": damaged: its XXH3-64 checksum is ", got, ", ", file.string(), " recorded ",
              want, " (the file changed after it was written: disk or copy error)");
  }
  return true;
}

}  // namespace llm
