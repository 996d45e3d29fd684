# txu: build, run and test the Redis module.
#
#   make build        cargo build --release (target/release/libtxu.so)
#   make run          start $(SERVER) on $(PORT) with the module, in the foreground
#   make test         unit + integration tests against $(TXU_SERVER) (default redis-server)
#   make test-matrix  the integration suite once per server from scripts/servers.sh
#   make bench        cargo bench --bench txu -- $(BENCH_ARGS)
#   make dist         target/dist/libtxu-<version>-<os>-<arch>.so, stripped, .sha256, load-checked
#   make examples     the client examples (examples/*/run.sh) against a server and a cluster
#   make operator     the operator page on http://127.0.0.1:8080 for the Redis at redis://127.0.0.1:6379
#                     (PORT=8081 make operator; REDIS_URL=redis://user:password@host:port)
#   make test-operator  the operator's tests, headless Chromium included (operator/tests)
#
# TEST_ARGS is passed to cargo test, e.g. make test TEST_ARGS="--test harness_selftest -- --nocapture"

SHELL := /bin/bash
# Prerequisites run in order: setup, then build, then the tests.
.NOTPARALLEL:

PORT ?= 6379
SERVER ?= redis-server
TEST_ARGS ?=
BENCH_ARGS ?=
# Where cargo puts the build (honours an exported CARGO_TARGET_DIR).
CARGO_TARGET_DIR ?= $(CURDIR)/target
MODULE := $(abspath $(CARGO_TARGET_DIR))/release/libtxu.so
# The module the integration tests load; an exported TXU_MODULE wins.
TXU_MODULE ?= $(MODULE)
TXU_FAULT_MODULE ?= $(abspath $(CARGO_TARGET_DIR))/faults/release/libtxu.so

.PHONY: build build-faults setup run test test-matrix bench dist examples fmt clippy clean

build:
	cargo build --release

# The same module with fault switches (TXU._FAULT) for the tests that need a rollback to fail.
build-faults:
	cargo build --release --features test-faults --target-dir $(abspath $(CARGO_TARGET_DIR))/faults

setup:
	bash scripts/setup.sh

run: setup build
	exec $(SERVER) --port $(PORT) --loadmodule $(MODULE) --enable-debug-command yes --save '' --appendonly no

# The integration tests load the .so built by the build step (see TXU_MODULE).
test: setup build build-faults
	TXU_MODULE=$(TXU_MODULE) TXU_FAULT_MODULE=$(TXU_FAULT_MODULE) cargo test --release $(TEST_ARGS)

test-matrix: setup build build-faults
	@servers="$$(bash scripts/servers.sh)" || { echo "FAIL scripts/servers.sh" >&2; exit 1; }; \
	failed=0; summary=""; \
	while read -r label bin; do \
	  [[ -n "$$label" ]] || continue; \
	  echo "=== integration tests on $$label ($$bin)"; \
	  if TXU_SERVER="$$bin" TXU_MODULE=$(TXU_MODULE) TXU_FAULT_MODULE=$(TXU_FAULT_MODULE) cargo test --release --test '*' $(TEST_ARGS) </dev/null; then \
	    echo "PASS $$label"; summary+="PASS $$label"$$'\n'; \
	  else \
	    echo "FAIL $$label"; summary+="FAIL $$label"$$'\n'; failed=1; \
	  fi; \
	done <<< "$$servers"; \
	echo "=== test-matrix summary"; printf "%s" "$$summary"; \
	exit $$failed

# The bench loads the bench-loop build (the release module plus TXU._LOOP, the ceiling it
# measures txu against) from its own target dir, unless TXU_MODULE is given.
bench: setup build
	cargo build --release --features bench-loop --target-dir $(abspath $(CARGO_TARGET_DIR))/bench-loop
	TXU_MODULE=$(if $(filter file,$(origin TXU_MODULE)),$(abspath $(CARGO_TARGET_DIR))/bench-loop/release/libtxu.so,$(TXU_MODULE)) \
	  cargo bench --bench txu -- $(BENCH_ARGS)

dist: setup
	bash scripts/dist.sh

# Each example installs what it needs locally (a Python virtualenv, node_modules, its own cargo
# target dir) and asserts its own output.
examples: setup build
	TXU_MODULE=$(TXU_MODULE) bash scripts/examples.sh

# The operator page (operator/): PORT defaults to 8080 here (not the server's 6379), REDIS_URL to
# the server `make run` starts.
OPERATOR_PORT := $(if $(filter command line environment environment override,$(origin PORT)),$(PORT),8080)
REDIS_URL ?= redis://127.0.0.1:6379

.PHONY: operator test-operator

operator:
	PORT=$(OPERATOR_PORT) REDIS_URL='$(REDIS_URL)' cargo run --release -p txu-operator

# The browser test drives headless Chromium (Debian's chromium and chromium-driver, from setup).
test-operator: setup build
	TXU_MODULE=$(TXU_MODULE) cargo test --release -p txu-operator $(TEST_ARGS)

fmt:
	cargo fmt

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

clean:
	cargo clean
