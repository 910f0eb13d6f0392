// llmtrain: train a Qwen2 model, prepare a corpus, tokenize, or export a model (tools/llmtrain_cli.cpp).
#include "llmtrain_cli.h"

int main(int argc, char** argv) { return llm::llmtrain_main(argc, argv); }
