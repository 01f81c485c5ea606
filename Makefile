# Loupe's build. `make demo` and `make test` do all set-up on a fresh Debian
# machine with Go and Node/npm: npm packages from the committed lockfile,
# Debian's chromium for the browser tests.

GO       ?= go
NPM      ?= npm
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
GOFILES  := $(shell git ls-files '*.go' 2>/dev/null)

.PHONY: all build bundles demo test vet fmt chromium postgres bench clean

all: build

# npm ci only when the lockfile changed since the last install.
node_modules/.package-lock.json: package.json package-lock.json
	$(NPM) ci --no-audit --no-fund --loglevel=error

# Recorder and UI bundles (and the demo's web font), embedded by go:embed.
bundles: node_modules/.package-lock.json
	$(NPM) run --silent build

build: bundles
	$(GO) build -o bin/loupe ./cmd/loupe

demo: build
	./bin/loupe demo

# PostgreSQL 15 backs the store/postgres tests and the fault tests; they
# start private servers with initdb/pg_ctl, so only the binaries are needed.
PG_BIN ?= /usr/lib/postgresql/15/bin
postgres:
	@[ -x $(PG_BIN)/initdb ] || { \
		echo "installing Debian's postgresql-15 for the store tests"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql-15 >/dev/null; }

# Debian's chromium drives the end-to-end tests.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

fmt:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

test: build chromium postgres fmt vet
	$(GO) test -count=1 -timeout 20m ./...

bench: build
	bench/run.sh

clean:
	rm -rf bin injector/recorder/dist/*.js replayer/ui/dist/*.js replayer/ui/dist/*.css demo/static/fonts/*.woff2
