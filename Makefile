# Convenience entry points; the real build is CMake.
BUILD ?= build
RELEASE ?= build-release
JOBS ?= $(shell nproc)

.PHONY: deps build release demo test fuzz bench bench-quick clean

deps:
	@bash scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

release: deps
	cmake -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
	cmake --build $(RELEASE) -j $(JOBS)

demo: release
	$(RELEASE)/runtime/cohort demo

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 300 -j 2

# 10 million executions per libFuzzer harness (ASan + UBSan); FUZZ_RUNS to change.
FUZZ_RUNS ?= 10000000
fuzz: deps
	tests/fuzz/run.sh long build-fuzz $(FUZZ_RUNS)

bench: release
	python3 bench/run_all.py $(RELEASE)

bench-quick: release
	python3 bench/run_all.py $(RELEASE) --quick

clean:
	rm -rf $(BUILD) $(RELEASE)
