#!/usr/bin/env bash
# Installs Cohort from BUILD_DIR into a temporary prefix, then configures,
# builds and tests examples/standalone-service against that prefix only, as a
# developer outside this tree would: the template cannot rot.
# Usage: standalone_example.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d /tmp/cohort-standalone-XXXXXX)
node=
trap 'if [ -n "$node" ]; then kill $node 2>/dev/null || true; fi; rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
# Only the public headers: nothing of CAF or the runtime's inner rooms.
test -f "$work/prefix/include/cohort/runtime/node.hpp"
test -f "$work/prefix/include/cohort/testing/harness.hpp"
test -f "$work/prefix/lib/cmake/Cohort/CohortConfig.cmake"
if find "$work/prefix/include" -path '*cohort/core/*' -o -path '*cohort/net/*' | grep -q .; then
  echo "internal headers were installed" >&2
  exit 1
fi
cmake -S "$src/examples/standalone-service" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" -j "$(nproc)" >/dev/null
ctest --test-dir "$work/build" --output-on-failure

# serve NAME PREFIX COMMAND...: starts a node program, waits for its
# "PREFIX: listening on" line, leaves its endpoint in $endpoint.
serve() {
  local name=$1 prefix=$2
  shift 2
  "$@" > "$work/$name.out" &
  node=$!
  for _ in $(seq 1 200); do grep -q "$prefix: listening on" "$work/$name.out" && break; sleep 0.05; done
  endpoint=$(sed -n "s/^$prefix: listening on //p" "$work/$name.out" | head -1)
  test -n "$endpoint" || { echo "$name did not start:" >&2; cat "$work/$name.out" >&2; exit 1; }
}

# call TARGET ARGS EXPECTED [cohort call options]: one request through the
# installed CLI; its reply must match the extended regex EXPECTED.
call() {
  local target=$1 args=$2 expected=$3
  shift 3
  local out
  out=$("$work/prefix/bin/cohort" call "$target" "$args" --endpoint "$endpoint" "$@")
  echo "$out"
  echo "$out" | grep -Eq "$expected"
}

# stop NAME: SIGTERM, and the node must drain and exit 0.
stop() {
  kill -TERM $node
  local code=0
  wait $node || code=$?
  node=
  if [ "$code" -ne 0 ]; then echo "$1 exited with $code after SIGTERM" >&2; cat "$work/$1.out" >&2; exit 1; fi
}

# The node program starts from a config file and serves.
cat > "$work/node.toml" <<TOML
[node]
listen = ["tcp://127.0.0.1:*"]
admin = "tcp://127.0.0.1:*"
data_dir = "$work/data"
[services.tally]
[services.words]
workers = 2
TOML
serve tally-node tally-node "$work/build/tally-node" "$work/node.toml"
call words.count '{"body":"one two three"}' '"words": *3'
stop tally-node

# The same services as a plugin, built against the installed headers only,
# hosted by the installed `cohort run`: no main of the author's own.
cat > "$work/plugin.toml" <<TOML
[node]
listen = ["tcp://127.0.0.1:*"]
admin = "tcp://127.0.0.1:*"
data_dir = "$work/plugin-data"
[services.tally]
plugin = "$work/build/libtally_plugin.so"
TOML
"$work/prefix/bin/cohort" check-config "$work/plugin.toml"
serve cohort-run cohort "$work/prefix/bin/cohort" run --config "$work/plugin.toml"
call tally.add '{"n":4,"expire_after_ms":0}' '"value": *4' --key k
stop cohort-run
