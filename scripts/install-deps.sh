#!/usr/bin/env bash
# The single list of system packages Cohort needs to build, test and benchmark.
# Installs only what is missing; safe to run again. Needs root (or sudo) on Debian 12.
set -euo pipefail

packages=(
  build-essential cmake make ccache pkg-config
  libcaf-dev                        # actors (CAF 0.17.6)
  libjemalloc-dev                   # the malloc Cohort's programs run on (runtime/allocator)
  libzmq3-dev cppzmq-dev            # messaging
  libmsgpack-cxx-dev                # wire format
  librocksdb-dev                    # per-service storage
  catch2                            # tests (v2)
  libtomlplusplus-dev               # config files
  nlohmann-json3-dev                # JSON for the CLI and the HTTP front
  libcli11-dev                      # command-line parsing
  libspdlog-dev                     # logging
  libboost1.74-dev                  # Beast (HTTP front)
  libssl-dev openssl                # SHA-256 (idempotency, API tokens), TLS for HTTP; the CLI makes test certificates
  libjwt-dev                        # JWT validation at the HTTP front (HS256, RS256)
  liburiparser-dev                  # query strings at the HTTP front (GET /v1/<service>/events)
  libcurl4-openssl-dev              # OTLP/HTTP export of spans and logs to a trace collector
  prometheus-cpp-dev                # metrics in the Prometheus data model and text format (core, pull)
  prometheus                        # tests: promtool checks /metrics, a real Prometheus scrapes a node
  python3 python3-zmq python3-msgpack  # protocol conformance test: a client written from docs/protocol.md
  gnuplot-nox                       # benchmark charts
  curl wrk                          # HTTP front tests (loopback only)
  clang-14 libfuzzer-14-dev libclang-rt-14-dev  # libFuzzer harnesses with ASan + UBSan (tests/fuzz)
  iproute2                          # network namespaces for partition tests (ip netns, veth)
  fuse3 python3-fusepy              # a slow filesystem (FUSE) under a store for isolation tests
  nodejs                            # the JavaScript client (js/) and its test
  etcd-server etcd-client           # clusters: membership, shard maps, leases (tests start their own etcd)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler  # bench: a gRPC C++ unary echo as a same-run peer
  linux-perf                        # make profile: perf record of each bench scenario (flame graphs)
)

# npm packages, each set pinned by its package-lock.json, from the npm registry:
# the JavaScript client's (zeromq, @msgpack/msgpack) into js/node_modules, and
# the flame graph renderer of `make profile` (flamegraph) into bench/profile/node_modules.
npm_packages() {
  local here
  here="$(cd "$(dirname "$0")/.." && pwd)"
  [ -d "$here/js/node_modules/zeromq" ] && [ -d "$here/js/node_modules/@msgpack/msgpack" ] &&
    [ -d "$here/bench/profile/node_modules/flamegraph" ] && return 0
  if ! command -v npm >/dev/null; then
    # Debian's nodejs comes without npm (NodeSource's has it built in).
    DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  (cd "$here/js" && npm ci --no-audit --no-fund --loglevel=error)
  (cd "$here/bench/profile" && npm ci --no-audit --no-fund --loglevel=error)
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ ${#missing[@]} -eq 0 ]; then
  npm_packages
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
npm_packages
