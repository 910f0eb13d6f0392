// llmtrain's command line as a function: tools/llmtrain.cpp calls it without hooks; the tests'
// build of llmtrain (tests/tools/llmtrain_hooked.cpp) calls it with their hooks.
#pragma once

#include "llm/trainer.h"

namespace llm {

// Parses argv as llmtrain does and runs the command; returns the exit status. hooks go to train().
int llmtrain_main(int argc, char** argv, const TrainHooks& hooks = {});

}  // namespace llm
