#include "llm/atomic_file.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "io_test_util.h"
#include "test_util.h"

namespace llm {
namespace {

namespace fs = std::filesystem;
using test::expect_error;
using test::read_bytes;
using test::TempDir;
using test::write_bytes;

std::vector<std::string> dir_names(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string random_bytes(size_t n) {
  auto g = test::rng();
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(g() & 0xffu);
  return s;
}

TEST(AtomicFile, TempFileSitsNextToTargetWithPid) {
  TempDir dir;
  AtomicFile f(dir / "model.bin");
  EXPECT_EQ(f.temp_path(), dir / ("model.bin.tmp." + std::to_string(::getpid())));
  EXPECT_TRUE(fs::exists(f.temp_path()));
}

TEST(AtomicFile, UncommittedLeavesNeitherFileNorTemp) {
  TempDir dir;
  fs::path temp;
  {
    AtomicFile f(dir / "a.bin");
    f.write("abc", 3);
    temp = f.temp_path();
    EXPECT_TRUE(fs::exists(temp));
  }
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_FALSE(fs::exists(dir / "a.bin"));
  EXPECT_TRUE(dir_names(dir.path()).empty());
}

TEST(AtomicFile, UncommittedKeepsExistingTarget) {
  TempDir dir;
  write_bytes(dir / "a.bin", "old");
  {
    AtomicFile f(dir / "a.bin");
    f.write("new contents", 12);
  }
  EXPECT_EQ(read_bytes(dir / "a.bin"), "old");
  EXPECT_EQ(dir_names(dir.path()), std::vector<std::string>{"a.bin"});
}

TEST(AtomicFile, CommitReplacesExistingFile) {
  TempDir dir;
  write_bytes(dir / "a.bin", "old contents that are longer than the new ones");
  const std::string fresh = random_bytes(10000);  // includes NUL bytes
  AtomicFile f(dir / "a.bin");
  f.write(fresh.data(), 3);
  f.write(fresh.data() + 3, fresh.size() - 3);
  EXPECT_EQ(read_bytes(dir / "a.bin"), "old contents that are longer than the new ones");  // not yet
  f.commit();
  EXPECT_EQ(read_bytes(dir / "a.bin"), fresh);
  EXPECT_EQ(dir_names(dir.path()), std::vector<std::string>{"a.bin"});
}

TEST(AtomicFile, WriteFileAtomicCreatesFile) {
  TempDir dir;
  const std::string bytes = random_bytes(257);
  write_file_atomic(dir / "b.bin", bytes);
  EXPECT_EQ(read_bytes(dir / "b.bin"), bytes);
  write_file_atomic(dir / "b.bin", "");
  EXPECT_EQ(read_bytes(dir / "b.bin"), "");
  EXPECT_EQ(dir_names(dir.path()), std::vector<std::string>{"b.bin"});
}

TEST(AtomicFile, RelativePathUsesCurrentDirectory) {
  TempDir dir;
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());
  write_file_atomic("rel.txt", "x");
  fs::current_path(cwd);
  EXPECT_EQ(read_bytes(dir / "rel.txt"), "x");
}

TEST(AtomicFile, MissingDirectoryIsAnErrorNamingThePath) {
  TempDir dir;
  const fs::path target = dir / "no_such_dir" / "a.bin";
  expect_error([&] { AtomicFile f(target); }, {target.string(), "No such file or directory"});
  expect_error([&] { write_file_atomic(target, "x"); }, {target.string(), "No such file or directory"});
}

TEST(AtomicFile, TargetWithoutFileNameIsAnError) {
  TempDir dir;
  expect_error([&] { AtomicFile f(dir.path() / ""); }, {dir.path().string(), "expected a file path"});
}

TEST(AtomicFile, CommitOverADirectoryFailsAndCleansUp) {
  TempDir dir;
  fs::create_directory(dir / "sub");
  {
    AtomicFile f(dir / "sub");
    f.write("x", 1);
    expect_error([&] { f.commit(); }, {(dir / "sub").string(), "cannot rename", "Is a directory"});
  }
  EXPECT_EQ(dir_names(dir.path()), std::vector<std::string>{"sub"});
}

TEST(AtomicFile, WriteAfterCommitAndDoubleCommitAreErrors) {
  TempDir dir;
  AtomicFile f(dir / "a.bin");
  f.commit();
  expect_error([&] { f.write("x", 1); }, {(dir / "a.bin").string(), "write after commit"});
  expect_error([&] { f.commit(); }, {(dir / "a.bin").string(), "commit called twice"});
  EXPECT_EQ(read_bytes(dir / "a.bin"), "");
}

TEST(AtomicFile, MoveTransfersOwnershipOfTheTempFile) {
  TempDir dir;
  AtomicFile a(dir / "a.bin");
  a.write("ab", 2);
  AtomicFile b(std::move(a));
  b.write("cd", 2);
  {
    AtomicFile c(dir / "c.bin");
    c = std::move(b);  // c's own temp file is discarded, b's is now c's
    c.commit();
  }
  EXPECT_EQ(read_bytes(dir / "a.bin"), "abcd");
  EXPECT_EQ(dir_names(dir.path()), std::vector<std::string>{"a.bin"});
}

TEST(FsyncDir, MissingDirectoryIsAnError) {
  TempDir dir;
  expect_error([&] { fsync_dir(dir / "nope"); }, {(dir / "nope").string(), "No such file or directory"});
  fsync_dir(dir.path());  // and an existing one works
}

TEST(CommitDirectory, MovesNewDirectoryIntoPlace) {
  TempDir dir;
  fs::create_directory(dir / "step.tmp");
  write_file_atomic(dir / "step.tmp" / "f.txt", "one");
  commit_directory(dir / "step.tmp", dir / "step");
  EXPECT_EQ(read_bytes(dir / "step" / "f.txt"), "one");
  EXPECT_EQ(dir_names(dir.path()), std::vector<std::string>{"step"});
}

TEST(CommitDirectory, ReplacesExistingDirectoryAndRemovesTheOldOne) {
  TempDir dir;
  fs::create_directory(dir / "step");
  write_file_atomic(dir / "step" / "old.txt", "old");
  fs::create_directory(dir / "step" / "nested");
  write_file_atomic(dir / "step" / "nested" / "x", "x");
  fs::create_directory(dir / "step.tmp");
  write_file_atomic(dir / "step.tmp" / "new.txt", "new");
  commit_directory(dir / "step.tmp", dir / "step");
  EXPECT_EQ(dir_names(dir / "step"), std::vector<std::string>{"new.txt"});
  EXPECT_EQ(read_bytes(dir / "step" / "new.txt"), "new");
  EXPECT_EQ(dir_names(dir.path()), std::vector<std::string>{"step"});  // no ".old.<pid>" left
}

TEST(CommitDirectory, BadInputsAreErrors) {
  TempDir dir;
  expect_error([&] { commit_directory(dir / "missing", dir / "final"); },
               {(dir / "missing").string(), "expected a directory"});
  fs::create_directory(dir / "t");
  write_bytes(dir / "final_is_file", "x");
  expect_error([&] { commit_directory(dir / "t", dir / "final_is_file"); },
               {(dir / "final_is_file").string(), "not a directory"});
  EXPECT_TRUE(fs::is_directory(dir / "t"));
  EXPECT_EQ(read_bytes(dir / "final_is_file"), "x");
  expect_error([&] { commit_directory(dir / "t", dir / "no_parent" / "final"); },
               {(dir / "no_parent" / "final").string(), "No such file or directory"});
  EXPECT_TRUE(fs::is_directory(dir / "t"));
}

}  // namespace
}  // namespace llm
