#!/usr/bin/env bash
# Installs Cohort from BUILD_DIR into a temporary prefix, then configures,
# builds and tests examples/standalone-service against that prefix only, as a
# developer outside this tree would: the template cannot rot.
# Usage: standalone_example.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d /tmp/cohort-standalone-XXXXXX)
trap 'rm -rf "$work"' EXIT
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
# The node program starts from a config file and serves; a request through the installed CLI.
cat > "$work/node.toml" <<TOML
[node]
listen = ["tcp://127.0.0.1:*"]
admin = "tcp://127.0.0.1:*"
data_dir = "$work/data"
[services.tally]
[services.words]
workers = 2
TOML
"$work/build/tally-node" "$work/node.toml" > "$work/node.out" &
node=$!
trap 'kill $node 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$work/node.out" && break; sleep 0.05; done
endpoint=$(sed -n 's/^tally-node: listening on //p' "$work/node.out" | head -1)
out=$("$work/prefix/bin/cohort" call words.count '{"body":"one two three"}' --endpoint "$endpoint")
echo "$out"
echo "$out" | grep -Eq '"words": *3'
kill -TERM $node
code=0; wait $node || code=$?
if [ "$code" -ne 0 ]; then echo "tally-node exited with $code after SIGTERM" >&2; cat "$work/node.out" >&2; exit 1; fi

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
"$work/prefix/bin/cohort" run --config "$work/plugin.toml" > "$work/run.out" &
node=$!
for _ in $(seq 1 200); do grep -q "cohort: ready" "$work/run.out" && break; sleep 0.05; done
endpoint=$(sed -n 's/^cohort: listening on //p' "$work/run.out" | head -1)
out=$("$work/prefix/bin/cohort" call tally.add '{"n":4,"expire_after_ms":0}' --key k --endpoint "$endpoint")
echo "$out"
echo "$out" | grep -Eq '"value": *4'
kill -TERM $node
code=0; wait $node || code=$?
if [ "$code" -ne 0 ]; then echo "cohort run exited with $code after SIGTERM" >&2; cat "$work/run.out" >&2; exit 1; fi
