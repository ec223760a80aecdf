# jitproxy: `make run` brings up a local cluster and serves jitproxy against
# it; `make test` runs every test. Both install and build what they need.
GO      ?= go
BIN     := bin/jitproxy
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 30s

.PHONY: build run serve test test-env unit e2e lint bench bench-e2e fuzz clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/proxy

# run: with JITPROXY_CONFIG set, serve that configuration; with
# CLUSTER=path/to/kubeconfig, serve against that cluster's current context;
# otherwise start etcd, kube-apiserver and Vault locally (test/servers/devenv).
run: build
ifneq ($(JITPROXY_CONFIG),)
	exec ./$(BIN) serve --config $(JITPROXY_CONFIG)
else ifneq ($(CLUSTER),)
	$(GO) build -o bin/devenv ./test/servers/devenv
	exec bin/devenv -jitproxy $(BIN) -kubeconfig $(CLUSTER)
else
	$(MAKE) test-env
	$(GO) build -o bin/devenv ./test/servers/devenv
	exec bin/devenv -jitproxy $(BIN)
endif

# serve: jitproxy alone on embedded defaults, no cluster.
serve: build
	./$(BIN) serve

# test-env: the Debian packages and server builds the integration tests and
# `make run` use (cached in .cache/bin).
test-env:
	test/servers/install-packages.sh
	test/servers/build.sh

# Every test: unit tests, Rego policy tests, fuzz seeds and the end-to-end
# story with the real jitproxy binary and kubectl; then the deployment
# manifests (test/deploy, a module of its own so that Helm and Kustomize
# stay out of jitproxy's go.mod).
test: lint test-env
	$(GO) test -race -count=1 -timeout 30m ./...
	cd test/deploy && $(GO) test -race -count=1 -timeout 10m ./...

unit:
	$(GO) test -race ./internal/... ./policies/... ./cmd/...

e2e:
	$(GO) test -race -count=1 -timeout 30m ./test/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd test/deploy && $(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

# bench-e2e: direct, bare goproxy MITM, the jitproxy binary and goproxy
# with jitproxy's audit side by side
# against a local fake apiserver, then grant activation and revocation
# across two replicas on a redis-server (make test-env installs it, or pass
# -skip-replicas) (test/bench/e2e; results in BENCHMARKS.md).
# Not part of `make test`. BENCHFLAGS, e.g. -duration 3s -rounds 2.
BENCHFLAGS ?=
bench-e2e:
	$(GO) run ./test/bench/e2e $(BENCHFLAGS)

# Runs each fuzz target for FUZZTIME.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzClassify$$' -fuzztime $(FUZZTIME) ./internal/intercept/kube
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBody$$' -fuzztime $(FUZZTIME) ./internal/intercept/kube
	$(GO) test -run '^$$' -fuzz '^FuzzConditional$$' -fuzztime $(FUZZTIME) ./internal/intercept/kube
	$(GO) test -run '^$$' -fuzz '^FuzzSelfReview$$' -fuzztime $(FUZZTIME) ./internal/intercept/kube
	$(GO) test -run '^$$' -fuzz '^FuzzClassify$$' -fuzztime $(FUZZTIME) ./internal/intercept/aws
	$(GO) test -run '^$$' -fuzz '^FuzzAddressedBy$$' -fuzztime $(FUZZTIME) ./internal/intercept
	$(GO) test -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME) ./internal/strictjson
	$(GO) test -run '^$$' -fuzz '^FuzzNames$$' -fuzztime $(FUZZTIME) ./internal/broker/sts
	$(GO) test -run '^$$' -fuzz '^FuzzSessionPolicy$$' -fuzztime $(FUZZTIME) ./internal/broker/sts
	$(GO) test -run '^$$' -fuzz '^FuzzParseSessionCredential$$' -fuzztime $(FUZZTIME) ./internal/jit
	$(GO) test -run '^$$' -fuzz '^FuzzParsePolicies$$' -fuzztime $(FUZZTIME) ./internal/jit
	$(GO) test -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime $(FUZZTIME) ./internal/jit
	$(GO) test -run '^$$' -fuzz '^FuzzUnverifiedIssuer$$' -fuzztime $(FUZZTIME) ./internal/jit
	$(GO) test -run '^$$' -fuzz '^FuzzParseIdentity$$' -fuzztime $(FUZZTIME) ./internal/jit
	$(GO) test -run '^$$' -fuzz '^FuzzReadManifests$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./internal/jit/rbacconv
	$(GO) test -run '^$$' -fuzz '^FuzzWritePage$$' -fuzztime $(FUZZTIME) ./internal/approvalpage
	$(GO) test -run '^$$' -fuzz '^FuzzLoadConfig$$' -fuzztime $(FUZZTIME) ./cmd/proxy
	$(GO) test -run '^$$' -fuzz '^FuzzEsc$$' -fuzztime $(FUZZTIME) ./cmd/proxy
	$(GO) test -run '^$$' -fuzz '^FuzzPodSecurity$$' -fuzztime $(FUZZTIME) ./internal/authz/podsecurity
	$(GO) test -run '^$$' -fuzz '^FuzzSanitize$$' -fuzztime $(FUZZTIME) ./internal/audit/sink
	$(GO) test -run '^$$' -fuzz '^FuzzFormat$$' -fuzztime $(FUZZTIME) ./internal/audit/sink/syslog
	$(GO) test -run '^$$' -fuzz '^FuzzEncode$$' -fuzztime $(FUZZTIME) ./internal/audit/ocsf
	$(GO) test -run '^$$' -fuzz '^FuzzAppendMatchesJSON$$' -fuzztime $(FUZZTIME) ./internal/audit/ocsf
	$(GO) test -run '^$$' -fuzz '^FuzzNative$$' -fuzztime $(FUZZTIME) ./internal/audit
	$(GO) test -run '^$$' -fuzz '^FuzzSpoolLine$$' -fuzztime $(FUZZTIME) ./internal/audit
	$(GO) test -run '^$$' -fuzz '^FuzzAnswer$$' -fuzztime $(FUZZTIME) ./internal/audit/sink/hec
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./internal/audit/sink/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzFormat$$' -fuzztime $(FUZZTIME) ./internal/audit/sink/syslog

clean:
	rm -rf bin
