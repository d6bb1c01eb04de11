#!/usr/bin/env bash
# bench/profile-admin.sh: what share of Parley's CPU the admin surface takes under a call load,
# from a profile rather than from two runs' CPU totals (which move by more than the share on a
# shared box).
#
#   bash bench/profile-admin.sh [--parley PATH] [--admin N] [--rate R] [--seconds S] [--frequency HZ]
#
# Runs bench/run-callpath.sh (Parley only, R calls/s, N event-stream clients and a /metrics
# scrape every second; defaults: .build/release/parley, N=1, R=1000) and samples the Parley
# process with `perf record -g` for S seconds (default 15) at HZ (default 999) once the load is
# steady. Then prints the samples in total and the share whose call stack holds admin code
# (ParleyAdmin, Hummingbird, swift-prometheus, NIO's HTTP codecs, AsyncStream) or ran on the
# admin listener's own threads, with the admin frames that took most. Everything else (the SIP
# roles, the records writer) is the call path. Figures only; nothing is asserted.
# Installs what is missing (linux-perf) with apt-get when run as root. The profile and the
# call-path bench's logs stay in /tmp/parley-profile-admin.XXXXXX.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PARLEY="$ROOT/.build/release/parley"
ADMIN=1
RATE=1000
SECONDS_S=15
FREQ=999
while [ $# -gt 0 ]; do
  case "$1" in
    --parley) PARLEY=$2; shift 2 ;;
    --admin) ADMIN=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --seconds) SECONDS_S=$2; shift 2 ;;
    --frequency) FREQ=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for v in "$ADMIN" "$RATE" "$SECONDS_S" "$FREQ"; do
  case "$v" in *[!0-9]*|"") echo "--admin, --rate, --seconds and --frequency take whole numbers" >&2; exit 2 ;; esac
done
if ! command -v perf >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >/dev/null || { echo "could not install linux-perf" >&2; exit 1; }
  else
    echo "perf is missing (Debian: linux-perf)" >&2; exit 1
  fi
fi
[ -x "$PARLEY" ] || { echo "no Parley at $PARLEY (make release)" >&2; exit 1; }
OUT=$(mktemp -d /tmp/parley-profile-admin.XXXXXX)
# The load runs long enough to cover the profile: 5 s to settle, S seconds sampled, 5 s spare.
STEP=$(( SECONDS_S + 10 ))
bash "$ROOT/bench/run-callpath.sh" --parley "$PARLEY" --only parley --no-memory --rates "$RATE" \
  --step-seconds "$STEP" --admin "$ADMIN" >"$OUT/callpath.txt" 2>&1 &
BENCH=$!
PID=""
for _ in $(seq 1 120); do
  PID=$(pgrep -n -f "^$PARLEY serve" || true)
  [ -n "$PID" ] && break
  sleep 0.5
done
if [ -z "$PID" ]; then echo "Parley did not start (see $OUT/callpath.txt)" >&2; wait "$BENCH"; exit 1; fi
sleep 5
perf record -F "$FREQ" -g -p "$PID" -o "$OUT/perf.data" -- sleep "$SECONDS_S" >/dev/null 2>&1
wait "$BENCH"
grep -E "admin:|^ +$RATE " "$OUT/callpath.txt"
perf script -i "$OUT/perf.data" -F comm,ip,sym 2>/dev/null | python3 -c '
import re, sys
admin = re.compile(r"ParleyAdmin|Hummingbird|Prometheus|NIOHTTP|HTTPTypes|AsyncStream")
total = hits = 0
top = {}
for block in sys.stdin.read().split("\n\n"):
    lines = [l for l in block.strip().split("\n") if l.strip()]
    if not lines:
        continue
    total += 1
    comm = lines[0].split()[0]
    frame = next((l.split(None, 1)[-1] for l in lines[1:] if admin.search(l)), None)
    if frame is None and not comm.startswith("NIO-SGLTN"):
        continue
    hits += 1
    key = (frame or comm)[:100]
    top[key] = top.get(key, 0) + 1
if total == 0:
    sys.exit("no samples")
print(f"profile: {total} samples of the Parley process; admin surface {hits} = {100 * hits / total:.2f}%")
for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:12]:
    print(f"  {100 * v / total:5.2f}%  {k}")
'
echo "profile and logs: $OUT"
