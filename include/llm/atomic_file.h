// Crash-safe file and directory replacement. A reader of the target path sees either the old
// contents or the complete new contents, never a half-written file: the bytes go to a temporary
// name in the same directory, are fsync'ed, and are renamed over the target (rename(2) is atomic
// within one filesystem); the directory is then fsync'ed so the rename itself survives a crash.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string_view>

namespace llm {

// One file being written: AtomicFile f(path); f.write(...)...; f.commit();
// The temp file is "<target>.tmp.<pid>" next to the target. Destroying an uncommitted AtomicFile
// (an exception, an early return) removes the temp file and leaves the target untouched.
// Each write() is one or more write(2) calls with no buffering: batch small pieces.
// Two AtomicFiles for the same target in one process would share the temp name: don't.
class AtomicFile {
 public:
  // Creates (truncates) the temp file; throws naming the path if that fails (missing directory,
  // no permission, target without a file name).
  explicit AtomicFile(std::filesystem::path target);
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&& other) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  void write(const void* data, size_t n);
  // fsync, close, rename over the target, fsync the directory. Throws (naming the path and
  // strerror) if any step fails; the temp file is then removed by the destructor. Refused after
  // a failed write() so that a short file is never committed.
  void commit();

  const std::filesystem::path& target() const { return target_; }
  const std::filesystem::path& temp_path() const { return temp_; }

 private:
  void discard() noexcept;  // closes and unlinks an uncommitted temp file

  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool committed_ = false;
  bool write_failed_ = false;
};

// Replaces path's contents with bytes via AtomicFile.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// fsync(2) on a directory, making renames and creations inside it durable. An empty path means
// the current directory. Filesystems that cannot sync directories (EINVAL) are accepted silently.
void fsync_dir(const std::filesystem::path& dir);

// Moves a fully written directory tmp_dir to final_dir (same filesystem; files inside must
// already be fsync'ed, as AtomicFile does). If final_dir exists it is first renamed aside to
// "<final_dir>.old.<pid>", the new one renamed in, and the old one removed. Between the two
// renames a crash leaves final_dir missing and the old copy at the aside name; callers that
// recover (checkpoint loading) may look there. Throws naming the paths if a step fails; if the
// old copy cannot be removed after a successful swap, the error says so (the new one is in place).
void commit_directory(const std::filesystem::path& tmp_dir, const std::filesystem::path& final_dir);

}  // namespace llm
