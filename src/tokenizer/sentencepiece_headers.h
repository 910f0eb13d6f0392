// sentencepiece's own headers (Debian libsentencepiece-dev), which do not build cleanly under our
// warnings: included here once, with those warnings off for them alone.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
#pragma GCC diagnostic ignored "-Woverloaded-virtual"
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#pragma GCC diagnostic pop
