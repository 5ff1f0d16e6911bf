# daxshare: `make demo` and `make test` do all the set-up on a fresh Debian 12 machine.
SHELL := /bin/bash
SWIFT ?= swift
SWIFT_BUILD_FLAGS ?=
TESTBED := scripts/testbed
LOGS := .build/logs
FUZZ_SECONDS ?= 20
# One VM run's bound (the whole integration suite, reliability included, takes ~35 min under
# emulation); a VM that fails to set up is booted again once, a run that times out is not.
VM_TIMEOUT ?= 3300
# Whether `demo` and `bench` can run on this machine itself rather than in the testbed VM.
HOST_HAS_RDMA_AND_DAX = ls /sys/class/infiniband/* >/dev/null 2>&1 && [ -n "$$DAXSHARE_PMEM" ]

.PHONY: all deps build build-release test test-host test-vm test-vm-inner fuzz fuzz-short demo bench bench-peers reliability clean


all: build

# The main job: server and client moving a file. On a machine with an RDMA
# device and a DAX mount it runs here; otherwise in the testbed VM.
demo: build
	@if $(HOST_HAS_RDMA_AND_DAX); then \
		DAXSHARE_TEST_ADDR=$${DAXSHARE_TEST_ADDR:?set DAXSHARE_TEST_ADDR to the RDMA address} scripts/demo; \
	else \
		echo "== no RDMA device here: running the demo in the testbed VM (rxe + emulated pmem)"; \
		$(TESTBED) run scripts/demo; \
	fi

deps:
	@scripts/install-deps

build: deps
	$(SWIFT) build $(SWIFT_BUILD_FLAGS) --build-tests

# Host unit tests, a short fuzz run, then the VM suite in one boot of the testbed.
test: build
	@mkdir -p $(LOGS)
	@status=0; \
	$(MAKE) --no-print-directory test-host || status=1; \
	$(MAKE) --no-print-directory fuzz-short || status=1; \
	$(MAKE) --no-print-directory test-vm || status=1; \
	echo "== summary"; \
	scripts/test-summary $(LOGS)/host.log host || status=1; \
	scripts/test-summary $(LOGS)/vm.log vm || status=1; \
	exit $$status

test-host:
	@mkdir -p $(LOGS)
	@echo "== host unit tests"
	@set -o pipefail; $(SWIFT) test --skip-build --skip IntegrationTests 2>&1 | tee $(LOGS)/host.log

# The integration suite needs real rxe and real fsdax: it runs inside the VM.
test-vm:
	@mkdir -p $(LOGS)
	@echo "== VM integration tests (testbed: rxe + fsdax)"
	@set -o pipefail; for try in 1 2; do \
		DAXSHARE_TESTBED_TIMEOUT=$(VM_TIMEOUT) $(TESTBED) run 'make --no-print-directory test-vm-inner' 2>&1 | tee $(LOGS)/vm.log; \
		status=$${PIPESTATUS[0]}; \
		case $$status in 125) echo "== testbed run $$try ended with $$status (VM set-up failure)";; *) exit $$status;; esac; \
	done; exit $$status

test-vm-inner:
	@# The test bundle directly (`swift test` would plan a build first, slow under
	@# emulation), one suite at a time, each bounded.
	@scripts/run-vm-suites

# Benchmarks run a release build: a debug build would measure Swift's debug code, not the paths.
build-release: deps
	$(SWIFT) build -c release $(SWIFT_BUILD_FLAGS)

# The standard sweep with its same-run baselines -> Bench/results/ and Bench/RESULTS.md.
bench: build-release
	@if $(HOST_HAS_RDMA_AND_DAX); then \
		DAXSHARE_TEST_ADDR=$${DAXSHARE_TEST_ADDR:?set DAXSHARE_TEST_ADDR to the RDMA address} scripts/bench; \
	else \
		echo "== no RDMA device here: running the benchmarks in the testbed VM (rxe + emulated pmem)"; \
		DAXSHARE_TESTBED_TIMEOUT=3600 $(TESTBED) run scripts/bench; \
	fi

# daxshare beside perftest and the kernel's NFS server over RDMA, in one boot of the testbed.
bench-peers: build-release
	DAXSHARE_TESTBED_NFS=1 DAXSHARE_TESTBED_TIMEOUT=3600 $(TESTBED) run scripts/bench-peers

# Issue 8's suites at full scale (16-client soak, more mutations), in one boot; `make test`
# runs the same suites at scale 1 inside its VM run.
reliability: build
	DAXSHARE_RELIABILITY_SCALE=$${DAXSHARE_RELIABILITY_SCALE:-10} scripts/reliability

fuzz:
	Fuzz/run.sh 300

fuzz-short:
	@echo "== fuzzing the wire decoder for $(FUZZ_SECONDS) s"
	@Fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf .build
