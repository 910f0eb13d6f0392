// The HTTP server's request bodies (llmgen --serve): /v1/chat/completions (messages, sampling,
// stop, stream options) and /v1/completions, parsed and validated; chat messages rendered.
#include "fuzz_util.h"
#include "llm/chat.h"
#include "llm/error.h"
#include "serve/openai_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto endpoint = (data[0] & 1) ? llm::serve::Endpoint::Chat : llm::serve::Endpoint::Completion;
  try {
    const llm::serve::ApiRequest r = llm::serve::parse_request(endpoint, body, llm::SamplingParams{}, 16);
    if (endpoint == llm::serve::Endpoint::Chat) (void)llm::render_chatml(r.messages, true);
  } catch (const llm::serve::ApiError&) {  // a rejected request (HTTP 400)
  } catch (const llm::Error&) {
  }
  return 0;
}
