# easycaching: `make demo` runs the example plugin on ./easycaching.db, `make test` runs every
# test. Everything builds into target/: the host with cargo, guest components in target/guests.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := demo

CARGO ?= cargo
DB ?= easycaching.db
TARGET := target
GUESTS := $(TARGET)/guests
EASYCACHING := $(TARGET)/release/easycaching
# Guest components are built without debug info: smaller, and quicker for the host to compile.
GUEST_BUILD := CARGO_PROFILE_RELEASE_DEBUG=false $(CARGO) build --release --target wasm32-wasip2
WALKTHROUGH_GRANTS := --allow 'cache:test=rwc' --allow 'cache:walkthrough=rwc' --allow 'queue:jobs=rwc'

.PHONY: demo test host guests guest-rust rust-target clean

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
guests: guest-rust

rust-target:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

## guest-rust: the Rust example plugin and the test programs
guest-rust: rust-target
	$(GUEST_BUILD) -p walkthrough -p easycaching-test-programs
	mkdir -p $(GUESTS)
	cp $(TARGET)/wasm32-wasip2/release/*.wasm $(GUESTS)/

clean:
	$(CARGO) clean
