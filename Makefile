# The commands the README and CI use. `make test` is the whole suite;
# `.ci/run` installs what the suite needs on a fresh machine, then runs it.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BIN := bin/csi-secrets-store-provider-alibabacloud
FUZZTIME ?= 20s

.PHONY: build dev test unit fuzz lint bench
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(BIN) ./cmd/csi-secrets-store-provider-alibabacloud

# The README's first command: the emulator with demo secrets, a demo Mount, the FUSE view.
dev:
	$(GO) run ./cmd/csi-secrets-store-provider-alibabacloud dev

# The whole suite: vet, unit and end-to-end tests of the module, bounded fuzzing.
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) fuzz

unit:
	$(GO) test -count=1 -race ./fetch/... ./auth/... ./csi/...

fuzz:
	$(GO) test ./fetch -run '^$$' -fuzz '^FuzzParseParameters$$' -fuzztime $(FUZZTIME)
	$(GO) test ./fetch -run '^$$' -fuzz '^FuzzJMESPath$$' -fuzztime $(FUZZTIME)
	$(GO) test ./fetch -run '^$$' -fuzz '^FuzzResponseDecoding$$' -fuzztime $(FUZZTIME)

lint:
	.tools/bin/golangci-lint run ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...
