#!/usr/bin/env bash
# Builds the libFuzzer targets with ASan + UBSan and runs each for SECONDS
# (default 60), two at a time, from the seed corpus in tests/fuzz/corpus.
# New inputs go to a scratch copy; crashes are kept in build-fuzz/crashes
# and fail the run.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
secs=${1:-60}
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build-fuzz
CC=clang cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSMTPKIT_FUZZ=ON -DSMTPKIT_TESTS=OFF >/dev/null
targets=$(sed -n 's/^foreach(t \(.*\))$/\1/p' "$here/tests/fuzz/CMakeLists.txt")
cmake --build "$build" -j "$(nproc)" --target $(printf 'fuzz_%s ' $targets) >/dev/null
mkdir -p "$build/crashes"
run_one() {
  local t=$1 work
  work=$(mktemp -d)
  cp -r "$here/tests/fuzz/corpus/$t/." "$work/" 2>/dev/null || true
  if "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$build/crashes/$t-" -print_final_stats=1 "$work" \
       >"$build/fuzz_$t.log" 2>&1; then
    echo "fuzz_$t: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$build/fuzz_$t.log" | grep -o '[0-9]*$') executions, no crash"
  else
    echo "fuzz_$t: FAILED (see $build/fuzz_$t.log)"; tail -20 "$build/fuzz_$t.log"
    rm -rf "$work"; return 1
  fi
  rm -rf "$work"
}
status=0
pids=()
for t in $targets; do
  run_one "$t" & pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
