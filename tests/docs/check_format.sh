#!/usr/bin/env bash
# Fails if a C++/CUDA source of the tree differs from what .clang-format makes of it.
#   check_format.sh [SOURCE_DIR]      (clang-format from Debian's clang-format package)
# To fix: clang-format -i FILE (or git clang-format for the lines a change touches).
set -euo pipefail
cd "${1:-$(dirname "$0")/../..}"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  files=$(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh' | grep -v '/node_modules/' || true)
else
  files=$(find src include tools tests kernels emu bench \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) \
          -not -path '*/node_modules/*')
fi
# shellcheck disable=SC2086
clang-format --dry-run --Werror $files
echo "format: $(echo "$files" | wc -w) files follow .clang-format"
