# Parley: `make run` and `make test` install what is missing (Debian, as root), build, and go.
SHELL := /bin/bash
# The Swift toolchain of this machine kind lives in /opt/swift; found even if PATH lacks it.
export PATH := $(PATH):/opt/swift/usr/bin
SWIFT ?= swift
# kamailio: the upstream registrar of Tests/sipp-registration (bench/kamailio/registrar.cfg), with
# kamailio-tls-modules for its TLS listener; openssl: test certificates;
# baresip-core and linphone-cli: the real softphones of Tests/sipp-callpath's softphone-* and
# linphone-* cases
APT_PACKAGES := liblua5.4-dev pkg-config sip-tester kamailio kamailio-tls-modules baresip-core linphone-cli openssl curl prometheus chromium chromium-driver python3-selenium
CONFIG ?= examples/parley.yaml
# Release builds optimize across module boundaries, SwiftNIO's included (about 5-9% less CPU per
# call on the call path than the default, measured with bench/run-callpath.sh's load).
RELEASE_FLAGS ?= -Xswiftc -cross-module-optimization

.PHONY: deps build release run demo test bench clean

# The example's TLS listeners use a self-signed test certificate for 127.0.0.1, made once here
# (never committed; a real deployment names its own in the configuration's tls: section).
examples/tls/parley.crt:
	mkdir -p examples/tls
	openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj /CN=127.0.0.1 \
	  -addext subjectAltName=IP:127.0.0.1 -keyout examples/tls/parley.key -out examples/tls/parley.crt 2>/dev/null

examples/admin.env:
	@umask 077 && printf 'PARLEY_ADMIN_TOKEN=%s\nPARLEY_ADMIN_READ_TOKEN=%s\n' "$$(openssl rand -hex 16)" "$$(openssl rand -hex 16)" >$@

# Install the Debian packages that are missing (apt-get update only when something is).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then echo "error: run as root to install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release $(RELEASE_FLAGS)

# Starts the distributor and buffer server with the shipped example configuration and rules
# (foreground; Ctrl-C stops it). README.md says how to place a call with SIPp.
# The admin API and wallboard listen on 127.0.0.1:8080 with tokens made at set-up
# (examples/admin.env, never committed); the wallboard's URL is printed first.
run: release examples/tls/parley.crt examples/admin.env
	.build/release/parley rules check rules
	@. ./examples/admin.env && echo "wallboard: http://127.0.0.1:8080/?token=$$PARLEY_ADMIN_READ_TOKEN" && \
	  echo "admin API: http://127.0.0.1:8080 (its full token is PARLEY_ADMIN_TOKEN in examples/admin.env)"
	. ./examples/admin.env && export PARLEY_ADMIN_TOKEN PARLEY_ADMIN_READ_TOKEN && .build/release/parley serve --config $(CONFIG)

# The whole contact center on loopback with simulated agents and callers and a live summary
# (docs/demo.md); DEMO_ARGS passes options, e.g. make demo DEMO_ARGS="--agents 8 --rate 2".
demo: release
	.build/release/parley demo $(DEMO_ARGS)

# The suites on the wire run the release build, the one `make run` ships: a debug build spends
# about 80% of a core on 200 calls/s through the proxy, too near the edge on a slow machine.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test
	.build/debug/parley test rules examples/rules Tests/sipp-callpath/rules Tests/sipp-registration/rules
	bash Tests/cli/sip-parse.sh
	bash Tests/cli/demo.sh
	$(SWIFT) build -c release $(RELEASE_FLAGS) --product parley
	$(SWIFT) build -c release $(RELEASE_FLAGS) --product parley-alloc-counts
	.build/release/parley-alloc-counts
	bash Tests/sipp/run.sh --parley $(CURDIR)/.build/release/parley
	bash Tests/sipp-callpath/run.sh --quick --parley $(CURDIR)/.build/release/parley
	bash Tests/sipp-registration/run.sh --parley $(CURDIR)/.build/release/parley

bench: release
	bash bench/run-parser.sh

clean:
	rm -rf .build
