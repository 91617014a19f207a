# The commands the README and CI use.
#   make dev    the main job on an embedded default (emulator + demo secrets)
#   make test   the whole suite; tests whose tools are missing skip with a printed
#               reason, unless CI=true, where they fail
#   make tools  installs those tools (helm, golangci-lint, buildah, dockerfilelint,
#               etcd, the Kubernetes binaries, containerd); .ci/run = make tools && CI=true make test
#   make cluster-test   only the one-node Kubernetes suite (hack/cluster/test.sh)
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BIN := bin/csi-secrets-store-provider-alibabacloud
# A count, not a duration: a duration races Go's fuzz coordinator (golang/go#75804,
# unfixed in go1.26), which fails a run with a bare "context deadline exceeded"
# and no failing input. 30000 runs take about 20 s a target here.
FUZZTIME ?= 30000x
LINT := .tools/bin/golangci-lint

.PHONY: build dev test tools unit e2e chart image driver lint fuzz bench check cluster-test
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(BIN) ./cmd/csi-secrets-store-provider-alibabacloud

dev:
	$(GO) run ./cmd/csi-secrets-store-provider-alibabacloud dev

test: check e2e unit chart driver image lint fuzz cluster-test

tools:
	bash hack/chart/install-helm.sh
	bash hack/lint/install-golangci-lint.sh
	bash hack/image/install-tools.sh
	bash hack/k8s/setup-envtest.sh
	bash hack/cluster/install.sh

# The tree: go mod tidy in every module, no tracked file over 1 MB, gofmt.
check:
	bash hack/check-tree.sh

# Vet, unit and end-to-end tests of the product module (the emulator, the real
# binary over its socket, FUSE mounts).
e2e:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

# The race detector on every package that shares state.
unit:
	$(GO) test -count=1 -race ./fetch/... ./auth/... ./csi/... ./fs/... ./metrics/... ./events/...

# The Helm chart rendered by a real helm and decoded strictly (own module).
chart:
	cd integration/k8s && $(GO) test -count=1 -timeout 20m ./...

# The real Secrets Store CSI Driver node server and a real kube-apiserver (own module).
driver:
	cd integration/driver && $(GO) test -count=1 -timeout 20m ./...

# The Dockerfile linted, its final stage built and run.
image:
	@if command -v buildah >/dev/null 2>&1 || [ "$$CI" = true ]; then bash hack/image/test.sh; \
	else echo "image test skipped: buildah is not installed (make tools)"; fi

lint:
	@if [ -x $(LINT) ] || [ "$$CI" = true ]; then $(LINT) run ./...; \
	else echo "lint skipped: $(LINT) is not installed (make tools)"; fi

fuzz:
	$(GO) test ./fetch -run '^$$' -fuzz '^FuzzParseParameters$$' -fuzztime $(FUZZTIME)
	$(GO) test ./fetch -run '^$$' -fuzz '^FuzzJMESPath$$' -fuzztime $(FUZZTIME)
	$(GO) test ./fetch -run '^$$' -fuzz '^FuzzResponseDecoding$$' -fuzztime $(FUZZTIME)
	$(GO) test ./fetch -run '^$$' -fuzz '^FuzzShapedFiles$$' -fuzztime $(FUZZTIME)
	$(GO) test ./fetch -run '^$$' -fuzz '^FuzzTemplates$$' -fuzztime $(FUZZTIME)

# The product the way users run it: helm install into a one-node Kubernetes
# stood up here (containerd, kubelet, the real driver), pods mounting through
# kubelet. Builds what it needs (cached under .tools), tears the cluster down.
cluster-test:
	@if [ "$$(id -u)" = 0 ] || [ "$$CI" = true ]; then bash hack/cluster/test.sh; \
	else echo "cluster test skipped: it needs root (containerd, kubelet, mounts)"; fi

bench:
	$(GO) test -run '^$$' -bench . -benchtime 20x ./integration/ ./fs/
