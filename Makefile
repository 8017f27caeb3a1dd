# The two set-up commands of the README. Both install whatever Debian packages
# are missing first, so they work on a fresh Debian 12 machine.
#   make serve   build Release and start fer-server on the bundled model (CPU)
#   make test    build and run every test through ctest

BUILD_DIR ?= build
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

.PHONY: all deps configure build serve test clean

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

clean:
	rm -rf $(BUILD_DIR)
