# mxgate: `make run` and `make test` set everything up from a fresh Debian 12.
#   make run            install missing packages, build, start mxgate on 127.0.0.1:2525
#   make test           the same set-up, then unit and end-to-end tests
#   make test SANITIZE=1  the same under AddressSanitizer + UBSan (separate build dir)
#   make bench          micro-benchmarks and the end-to-end load comparison
#   make soak           slow load/soak tests kept out of `make test`
#   make format         clang-format every C++ file

SANITIZE ?= 0
BUILD_TYPE ?= RelWithDebInfo
ifeq ($(SANITIZE),1)
BUILD ?= build-asan
else
BUILD ?= build
endif
PYTHON ?= /usr/bin/python3
JOBS ?= $(shell nproc)
CONFIG ?= etc/mxgate.toml

.PHONY: all deps configure build run test unit e2e bench soak format clean

all: build

deps:
	@bash tools/install-deps.sh

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DMXGATE_SANITIZE=$(if $(filter 1,$(SANITIZE)),ON,OFF)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@bash tools/gen-cert.sh var/tls mx.example.test
	@mkdir -p var
	$(BUILD)/gateway/mxgate -c $(CONFIG)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	MXGATE_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

e2e: build
	MXGATE_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

bench: build
	bash bench/run.sh $(BUILD)

soak: build
	MXGATE_BUILD=$(abspath $(BUILD)) MXGATE_SOAK=1 $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e -m soak

format:
	git ls-files '*.cpp' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan
