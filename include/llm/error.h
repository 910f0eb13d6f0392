// Errors: one exception type whose message starts with the place that failed (an op name, a file
// path, a config key) and says what was expected. Nothing below main() exits the process.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace llm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// cat("a", 1, 'b') -> "a1b": message building without std::format (g++ 12 lacks it).
template <class... Args>
std::string cat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(cat(std::forward<Args>(args)...));
}

}  // namespace llm

// LLM_CHECK(cond, "rmsnorm_forward: ", "x is ", shape) throws llm::Error with the message when the
// condition does not hold. The condition text is not included: the message must say what is wrong.
#define LLM_CHECK(cond, ...)    \
  do {                          \
    if (!(cond)) {              \
      ::llm::fail(__VA_ARGS__); \
    }                           \
  } while (0)
