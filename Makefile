# jitproxy: `make run` serves on embedded defaults; `make test` runs every test.
GO      ?= go
BIN     := bin/jitproxy
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 30s

.PHONY: build run test unit e2e lint bench fuzz clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/proxy

run: build
	./$(BIN) serve

# Every test: unit tests, Rego policy tests, fuzz seeds and the end-to-end
# story with the real jitproxy binary and kubectl.
test: lint
	$(GO) test -race -count=1 -timeout 30m ./...

unit:
	$(GO) test -race ./internal/... ./policies/... ./cmd/...

e2e:
	$(GO) test -race -count=1 -timeout 30m ./test/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

# Runs each fuzz target for FUZZTIME.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzClassify$$' -fuzztime $(FUZZTIME) ./internal/intercept/kube
	$(GO) test -run '^$$' -fuzz '^FuzzParseSessionCredential$$' -fuzztime $(FUZZTIME) ./internal/jit
	$(GO) test -run '^$$' -fuzz '^FuzzParsePolicies$$' -fuzztime $(FUZZTIME) ./internal/jit
	$(GO) test -run '^$$' -fuzz '^FuzzLoadConfig$$' -fuzztime $(FUZZTIME) ./cmd/proxy

clean:
	rm -rf bin
