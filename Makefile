# vipd build, test and demo. `make help` lists the targets.
#
# make test is what CI runs (.ci/run): it installs the Debian packages the tests need
# (scripts/deps.sh), lints, builds, removes labs leaked by crashed runs, then runs every test
# with the race detector, the root-only integration tests included (run it as root).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin:/root/go/bin:/usr/sbin:/sbin

GO          ?= go
OUTDIR      := bin
ifeq ($(strip $(OUTDIR)),)
$(error OUTDIR is empty: give a directory, or leave it out for bin/)
endif
BIN         := $(OUTDIR)/vipd
PKGS        := ./...
FUZZTIME    ?= 20s
BENCHTIME   ?= 1s
TEST_TIMEOUT ?= 30m

.PHONY: help all deps build test unit integration test-ipvs lint fmt vet staticcheck demo bench fuzz sweep clean
.PHONY: static image completions man

help:
	@echo "make build        build $(BIN)"
	@echo "make test         deps + lint + build + all tests with -race (integration needs root)"
	@echo "make unit         tests with -race; integration tests skip themselves without root"
	@echo "make integration  only the network-namespace tests (root)"
	@echo "make test-ipvs    only the IPVS tests in a qemu VM on Debian's kernel (part of make test too)"
	@echo "make lint         gofmt, go vet, staticcheck"
	@echo "make demo         build and walk through vipd on the example configs"
	@echo "make bench        benchmarks (BENCHTIME=$(BENCHTIME))"
	@echo "make fuzz         every fuzz target for FUZZTIME=$(FUZZTIME)"
	@echo "make chaos        fleet chaos for CHAOS_DURATION=$(CHAOS_DURATION), seed CHAOS_SEED=$(CHAOS_SEED) (root); a failing seed replays"
	@echo "make soak         SOAK_DURATION=$(SOAK_DURATION), $(SOAK_INSTANCES) instances under churn; memory, goroutines, fds, CPU must stay flat (root; $(OUTDIR)/soak/soak.png)"
	@echo "make sweep        delete test labs leaked by crashed runs (root)"
	@echo "make static       build $(STATIC_BIN): CGO_ENABLED=0, -trimpath, stripped, VERSION=$(VERSION); checks it is static"
	@echo "make image        $(STATIC_BIN) as a root filesystem tarball $(OUTDIR)/vipd-rootfs.tar and an OCI image layout $(OUTDIR)/vipd-oci/"
	@echo "make completions  bash, zsh and fish completion scripts in $(OUTDIR)/completions/"
	@echo "make man          a man page per command in $(OUTDIR)/man/"
	@echo "make clean        remove build output"

all: build

deps:
	@scripts/deps.sh

build:
	$(GO) build -o $(BIN) ./cmd/vipd

# Packaging (README "Packaging"). The static binary needs no libc, so the image holds it alone: no
# shell, no base image; deploy/image (stdlib Go) writes the tarball and the OCI layout, the same bytes
# for the same inputs (mtimes at SOURCE_DATE_EPOCH, default 0), with no container engine.
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
STATIC_BIN  := $(OUTDIR)/vipd-static

static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(STATIC_BIN) ./cmd/vipd
	$(GO) run ./deploy/image -check-static $(STATIC_BIN)

image: static
	$(GO) run ./deploy/image -binary $(STATIC_BIN) -config deploy/examples/keepalived.conf -version $(VERSION) \
		-rootfs $(OUTDIR)/vipd-rootfs.tar -oci $(OUTDIR)/vipd-oci

completions: build
	@mkdir -p $(OUTDIR)/completions
	@for sh in bash zsh fish; do $(BIN) completion $$sh > $(OUTDIR)/completions/vipd.$$sh; echo "$(OUTDIR)/completions/vipd.$$sh"; done

man: build
	rm -rf $(OUTDIR)/man
	$(BIN) gen-man $(OUTDIR)/man

test: deps lint build sweep
	@echo "== go test -race (integration included$$( [ "$$(id -u)" = 0 ] || echo ', but not root: integration tests will skip'))"
	@VIPD_BIN=$(abspath $(BIN)) scripts/gotest.sh -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

unit:
	$(GO) test -race $(PKGS)

integration: build sweep
	@VIPD_BIN=$(abspath $(BIN)) scripts/gotest.sh -race -count=1 -timeout $(TEST_TIMEOUT) ./integration/...

# Labs of crashed test binaries (killed by a timeout, say) would leave namespaces behind.
sweep:
	@if [ "$$(id -u)" = 0 ]; then $(GO) run ./integration/lab/cmd/sweep; fi

lint: fmt vet staticcheck

fmt:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt: these files need formatting (gofmt -w):"; echo "$$out"; exit 1; fi
	@echo "gofmt: ok"

vet:
	$(GO) vet $(PKGS)

staticcheck:
	@command -v staticcheck >/dev/null || { echo "staticcheck missing: run make deps"; exit 1; }
	staticcheck $(PKGS)

# The host kernel has no IPVS: lvs/ipvs's kernel tests run in a VM that boots Debian's kernel (from
# /boot, readable by root) under qemu's TCG emulation (package integration/ipvsvm). make test runs it
# too, as part of ./... . VIPD_IPVSVM_TIMEOUT (default 4m) bounds the VM's run.
test-ipvs:
	$(GO) test -count=1 -v -run 'TestIPVSInVM|TestVipdLVSInVM' ./integration/ipvsvm/

# Needs root for the live part (network namespaces, about 15 s); without root it stops after the
# offline steps.
demo: deps build
	@VIPD=$(abspath $(BIN)) scripts/demo.sh

# The Go benchmarks, then the lab benchmarks (root): failover gaps of vipd and keepalived side by
# side on the wire, and CPU/memory of 1000 instances on one node. BENCH_RUNS failovers each.
BENCH_RUNS ?= 3
BENCH_SECONDS ?= 30
BENCH_SIZES ?= 250,1000,4000

bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)
	@VIPD_BENCH=1 $(GO) test -run '^TestFleetTimings$$' -count=1 -v ./gossip/ | grep -E '^fleet timings|FAIL'
	@VIPD_BENCH=1 $(GO) test -run '^TestCheckerCPU$$' -count=1 -v ./lvs/check/ | grep -E 'checker|CPU|FAIL'
	@$(MAKE) --no-print-directory bench-lab

.PHONY: bench-lab
bench-lab: build sweep
	@if [ "$$(id -u)" != 0 ]; then echo "bench-lab: skipped, not root (the lab needs network namespaces)"; exit 0; fi; \
	VIPD_BIN=$(abspath $(BIN)) VIPD_BENCH=1 VIPD_BENCH_RUNS=$(BENCH_RUNS) VIPD_BENCH_SECONDS=$(BENCH_SECONDS) VIPD_BENCH_SIZES=$(BENCH_SIZES) \
		$(GO) test -run '^(TestFailoverBench|TestScaleCPUAndMemory|TestEtcdPutLatency|TestArbiterFailoverBench)$$' -v -count=1 -timeout 30m ./integration/

