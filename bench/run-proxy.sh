#!/usr/bin/env bash
# bench/run-proxy.sh: SIPp uac -> PROXY -> SIPp uas on loopback UDP, call rate raised step by step
# until a step fails (a failed call, an unexpected message, or retransmissions over 5% of the
# calls); Kamailio first, then `parley proxy`, in the same run and the same conditions. Prints,
# for each proxy, the highest rate with zero failures and the CPU seconds per 1,000 calls of
# each process (proxy, uac, uas), then Parley's best rate as a ratio of Kamailio's.
#
#   bash bench/run-proxy.sh [--parley PATH] [--only kamailio|parley] [--step-seconds S]
#                           [--max-rate R] [--max-minutes M] [--hold-ms MS] [--loops N]
#
# Defaults: Parley is .build/release/parley (build it with `swift build -c release`; this script
# does not build); each step makes S=5 seconds of calls; rates 200, 400, ... 3,000, then by 250 to
# 4,000, then by 500 to 6,000 and by 1,000 to 10,000, up to R=4,000 calls/s unless raised;
# the whole script stops by itself within M=10 minutes (half of it per proxy). Calls hold
# MS=1000 ms between ACK and BYE. Kamailio runs bench/kamailio/proxy.cfg with 2 UDP workers
# (the box has 2 cores, shared with both SIPp processes); Parley runs with its default event loops
# (one per core) unless --loops N says. Nothing is asserted: figures only.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCEN="$ROOT/Tests/sipp"
KAMCFG="$ROOT/bench/kamailio/proxy.cfg"
PARLEY="$ROOT/.build/release/parley"
ONLY=""
STEP_S=5
MAX_RATE=4000
MAX_MIN=10
HOLD_MS=1000
LOOPS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --parley) PARLEY=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --step-seconds) STEP_S=$2; shift 2 ;;
    --max-rate) MAX_RATE=$2; shift 2 ;;
    --max-minutes) MAX_MIN=$2; shift 2 ;;
    --hold-ms) HOLD_MS=$2; shift 2 ;;
    --loops) LOOPS=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for tool in sipp kamailio ss timeout setsid; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing tool: $tool (apt-get install -y sip-tester kamailio)" >&2; exit 2; }
done

RATES=""
for r in 200 400 600 800 1000 1200 1400 1600 1800 2000 2200 2400 2600 2800 3000 3250 3500 3750 4000 4500 5000 5500 6000 7000 8000 9000 10000; do
  [ "$r" -le "$MAX_RATE" ] && RATES="$RATES $r"
done
IP=127.0.0.1
HZ=$(getconf CLK_TCK)
LOG=$(mktemp -d /tmp/parley-bench-proxy.XXXXXX)
T0=$(date +%s)
BUDGET=$(( MAX_MIN * 60 / 2 ))   # seconds per proxy

