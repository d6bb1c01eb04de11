#!/usr/bin/env bash
# bench/admin-ab.sh: the admin surface's cost by CPU totals, turn by turn: bench/run-callpath.sh
# at R calls/s with the admin API off (A) and with N event-stream clients and a /metrics scrape
# every second (B), alternated for P pairs in one run.
#
#   bash bench/admin-ab.sh [--parley PATH] [--admin N] [--rate R] [--pairs P] [--step-seconds S]
#
# Defaults: .build/release/parley, N=1 (a wallboard), R=1000, P=4, S=10. Prints each turn's CPU
# seconds per 1,000 calls of the server and of the SIPp processes (caller and agents together),
# then B's cost over A two ways: Parley's CPU alone, and Parley's CPU over the SIPp processes'
# in the same turn. The SIPp processes do the same work in every turn, so their CPU moving says
# how much the box moved (another tenant, the clients B adds sharing the cores); the second
# figure takes that out. Figures only; nothing is asserted. bench/profile-admin.sh gives the
# share from a profile instead.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PARLEY="$ROOT/.build/release/parley"
ADMIN=1
RATE=1000
PAIRS=4
STEP=10
while [ $# -gt 0 ]; do
  case "$1" in
    --parley) PARLEY=$2; shift 2 ;;
    --admin) ADMIN=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --pairs) PAIRS=$2; shift 2 ;;
    --step-seconds) STEP=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for v in "$ADMIN" "$RATE" "$PAIRS" "$STEP"; do
  case "$v" in *[!0-9]*|"") echo "--admin, --rate, --pairs and --step-seconds take whole numbers" >&2; exit 2 ;; esac
done
[ -x "$PARLEY" ] || { echo "no Parley at $PARLEY (make release)" >&2; exit 1; }
OUT=$(mktemp /tmp/parley-admin-ab.XXXXXX)
echo "# $PARLEY at $RATE calls/s, $STEP s per turn; A: admin off, B: $ADMIN event-stream clients + a scrape every second"
echo "# CPU s per 1,000 calls: parley sipp"
for p in $(seq "$PAIRS"); do
  for n in 0 "$ADMIN"; do
    line=$(bash "$ROOT/bench/run-callpath.sh" --parley "$PARLEY" --only parley --no-memory --rates "$RATE" \
      --step-seconds "$STEP" --admin "$n" 2>&1 | grep -E "^ +$RATE " | awk -F'|' '{print $3}')
    read -r server uac uas <<<"$line"
    [ -n "${uas:-}" ] || { echo "turn $p admin $n: no figures (see bench/run-callpath.sh)" >&2; continue; }
    kind=A; [ "$n" != 0 ] && kind=B
    sipp=$(awk -v a="$uac" -v b="$uas" 'BEGIN { printf "%.3f", a + b }')
    echo "$kind $server $sipp" >>"$OUT"
    echo "pair $p $kind: parley $server sipp $sipp"
  done
done
awk '
  $1 == "A" { a += $2; as += $3; ar += $2 / $3; na++ }
  $1 == "B" { b += $2; bs += $3; br += $2 / $3; nb++ }
  END {
    if (na == 0 || nb == 0) { print "no pairs measured"; exit 1 }
    printf "mean parley: A %.3f B %.3f: B costs %+.1f%%\n", a / na, b / nb, 100 * ((b / nb) / (a / na) - 1)
    printf "mean sipp:   A %.3f B %.3f: the box moved %+.1f%%\n", as / na, bs / nb, 100 * ((bs / nb) / (as / na) - 1)
    printf "mean parley / sipp: A %.3f B %.3f: B costs %+.1f%% with that taken out\n", ar / na, br / nb, 100 * ((br / nb) / (ar / na) - 1)
  }' "$OUT"
rm -f "$OUT"
