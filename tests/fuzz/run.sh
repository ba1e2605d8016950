#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang-14, ASan + UBSan) and runs each.
#   run.sh smoke BUILD_DIR        replay every seed, then 5 s of fuzzing each (make test)
#   run.sh long BUILD_DIR [RUNS]  RUNS executions each, default 10 million (make fuzz)
# New inputs go to BUILD_DIR/corpus/<harness>; the checked-in seeds stay as they are.
# A crash leaves its input as BUILD_DIR/<harness>-crash-* and fails the run.
set -euo pipefail
mode=${1:?smoke or long}
build=${2:?build directory}
runs=${3:-10000000}
here=$(cd "$(dirname "$0")" && pwd)
cmake -S "$here" -B "$build" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
declare -A dict=([http]=http.dict [json_bridge]=json.dict [config]=toml.dict [envelope]= [changes]= [message_fields]=)
status=0
for h in envelope json_bridge message_fields config http changes; do
  mkdir -p "$build/corpus/$h"
  args=(-max_len=4096 -print_final_stats=1 "-artifact_prefix=$build/$h-")
  [ -n "${dict[$h]}" ] && args+=("-dict=$here/${dict[$h]}")
  if [ "$mode" = smoke ]; then
    "$build/${h}_fuzz" -runs=0 "${args[@]}" "$here/corpus/$h" >"$build/$h-replay.log" 2>&1 || { echo "$h: a seed fails"; status=1; }
    "$build/${h}_fuzz" -max_total_time=5 "${args[@]}" "$build/corpus/$h" "$here/corpus/$h" >"$build/$h.log" 2>&1 || { echo "$h: crash"; status=1; }
  else
    "$build/${h}_fuzz" -runs="$runs" "${args[@]}" "$build/corpus/$h" "$here/corpus/$h" >"$build/$h.log" 2>&1 || { echo "$h: crash"; status=1; }
  fi
  echo "$h: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$build/$h.log" | awk '{print $2}') executions, $(grep -c 'ERROR: ' "$build/$h.log" || true) crashes"
done
exit $status
