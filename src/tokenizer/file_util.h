// Reading a whole file for the tokenizer loaders, with errors that name the path.
#pragma once

#include <filesystem>
#include <string>

namespace llm::tok {

// The file's bytes; throws llm::Error "<path>: cannot read: <reason>" when it is missing, a
// directory or unreadable.
std::string read_file_bytes(const std::filesystem::path& path);

}  // namespace llm::tok
