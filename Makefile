# mcoad: see README.md. The two commands that matter: `make lab` and `make test`.
SHELL    := /bin/bash
GO       ?= go
GOBIN    := $(shell $(GO) env GOPATH)/bin
BINDIR   := bin
CMDS     := mcoad mcoactl mcoa-ha mcoa-lab
# A count, not a duration: Go 1.26's fuzz coordinator can fail a duration run with
# "context deadline exceeded" at the deadline (go.dev/issue/75804).
FUZZTIME ?= 100000x
export PATH := /usr/local/go/bin:$(GOBIN):$(PATH)

.PHONY: all build deps lab test check unit e2e fuzz wirecheck bench clean deb debcheck soak generate

all: build

deps:
	@bash scripts/deps.sh

build:
	@mkdir -p $(BINDIR)
	@for c in $(CMDS); do \
		if [ -d cmd/$$c ]; then $(GO) build -trimpath -o $(BINDIR)/$$c ./cmd/$$c || exit 1; \
		else echo "build: cmd/$$c does not exist yet"; fi; \
	done

# The lab demos: namespaces, radvd, mcoa-ha and mcoad, live; the MCoA demo,
# then the vehicle (NEMO) and route optimisation ones, stopping at the first
# failure. Needs root.
lab: deps build
	@if [ -x $(BINDIR)/mcoa-lab ]; then \
		for f in "" -vehicle -ro; do echo "== mcoa-lab demo $$f"; $(BINDIR)/mcoa-lab demo $$f || exit 1; echo; done; \
	else echo "lab: mcoa-lab is not built yet (see the open issues)"; exit 1; fi

# The whole test suite: formatting, vet, staticcheck, unit and end-to-end
# tests (end-to-end ones need root; MCOA_E2E=1 makes them mandatory), short
# fuzz runs of every target, and the tshark wire check.
test: deps check unit fuzz wirecheck debcheck
	@echo "test: all passed"

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...
	@# Functions nothing reaches, tests included: dead code fails the run.
	@out=$$($(GOBIN)/deadcode -test ./...); if [ -n "$$out" ]; then echo "deadcode: unreachable functions:"; echo "$$out"; exit 1; fi
	@bash scripts/bpfcheck.sh
	@# pkg/ is importable from outside the module: nothing in it may need internal/.
	@bad=$$($(GO) list -deps ./pkg/... | grep '^github.com/mcoad/mcoad/internal/' || true); if [ -n "$$bad" ]; then echo "pkg/ imports internal/:"; echo "$$bad"; exit 1; fi
	@# No non-test file over 600 lines, no function over 80 (issue #15).
	$(GO) run ./scripts/sizecheck .

# The eBPF objects from bpf/ (clang through bpf2go); they are committed, so
# `go build` needs no clang.
generate:
	cd pkg/bpftun && $(GO) generate

unit:
	$(GO) test -count=1 -timeout 15m ./...

fuzz:
	@FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# Our packets decoded field by field by Wireshark's dissector.
wirecheck:
	@set -o pipefail; MCOA_E2E=1 $(GO) test -count=1 -run 'Tshark' -v ./pkg/proto | grep -E '^(=== RUN|\s*--- |ok|FAIL|PASS)'

# dist/{mcoactl,mcoad,mcoa-ha}_VERSION_ARCH.deb (VERSION:
# packaging/deb/debian/changelog): the control tool, the mobile node, the
# home agent.
deb:
	@bash packaging/deb/build.sh dist

# The .debs built, linted, installed into a throw-away root (laptop, server,
# both), upgraded, purged; their systemd units verified
# (packaging/deb/check.sh).
debcheck:
	@bash packaging/deb/check.sh

# The end-to-end suite RUNS times in a row (default 20) and a summary of
# the failures (needs root): the lab must never flake.
RUNS ?= 20
soak: deps build
	@bash scripts/soak.sh $(RUNS)

bench: build
	@bash scripts/bench.sh

clean:
	rm -rf $(BINDIR)
