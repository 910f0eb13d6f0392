#!/usr/bin/env bash
# Installs what the build and the tests need, from Debian only. Idempotent: packages already
# present are skipped, so a second run does nothing but check.
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libopenblas-openmp-dev libomp-dev     # CPU math: OpenBLAS sharing the OpenMP thread pool
  nlohmann-json3-dev libcli11-dev libgtest-dev
  libsentencepiece-dev sentencepiece    # the from-scratch tokenizer path
  libicu-dev                            # NFC and Unicode categories (Qwen pre-tokenizer)
  libopenmpi-dev openmpi-bin            # data parallelism on CPU
  libedit-dev                           # line editing in the llmgen REPL
  python3-torch python3-numpy           # the independent PyTorch reference (tests/reference)
  fortunes fortunes-zh                  # the demo corpus: real text shipped by Debian
  nodejs npm                            # the JavaScript reference tokenizer (tests)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# nodejs/npm may come from outside Debian (nvm, upstream builds): a working `npm` is enough.
if command -v npm >/dev/null 2>&1; then
  filtered=()
  for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || true
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all packages present"
fi

# The JavaScript reference tokenizer (tests/tokenizer/js: the parity tests and
# bench/tokenizer_throughput). npm ci installs exactly package-lock.json; skipped when the
# installed tree already matches it.
js_ref="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/tokenizer/js"
if [[ -f $js_ref/package-lock.json ]]; then
  if (cd "$js_ref" && npm ls --silent >/dev/null 2>&1); then
    echo "setup: JavaScript reference tokenizer present"
  else
    echo "setup: npm ci in tests/tokenizer/js"
    (cd "$js_ref" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

# llama.cpp as the independent client of our GGUF exports (tests/gguf): node-llama-cpp with its
# prebuilt CPU binaries, which ship inside the npm packages. --ignore-scripts: its postinstall
# would try to download or build llama.cpp; the tests load the shipped binaries (build "never").
gguf_ref="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/gguf/js"
if [[ -f $gguf_ref/package-lock.json ]]; then
  if (cd "$gguf_ref" && npm ls --silent >/dev/null 2>&1); then
    echo "setup: llama.cpp reference (node-llama-cpp) present"
  else
    echo "setup: npm ci in tests/gguf/js"
    (cd "$gguf_ref" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  fi
fi
