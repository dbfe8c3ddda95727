# agentlog build, test and lint targets.
GO ?= go
PKGS := ./...

.PHONY: build test interop sdk sdk-python sdk-typescript console-sdk bench lint fuzz clean faults soak ocsf-schema screenshots

# bin/agentlog, bin/agentlog-dev (the development tools) and bin/agentlog-witness.
# -buildvcs=true records the commit for "agentlog --version", whatever GOFLAGS says.
build:
	$(GO) build -buildvcs=true -o bin/ ./cmd/...

# Race detector on; fuzz seed corpora run as ordinary tests.
test: interop sdk
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# Interop with github.com/transparency-dev/witness (its witness and client)
# and github.com/transparency-dev/tessera (a Tessera log cosigned by our
# witness): a separate module so their dependencies stay out of go.mod.
# log/interop, likewise: the gateway with the official MCP Go SDK's server
# and client, OTLP ingest with the OpenTelemetry Go SDK's exporter.
# log/sink/interop: the splunk_hec sink against the OpenTelemetry
# Collector contrib's splunkhecreceiver. Without -race: agentlog runs as
# its own binary there, and -race would only add 1.5 minutes of compiling
# the Collector (cold, 2.5 minutes without it).
interop:
	cd witness/interop && $(GO) test -race -count=1 -timeout 10m ./...
	cd log/interop && $(GO) test -race -count=1 -timeout 10m ./...
	cd log/sink/interop && $(GO) test -count=1 -timeout 10m ./...

# The fault-injection suite alone (make test runs it too): the real
# binary under full disks (a tmpfs, and an ext4 image another process
# fills, as root), storage errors and slow syncs (injected into a binary
# built with the faultinject tag), lying NTP, misbehaving witnesses,
# connection floods, huge headers, departing clients and concurrent large
# appends; and, below the database's commits, the data directory on a FUSE
# file system that fails flushes and checkpoint writes and cuts the power
# (internal/fusefault: root and /dev/fuse, mounted without fusermount, so
# nothing to install; skipped elsewhere unless AGENTLOG_REQUIRE_SERVICES=1).
faults:
	$(GO) test -race -count=1 -timeout 20m -run 'Fault|Commit|DiskFull|DiskNeed|ClientBody|RequestChecks|AppendBudget|IdentityBody|GatewayBody|Numbers|TimesAndTTLs|Denied|Undo|BadgerBackground|BadgerCompaction|Withdraw|Stalled' ./cmd/agentlog ./log ./log/api ./internal/listener ./tree
	$(GO) test -race -count=1 -timeout 10m ./internal/fusefault

# A 30-minute soak under mixed load with memory and descriptors sampled and
# asserted flat; not part of make test (SOAK=10m for a shorter one).
SOAK ?= 30m
soak:
	AGENTLOG_SOAK=$(SOAK) $(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./cmd/agentlog

# The Python and TypeScript SDKs (client/python, client/typescript): the
# shared vectors of testdata/vectors and integration tests against the real
# server binary. Python is Debian's (it has python3-cryptography).
PYTHON ?= /usr/bin/python3
sdk: sdk-python sdk-typescript

sdk-python:
	cd client/python && $(PYTHON) -m unittest discover -t . -s tests -v

sdk-typescript:
	cd client/typescript && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run build:console
	@git diff --quiet -- log/console/assets/sdk && test -z "$$(git status --porcelain -- log/console/assets/sdk)" || \
		{ echo "log/console/assets/sdk differs from client/typescript/src: run make console-sdk and commit it"; git status --short -- log/console/assets/sdk; exit 1; }

# The console's verification is the TypeScript SDK's: tsc compiles
# client/typescript/src/verify.ts (and bytes.ts) into log/console/assets/sdk,
# which is committed, so that running the console needs only Go.
# make sdk-typescript (so make test) fails when the copy is not current.
console-sdk:
	cd client/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run build:console

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

# Regenerates the OCSF JSON Schemas log/ocsf tests against from a clone of
# github.com/ocsf/ocsf-schema (make ocsf-schema OCSF=/path/to/clone) and
# fails if they differ from the committed ones (docs/siem.md).
ocsf-schema:
	@test -n "$(OCSF)" || { echo "usage: make ocsf-schema OCSF=/path/to/ocsf-schema-clone"; exit 1; }
	$(GO) run ./internal/ocsfgen -git $(OCSF) -out log/ocsf/testdata/schema
	git diff --exit-code -- log/ocsf/testdata/schema

# Regenerates the console's screenshots in docs/console (docs/console.md):
# TestViews in headless Chromium over a week of demo data.
screenshots:
	$(GO) test -count=1 ./log/console/ -run '^TestViews$$' -screenshots ../../docs/console

# Runs every fuzz target for FUZZTIME each (make test runs only their seed
# corpora); a failing input is written under the package's testdata/fuzz.
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for f in $$(grep -h '^func Fuzz' $$pkg/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf bin
