# easycaching: `make demo` runs the example plugin on ./easycaching.db, `make test` runs every
# test. Everything builds into target/ (or $CARGO_TARGET_DIR): the host with cargo, guest components in its guests/.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := demo

CARGO ?= cargo
DB ?= easycaching.db
# Where cargo builds: ./target, or $CARGO_TARGET_DIR when set (the tests look there too).
TARGET := $(or $(CARGO_TARGET_DIR),target)
GUESTS := $(TARGET)/guests
EASYCACHING := $(TARGET)/release/easycaching
# Guest components are built without debug info: smaller, and quicker for the host to compile.
GUEST_BUILD := CARGO_PROFILE_RELEASE_DEBUG=false $(CARGO) build --release --target wasm32-wasip2
WALKTHROUGH_GRANTS := --allow 'cache:test=rwc' --allow 'cache:walkthrough=rwc' --allow 'queue:jobs=rwc'

.PHONY: demo test host guests guest-rust rust-target clean
.PHONY: guest-python guest-js guest-python-bench guest-js-bench

## demo: build the host and the Rust example plugin, and run it on $(DB)
demo: host guest-rust
	$(EASYCACHING) --db $(DB) run $(GUESTS)/walkthrough.wasm $(WALKTHROUGH_GRANTS)
	@echo
	@echo "The data lives in $(DB): run 'make demo' again to see it kept, or look with '$(EASYCACHING) --db $(DB) ls'."

## test: build everything, then run every test (unit, doc and end-to-end)
test: host guests
	EASYCACHING_GUESTS="$(abspath $(GUESTS))" $(CARGO) test --release --no-fail-fast

## host: the easycaching CLI and host libraries
host:
	$(CARGO) build --release -p easycaching-cli

## guests: every guest component, into target/guests
guests: guest-rust guest-python guest-js

rust-target:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

