# Convenience entry points; the real build is CMake.
BUILD ?= build
RELEASE ?= build-release
JOBS ?= $(shell nproc)

.PHONY: deps build release demo test test-asan test-tsan fuzz bench bench-quick profile budget clean

deps:
	@bash scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

release: deps
	cmake -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
	cmake --build $(RELEASE) -j $(JOBS)

demo: release
	$(RELEASE)/cli/cohort demo

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 300 -j 2

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, and under ThreadSanitizer.
test-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOHORT_SANITIZE=address,undefined >/dev/null
	cmake --build build-asan -j $(JOBS)
	# handle_segv=0: the process isolation test kills a child with SIGSEGV and
	# expects that signal, not ASan's report and abort; a small quarantine keeps
	# the RSS bound of the bulkhead test meaningful (ASan holds freed memory).
	cd build-asan && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:handle_segv=0:quarantine_size_mb=8:malloc_context_size=5 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure --timeout 600 -j 2 -E "^(fuzz|bench):"

# TSan needs CAF and libzmq instrumented too (their mailboxes and queues are
# where our threads hand over): scripts/build-tsan-deps.sh rebuilds Debian's
# own sources of both with -fsanitize=thread, loaded through LD_LIBRARY_PATH.
# Left out under TSan: Python and JavaScript clients (they cannot load the instrumented
# libzmq), the docs and packaging checks (no threads of ours), and the
# bulkhead test's 64 MiB RSS bound (TSan's shadow memory alone passes it).
test-tsan: deps
	JOBS=$(JOBS) scripts/build-tsan-deps.sh build-tsan-deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOHORT_SANITIZE=thread >/dev/null
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && LD_LIBRARY_PATH=$(CURDIR)/build-tsan-deps/prefix/lib \
	  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:handle_segv=0:suppressions=$(CURDIR)/tests/tsan.supp" \
	  ctest --output-on-failure --timeout 900 -j 2 -E "^(fuzz|python|protocol|docs|packaging|js|bench):|beyond a service's bulkhead"

# 10 million executions per libFuzzer harness (ASan + UBSan); FUZZ_RUNS to change.
FUZZ_RUNS ?= 10000000
fuzz: deps
	tests/fuzz/run.sh long build-fuzz $(FUZZ_RUNS)

bench: release
	python3 bench/run_all.py $(RELEASE)

bench-quick: release
	python3 bench/run_all.py $(RELEASE) --quick

# Flame graphs and flat profiles of the request/reply scenarios (bench/README.md, Profiles).
PROFILE_LABEL ?= $(shell git rev-parse --short HEAD)
profile: release
	bash bench/profile/profile.sh $(RELEASE) $(PROFILE_LABEL)

# CPU and context switches per request by thread, each request/reply system alone (bench/README.md, Profiles).
budget: release
	python3 bench/profile/budget.py $(RELEASE) $(PROFILE_LABEL)-budget

clean:
	rm -rf $(BUILD) $(RELEASE) build-asan build-tsan build-tsan-deps build-fuzz
