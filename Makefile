# The two set-up commands of the README. Both install whatever Debian packages
# are missing first, so they work on a fresh Debian 12 machine.
#   make serve   build Release and start fer-server on the bundled model (CPU)
#   make test    build and run every test through ctest

BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
SERVE_FLAGS ?=

# The weights fer-server loads. Until trained weights are bundled this is an
# untrained file written by `fer-model init`, and the server says so loudly.
BUNDLED_MODEL := model/weights/lla-net-fer2013.pt
UNTRAINED_MODEL := $(BUILD_DIR)/lla-net-untrained.pt
ifeq ($(wildcard $(BUNDLED_MODEL).part*)$(wildcard $(BUNDLED_MODEL)),)
SERVE_MODEL := $(UNTRAINED_MODEL)
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
$(BUILD_DIR)/lla-net-fer2013.pt: $(wildcard $(BUNDLED_MODEL).part*)
	cat $^ > $@

$(UNTRAINED_MODEL): build
	$(BUILD_DIR)/model/fer-model init --out=$@

serve: build $(SERVE_MODEL)
	$(BUILD_DIR)/server/fer-server --model=$(SERVE_MODEL) $(SERVE_FLAGS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD_DIR)
