#!/usr/bin/env bash
# make profile: perf record (cpu-clock, call graphs) of the request/reply
# scenarios, Cohort alone, and a flame graph (SVG) plus a text report of each,
# under bench/results/profiles/<label>/. Keep one run before a change and one
# after (labels such as "before-copies", "after-copies") to show what moved.
#
# Usage: bench/profile/profile.sh BUILD_DIR LABEL [SECONDS]
set -euo pipefail
build="$1"
label="$2"
seconds="${3:-3}"
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../results/profiles/$label"
flamegraph="$here/node_modules/.bin/flamegraph"
[ -x "$flamegraph" ] || (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
command -v perf >/dev/null || { echo "profile: perf is missing (scripts/install-deps.sh installs linux-perf)" >&2; exit 2; }
mkdir -p "$out"

# scenario name, then the bench's arguments
scenarios=(
  "rpc-64B-64-in-flight|--windows 64 --payloads 64"
  "rpc-64B-1-in-flight|--windows 1 --payloads 64"
  "rpc-256KiB-16-in-flight|--windows 16 --payloads 262144"
)
for s in "${scenarios[@]}"; do
  name="${s%%|*}"
  args="${s#*|}"
  echo "profile: $name"
  # shellcheck disable=SC2086 # args are words on purpose
  perf record -q -e cpu-clock -F 1999 -g -o "$out/$name.data" -- \
    "$build/bench/cohort-bench-rpc" --curves-only --system cohort --repeats 1 --duration-ms "$((seconds * 1000))" $args \
    > "$out/$name.txt" 2>&1
  perf script -i "$out/$name.data" 2>/dev/null > "$out/$name.stacks"
  "$flamegraph" -t perf -f "$out/$name.stacks" -o "$out/$name.svg" --titletext "Cohort $name ($label)"
  # The flat profile by thread and by function: where a request's time goes.
  { perf report -i "$out/$name.data" --stdio --no-children -g none --sort comm,dso,symbol --percent-limit 0.5 \
      2>/dev/null || true; } | grep -v '^$' | head -150 > "$out/$name.report.txt" || true
  rm -f "$out/$name.data" "$out/$name.stacks"  # large; the SVG and the report are what is kept
done
echo "profile: $out"
