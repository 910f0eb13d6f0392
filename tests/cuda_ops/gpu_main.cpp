// Entry point of test_cuda_ops_gpu: tests/cuda_ops against a real device. Without one, every test
// is skipped with a message (a global environment that skips), so the gpu label can run anywhere.
#include <gtest/gtest.h>

#include <string>

#include "backend/cuda/cuda_factory.h"
#include "test_util.h"

namespace {

class RequireCudaDevice : public testing::Environment {
 public:
  void SetUp() override {
    std::string why;
    if (llm::cuda::cuda_device_count(&why) == 0) GTEST_SKIP() << "no CUDA device on this machine (" << why << ")";
  }
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  testing::AddGlobalTestEnvironment(new RequireCudaDevice);  // gtest owns it
  std::printf("random seed: %llu (set LLM_TEST_SEED to repeat)\n",
              static_cast<unsigned long long>(llm::test::base_seed()));
  return RUN_ALL_TESTS();
}
