# chainroute: the two commands an operator needs.
#   make demo  - the lab: chain + appliances + traffic (arrives with the perf/lab issue)
#   make test  - installs what is missing, then runs every suite
SHELL := /bin/bash
CARGO ?= cargo
FUZZ_SECONDS ?= 60

.PHONY: setup test test-rust test-fuzz test-contracts fmt-check build

setup:
	./scripts/setup.sh

build: setup
	$(CARGO) build --workspace --all-targets

test: setup
	$(MAKE) test-rust
	$(MAKE) test-contracts
	$(MAKE) test-fuzz
	@echo "make test: all suites passed"

test-rust:
	$(CARGO) test --workspace --locked

test-contracts:
	@if [ -x contracts/test.sh ]; then contracts/test.sh; else echo "contracts: not present yet"; fi

test-fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/fuzz.sh

fmt-check:
	$(CARGO) fmt --all --check
