# rproxy: thin wrappers over CMake, ctest, pytest and tests/bench.
#   make run    install what is missing, build, serve ./rproxy.lua before a demo backend
#   make test   build; unit + end-to-end tests; again under ASan+UBSan
#   make bench  rproxy against nginx and HAProxy (see docs/BENCHMARKS.md)
#   make bench-instr  instructions per request of the three, under callgrind

BUILD      ?= build
ASAN_BUILD ?= build-asan
PYTHON     ?= /usr/bin/python3
JOBS       ?= $(shell nproc)
DEMO_PORT  ?= 9001
PYTEST     := $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e

.PHONY: all deps build build-asan run test test-plain test-asan unit e2e bench bench-instr clean

all: build

deps:
	@./tools/install-deps

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRP_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

# The demo backend runs in the background for as long as rproxy does.
run: build
	@$(PYTHON) tests/demo_backend.py --port $(DEMO_PORT) & demo=$$!; \
	trap 'kill $$demo 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq 50); do curl -s -o /dev/null http://127.0.0.1:$(DEMO_PORT)/ && break; sleep 0.1; done; \
	echo "demo backend on 127.0.0.1:$(DEMO_PORT); rproxy on http://127.0.0.1:8080/ (Ctrl-C stops)"; \
	$(BUILD)/rproxy -c rproxy.lua; kill $$demo 2>/dev/null

test: test-plain test-asan

test-plain: build
	cd $(BUILD) && ctest --output-on-failure
	RPROXY_BIN=$(CURDIR)/$(BUILD)/rproxy $(PYTEST)

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure
	RPROXY_BIN=$(CURDIR)/$(ASAN_BUILD)/rproxy RP_TEST_BIG_MB=256 RP_TEST_ASAN=1 \
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(PYTEST)

unit: build
	cd $(BUILD) && ctest --output-on-failure

e2e: build
	RPROXY_BIN=$(CURDIR)/$(BUILD)/rproxy $(PYTEST)

bench: build
	@./tools/install-deps --bench
	$(PYTHON) tests/bench/run.py --rproxy $(CURDIR)/$(BUILD)/rproxy

bench-instr: build
	@./tools/install-deps --bench
	$(PYTHON) tests/bench/instructions.py --rproxy $(CURDIR)/$(BUILD)/rproxy

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
