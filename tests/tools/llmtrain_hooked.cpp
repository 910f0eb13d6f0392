// llmtrain_hooked: llmtrain (the same command line, tools/llmtrain_cli.cpp) with the training
// tests' hooks from the LLM_TEST_* variables (train_test_hooks.h). Built for the tests only.
#include <iostream>

#include "llmtrain_cli.h"
#include "train_test_hooks.h"

int main(int argc, char** argv) {
  llm::TrainHooks hooks;
  try {
    hooks = llm::test::train_hooks_from_env();
  } catch (const std::exception& e) {
    std::cerr << "llmtrain: error: " << e.what() << "\n";
    return 1;
  }
  return llm::llmtrain_main(argc, argv, hooks);
}
