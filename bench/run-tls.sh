#!/usr/bin/env bash
# bench/run-tls.sh: Parley's CPU per call with the callers over TLS against UDP, on the same box
# in one run, turn by turn (udp tls udp tls). The caller is bench/tls/call-load.py (Debian's SIPp
# has no TLS): COUNT calls at RATE a second to the distributor (its TLS listener, checked against
# a certificate made here, or its UDP one), each INVITE, 200, ACK and, after HOLD seconds, BYE to
# the buffer server's Contact over the same transport; SIPp agents answer over UDP. Prints per
# turn the calls, failures and Parley's CPU seconds per 1,000 calls. Figures only.
#
#   bash bench/run-tls.sh [--parley PATH] [--calls N] [--rate R] [--hold S]
#
# Defaults: .build/release/parley, 2,000 calls at 200 a second, 0.5 s hold. Loopback only; every
# process is bounded in time and stopped by its process group.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PARLEY="$ROOT/.build/release/parley"
CALLS=2000
RATE=200
HOLD=0.5
while [ $# -gt 0 ]; do
  case "$1" in
    --parley) PARLEY=$2; shift 2 ;;
    --calls) CALLS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --hold) HOLD=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for tool in sipp openssl python3 ss setsid timeout; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing tool: $tool" >&2; exit 2; }
done
[ -x "$PARLEY" ] || { echo "no parley at $PARLEY (make release)" >&2; exit 2; }

IP=127.0.0.1
LOG=$(mktemp -d /tmp/parley-bench-tls.XXXXXX)
BG_PIDS=()
PORT_BASE=27060
KEEP=1
# shellcheck source=../Tests/lib/sipp-common.sh
. "$ROOT/Tests/lib/sipp-common.sh"
trap on_exit EXIT
trap 'exit 130' INT TERM

ticks() { local a; read -r a <"/proc/$1/stat" || { echo 0; return; }; a=${a##*) }; set -- $a; echo $(( ${12} + ${13} )); }

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$LOG/tls.key" -out "$LOG/tls.crt" 2>/dev/null || { echo "openssl could not make a certificate" >&2; exit 1; }
agents=$(awk -v r="$RATE" -v h="$HOLD" 'BEGIN { printf "%d", r * (h + 1) * 2 + 10 }')
hz=$(getconf CLK_TCK)
echo "# $CALLS calls at $RATE/s, hold ${HOLD}s, $agents agents over 3 SIPp processes; parley: $PARLEY; logs: $LOG"
printf "%-5s %6s %6s %8s | %s\n" "turn" "ok" "failed" "seconds" "parley CPU s per 1,000 calls"
for turn in udp tls udp tls; do
  b=$(alloc_block) || { echo "no free ports" >&2; exit 1; }
  dir="$LOG/$turn-$b"; mkdir -p "$dir"
  {
    echo "rules: $ROOT/rules"
    echo "roles: [distributor, buffer]"
    echo "listeners: {distributor: \"$IP:$b\", buffer: \"$IP:$((b + 1))\"}"
    echo "timers: {no_answer_timeout: 15s, wrap_up: 0, max_no_answer: 0, queue_timeout: 30s, probe: off}"
    echo "log_level: error"
    echo "records: {database: off}"
    echo "skills: [sales, support, billing]"
    echo "tls: {certificate: $LOG/tls.crt, key: $LOG/tls.key, listeners: {distributor: \"$IP:$((b + 7))\", buffer: \"$IP:$((b + 8))\"}}"
    echo "agents:"
    awk -v n="$agents" -v ip="$IP" -v b="$b" 'BEGIN { for (i = 1; i <= n; i++) printf "  - {id: a%d, skills: [sales, support, billing], contact: \"sip:a%d@%s:%d\"}\n", i, i, ip, b + 3 + (i % 3) }'
  } >"$dir/parley.yaml"
  setsid "$PARLEY" serve --config "$dir/parley.yaml" >"$dir/parley.log" 2>&1 &
  pid=$!; BG_PIDS+=("$pid")
  wait_listening $((b + 7)) tcp "$pid" 30 || { echo "parley did not start ($dir/parley.log)"; continue; }
  for i in 0 1 2; do
    (cd "$dir" && exec setsid timeout -k 5 180 sipp -sf "$ROOT/Tests/sipp-callpath/agent-answers.xml" -p $((b + 3 + i)) -i "$IP" \
      -nostdin -timeout 170s -buff_size 4194304 >"$dir/uas$i.out" 2>&1) &
    BG_PIDS+=("$!")
  done
  sleep 1
  target="$IP:$b"; [ "$turn" = tls ] && target="$IP:$((b + 7))"
  t0=$(ticks "$pid")
  line=$(timeout -k 5 150 python3 "$HERE/tls/call-load.py" --transport "$turn" --target "$target" --local-port $((b + 9)) \
    --calls "$CALLS" --rate "$RATE" --hold "$HOLD" --ca "$LOG/tls.crt" --timeout 120 2>"$dir/load.err")
  sleep 1
  t1=$(ticks "$pid")
  ok=$(echo "$line" | sed -n 's/.*ok=\([0-9]*\).*/\1/p'); failed=$(echo "$line" | sed -n 's/.*failed=\([0-9]*\).*/\1/p')
  secs=$(echo "$line" | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p')
  printf "%-5s %6s %6s %8s | %s\n" "$turn" "${ok:-?}" "${failed:-?}" "${secs:-?}" \
    "$(awk -v t=$(( t1 - t0 )) -v hz="$hz" -v n="${ok:-0}" 'BEGIN { if (n > 0) printf "%.3f", t / hz / n * 1000; else print "-" }')"
  stop_all
done
