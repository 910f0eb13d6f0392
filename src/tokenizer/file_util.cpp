#include "tokenizer/file_util.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "llm/error.h"

namespace llm::tok {

std::string read_file_bytes(const std::filesystem::path& path) {
  std::error_code ec;
  LLM_CHECK(std::filesystem::exists(path, ec), path.string(), ": cannot read: no such file");
  LLM_CHECK(!std::filesystem::is_directory(path, ec), path.string(), ": cannot read: is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  LLM_CHECK(in.good(), path.string(), ": cannot read: ", std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  LLM_CHECK(!in.bad(), path.string(), ": read error: ", std::strerror(errno));
  return std::move(s).str();
}

}  // namespace llm::tok
