// Test entry point: every run draws a fresh seed for random inputs and prints it, so a failure
// can be reproduced with LLM_TEST_SEED=<seed>.
#include <gtest/gtest.h>

#include "test_util.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  std::printf("random seed: %llu (set LLM_TEST_SEED to repeat)\n",
              static_cast<unsigned long long>(llm::test::base_seed()));
  return RUN_ALL_TESTS();
}
