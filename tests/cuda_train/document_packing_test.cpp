// Document masking through the whole model on the emulated CudaBackend: packed conversations give
// the same per-token logits, loss and gradients as each run alone (tests/model/document_packing_check.h).
#include "backend/cuda/cuda_backend.h"
#include "model/document_packing_check.h"

namespace llm::test {
namespace {

TEST(CudaDocumentPacking, PackedConversationsEqualSeparateRuns) {
  cuda_emu::CudaBackend cuda(0);
  check_document_packing(cuda);
}

}  // namespace
}  // namespace llm::test
