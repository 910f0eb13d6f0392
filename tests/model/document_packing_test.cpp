// Document masking through the whole model on the CPU (tests/model/document_packing_check.h).
#include "backend/cpu/cpu_backend.h"
#include "model/document_packing_check.h"

namespace llm::test {
namespace {

TEST(DocumentPacking, PackedConversationsEqualSeparateRuns) {
  CpuBackend cpu(2);
  check_document_packing(cpu);
}

TEST(DocumentPacking, PositionsThatDoNotFormDocumentsAreRejected) {
  auto g = rng();
  const ModelConfig c = odd_config();
  CpuBackend cpu(2);
  ModelOptions o;
  o.max_seq = 4;
  Qwen2Model m(c, cpu, o);
  m.set_weights(random_weights(g, ParamTable(c)));
  const std::vector<int32_t> ids = {1, 2, 3, 4}, targets = {2, 3, 4, 5}, bad = {0, 1, 3, 0};
  try {
    m.forward(TokenBatch{1, 4, ids, targets, bad}, false);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("position 3 at token 2"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace llm::test
