# Huifang — run `make help` for the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT    := $(CURDIR)
BIN     := $(ROOT)/.bin
export GOBIN := $(BIN)
export PATH  := $(BIN):$(PATH)

# Pinned tool versions (see ../shared/TOOLCHAIN.md for what installs here).
BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPCURL_VERSION            := v1.9.4
NATS_CLI_VERSION           := v0.5.0
GRPC_GATEWAY_VERSION       := v2.33.0

SERVICES := intake scheduler dispatch feedback analytics
# The console (the web pages, services/console): a seventh process, a client
# of the five services' gRPC ports, serving HTTP only (8006).
CONSOLE  := console
# Every module of go.work, as folders relative to the root.
MODULES  = $(shell go work edit -json | sed -n 's/.*"DiskPath": "\.\/\(.*\)".*/\1/p')

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS := -s -w -X github.com/huifang/huifang/pkg/app.version=$(VERSION) -X github.com/huifang/huifang/pkg/app.commit=$(COMMIT)

TEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: help
help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BIN)/buf:
	go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/grpcurl:
	go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
$(BIN)/nats:
	go install github.com/nats-io/natscli/nats@$(NATS_CLI_VERSION)
$(BIN)/protoc-gen-grpc-gateway:
	go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
$(BIN)/protoc-gen-openapiv2:
	go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)

# The generators proto/buf.gen.yaml names beyond the two every module needs.
EXTRA_PLUGINS := $(foreach p,protoc-gen-grpc-gateway protoc-gen-openapiv2,$(if $(shell grep -s -l '$(p)' proto/buf.gen.yaml),$(BIN)/$(p)))

.PHONY: tools
tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(EXTRA_PLUGINS) ## install the pinned code generators into .bin/ (with grpc-gateway's when proto/buf.gen.yaml names them)

.PHONY: generate
generate: tools ## regenerate the protobuf and gRPC Go code and the permission tables of docs/security.md (committed)
	cd proto && buf generate
	cd scripts && go run ./cmd/huifang-docs ../docs/security.md

.PHONY: check-generated
check-generated: generate ## fail when the committed generated code differs from what `make generate` writes
	@if [ -n "$$(git status --porcelain -- proto docs/security.md)" ]; then \
	  echo "generated code in proto/ or docs/security.md is stale or edited by hand; run 'make generate' and commit:"; \
	  git status --porcelain -- proto docs/security.md; git --no-pager diff --stat -- proto docs/security.md; exit 1; fi
	@echo "generated code matches the .proto files"

.PHONY: lint
lint: $(BIN)/buf lint-deploy vulncheck ## buf lint and buf breaking against the release baseline (proto-release), gofmt and go vet over every module; the deployment files (lint-deploy); known vulnerabilities (vulncheck)
	cd proto && buf lint
	cd proto && buf breaking --against $(PROTO_RELEASE)
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do echo "go vet ./$$m/..."; (cd $$m && go vet ./...); done

# The released contract `make lint` holds the protos to (buf breaking: a
# removed or renumbered field, a changed type or route breaks a client;
# additions do not). A built image, committed, so that a clean clone
# without tags or network can check; `make proto-release` writes it when a
# version is released (then set PROTO_RELEASE to the new file).
PROTO_RELEASE ?= release/v0.17.binpb
.PHONY: proto-release
proto-release: $(BIN)/buf ## write the built image of the current protos as the release baseline of `make lint`'s buf breaking (proto/$(PROTO_RELEASE))
	@mkdir -p $(dir proto/$(PROTO_RELEASE))
	cd proto && buf build --exclude-source-info -o $(PROTO_RELEASE)
	@echo "wrote proto/$(PROTO_RELEASE); commit it"

.PHONY: vulncheck
vulncheck: ## govulncheck over every module, against golang.org/x/vulndb from the module proxy: fails when code calls a vulnerable function of a required module
	cd scripts && go run ./cmd/huifang-vulncheck -db $(ROOT)/.dev/vulndb $(addprefix $(ROOT)/,$(MODULES))

