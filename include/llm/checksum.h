// File checksums (xxHash's XXH3-64, libxxhash from Debian): a checkpoint records one per file in
// checksums.json so that resuming and loading catch a damaged file, naming it, before its bytes
// are used. XXH3 reads at memory speed, so checking a multi-GB checkpoint costs about a read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace llm {

inline constexpr const char* kChecksumsFile = "checksums.json";

// XXH3-64 of a byte range, and of a whole file read in chunks (an error names the file).
uint64_t xxh3_bytes(const void* data, size_t n);
uint64_t xxh3_file(const std::filesystem::path& file);

// Writes dir/checksums.json (atomically) recording the size and XXH3-64 of each of `files`
// (names inside dir).
void write_checksums(const std::filesystem::path& dir, const std::vector<std::string>& files);

// Checks every file that dir/checksums.json lists: it exists, has the recorded size and hash.
// An error names the damaged file and what differs. Returns false (and checks nothing) when dir
// has no checksums.json (a directory written before checksums, or not by llmtrain).
// `wanted`, when set, limits the check to the names it accepts (the files a reader will use).
bool verify_checksums(const std::filesystem::path& dir, const std::function<bool(const std::string&)>& wanted = {});

}  // namespace llm
