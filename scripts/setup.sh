#!/usr/bin/env bash
# Installs what the build and the tests need, from Debian only. Idempotent: packages already
# present are skipped, so a second run does nothing but check.
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libopenblas-openmp-dev libomp-dev     # CPU math: OpenBLAS sharing the OpenMP thread pool
  libdnnl-dev                          # oneDNN: bf16 matmul on AVX512-BF16/AMX
  nlohmann-json3-dev libcli11-dev libgtest-dev
  libsentencepiece-dev sentencepiece    # the from-scratch tokenizer path
  libicu-dev                            # NFC and Unicode categories (Qwen pre-tokenizer)
  libopenmpi-dev openmpi-bin            # data parallelism on CPU
  libedit-dev                           # line editing in the llmgen REPL
  libcpp-httplib-dev                    # HTTP for llmgen --serve
  libxxhash-dev                         # checksums of checkpoint files and shard headers
  clang-14 libclang-rt-14-dev           # libFuzzer + sanitizers for the fuzz targets (fuzz/)
  clang-format                          # the tree follows .clang-format (tests/docs/check_format.sh)
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

# The JavaScript clients and references the tests run (each folder's package-lock.json, installed
# exactly with npm ci; skipped when the installed tree already matches it):
#   tests/tokenizer/js  the reference Qwen tokenizer (parity tests, bench/tokenizer_throughput)
#   tests/gguf/js       llama.cpp (node-llama-cpp, its prebuilt CPU binaries ship inside the npm
#                       packages) reading our GGUF exports. --ignore-scripts: its postinstall would
#                       try to download or build llama.cpp; the tests load the shipped binaries.
#   tests/serve/js      the official openai client driving llmgen --serve
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for js in tests/tokenizer/js tests/gguf/js tests/serve/js; do
  [[ -f $root/$js/package-lock.json ]] || continue
  if (cd "$root/$js" && npm ls --silent >/dev/null 2>&1); then
    echo "setup: $js present"
  else
    echo "setup: npm ci in $js"
    # npm ci refuses a lock without entries for optional packages the registry lacks (some of
    # node-llama-cpp's other-platform binaries); npm install then installs the same locked versions.
    (cd "$root/$js" && { npm ci --ignore-scripts --no-audit --no-fund --loglevel=silent ||
                         npm install --no-save --ignore-scripts --no-audit --no-fund --loglevel=error; })
  fi
done
