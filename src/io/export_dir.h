// An output directory written whole or not at all (export_hf, export_ollama): files go into a
// temporary sibling directory, each fsync'ed (write_file_atomic), and the directory is renamed
// into place by commit(). Destroyed uncommitted (an error), the temporary directory is removed.
#pragma once

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "llm/atomic_file.h"
#include "llm/error.h"

namespace llm::io {

namespace fs = std::filesystem;

inline std::string read_whole_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  LLM_CHECK(in.good(), p.string(), ": cannot be read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline nlohmann::json read_json_file(const fs::path& p) {
  try {
    return nlohmann::json::parse(read_whole_file(p));
  } catch (const nlohmann::json::parse_error& e) {
    fail(p.string(), ": not valid JSON at byte ", e.byte);
  }
}

class StagingDir {
 public:
  // Checks final_dir before anything is read or written: its parent must be a writable
  // directory; final_dir itself must not exist, be an empty directory, or hold only names for
  // which `ours` is true (an earlier export of the same kind, replaced on commit). Never
  // replacing anything else keeps `--out .` or `--out ~` from deleting a user's files.
  StagingDir(fs::path final_dir, const std::function<bool(const std::string&)>& ours) : final_(std::move(final_dir)) {
    if (!final_.has_filename()) final_ = final_.parent_path();  // "out/" names "out"
    LLM_CHECK(!final_.empty(), "--out: an empty directory name");
    const fs::path parent = final_.parent_path().empty() ? fs::path(".") : final_.parent_path();
    LLM_CHECK(fs::is_directory(parent), final_.string(), ": the directory ", parent.string(), " does not exist");
    LLM_CHECK(::access(parent.c_str(), W_OK) == 0, final_.string(), ": the directory ", parent.string(),
              " is not writable");
    std::error_code ec;
    const auto st = fs::symlink_status(final_, ec);
    if (fs::exists(st)) {
      LLM_CHECK(fs::is_directory(st), final_.string(), ": exists and is not a directory");
      for (const auto& e : fs::directory_iterator(final_)) {
        const std::string name = e.path().filename().string();
        LLM_CHECK(e.is_regular_file() && ours(name), final_.string(), ": exists and holds ", name,
                  ", which this export does not write; choose a new or empty directory");
      }
    }
    tmp_ = parent / cat(".", final_.filename().string(), ".tmp.", ::getpid());
    fs::remove_all(tmp_, ec);
    LLM_CHECK(fs::create_directory(tmp_, ec) && !ec, tmp_.string(), ": cannot create: ", ec.message());
  }
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;
  ~StagingDir() {
    if (committed_) return;
    std::error_code ec;
    fs::remove_all(tmp_, ec);  // best effort: the error being reported matters more
  }

  const fs::path& path() const { return tmp_; }          // where to write the files now
  const fs::path& final_path() const { return final_; }  // where they will be
  void write(const std::string& name, std::string_view bytes) const { write_file_atomic(tmp_ / name, bytes); }
  void commit() {
    commit_directory(tmp_, final_);
    committed_ = true;
  }

 private:
  fs::path final_, tmp_;
  bool committed_ = false;
};

}  // namespace llm::io
