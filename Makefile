# calico-libnetwork build and test entry points. Run `make help` for the list.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Go lives in /usr/local/go on the project machines; tools installed with
# `go install` go to $(go env GOPATH)/bin.
export PATH := /usr/local/go/bin:$(PATH)
GO       ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GOBIN    := $(shell $(GO) env GOPATH 2>/dev/null)/bin

VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin

# staticcheck is pinned by module version: v0.8.2 is release 2026.2.2, built for
# Go 1.26. (The Go proxy here resolves only vX.Y.Z versions; "@2025.1.1" is
# refused, its module version v0.6.1 predates Go 1.26.)
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK         := $(GOBIN)/staticcheck

BENCHTIME ?= 1s
FUZZTIME  ?= 50000x

# `make install` destinations; DESTDIR stages into another root.
PREFIX     ?= /usr/local
SYSTEMDDIR ?= /etc/systemd/system

# `make image` / `make plugin`: the image name (the original plugin's) and the managed plugin's name,
# which is also the driver name Docker networks use (`-d $(PLUGIN) --ipam-driver $(PLUGIN)`).
IMAGE  ?= calico/node-libnetwork:latest
PLUGIN ?= calico/libnetwork-plugin:latest
DOCKER ?= docker
BUILD  := build

.PHONY: help build install uninstall image plugin run-plugin test test-unit test-interop test-e2e engine compose lint staticcheck bench fuzz clean

help: ## Show this list of targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/calico-libnetwork and bin/calicoctl (static, version from git)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/calico-libnetwork ./cmd/calico-libnetwork
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/calicoctl ./cmd/calicoctl

run-plugin: build ## Build and run the plugin daemon in the foreground as root (env passes through)
	@if [ "$$(id -u)" -eq 0 ]; then \
		mkdir -p "$${CALICO_LIBNETWORK_PLUGIN_DIR:-/run/docker/plugins}"; \
		exec ./$(BIN)/calico-libnetwork; \
	elif command -v sudo >/dev/null 2>&1; then \
		echo "run-plugin: not root, running through sudo -E"; \
		exec sudo -E ./$(BIN)/calico-libnetwork; \
	else \
		echo "run-plugin: the daemon must run as root (no sudo found)" >&2; exit 1; \
	fi

test: ## Run the whole suite as root: deps, dockerd, test image, lint, all tests (e2e on Debian's engine and on the current one with each firewall backend), short fuzz
	bash scripts/test.sh

test-e2e: ## Run the e2e suite on one engine as root: ENGINE=debian (default), current or current-nft
	ENGINE=$(or $(ENGINE),debian) bash scripts/test-e2e.sh

engine: ## Build (once, cached) the current Docker engine and runc for ENGINE=current
	bash scripts/build-engine.sh

compose: ## Build (once, cached) and install the Docker Compose CLI plugin (docker compose) as root
	bash scripts/build-compose.sh

test-interop: ## Run the interop suite against upstream calicoctl and calico-felix (as root; build them first with scripts/build-upstream-calico.sh SRC)
	bash scripts/test-interop.sh

test-unit: ## Run go test ./... without root-only setup (root/docker tests skip themselves)
	$(GO) test -count=1 ./...

lint: staticcheck ## gofmt -l (must list nothing), go vet, staticcheck
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "lint: gofmt would reformat these files (run gofmt -w):" >&2; \
		echo "$$unformatted" >&2; exit 1; \
	fi; echo "gofmt: ok"
	$(GO) vet ./...
	$(STATICCHECK) ./...

staticcheck: ## Install the pinned staticcheck (v0.8.2) into GOPATH/bin if missing
	@if ! { [ -x "$(STATICCHECK)" ] && "$(STATICCHECK)" -version 2>/dev/null | grep -q '($(STATICCHECK_VERSION:v%=%))'; }; then \
		echo "installing staticcheck $(STATICCHECK_VERSION)"; \
		$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	fi