# Every `func FuzzXxx` in a _test.go file, found with grep, fuzzed for FUZZTIME each. A failing input
# is kept by go test under its package's testdata/fuzz/FuzzXxx/ (commit it with the fix: it becomes a
# seed that every `go test` runs); the run names the file, prints it (a CI machine is thrown away),
# goes on with the other targets and fails at the end. Go 1.26's fuzzing coordinator can end a clean
# run with "context deadline exceeded" and no input written (golang/go#75804, fixed in Go 1.27):
# reported, not a failure.
fuzz:
	@targets="$$(grep -rE --include='*_test.go' --exclude-dir=.git --exclude-dir=testdata -o '^func Fuzz[A-Za-z0-9_]*\(' . | sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($$|\1 \2|' | sort -u)"; \
	if [ -z "$$targets" ]; then echo "fuzz: no fuzz targets"; exit 0; fi; \
	n=0; failed=""; log="$$(mktemp)"; trap 'rm -f "$$log"' EXIT; \
	while read -r dir fn; do \
		n=$$((n+1)); echo "== fuzz $$fn in $$dir for $(FUZZTIME)"; \
		if $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) "$$dir" </dev/null 2>&1 | tee "$$log"; then continue; fi; \
		kept="$$(sed -nE 's|.*Failing input written to (testdata/fuzz/[^ ]*).*|\1|p' "$$log" | head -n 1)"; \
		if [ -n "$$kept" ]; then \
			echo "fuzz: FAIL $$fn: failing input kept in $${dir#./}/$$kept (re-run: go test -run '$$fn/$${kept##*/}' $$dir); it reads:"; \
			head -c 4096 "$$dir/$$kept"; echo; failed="$$failed $$fn"; \
		elif tail -n 4 "$$log" | grep -qxE '[[:space:]]*context deadline exceeded' && ! grep -qE '_test\.go:[0-9]+:|--- FAIL: '"$$fn"'/' "$$log"; then \
			echo "fuzz: $$fn: \"context deadline exceeded\" with no failing input: Go's end-of-fuzztime race (golang/go#75804), not a failure"; \
		else \
			echo "fuzz: FAIL $$fn (see above)"; failed="$$failed $$fn"; \
		fi; \
	done <<<"$$targets"; \
	if [ -n "$$failed" ]; then echo "fuzz: $$n targets, failed:$$failed"; exit 1; fi; \
	echo "fuzz: $$n targets, no failure"

# Fleet chaos (root): 3 vipd nodes, keepalived and a 3-member etcd through a random schedule of
# crashes, stops, restarts, upgrades, cuts, filters, etcd outages, reloads and etcd edits, with the
# invariants checked continuously (integration/fleet_chaos_test.go). make test runs a short
# fixed-seed form; this runs random steps for CHAOS_DURATION. CHAOS_SEED=N replays a printed seed.
CHAOS_DURATION ?= 10m
CHAOS_SEED     ?= random

.PHONY: chaos
chaos: build sweep
	@if [ "$$(id -u)" != 0 ]; then echo "chaos: needs root (network namespaces)"; exit 1; fi; \
	VIPD_BIN=$(abspath $(BIN)) VIPD_FLEET_CHAOS_SEED=$(CHAOS_SEED) VIPD_FLEET_CHAOS_DURATION=$(CHAOS_DURATION) \
		$(GO) test -count=1 -timeout 60m -run '^TestFleetChaos$$' -v ./integration/

# The soak (root; not part of make test or CI): two vipd nodes with SOAK_INSTANCES instances between
# them, gossip and a real etcd, under continuous churn for SOAK_DURATION (reloads, etcd edits,
# maintenance, kill -9/SIGTERM/SIGQUIT restarts of the peer). node1's RSS, heap, goroutines, open
# fds and CPU are sampled every 10 s and drawn in $(OUTDIR)/soak/soak.png (samples .csv, verdict
# .txt); the test fails unless every series is flat.
SOAK_DURATION  ?= 30m
SOAK_INSTANCES ?= 1000
SOAK_TIMEOUT   ?= 60m

.PHONY: soak
soak: build sweep
	@if [ "$$(id -u)" != 0 ]; then echo "soak: needs root (network namespaces)"; exit 1; fi; \
	VIPD_BIN=$(abspath $(BIN)) VIPD_SOAK=1 VIPD_SOAK_DURATION=$(SOAK_DURATION) VIPD_SOAK_INSTANCES=$(SOAK_INSTANCES) \
		VIPD_SOAK_OUT=$(abspath $(OUTDIR))/soak/soak.png \
		$(GO) test -run '^TestSoak$$' -v -count=1 -timeout $(SOAK_TIMEOUT) ./integration/

clean:
	rm -rf bin
