# Thin wrapper: scripts/setup.sh installs what is missing, CMake builds,
# CTest runs. Every target runs the set-up first (a no-op once done).
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

ifeq ($(CI),true)
CMAKE_ARGS += -DZM_WERROR=ON
endif
# Escape hatch when wolfSSL's source cannot be had (slow AES-GCM: see setup).
ifeq ($(ZMESH_SYSTEM_WOLFSSL),1)
CMAKE_ARGS += -DZM_SYSTEM_WOLFSSL=ON
endif

.PHONY: all setup build test asan demo bench format clean fuzz

all: build

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure --timeout 300 -j 2

asan: setup
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DZM_SANITIZE=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@bash tests/sanitized.sh $(ASAN_BUILD)

demo: build
	@bash deploy/examples/demo.sh $(BUILD)

# run.sh (AEAD, HBONE vs nghttpx), then the ztunnel benchmark in the sandbox
# (tests/bench/ztunnel.sh, root) even when run.sh reported a gap.
bench: build
	@rc=0; bash tests/bench/run.sh $(BUILD) || rc=1; \
	 bash tests/bench/ztunnel.sh $(BUILD) || rc=1; exit $$rc

# Coverage-guided fuzzing: clang, libFuzzer, ASan+UBSan (tests/fuzz/run.sh).
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60

fuzz: setup
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZM_FUZZ=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_drivers
	@bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
