#!/usr/bin/env bash
# Runs every fuzz target of a fuzz build (fuzz/CMakeLists.txt) for SECONDS each, starting from the
# checked-in seeds (fuzz/corpus/<target>/) and growing a working corpus in BUILD/corpus/<target>/;
# first replays every checked-in crash reproducer (fuzz/regressions/<target>/). SECONDS 0: replay
# only. Exits non-zero on the first crash, leak, sanitizer report or timeout (libFuzzer writes the
# input as crash-*/leak-*/timeout-* in BUILD/artifacts/).
#   bash fuzz/run.sh build-fuzz 10      # CI
#   bash fuzz/run.sh build-fuzz 3600    # by hand: an hour per target
#   bash fuzz/run.sh build-fuzz 480 gguf chat   # only these targets (e.g. one list per core)
set -euo pipefail
usage="usage: fuzz/run.sh BUILD_DIR SECONDS [TARGET...]"
build=${1:?$usage}
seconds=${2:?$usage}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/artifacts"
if (($# > 0)); then targets=("$@"); else targets=(); for exe in "$build"/*_fuzz; do targets+=("$(basename "$exe" _fuzz)"); done; fi
for t in "${targets[@]}"; do
  exe="$build/${t}_fuzz"
  [[ -x $exe ]] || { echo "fuzz: no target $exe"; exit 1; }
  if compgen -G "$here/regressions/$t/*" > /dev/null; then
    echo "fuzz: $t: replaying $(ls "$here/regressions/$t" | wc -l) regression inputs"
    "$exe" -runs=1 "$here/regressions/$t"/* 2>&1 | tail -1
  fi
  ((seconds > 0)) || continue
  mkdir -p "$build/corpus/$t"
  echo "fuzz: $t: ${seconds}s"
  log="$build/artifacts/$t.log"
  status=0
  "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t-" "$build/corpus/$t" "$here/corpus/$t" > "$log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+[[:space:]]+DONE)|ERROR|SUMMARY|crash|deadly" "$log" || true
  ((status == 0)) || { echo "fuzz: $t: FAILED (status $status; $log, $build/artifacts/)"; exit 1; }
done
echo "fuzz: all targets clean"
