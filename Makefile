# The set-up commands of the README. All install whatever Debian packages are
# missing first, so they work on a fresh Debian 12 machine.
#   make serve      build Release and start fer-server on the bundled model (CPU)
#   make test       build and run every test through ctest
#   make test-asan  the same tests, built with AddressSanitizer and
#                   UndefinedBehaviorSanitizer (in build-asan/)
#   make fuzz       build the libFuzzer targets with clang and run each for
#                   FUZZ_SECONDS (in build-fuzz/); a finding fails it

BUILD_DIR ?= build
ASAN_BUILD_DIR ?= build-asan
FUZZ_SECONDS ?= 60
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
SERVE_FLAGS ?=

# The weights `make serve` runs: MODEL=bundled (default) joins the trained
# weights stored in model/weights/; MODEL=untrained writes a fresh file with
# `fer-model init` (the server then warns loudly that predictions are
# meaningless). This is the one switch between the two.
MODEL ?= bundled
BUNDLED_PARTS := $(sort $(wildcard model/weights/lla-net-fer2013.pt.part*))
ifeq ($(MODEL),untrained)
SERVE_MODEL := $(BUILD_DIR)/lla-net-untrained.pt
else
SERVE_MODEL := $(BUILD_DIR)/lla-net-fer2013.pt
endif

.PHONY: all deps configure build serve test test-asan fuzz clean

all: build

deps:
	scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Bundled weights are stored in parts small enough for plain git; join them.
$(BUILD_DIR)/lla-net-fer2013.pt: $(BUNDLED_PARTS)
	@test -n "$(BUNDLED_PARTS)" || { echo "no bundled weights in model/weights/; use MODEL=untrained" >&2; exit 1; }
	mkdir -p $(BUILD_DIR) && cat $(BUNDLED_PARTS) > $@

$(BUILD_DIR)/lla-net-untrained.pt: build
	$(BUILD_DIR)/model/fer-model init --out=$@

serve: build $(SERVE_MODEL)
	$(BUILD_DIR)/server/fer-server --model=$(SERVE_MODEL) $(SERVE_FLAGS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# Any sanitizer report fails the process that hits it (halt_on_error), and so
# the test that ran it; leaks are reported at exit, except the few inside
# uninstrumented third-party libraries listed in tests/sanitizers/lsan.supp.
# The soak test is left out: its memory figures mean nothing under ASan, and
# `make test` runs it.
SANITIZER_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

test-asan: deps
	cmake -S . -B $(ASAN_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DFER_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD_DIR) -j $(JOBS)
	cd $(ASAN_BUILD_DIR) && $(SANITIZER_ENV) ctest --output-on-failure -j $(JOBS) -LE soak

fuzz: deps
	JOBS=$(JOBS) tests/fuzz/run_fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR) build-fuzz
