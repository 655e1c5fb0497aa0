# chainroute: the two commands an operator needs.
#   make demo  - the lab: chain + two appliances + traffic (lab/demo.sh, docs/lab.md)
#   make test  - installs what is missing, then runs every suite (the appliance's
#                qemu boot test last: ~35 min cold under TCG, see appliance-image/README.md)
SHELL := /bin/bash
CARGO ?= cargo
FUZZ_SECONDS ?= 60

.PHONY: setup test test-rust test-fuzz test-contracts test-tools fmt-check build demo image image-test

setup:
	./scripts/setup.sh

# Needs root. LAB_SECONDS, LAB_RATE, LAB_KEEP=1: see lab/demo.sh.
demo:
	./lab/demo.sh

build: setup
	$(CARGO) build --workspace --all-targets

test: setup
	$(MAKE) test-rust
	$(MAKE) test-contracts
	$(MAKE) test-tools
	$(MAKE) test-fuzz
	$(MAKE) image-test
	@echo "make test: all suites passed"

test-rust:
	$(CARGO) test --workspace --locked

test-contracts:
	@if [ -x contracts/test.sh ]; then contracts/test.sh; else echo "contracts: not present yet"; fi

# The Pktgen-DPDK pcap profiles and the Wireshark dissector, checked with tshark.
test-tools:
	perf/pktgen/check.sh

test-fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/fuzz.sh

fmt-check:
	$(CARGO) fmt --all --check

# The appliance (appliance-image/README.md): a bootable Debian 12 disk image (raw, qcow2)
# and its root-filesystem update; image-test boots it in qemu (KVM if usable, else TCG)
# and checks health over TLS, an A/B upgrade and the fallback from a broken release.
image:
	$(CARGO) build --release --locked -p chainroute-mgmt
	appliance-image/build.sh

image-test: image
	appliance-image/test.sh