## guest-rust: the Rust example plugins (walkthrough, http-cache, keyvalue-counter) and the test programs
guest-rust: rust-target
	$(GUEST_BUILD) -p walkthrough -p easycaching-test-programs -p http-cache -p http-test-handler -p keyvalue-counter
	mkdir -p $(GUESTS)
	cp $(TARGET)/wasm32-wasip2/release/*.wasm $(GUESTS)/

# Python and JavaScript guests. Their toolchains install into the project, pinned, once: a
# virtualenv from guest/python/requirements.txt, node_modules from guest/js/package-lock.json.
# Each component is rebuilt only when its sources, the SDK, the WIT or the toolchain change.
PYTHON ?= python3
PY_GUEST := guest/python
PY_TOOLCHAIN := $(PY_GUEST)/.venv/installed
PY_SDK := $(wildcard $(PY_GUEST)/easycaching/*.py)
JS_GUEST := guest/js
# What `npm ci` installs for the engine plugins are built with (QuickJS)...
JS_TOOLCHAIN := $(JS_GUEST)/node_modules/componentize-qjs/package.json
# ...and, for measuring it against the other engine, StarlingMonkey too (guest/js/README.md).
JS_BENCH_TOOLCHAIN := $(JS_GUEST)/node_modules/@bytecodealliance/componentize-js/package.json
JS_SDK := $(JS_GUEST)/build.mjs $(JS_GUEST)/wit/plugin.wit $(wildcard $(JS_GUEST)/sdk/*.js)
WIT_FILES := $(wildcard wit/*.wit)

## guest-python: the Python example plugin, web example and test programs (componentize-py)
guest-python: $(GUESTS)/python-walkthrough.wasm $(GUESTS)/python-http-cache.wasm \
	$(GUESTS)/python-errors.wasm $(GUESTS)/python-iteration.wasm

## guest-js: the JavaScript example plugin and test programs (componentize-qjs)
guest-js: $(GUESTS)/js-walkthrough.wasm $(GUESTS)/js-errors.wasm $(GUESTS)/js-async-main.wasm

## guest-python-bench, guest-js-bench: the measuring plugins (not part of `make test`)
guest-python-bench: $(GUESTS)/python-bench.wasm
guest-js-bench: $(GUESTS)/js-bench.wasm $(GUESTS)/js-bench-starlingmonkey.wasm

$(PY_TOOLCHAIN): $(PY_GUEST)/requirements.txt
	$(PYTHON) -m venv $(PY_GUEST)/.venv
	$(PY_GUEST)/.venv/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

# The program in guest/python/NAME/app.py becomes python-NAME.wasm, a component of the world
# PY_WORLD: a plugin for `easycaching run`, or an HTTP handler for `easycaching serve`.
PY_WORLD = plugin
$(GUESTS)/python-http-cache.wasm: PY_WORLD = http-handler
$(GUESTS)/python-%.wasm: $(PY_GUEST)/%/app.py $(PY_GUEST)/build.py $(PY_SDK) $(WIT_FILES) $(PY_TOOLCHAIN)
	$(PY_GUEST)/.venv/bin/python $(PY_GUEST)/build.py --world $(PY_WORLD) $(PY_GUEST)/$* $@

# npm leaves old timestamps on what it unpacks: touching the marker keeps it newer than the lock.
$(JS_TOOLCHAIN): $(JS_GUEST)/package-lock.json
	cd $(JS_GUEST) && npm ci --omit=dev --no-audit --no-fund
	touch $@

$(JS_BENCH_TOOLCHAIN): $(JS_GUEST)/package-lock.json
	cd $(JS_GUEST) && npm ci --no-audit --no-fund
	touch $@ $(JS_TOOLCHAIN)

# The program in guest/js/NAME/app.js becomes js-NAME.wasm.
$(GUESTS)/js-%.wasm: $(JS_GUEST)/%/app.js $(JS_SDK) $(WIT_FILES) $(JS_TOOLCHAIN)
	node $(JS_GUEST)/build.mjs $< $@

$(GUESTS)/js-bench-starlingmonkey.wasm: $(JS_GUEST)/bench/app.js $(JS_SDK) $(WIT_FILES) $(JS_BENCH_TOOLCHAIN)
	node $(JS_GUEST)/build.mjs --engine starlingmonkey $< $@

# Benchmarks (bench/README.md): every figure next to a baseline measured in the same run,
# printed as a table and written to target/bench/results.json. `make bench` takes 5-10 minutes
# once built (on a fresh clone the build comes first: 10-15 minutes on 2 cores, shared with
# `make demo` and `make test`); the heavier parts are behind their own targets.
BENCH := $(TARGET)/release/easycaching-bench
BENCH_DIR := $(abspath $(TARGET)/bench)
BENCH_STAGES := micro-turns writes startup scale redis queues spin languages
BENCH_REPORT := $(BENCH) report --criterion $(BENCH_DIR)/criterion
# Every cargo command of the benchmarks selects the same packages, so that cargo resolves the same
# features for what they share and builds wasmtime once: `cargo bench -p easycaching-bench` alone
# leaves out features the CLI's dependencies turn on (in fnv, log, smallvec, indexmap), and
# compiled all of wasmtime a second time, 7-8 minutes of a fresh clone's first `make bench`.
# The feature `micro` brings in criterion, for the micro benchmark only (bench/suite/Cargo.toml).
BENCH_PACKAGES := -p easycaching-cli -p easycaching-bench --features easycaching-bench/micro

.PHONY: bench bench-full bench-guests bench-http bench-http-figures bench-postgres bench-postgres-figures bench-original bench-build bench-tools

## bench: the figures of issue 7: criterion and callgrind for the per-call ones, bounded loops for the rest
bench: bench-build bench-tools guest-python-bench guest-js-bench
	rm -rf $(BENCH_DIR)/parts
	CRITERION_HOME=$(BENCH_DIR)/criterion $(CARGO) bench $(BENCH_PACKAGES) --bench micro \
		$(if $(BENCH_FULL),-- --warm-up-time 2 --measurement-time 6)
	$(BENCH) callgrind || echo "make bench: no instruction counts (valgrind missing?)"
	for stage in $(BENCH_STAGES); do $(BENCH) stage $$stage $(BENCH_FULL); done
	$(MAKE) --no-print-directory bench-http-figures || echo "make bench: no HTTP figures (bench/http.sh says why above)"
	$(MAKE) --no-print-directory bench-postgres-figures || echo "make bench: no PostgreSQL figures (see above)"
	$(BENCH_REPORT)

## bench-full: longer runs and 10M entries
bench-full:
	$(MAKE) bench BENCH_FULL=--full

## bench-guests: only the Python and JavaScript guests' size, start-up and per-call cost (part of `make bench`)
bench-guests: bench-build guest-python-bench guest-js-bench
	$(BENCH) stage languages
	$(BENCH_REPORT)

## bench-http: only the HTTP figures (part of `make bench`): easycaching serve against a
## native axum server, with wrk (bench/http.sh; HTTP_BENCH_FLAGS=--wasmtime adds `wasmtime serve`)
bench-http: bench-build bench-tools bench-http-figures
	$(BENCH_REPORT)

bench-http-figures:
	mkdir -p $(BENCH_DIR)
	bench/http.sh --duration 3s --rounds 3 $(HTTP_BENCH_FLAGS) | tee $(BENCH_DIR)/http.txt
	$(BENCH) stage http --input $(BENCH_DIR)/http.txt

## bench-postgres: only the PostgreSQL figures (part of `make bench`): the PostgreSQL backend
## against plain PostgreSQL, on EASYCACHING_BENCH_POSTGRES or a throwaway server (.ci/postgres.sh)
bench-postgres: bench-build bench-postgres-figures
	$(BENCH_REPORT)

bench-postgres-figures:
	EASYCACHING_BENCH_POSTGRES="$${EASYCACHING_BENCH_POSTGRES:-$$(.ci/postgres.sh)}" $(BENCH) stage postgres $(BENCH_FULL)

## bench-original: against the original Python easycaching 0.108 from PyPI, in a virtualenv
ORIGINAL_VENV := $(BENCH_DIR)/original-venv
bench-original: bench-build $(ORIGINAL_VENV)/installed
	$(BENCH) stage original --input $(ORIGINAL_VENV)/bin/python
	$(BENCH_REPORT)

$(ORIGINAL_VENV)/installed: bench/original/requirements.txt
	$(PYTHON) -m venv $(ORIGINAL_VENV)
	$(ORIGINAL_VENV)/bin/pip install --quiet --disable-pip-version-check -r $<
	touch $@

bench-build: rust-target
	$(CARGO) build --release $(BENCH_PACKAGES)
	$(CARGO) bench $(BENCH_PACKAGES) --bench micro --no-run
	$(GUEST_BUILD) -p easycaching-bench-guest

# What the benchmarks run besides our code, from Debian's packages: Redis, valgrind for
# instruction counts, wrk for HTTP. A figure whose tool cannot be installed is skipped with a note.
bench-tools:
	@command -v redis-server > /dev/null && command -v valgrind > /dev/null && command -v wrk > /dev/null || \
		{ apt-get update -qq && apt-get install -y -qq redis-server valgrind wrk; } || \
		echo "make bench: cannot install redis-server, valgrind or wrk; their figures will be skipped"

clean:
	$(CARGO) clean