BG_PIDS=()
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for i in $(seq 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
stop_all() { local p; for p in "${BG_PIDS[@]}"; do stop_pid "$p"; done; BG_PIDS=(); }
trap stop_all EXIT
trap 'exit 130' INT TERM

port_busy() { [ -n "$(ss -Hlnut "sport = :$1" 2>/dev/null)" ]; }
alloc_block() { # 10 free ports in 15060..15999, from a random block
  local start=$(( RANDOM % 94 )) i b p ok
  for i in $(seq 0 93); do
    b=$(( 15060 + ((start + i) % 94) * 10 )); ok=1
    for p in $(seq "$b" $((b + 9))); do port_busy "$p" && { ok=0; break; }; done
    [ $ok = 1 ] && { echo "$b"; return 0; }
  done
  return 1
}
wait_udp() { # PORT PID SECONDS
  local i
  for i in $(seq $(( $3 * 10 ))); do
    kill -0 "$2" 2>/dev/null || return 2
    [ -n "$(ss -Hlnu "sport = :$1" 2>/dev/null)" ] && return 0
    sleep 0.1
  done
  return 1
}
# CPU ticks (utime+stime) of every process in session SID (Kamailio's main and its children,
# or Parley's single process with all its threads).
session_ticks() {
  local sid=$1 f t=0 a
  for f in /proc/[0-9]*/stat; do
    read -r a 2>/dev/null <"$f" || continue
    a=${a##*) }               # drop "pid (comm) "
    set -- $a                 # $1=state ... field 6 of stat = $4 here (session)
    [ "$4" = "$sid" ] && t=$(( t + ${12} + ${13} ))
  done
  echo "$t"
}
# busy CPU ticks of the whole machine (all cores), from /proc/stat
machine_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
rcvbuf_errors() { awk '/^Udp:/ { if (h) { print $6; exit } h = 1 }' /proc/net/snmp; }
csv() {
  awk -F';' -v n="$2" 'NR==1 { for (i = 1; i <= NF; i++) if ($i == n) c = i } END { if (c) print $c; else print "?" }' "$1" 2>/dev/null || echo "?"
}
# run SIPp under a shell that reports its children's CPU ticks (cutime+cstime) into FILE.ticks
run_timed() { # FILE cmd...
  local out=$1; shift
  bash -c 'out=$1; shift; "$@"; rc=$?; read -r s </proc/$$/stat; s=${s##*) }; set -- $s; echo $(( ${14} + ${15} )) >"$out.ticks"; exit $rc' _ "$out" "$@"
}
secs() { awk -v t="$1" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }'; }
per_k() { awk -v t="$1" -v hz="$HZ" -v n="$2" 'BEGIN { if (n > 0) printf "%.3f", t / hz * 1000 / n; else print "-" }'; }

# bench_proxy NAME -> prints the step table; sets BEST_<NAME> and CPU_<NAME>
bench_proxy() {
  local name=$1 b ppid sid dir rate calls rc t_start started best=0 bestline="" stopped=""
  b=$(alloc_block) || { echo "$name: no free ports"; return 1; }
  dir="$LOG/$name"; mkdir -p "$dir"
  if [ "$name" = kamailio ]; then
    setsid kamailio -f "$KAMCFG" -DD -E -n 2 -m 512 -M 16 -u root -g root -P "$dir/kamailio.pid" \
      -l "udp:$IP:$b" -l "tcp:$IP:$b" -A "TO1=\"sip:$IP:$((b + 1))\"" >"$dir/proxy.log" 2>&1 &
  else
    local extra=()
    "$PARLEY" proxy --help 2>/dev/null | grep -q -- '--log-level' && extra=(--log-level error)
    "$PARLEY" proxy --help 2>/dev/null | grep -q -- '--trusted' && extra+=(--trusted "$IP")   # the load's one address
    [ -n "$LOOPS" ] && extra+=(--loops "$LOOPS")
    setsid "$PARLEY" proxy --listen "$IP:$b" --to "$IP:$((b + 1))" --transport udp "${extra[@]}" \
      >"$dir/proxy.log" 2>&1 &
  fi
  ppid=$!; BG_PIDS+=("$ppid")
  if ! wait_udp "$b" "$ppid" 10; then
    echo "$name: FAILED TO START (see $dir/proxy.log: $(tail -n 2 "$dir/proxy.log" | tr '\n' ' ' | cut -c1-160))"
    stop_pid "$ppid"
    return 1
  fi
  sid=$ppid   # started by setsid: its pid is the session id
  printf '%-8s %6s %6s %6s %6s %6s %7s %7s | %-28s | %s\n' "$name" rate calls ok failed unexp retrans rcvbuf "CPU s: proxy uac uas other" "CPU s per 1,000 calls: proxy uac uas"
  t_start=$(date +%s)
  OTHER_TICKS=0
  for rate in $RATES; do
    if [ $(( $(date +%s) - t_start + STEP_S + 15 )) -gt "$BUDGET" ]; then stopped="time budget reached before $rate calls/s"; break; fi
    calls=$(( rate * STEP_S ))
    local sd="$dir/r$rate" p0 p1 e0 e1 m0 m1 ok failed unexp retrans uacrc
    mkdir -p "$sd"
    local common=(-nostdin -i "$IP" -buff_size 4194304 -trace_stat -fd 1 -trace_err)
    (cd "$sd" && exec setsid timeout -k 5 $((STEP_S + 60)) bash -c 'out=$1; shift; "$@"; rc=$?; read -r s </proc/$$/stat; s=${s##*) }; set -- $s; echo $(( ${14} + ${15} )) >"$out.ticks"; exit $rc' _ "$sd/uas" \
      sipp -sf "$SCEN/uas-answer-200.xml" -p $((b + 1)) -m "$calls" -timeout $((STEP_S + 45))s \
      -key uas callee "${common[@]}" -stf "$sd/uas.csv" -error_file "$sd/uas.errors.log" >"$sd/uas.out" 2>&1) &
    local upid=$!; BG_PIDS+=("$upid")
    wait_udp $((b + 1)) "$upid" 5
    p0=$(session_ticks "$sid"); e0=$(rcvbuf_errors); m0=$(machine_busy)
    (cd "$sd" && run_timed "$sd/uac" timeout -k 5 $((STEP_S + 60)) sipp "$IP:$b" -sf "$SCEN/uac-expect-200.xml" \
      -p $((b + 9)) -m "$calls" -r "$rate" -rp 1000 -l 15000 -d "$HOLD_MS" -timeout $((STEP_S + 40))s \
      -recv_timeout 20000 -key uas caller "${common[@]}" -stf "$sd/uac.csv" -error_file "$sd/uac.errors.log" \
      >"$sd/uac.out" 2>&1)
    uacrc=$?
    for i in $(seq 100); do kill -0 "$upid" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$upid"
    p1=$(session_ticks "$sid"); e1=$(rcvbuf_errors); m1=$(machine_busy)
    ok=$(csv "$sd/uac.csv" 'SuccessfulCall(C)'); failed=$(csv "$sd/uac.csv" 'FailedCall(C)')
    unexp=$(( $(csv "$sd/uac.csv" 'FailedUnexpectedMessage(C)') + $(csv "$sd/uas.csv" 'FailedUnexpectedMessage(C)') ))
    local uasfail; uasfail=$(csv "$sd/uas.csv" 'FailedCall(C)')
    retrans=$(( $(csv "$sd/uac.csv" 'Retransmissions(C)') + $(csv "$sd/uas.csv" 'Retransmissions(C)') ))
    local tu ts tp=$(( p1 - p0 ))
    tu=$(cat "$sd/uac.ticks" 2>/dev/null || echo 0); ts=$(cat "$sd/uas.ticks" 2>/dev/null || echo 0)
    # other: CPU the rest of the machine used meanwhile (approximate: the uac's figure covers
    # its whole run, the machine's only the window between the proxy readings)
    local to=$(( m1 - m0 - tp - tu - ts )); [ "$to" -lt 0 ] && to=0
    OTHER_TICKS=$(( OTHER_TICKS + to ))
    printf '%-8s %6s %6s %6s %6s %6s %7s %7s | %6s %6s %6s %6s | %s %s %s\n' "" "$rate" "$calls" "$ok" "$((failed + uasfail))" "$unexp" "$retrans" "$((e1 - e0))" \
      "$(secs "$tp")" "$(secs "$tu")" "$(secs "$ts")" "$(secs "$to")" "$(per_k "$tp" "$calls")" "$(per_k "$tu" "$calls")" "$(per_k "$ts" "$calls")"
    # a step passes with every call successful on both sides, no unexpected message, and
    # retransmissions not piling up (at most 5% of the calls: a proxy that keeps up needs none
    # on loopback)
    if [ "$ok" = "$calls" ] && [ "$failed" = 0 ] && [ "$uasfail" = 0 ] && [ "$unexp" = 0 ] \
       && [ $(( retrans * 20 )) -le "$calls" ]; then
      best=$rate
      bestline="proxy $(per_k "$tp" "$calls") s, uac $(per_k "$tu" "$calls") s, uas $(per_k "$ts" "$calls") s"
    else
      if [ "$ok" = "$calls" ] && [ "$failed" = 0 ] && [ "$uasfail" = 0 ] && [ "$unexp" = 0 ]; then
        stopped="first failing step: $rate calls/s, no failed call but $retrans retransmissions (over 5% of calls)"
      else
        stopped="first failing step: $rate calls/s"
      fi
      break
    fi
    if ! kill -0 "$ppid" 2>/dev/null; then stopped="$name exited during the $rate calls/s step"; break; fi
  done
  [ -z "$stopped" ] && stopped="reached the rate cap ($MAX_RATE calls/s)"
  stop_pid "$ppid"
  eval "BEST_$name=$best"
  echo "$name: highest rate with zero failures: $best calls/s ($stopped)"
  [ -n "$bestline" ] && echo "$name: CPU per 1,000 calls at $best calls/s: $bestline"
  # other processes on the box during this proxy's steps, as a share of the 2 cores' time
  local wall=$(( $(date +%s) - t_start )) share
  share=$(awk -v t="$OTHER_TICKS" -v hz="$HZ" -v w="$wall" -v c="$(nproc)" 'BEGIN { if (w > 0) printf "%d", 100 * t / hz / (w * c); else print 0 }')
  eval "OTHER_$name=$share"
  if [ "$share" -ge 5 ]; then
    echo "$name: WARNING: other processes used ${share}% of the machine during these steps: not comparable"
  fi
  echo
}

echo "# bench/run-proxy.sh: SIPp uac -> proxy -> SIPp uas, loopback UDP, $(nproc) cores shared by the proxy and both SIPp"
echo "# steps of $STEP_S s of calls, call hold $HOLD_MS ms, rate cap $MAX_RATE calls/s, time cap $MAX_MIN min; logs: $LOG"
echo "# Kamailio $(kamailio -v 2>/dev/null | sed -n 's/^version: kamailio \([^ ]*\).*/\1/p'): bench/kamailio/proxy.cfg (tm + rr, stateful), 2 UDP worker processes (-n 2), maxbuffer 4 MiB"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the figures are only comparable on an otherwise idle machine: see the 'other' column)"
echo "# net.core.rmem_max = $(cat /proc/sys/net/core/rmem_max 2>/dev/null); SIPp -buff_size 4 MiB"
echo

BEST_kamailio=0; BEST_parley=0; PARLEY_RAN=0
if [ "$ONLY" != parley ]; then bench_proxy kamailio; fi
if [ "$ONLY" != kamailio ]; then
  if [ ! -x "$PARLEY" ]; then
    echo "parley: NOT RUN: no binary at $PARLEY (build it with: swift build -c release)"
  elif ! "$PARLEY" proxy --help >/dev/null 2>&1; then
    echo "parley: NOT RUN: '$PARLEY proxy --help' fails (no proxy command in this build?)"
  else
    echo "# parley: $PARLEY proxy --listen $IP:PORT --to $IP:PORT --transport udp${LOOPS:+ --loops $LOOPS}"
    bench_proxy parley && PARLEY_RAN=1
  fi
fi

if [ "$PARLEY_RAN" = 1 ] && [ "${BEST_kamailio:-0}" -gt 0 ]; then
  echo "parley / kamailio (highest rate with zero failures): $BEST_parley / $BEST_kamailio = $(awk -v p="$BEST_parley" -v k="$BEST_kamailio" 'BEGIN { printf "%.2f", p / k }')"
  if [ "${OTHER_kamailio:-0}" -ge 5 ] || [ "${OTHER_parley:-0}" -ge 5 ]; then
    echo "WARNING: the machine was not idle (other processes: ${OTHER_kamailio:-0}% during Kamailio, ${OTHER_parley:-0}% during Parley): the ratio is not reliable; run again on an idle machine"
  fi
fi
echo "total time: $(( $(date +%s) - T0 )) s"
