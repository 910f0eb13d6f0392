// Expanding the configured inputs (files, directories, globs) into the list of files to read.
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <system_error>
#include <utility>

#include "corpus.h"
#include "llm/error.h"

namespace llm::data {

namespace fs = std::filesystem;

namespace {

constexpr size_t kSniffBytes = 64 * 1024;

bool has_glob_chars(const std::string& p) { return p.find_first_of("*?[") != std::string::npos; }

bool excluded(const fs::path& p, const DataInput& in) {
  const std::string name = p.filename().string();
  if (!name.empty() && name[0] == '.') return true;  // hidden files and directories
  for (const auto& pat : in.exclude) {
    if (::fnmatch(pat.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

// Offset of the first NUL byte in the file's first 64 KiB, or -1.
int64_t first_nul(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    fail(p, ": cannot open input file: ", std::generic_category().message(err));
  }
  std::vector<char> buf(kSniffBytes);
  size_t got = 0;
  while (got < buf.size()) {
    const ssize_t r = ::read(fd, buf.data() + got, buf.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  const void* nul = std::memchr(buf.data(), 0, got);
  return nul ? static_cast<const char*>(nul) - buf.data() : -1;
}

struct Collector {
  const DataConfig& config;
  std::vector<InputFile> files;
  std::set<std::pair<dev_t, ino_t>> seen;

  // Adds one regular file; `named` when the config names it directly (binary is then an error).
  // Returns whether it was added.
  bool add(const fs::path& p, size_t input, bool named, const std::string& where) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
      const int err = errno;
      fail(p, ": cannot stat input file (", where, "): ", std::generic_category().message(err));
    }
    if (!S_ISREG(st.st_mode)) {
      LLM_CHECK(!named, p, ": not a regular file (", where, ")");
      return false;
    }
    if (!seen.insert({st.st_dev, st.st_ino}).second) return false;  // the same file again
    const int64_t nul = first_nul(p);
    if (nul >= 0) {
      LLM_CHECK(!named, p, ": looks binary (a NUL byte at byte offset ", nul, "); expected ",
                config.inputs[input].format, " (", where, ")");
      return false;
    }
    InputFile f;
    f.path = p;
    f.size = static_cast<uint64_t>(st.st_size);
    f.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    f.input = input;
    files.push_back(std::move(f));
    return true;
  }

  size_t walk(const fs::path& dir, size_t input, const std::string& where) {
    std::vector<fs::path> found;
    std::error_code ec;
    fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
    LLM_CHECK(!ec, dir, ": cannot read directory (", where, "): ", ec.message());
    for (; it != end; it.increment(ec)) {
      LLM_CHECK(!ec, dir, ": cannot read directory (", where, "): ", ec.message());
      const fs::path& p = it->path();
      if (excluded(p, config.inputs[input])) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec)) found.push_back(p);
    }
    std::sort(found.begin(), found.end());
    size_t added = 0;
    for (const auto& p : found) added += add(p, input, false, where) ? 1 : 0;
    return added;
  }

  size_t expand_glob(const std::string& pattern, size_t input, const std::string& where) {
    glob_t g{};
    const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
    std::vector<fs::path> matches;
    if (rc == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) matches.emplace_back(g.gl_pathv[i]);
    }
    ::globfree(&g);
    LLM_CHECK(rc == 0 || rc == GLOB_NOMATCH, pattern, ": glob failed (", where, ")");
    LLM_CHECK(!matches.empty(), pattern, ": the pattern matches no files (", where, ")");
    size_t added = 0;
    for (const auto& p : matches) {  // glob(3) returns them sorted
      if (excluded(p, config.inputs[input])) continue;
      std::error_code ec;
      if (fs::is_directory(p, ec)) {
        added += walk(p, input, where);
      } else {
        added += add(p, input, false, where) ? 1 : 0;
      }
    }
    return added;
  }
};

}  // namespace

std::vector<InputFile> resolve_inputs(const DataConfig& config) {
  Collector c{config, {}, {}};
  for (size_t i = 0; i < config.inputs.size(); ++i) {
    const DataInput& in = config.inputs[i];
    const std::string where = cat("data.inputs[", i, "]");
    size_t added = 0;
    if (has_glob_chars(in.path)) {
      added = c.expand_glob(in.path, i, where);
    } else {
      std::error_code ec;
      const fs::file_status st = fs::status(in.path, ec);
      LLM_CHECK(fs::exists(st), in.path, ": input file does not exist (", where, ")");
      if (fs::is_directory(st)) {
        added = c.walk(in.path, i, where);
      } else {
        c.add(in.path, i, true, where);  // named twice, a file is read once: not "no files"
        added = 1;
      }
    }
    LLM_CHECK(added > 0, in.path, ": no text files to read (", where,
              "; hidden, excluded, binary and already listed files are skipped)");
  }
  return c.files;
}

}  // namespace llm::data
