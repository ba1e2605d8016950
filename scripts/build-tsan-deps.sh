#!/usr/bin/env bash
# Builds Debian's own CAF (0.17.6) and libzmq (4.3.4) sources with
# -fsanitize=thread into a private prefix, for `make test-tsan`.
#
# Why: TSan only sees happens-before edges in instrumented code. Debian's
# libcaf_core and libzmq are not instrumented, so every hand-off through a CAF
# mailbox or a ZeroMQ socket looked like a race (1 225 reports, none of them
# ours). The rebuilt libraries have the same sonames and ABI as the packaged
# ones (same version, same build_config.hpp: log level QUIET), so the suite's
# binaries, built against the packaged headers, load them through
# LD_LIBRARY_PATH unchanged.
#
# Usage: scripts/build-tsan-deps.sh DIR   (prefix ends up in DIR/prefix/lib)
set -euo pipefail
out=$(realpath -m "${1:-build-tsan-deps}")
prefix="$out/prefix"
jobs=${JOBS:-$(nproc)}
if [[ -f "$prefix/.done" ]]; then exit 0; fi
mkdir -p "$out/src" "$prefix"

# The source packages come from Debian's archive (deb-src of the release the
# machine runs); a sources entry is added once if the machine has none.
if ! apt-cache showsrc zeromq3 >/dev/null 2>&1 || [[ -z "$(apt-cache showsrc zeromq3 2>/dev/null)" ]]; then
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  cat >/etc/apt/sources.list.d/cohort-src.sources <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $codename
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt-get update -qq
fi
cd "$out/src"
# Only the upstream tarballs are needed (Debian's patches for these two touch
# packaging, not the code paths we run); --download-only may report a missing
# debian tarball, the orig tarball is what counts.
apt-get source --download-only actor-framework zeromq3 >/dev/null 2>&1 || true
caf_tar=$(ls actor-framework_0.17.6*.orig.tar.* | head -1)
zmq_tar=$(ls zeromq3_4.3.4*.orig.tar.* | head -1)
# Extracted over an earlier attempt: the archive's timestamps keep its objects valid.
tar xf "$caf_tar" && tar xf "$zmq_tar"

flags="-fsanitize=thread -O1 -g -fno-omit-frame-pointer"

# CAF: the packaged configuration (log level QUIET,
# exceptions and memory management on), no tests, examples or tools.
cmake -S actor-framework-0.17.6 -B caf-build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
  -DCAF_NO_UNIT_TESTS=yes -DCAF_NO_EXAMPLES=yes -DCAF_NO_TOOLS=yes \
  -DCAF_NO_OPENSSL=yes -DCAF_NO_OPENCL=yes -DCAF_NO_PYTHON=yes -DCAF_NO_SUMMARY=yes \
  -DCAF_LOG_LEVEL=QUIET -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build caf-build -j "$jobs" --target libcaf_core_shared  # Cohort links only libcaf_core

# libzmq: the packaged configuration's essentials (CURVE via libsodium).
cmake -S libzmq-4.3.4 -B zmq-build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
  -DWITH_LIBSODIUM=ON -DENABLE_CURVE=ON -DBUILD_TESTS=OFF -DBUILD_STATIC=OFF \
  -DWITH_DOCS=OFF -DENABLE_DRAFTS=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build zmq-build -j "$jobs" --target libzmq
mkdir -p "$prefix/lib"
find caf-build zmq-build \( -name 'libcaf_core.so*' -o -name 'libzmq.so*' \) \
  -exec cp -P {} "$prefix/lib/" \;
ls -l "$prefix/lib"
touch "$prefix/.done"
