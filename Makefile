# agentlog build, test and lint targets.
GO ?= go
PKGS := ./...

.PHONY: build test interop bench lint fuzz clean

# -buildvcs=true records the commit for "agentlog --version", whatever GOFLAGS says.
build:
	$(GO) build -buildvcs=true -o bin/ ./cmd/...

# Race detector on; fuzz seed corpora run as ordinary tests.
test: interop
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# Interop with github.com/transparency-dev/witness (its witness and client)
# and github.com/transparency-dev/tessera (a Tessera log cosigned by our
# witness): a separate module so their dependencies stay out of go.mod.
interop:
	cd witness/interop && $(GO) test -race -count=1 -timeout 10m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

clean:
	rm -rf bin
