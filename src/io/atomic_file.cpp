#include "llm/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>

#include "llm/error.h"

namespace llm {
namespace {

// strerror(errno), thread-safe.
std::string errno_text(int err) { return std::generic_category().message(err); }

std::filesystem::path parent_or_dot(const std::filesystem::path& p) {
  std::filesystem::path parent = p.parent_path();
  return parent.empty() ? std::filesystem::path(".") : parent;
}

void rename_or_fail(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    const int err = errno;
    fail(to, ": cannot rename ", from, " to it: ", errno_text(err));
  }
}

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
  LLM_CHECK(target_.has_filename(), target_, ": expected a file path, not a directory");
  temp_ = target_;
  temp_ += cat(".tmp.", ::getpid());
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    const int err = errno;
    fail(target_, ": cannot create temp file ", temp_, ": ", errno_text(err));
  }
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : target_(std::move(other.target_)),
      temp_(std::move(other.temp_)),
      fd_(std::exchange(other.fd_, -1)),
      committed_(other.committed_),
      write_failed_(other.write_failed_) {
  other.temp_.clear();
}

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
  if (this != &other) {
    discard();
    target_ = std::move(other.target_);
    temp_ = std::move(other.temp_);
    other.temp_.clear();
    fd_ = std::exchange(other.fd_, -1);
    committed_ = other.committed_;
    write_failed_ = other.write_failed_;
  }
  return *this;
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
  temp_.clear();
}

void AtomicFile::write(const void* data, size_t n) {
  LLM_CHECK(fd_ >= 0 && !committed_, target_, ": write after commit (or on a moved-from AtomicFile)");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      write_failed_ = true;
      fail(temp_, ": write failed: ", errno_text(err));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  LLM_CHECK(fd_ >= 0 && !committed_, target_, ": commit called twice (or on a moved-from AtomicFile)");
  LLM_CHECK(!write_failed_, target_, ": refusing to commit after a failed write");
  if (::fsync(fd_) != 0) {
    const int err = errno;
    fail(temp_, ": fsync failed: ", errno_text(err));
  }
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) {
    const int err = errno;
    fail(temp_, ": close failed: ", errno_text(err));
  }
  rename_or_fail(temp_, target_);
  committed_ = true;
  fsync_dir(parent_or_dot(target_));
}

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  AtomicFile file(path);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

void fsync_dir(const std::filesystem::path& dir) {
  const std::filesystem::path d = dir.empty() ? std::filesystem::path(".") : dir;
  const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    fail(d, ": cannot open directory to fsync it: ", errno_text(err));
  }
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) fail(d, ": fsync of directory failed: ", errno_text(err));
}

void commit_directory(const std::filesystem::path& tmp_dir, const std::filesystem::path& final_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  LLM_CHECK(fs::is_directory(fs::symlink_status(tmp_dir, ec)), tmp_dir, ": expected a directory to commit as ",
            final_dir);
  LLM_CHECK(final_dir.has_filename(), final_dir, ": expected a directory path without a trailing '/'");
  fsync_dir(tmp_dir);  // its entries (the files written into it) become durable

  const fs::path final_parent = parent_or_dot(final_dir);
  const fs::path tmp_parent = parent_or_dot(tmp_dir);
  const fs::file_status existing = fs::symlink_status(final_dir, ec);
  if (!fs::exists(existing)) {
    rename_or_fail(tmp_dir, final_dir);
    fsync_dir(final_parent);
    if (fs::absolute(tmp_parent) != fs::absolute(final_parent)) fsync_dir(tmp_parent);
    return;
  }
  LLM_CHECK(fs::is_directory(existing), final_dir, ": exists and is not a directory; refusing to replace it with ",
            tmp_dir);

  fs::path aside = final_dir;
  aside += cat(".old.", ::getpid());
  fs::remove_all(aside, ec);  // a leftover from an earlier crash; final_dir is the complete copy
  if (ec) fail(aside, ": cannot remove stale directory: ", ec.message());
  rename_or_fail(final_dir, aside);
  if (::rename(tmp_dir.c_str(), final_dir.c_str()) != 0) {
    const int err = errno;
    ::rename(aside.c_str(), final_dir.c_str());  // best effort: put the old copy back
    fail(final_dir, ": cannot rename ", tmp_dir, " to it: ", errno_text(err));
  }
  fsync_dir(final_parent);
  if (fs::absolute(tmp_parent) != fs::absolute(final_parent)) fsync_dir(tmp_parent);
  fs::remove_all(aside, ec);
  if (ec) fail(final_dir, ": committed, but the previous version at ", aside, " could not be removed: ", ec.message());
}

}  // namespace llm
