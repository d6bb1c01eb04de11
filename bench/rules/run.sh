#!/bin/sh
# Builds the rules bench in release mode and prints its figures.
#   bench/rules/run.sh [--seconds S]
set -e
cd "$(dirname "$0")/../.."
swift build -c release --scratch-path .build-rules --product parley-rules-bench >&2
exec .build-rules/release/parley-rules-bench --rules rules "$@"
