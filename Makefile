# The two set-up commands: `make run` and `make test`. Everything else here is
# what they are made of.
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
DATA_DIR ?= ./data
GRPC_PORT ?= 36790
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CTEST_FLAGS ?= --output-on-failure --timeout 600
# Let clones in different directories share ccache entries.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

.PHONY: deps configure build run test test-release test-asan format format-check clean quickstart bench bench-postgres

deps:
	@scripts/deps.sh

$(BUILD_DIR)/build.ninja: | deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null

$(ASAN_DIR)/build.ninja: | deps
	@cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDTMD_SANITIZE=ON -DDTMD_BUILD_EXAMPLES=OFF -DDTMD_BUILD_BENCH=OFF $(CMAKE_FLAGS) >/dev/null

build: deps $(BUILD_DIR)/build.ninja
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	$(BUILD_DIR)/server/dtmd --data_dir=$(DATA_DIR) --grpc_port=$(GRPC_PORT)

BENCH_TARGETS = dtmd dtmd-bench dtmd-relay dtmd-storage-probe dtmd-preload dtmd_micro_bench

# The short benchmark suite (a few minutes); see README "Performance".
bench: deps $(BUILD_DIR)/build.ninja
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target $(BENCH_TARGETS)
	@tests/bench/run_bench.sh $(BUILD_DIR)

# dtmd on RocksDB, one and three replicas on PostgreSQL and (with DTM=binary
# or DTM_SRC=sources) DTM on PostgreSQL, in one run; see README "Performance".
bench-postgres: deps $(BUILD_DIR)/build.ninja
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target dtmd dtmd-bench
	@tests/bench/postgres_bench.sh $(BUILD_DIR)

# README's configuration table, regenerated from dtmd's flags.
.PHONY: config-reference
config-reference: build
	@scripts/config_reference.sh update $(BUILD_DIR)/server/dtmd README.md

quickstart: build
	@examples/cpp/run_quickstart.sh $(BUILD_DIR)

test: test-release test-asan test-clients format-check

# The client languages (Go, Python, Java): each mk/<lang>.mk adds its
# test-<lang> target as a prerequisite of test-clients.
.PHONY: test-clients
test-clients:
-include mk/*.mk

test-release: build
	@cd $(BUILD_DIR) && ctest $(CTEST_FLAGS)

test-asan: deps $(ASAN_DIR)/build.ninja
	@cmake --build $(ASAN_DIR) -j $(JOBS)
	@cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest $(CTEST_FLAGS)

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

format-check: deps
	@clang-format --dry-run --Werror $$(git ls-files '*.cc' '*.h') && echo "format: ok"

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