bench: ## Run Go benchmarks (BENCHTIME=1s) one package at a time, then bench/*.sh except the soak and the bursts
	$(GO) test -p 1 -run '^$$' -bench . -benchtime $(BENCHTIME) ./...
	@for s in bench/*.sh; do \
		[ -e "$$s" ] && [ "$$s" != bench/soak.sh ] && [ "$$s" != bench/burst.sh ] || continue; \
		echo "=== $$s"; bash "$$s" || exit 1; \
	done

fuzz: ## Run every Fuzz target under internal/ for FUZZTIME each (default 50000x: an execution count; Go's duration limit can fail with "context deadline exceeded", go.dev/issue/75804)
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

install: build ## Install the binaries, the systemd unit and /etc/default/calico-libnetwork (kept if present)
	install -D -m 0755 $(BIN)/calico-libnetwork $(DESTDIR)$(PREFIX)/bin/calico-libnetwork
	install -D -m 0755 $(BIN)/calicoctl $(DESTDIR)$(PREFIX)/bin/calicoctl
	install -d $(DESTDIR)$(SYSTEMDDIR)
	sed 's|/usr/local/bin/calico-libnetwork|$(PREFIX)/bin/calico-libnetwork|' packaging/systemd/calico-libnetwork.service \
		>$(DESTDIR)$(SYSTEMDDIR)/calico-libnetwork.service
	@if [ -e $(DESTDIR)/etc/default/calico-libnetwork ]; then \
		echo "install: keeping the existing $(DESTDIR)/etc/default/calico-libnetwork"; \
	else \
		install -D -m 0600 packaging/systemd/calico-libnetwork.default $(DESTDIR)/etc/default/calico-libnetwork; \
	fi

# `make uninstall`: first what the plugin put on this host (calico-libnetwork --uninstall, with the settings
# the unit uses; it refuses while containers use the plugin: FORCE=1 passes --force), then what `make install`
# installed. Settings and CALICO_DATA_DIR stay. With DESTDIR only the staged files are removed.
uninstall: build ## Remove the plugin from this host (FORCE=1: even with containers left), then the installed files
	@if [ -z "$(DESTDIR)" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then echo "uninstall: run as root" >&2; exit 1; fi; \
		if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet calico-libnetwork.service 2>/dev/null; then \
			echo "uninstall: calico-libnetwork.service is running: remove the containers and networks that use the" \
				"plugin, then systemctl stop calico-libnetwork, and run make uninstall again" >&2; exit 1; \
		fi; \
		set -a; if [ -r /etc/default/calico-libnetwork ]; then . /etc/default/calico-libnetwork; fi; set +a; \
		./$(BIN)/calico-libnetwork --uninstall $(if $(FORCE),--force) || exit 1; \
		if command -v systemctl >/dev/null 2>&1 && [ -e $(SYSTEMDDIR)/calico-libnetwork.service ]; then \
			systemctl disable calico-libnetwork.service 2>/dev/null || true; \
		fi; \
	fi
	rm -f $(DESTDIR)$(PREFIX)/bin/calico-libnetwork $(DESTDIR)$(PREFIX)/bin/calicoctl $(DESTDIR)$(SYSTEMDDIR)/calico-libnetwork.service
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "uninstall: kept $(DESTDIR)/etc/default/calico-libnetwork and CALICO_DATA_DIR (default /var/lib/calico:" \
		"the embedded etcd's data); remove them to forget the settings and the datastore"

image: build ## Build the container image IMAGE (FROM scratch, offline: binaries and this host's iptables)
	bash packaging/image-rootfs.sh $(BIN) $(BUILD)/image/rootfs
	$(DOCKER) build -f Dockerfile -t $(IMAGE) $(BUILD)/image

plugin: image ## Create the managed (v2) plugin PLUGIN from IMAGE (left disabled)
	DOCKER=$(DOCKER) bash packaging/plugin.sh $(IMAGE) $(PLUGIN) $(BUILD)/plugin

clean: ## Remove built binaries, test binaries and coverage files
	rm -rf $(BIN) $(BUILD) coverage.out coverage.html *.coverprofile
	find . -name '*.test' -type f -not -path './.git/*' -delete
