#!/usr/bin/env bash
# Message-core benchmark: parse (+ validation) and serialize of a typical INVITE with SDP,
# release build, one core. Prints messages per second. Usage: bash bench/run-parser.sh [ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product parley-bench >/dev/null
exec taskset -c 0 .build/release/parley-bench --iterations "${1:-300000}"
