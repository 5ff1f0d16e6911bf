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
# rdma-core with RDMA FLUSH (>= 45; Debian 12 has 44), which `deps` builds (scripts/build-rdma-core):
# when it is there, every build compiles against its headers and runs with its libraries (rpath).
# Looked at when each recipe runs (after `deps`), with a fresh test rather than make's $(wildcard).
RDMA_CORE ?= $(or $(DAXSHARE_TESTBED_CACHE),/var/cache/daxshare-testbed)/rdma-core-56.1
have_rdma_core = $(shell test -f $(RDMA_CORE)/include/daxshare-rdma-core.h && echo yes)
SWIFT_RDMA = $(if $(have_rdma_core),PKG_CONFIG_PATH=$(RDMA_CORE)/lib/pkgconfig$${PKG_CONFIG_PATH:+:$$PKG_CONFIG_PATH} )$(SWIFT)
# The -D also keeps the two builds' Clang module caches apart (-I paths are not in their hash).
RDMA_LINK = $(if $(have_rdma_core),-Xcc -DDXR_HAVE_IBV_WR_FLUSH=1 -Xlinker -rpath -Xlinker $(RDMA_CORE)/lib)
# Whether `demo` and `bench` can run on this machine itself rather than in the testbed VM.
HOST_HAS_RDMA_AND_DAX = ls /sys/class/infiniband/* >/dev/null 2>&1 && [ -n "$$DAXSHARE_PMEM" ]

.PHONY: all deps build build-release test test-host test-vm test-vm-inner fuzz fuzz-short demo bench bench-peers reliability clean \
	install install-build uninstall

# `make install`: the three programs, the systemd unit, manual pages and shell completions.
# Build as yourself, install as root: `make install-build && sudo make install INSTALL_SKIP_BUILD=1`.
PREFIX ?= /usr/local
DESTDIR ?=
BUILD_CONFIG ?= release
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
# systemd reads units from /usr/local/lib/systemd/system as well as /lib/systemd/system
# (systemd.unit(5)), so the unit follows PREFIX; /etc/systemd/system is the administrator's
# (drop-ins, overrides), not an installer's. A Debian package would use PREFIX=/usr.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
# Not under PREFIX: the unit names /etc/daxshare/daxshared.conf.
SYSCONFDIR ?= /etc
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
INSTALL ?= install
INSTALL_BIN := .build/$(BUILD_CONFIG)
# argument-parser's generate-manual tool, a product of our dependency built (debug, once) beside
# our own debug build, so it reuses the ArgumentParser module already compiled: it runs each
# program with --experimental-dump-help. Its plugin would rebuild every product instead.
MANUAL_TOOL := .build/debug/generate-manual
MANUAL_DATE := $(shell git log -1 --format=%cs 2>/dev/null || date +%F)


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
	$(SWIFT_RDMA) build $(SWIFT_BUILD_FLAGS) $(RDMA_LINK) --build-tests
	@$(MAKE) --no-print-directory $(MANUAL_TOOL)  # for the install test in test-host

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
	@set -o pipefail; $(SWIFT_RDMA) test $(RDMA_LINK) --skip-build --skip IntegrationTests 2>&1 | tee $(LOGS)/host.log

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
	$(SWIFT_RDMA) build -c release $(SWIFT_BUILD_FLAGS) $(RDMA_LINK)

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

$(MANUAL_TOOL):
	$(SWIFT_RDMA) build $(SWIFT_BUILD_FLAGS) $(RDMA_LINK) --product generate-manual

install-build: deps $(MANUAL_TOOL)
	$(SWIFT_RDMA) build -c $(BUILD_CONFIG) $(SWIFT_BUILD_FLAGS) $(RDMA_LINK) --product daxshared
	$(SWIFT_RDMA) build -c $(BUILD_CONFIG) $(SWIFT_BUILD_FLAGS) $(RDMA_LINK) --product daxshare
	$(SWIFT_RDMA) build -c $(BUILD_CONFIG) $(SWIFT_BUILD_FLAGS) $(RDMA_LINK) --product daxshare-bench

install: $(if $(filter 1,$(INSTALL_SKIP_BUILD)),,install-build) $(MANUAL_TOOL)
	@for p in daxshared daxshare daxshare-bench; do [ -x $(INSTALL_BIN)/$$p ] || \
		{ echo "make install: $(INSTALL_BIN)/$$p is not built (make install-build BUILD_CONFIG=$(BUILD_CONFIG))" >&2; exit 1; }; done
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSTEMDUNITDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	$(INSTALL) -m 755 $(INSTALL_BIN)/daxshared $(DESTDIR)$(SBINDIR)/daxshared
	$(INSTALL) -m 755 $(INSTALL_BIN)/daxshare $(INSTALL_BIN)/daxshare-bench $(DESTDIR)$(BINDIR)/
	sed 's|@SBINDIR@|$(SBINDIR)|g' dist/systemd/daxshared.service > $(DESTDIR)$(SYSTEMDUNITDIR)/daxshared.service
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/daxshared.service
	@# Pages and completions come from each program's own argument parser.
	$(MANUAL_TOOL) $(INSTALL_BIN)/daxshared --section 8 --date $(MANUAL_DATE) -o $(DESTDIR)$(MANDIR)/man8
	$(MANUAL_TOOL) $(INSTALL_BIN)/daxshare --section 1 --date $(MANUAL_DATE) -o $(DESTDIR)$(MANDIR)/man1
	$(MANUAL_TOOL) $(INSTALL_BIN)/daxshare-bench --section 1 --date $(MANUAL_DATE) -o $(DESTDIR)$(MANDIR)/man1
	@# An empty line in a discussion is a paragraph break to us and a warning to mdoc: .Pp.
	sed -i 's/^$$/.Pp/' $(DESTDIR)$(MANDIR)/man8/daxshared.8 $(DESTDIR)$(MANDIR)/man1/daxshare.1 \
		$(DESTDIR)$(MANDIR)/man1/daxshare-bench.1
	$(INSTALL) -m 644 dist/man/daxshared.conf.5 $(DESTDIR)$(MANDIR)/man5/
	for p in daxshared daxshare daxshare-bench; do \
		$(INSTALL_BIN)/$$p --generate-completion-script bash > $(DESTDIR)$(BASHCOMPDIR)/$$p && \
		$(INSTALL_BIN)/$$p --generate-completion-script zsh > $(DESTDIR)$(ZSHCOMPDIR)/_$$p && \
		$(INSTALL_BIN)/$$p --generate-completion-script fish > $(DESTDIR)$(FISHCOMPDIR)/$$p.fish || exit 1; \
	done
	@# The example only: the configuration itself is the administrator's.
	if [ -f dist/daxshared.conf.example ]; then \
		$(INSTALL) -d $(DESTDIR)$(SYSCONFDIR)/daxshare && \
		$(INSTALL) -m 644 dist/daxshared.conf.example $(DESTDIR)$(SYSCONFDIR)/daxshare/; \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/daxshared $(DESTDIR)$(BINDIR)/daxshare $(DESTDIR)$(BINDIR)/daxshare-bench \
		$(DESTDIR)$(SYSTEMDUNITDIR)/daxshared.service $(DESTDIR)$(MANDIR)/man8/daxshared.8 \
		$(DESTDIR)$(MANDIR)/man1/daxshare.1 $(DESTDIR)$(MANDIR)/man1/daxshare-bench.1 \
		$(DESTDIR)$(MANDIR)/man5/daxshared.conf.5 $(DESTDIR)$(SYSCONFDIR)/daxshare/daxshared.conf.example
	for p in daxshared daxshare daxshare-bench; do \
		rm -f $(DESTDIR)$(BASHCOMPDIR)/$$p $(DESTDIR)$(ZSHCOMPDIR)/_$$p $(DESTDIR)$(FISHCOMPDIR)/$$p.fish; \
	done

clean:
	rm -rf .build
