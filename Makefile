# scomm - top-level entry points. `make demo` and `make test` are all a
# newcomer needs on a fresh Debian 12 machine.
#
#   make demo       install deps, build, run 4 local ranks through the demo
#   make test       install deps, build, run the whole ctest suite
#   make test-asan  the suite under AddressSanitizer + UBSan
#   make test-tsan  the suite under ThreadSanitizer
#   make bench      point-to-point benchmark over shm and tcp
#   make fuzz       build the libFuzzer targets (clang) into build-fuzz/ and
#                   run each for FUZZ_SECONDS (default 60)
#   make build      just build (Release) into build/
#   make install    build, then install under PREFIX (default /usr/local;
#                   DESTDIR=dir stages it there, for packaging)

NP       ?= 4
JOBS     ?= 2
BUILD    ?= build
CTEST_J  ?= 2
FUZZ_SECONDS ?= 60
PREFIX   ?= /usr/local
FUZZ_TARGETS := $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.c)))

.PHONY: all deps build install demo test test-asan test-tsan bench fuzz clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

# Configured with PREFIX so that GNUInstallDirs picks its library
# directory (lib/<multiarch> under /usr); `cmake --install` honours DESTDIR.
install: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release \
	    -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD)

demo: build
	@$(BUILD)/scomm launch -n $(NP) -- $(BUILD)/scomm demo

test: build
	@cd $(BUILD) && ctest -j $(CTEST_J) --output-on-failure --timeout 900

test-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSCOMM_SANITIZE=asan >/dev/null
	@cmake --build build-asan -j $(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest -j $(CTEST_J) --output-on-failure --timeout 1800

test-tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSCOMM_SANITIZE=tsan >/dev/null
	@cmake --build build-tsan -j $(JOBS)
	@cd build-tsan && TSAN_OPTIONS=halt_on_error=1 \
	    ctest -j $(CTEST_J) --output-on-failure --timeout 1800

bench: build
	@echo "== shm =="; SCOMM_TRANSPORTS=shm $(BUILD)/scomm launch -n 2 -- $(BUILD)/scomm bench p2p
	@echo "== tcp =="; SCOMM_TRANSPORTS=tcp $(BUILD)/scomm launch -n 2 -- $(BUILD)/scomm bench p2p

# New inputs go to the scratch dir (listed first); the committed corpus in
# tests/fuzz/corpus/<target> is read, never written.
fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSCOMM_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	@for t in $(FUZZ_TARGETS); do \
	    echo "== $$t: $(FUZZ_SECONDS) s =="; \
	    mkdir -p build-fuzz/scratch/$$t; \
	    build-fuzz/tests/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) \
	        -max_len=4096 -print_final_stats=1 \
	        -artifact_prefix=build-fuzz/scratch/$$t- \
	        build-fuzz/scratch/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

clean:
	rm -rf build build-asan build-tsan