# The compose file needs its passwords and intake's keys set to be read; any value will do here.
COMPOSE_FILE_CHECK := POSTGRES_PASSWORD=lint GRAFANA_ADMIN_PASSWORD=lint ENCRYPTION_KEYS=lint HASH_KEY=lint AUTH_ISSUER=http://lint \
  DISPATCH_CLIENT_SECRET=lint INTAKE_CLIENT_SECRET=lint NATS_ANALYTICS_PASSWORD=lint NATS_DISPATCH_PASSWORD=lint NATS_ERP_PASSWORD=lint \
  NATS_FEEDBACK_PASSWORD=lint NATS_INTAKE_PASSWORD=lint NATS_SCHEDULER_PASSWORD=lint CONSOLE_SESSION_KEY=lint
.PHONY: lint-deploy
lint-deploy: ## render the Kubernetes overlays and decode them strictly, parse the alert rules and dashboard queries as Prometheus would (offline); check the compose file when docker compose or docker-compose exists
	cd deploy && go test -count=1 ./...
	cd deploy/promcheck && GOWORK=off go vet ./... && GOWORK=off go test -count=1 ./... && \
	  GOWORK=off go run . ../observability/alerts.yml ../observability/grafana/dashboards/*.json
	@if docker compose version >/dev/null 2>&1; then \
	  echo "docker compose config -q deploy/compose/compose.yaml"; \
	  $(COMPOSE_FILE_CHECK) docker compose -f deploy/compose/compose.yaml config -q; \
	elif command -v docker-compose >/dev/null 2>&1; then \
	  echo "docker-compose config -q deploy/compose/compose.yaml"; \
	  $(COMPOSE_FILE_CHECK) docker-compose -f deploy/compose/compose.yaml config -q; \
	else echo "no docker compose or docker-compose here: compose file checked by the Go test only (apt-get install docker-compose)"; fi

OVERLAY ?= dev
.PHONY: manifests
manifests: ## print the Kubernetes manifests of an overlay (OVERLAY=dev|prod), as kustomize build would
	@cd deploy && go run ./cmd/render k8s/overlays/$(OVERLAY)

IMAGE_REPO ?= huifang
.PHONY: images
images: ## build the six container images (needs a Docker engine): huifang/<service>:<version> and :dev, the console's too (IMAGE_REPO, VERSION)
	@docker info >/dev/null 2>&1 || { echo "make images needs a running Docker engine (docker info fails here)"; exit 1; }
	@i=1; for s in $(SERVICES); do \
	  echo "== $(IMAGE_REPO)/$$s:$(VERSION)"; \
	  docker build --build-arg SERVICE=$$s --build-arg GRPC_PORT=700$$i --build-arg HTTP_PORT=800$$i \
	    --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) \
	    -t $(IMAGE_REPO)/$$s:$(VERSION) -t $(IMAGE_REPO)/$$s:dev . ; \
	  i=$$((i+1)); done
	@echo "== $(IMAGE_REPO)/$(CONSOLE):$(VERSION)"
	docker build --build-arg SERVICE=$(CONSOLE) --build-arg HTTP_PORT=8006 \
	  --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) \
	  -t $(IMAGE_REPO)/$(CONSOLE):$(VERSION) -t $(IMAGE_REPO)/$(CONSOLE):dev .

.PHONY: build
build: ## build the five services, the console and the scripts' commands into .bin/
	@mkdir -p $(BIN)
	@for s in $(SERVICES) $(CONSOLE); do go build -ldflags '$(LDFLAGS)' -o $(BIN)/$$s ./services/$$s/cmd/$$s; done
	go build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./scripts/cmd/...
	@echo "built: $(SERVICES) $(CONSOLE) huifang-dev huifang-publish huifang-nats in .bin/"

# The console's browser tests drive Debian's chromium and draw Chinese with
# fonts-noto-cjk: scripts/browser-deps.sh installs them when missing (as
# root), or says how. `make test` (and so .ci/run) and `make screenshots`
# go through it.
.PHONY: browser-deps
browser-deps: ## install what the console's browser tests need when missing (Debian's chromium and fonts-noto-cjk; apt-get as root)
	@scripts/browser-deps.sh

.PHONY: test
test: browser-deps ## unit, integration and end-to-end tests with -race, the console's in headless Chromium (starts a throwaway Postgres unless DATABASE_URL is set)
	@started=""; \
	if [ -z "$${DATABASE_URL:-}" ]; then \
	  DATABASE_URL=$$(scripts/postgres.sh start); export DATABASE_URL; started=1; \
	  trap 'scripts/postgres.sh stop' EXIT; \
	fi; \
	echo "testing against $${DATABASE_URL%%\?*}"; \
	failed=""; \
	for m in $(MODULES); do echo "== $$m"; (cd $$m && go test $(TEST_FLAGS) ./...) || failed="$$failed $$m"; done; \
	if [ -n "$$failed" ]; then echo "tests failed in:$$failed"; exit 1; fi

# The pictures of docs/console.md: the console's browser tests (the tests of
# scripts/e2e/console*_test.go) write a screenshot of every main page into
# SCREENSHOT_DIR.
SCREENSHOT_DIR ?= docs/console
.PHONY: screenshots
screenshots: browser-deps ## run the console's browser tests and leave a screenshot of every page in docs/console/ (SCREENSHOT_DIR)
	@mkdir -p $(SCREENSHOT_DIR)
	@started=""; \
	if [ -z "$${DATABASE_URL:-}" ]; then \
	  DATABASE_URL=$$(scripts/postgres.sh start); export DATABASE_URL; started=1; \
	  trap 'scripts/postgres.sh stop' EXIT; \
	fi; \
	tests=$$(sed -n 's/^func \(Test[A-Za-z0-9_]*\)(t \*testing\.T).*/\1/p' scripts/e2e/console*_test.go | paste -sd'|'); \
	echo "the console's browser tests: $$tests"; \
	(cd scripts && SCREENSHOT_DIR=$(abspath $(SCREENSHOT_DIR)) go test -count=1 -timeout 30m -run "^($$tests)\$$" ./e2e/)
	@ls $(SCREENSHOT_DIR)/*.png

BENCH_FLAGS ?=
.PHONY: bench
bench: build ## measure Huifang against the raw limits of JetStream and Postgres on this machine (~5 min): prints the table, writes .dev/bench/bench.json and the table in docs/benchmarks.md (BENCH_FLAGS, e.g. -n 20000)
	@started=""; \
	if [ -z "$${DATABASE_URL:-}" ]; then \
	  DATABASE_URL=$$(scripts/postgres.sh start); export DATABASE_URL; started=1; \
	  trap 'scripts/postgres.sh stop' EXIT; \
	fi; \
	$(BIN)/huifang-bench -bin $(BIN) -json .dev/bench/bench.json -docs docs/benchmarks.md -commit $(VERSION) $(BENCH_FLAGS)

FUZZTIME ?= 30s
.PHONY: fuzz
fuzz: ## run every fuzz test (decoders of outside input) for FUZZTIME each; make test runs their seeds only
	@grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' $(MODULES) | sed 's/:func / /' | \
	while read -r file fn; do \
	  echo "== $$(dirname $$file) $$fn"; \
	  (cd $$(dirname $$file) && go test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) .) || exit 1; \
	done

CHAOS_FLAGS ?= -count=1 -timeout 90m -v
.PHONY: chaos
chaos: ## the long fault-injection suite (~20 min, its own Postgres and NATS): CHAOS_SEED=<n> replays a run, CHAOS_SCENARIO=a,b runs some; report in .dev/chaos/report.json
	@mkdir -p .dev/chaos
	cd scripts && CHAOS_PROFILE=long CHAOS_REPORT=$(ROOT)/.dev/chaos/report.json go test $(CHAOS_FLAGS) -run '^TestChaos$$' ./chaos/ 2>&1 | tee $(ROOT)/.dev/chaos/chaos.log

.PHONY: run
run: build ## bring up the whole system with demo data and the console (Ctrl-C stops what it started; DEV_MODE: intake's development keys; RUN_FLAGS, e.g. -port-offset 100)
	DEV_MODE=true $(BIN)/huifang-dev -bin $(BIN) $(RUN_FLAGS)

.PHONY: clean
clean: ## stop the dev Postgres and remove .dev/ and .bin/
	-scripts/postgres.sh stop
	rm -rf .dev .bin
