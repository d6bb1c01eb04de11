#!/usr/bin/env bash
# bench/run-callpath.sh: Parley's whole call path against Kamailio with Lua routing, on loopback.
#
#   Parley:   SIPp caller -> distributor -> buffer server -> SIPp agents (UAS_COUNT processes)
#   Kamailio: SIPp caller -> kamailio (app_lua/KEMI, Record-Route, round robin) -> the same agents
#   Kamailio, two hops (kamailio2): SIPp caller -> kamailio (no Record-Route: the INVITE
#             transaction only, as Parley's distributor) -> kamailio (Record-Route: the whole
#             dialog, as the buffer server) -> the same agents
#
# For each, the call rate is raised step by step until a step fails (a failed call on either
# side, an unexpected message counting as one, or the caller placing its calls at under 95% of
# the step's rate because the server fell behind); a failing step is run once more. Prints per step the
# calls, failures, UDP receive-buffer errors and CPU seconds of each process (the server, the
# SIPp caller, the SIPp agents together), then the highest rate with zero failures and CPU
# seconds per 1,000 calls, and Parley's rate as a ratio of Kamailio's (the target) and of the two
# Kamailio hops' (the same topology as Parley's, for reference). Then Parley's memory per
# active call: its resident memory with MEM_CALLS calls held open, minus its idle resident
# memory, divided by MEM_CALLS.
#
#   bash bench/run-callpath.sh [--parley PATH] [--rules DIR] [--only kamailio|kamailio2|parley|memory]
#        [--step-seconds S] [--max-rate R] [--hold-ms MS] [--uas N] [--max-minutes M]
#        [--memory-calls N] [--memory-rate R] [--memory-full-calls N] [--memory-mode "buffer full"]
#        [--no-memory] [--records on|off] [--rates "R1 R2 ..."] [--agents N] [--in-process on|off]
#        [--admin N]
#
# Defaults: Parley is .build/release/parley (make release; this script does not
# build), rules/ of this checkout; 5 s of calls per step at 100, 200, ... up to R=5000 calls/s (a server that reaches R is reported as capped, its true rate higher);
# calls hold 1000 ms between ACK and BYE; 3 SIPp agent processes; for the memory figures 10,000
# calls held open through the buffer server alone (set up at 200 calls/s) and through the whole
# path (10,250 agents, set up at 100 calls/s); the whole run stops by itself within M=30 minutes.
# --rates replaces the list of steps; --agents configures Parley with N agents at every step
# instead of the count below (what select_agent's candidates cost: one rate, several N).
# --admin N turns the admin API on (docs/admin.md) with N event-stream clients attached (a
# wallboard is one) and /metrics scraped every second, as a Prometheus would; after each step it
# prints how many call.queued events each client got of the calls placed (every one, when none
# was dropped). The server's CPU includes what the admin surface costs.
# --in-process off sends agent handoffs through the buffer server's listener (`uri` over UDP,
# signed by the distributor and checked by the buffer server, as between two hosts).
# Installs what is missing (sip-tester, kamailio, kamailio-lua-modules) with apt-get when run as root.
#
# Parley runs `parley serve` with a configuration written per step (enough agents that agent
# availability never caps the rate: rate x (hold + 1 s) x 1.25 + 10; wrap_up 0; probes off, since
# SIPp's agents do not answer in-dialog OPTIONS; call records on, as in production, unless
# --records off). Agents' contacts are spread over the SIPp
# agent processes' ports. Kamailio runs bench/kamailio/callpath.cfg with 2 UDP workers (-n 2);
# for the two hops, two instances of it with 2 workers each, the first with
# CALLPATH_RECORD_ROUTE=no and the second's port as its only agent.
# Nothing is asserted: figures only. Logs stay in /tmp/parley-bench-callpath.XXXXXX.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCEN="$ROOT/bench/callpath"
KAMCFG="$ROOT/bench/kamailio/callpath.cfg"
KAMLUA="$ROOT/bench/kamailio/callpath.lua"
PARLEY="$ROOT/.build/release/parley"
RULES="$ROOT/rules"
ONLY=""
STEP_S=5
MAX_RATE=5000
HOLD_MS=1000
UAS_COUNT=3
MAX_MIN=30
MEM_CALLS=10000
MEM_RATE=100
MEM_FULL_CALLS=10000
MEM_BUFFER_RATE=200
MEMORY=1
RECORDS=on
IN_PROCESS=on
MEMORY_MODES="buffer full"
RATE_LIST=""
FIXED_AGENTS=""
ADMIN=0
ADMIN_TOKEN=bench-admin-token-0123456789
while [ $# -gt 0 ]; do
  case "$1" in
    --parley) PARLEY=$2; shift 2 ;;
    --rules) RULES=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --step-seconds) STEP_S=$2; shift 2 ;;
    --max-rate) MAX_RATE=$2; shift 2 ;;
    --hold-ms) HOLD_MS=$2; shift 2 ;;
    --uas) UAS_COUNT=$2; shift 2 ;;
    --max-minutes) MAX_MIN=$2; shift 2 ;;
    --memory-calls) MEM_CALLS=$2; shift 2 ;;
    --memory-rate) MEM_RATE=$2; shift 2 ;;
    --memory-full-calls) MEM_FULL_CALLS=$2; shift 2 ;;
    --no-memory) MEMORY=0; shift ;;
    --memory-mode) MEMORY_MODES=$2; shift 2 ;;
    --records) RECORDS=$2; shift 2 ;;
    --in-process) IN_PROCESS=$2; shift 2 ;;
    --rates) RATE_LIST=$2; shift 2 ;;
    --agents) FIXED_AGENTS=$2; shift 2 ;;
    --admin) ADMIN=$2; shift 2 ;;
    -h|--help) sed -n '2,41p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$IN_PROCESS" in on|off) ;; *) echo "--in-process on or off" >&2; exit 2 ;; esac
case "$ADMIN" in *[!0-9]*|"") echo "--admin: a number of event-stream clients, 0 or more" >&2; exit 2 ;; esac
case "$ONLY" in ""|kamailio|kamailio2|parley|memory) ;; *) echo "--only kamailio, kamailio2, parley or memory" >&2; exit 2 ;; esac
case "$FIXED_AGENTS" in *[!0-9]*|0) echo "--agents: a number of agents, 1 or more (got '$FIXED_AGENTS')" >&2; exit 2 ;; esac
for r in $RATE_LIST; do
  case "$r" in *[!0-9]*|0) echo "--rates: calls per second, whole numbers over 0 (got '$r')" >&2; exit 2 ;; esac
done
[ "$UAS_COUNT" -ge 1 ] && [ "$UAS_COUNT" -le 6 ] || { echo "--uas must be 1 to 6" >&2; exit 2; }

# ---------------------------------------------------------------- what the bench needs
missing=""
for p in sip-tester kamailio kamailio-lua-modules iproute2; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "missing packages:$missing (run as root to install them)" >&2; exit 2; fi
  echo "installing:$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || { echo "apt-get install failed" >&2; exit 2; }
fi
for tool in sipp kamailio ss timeout setsid awk; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing tool: $tool" >&2; exit 2; }
done

IP=127.0.0.1
HZ=$(getconf CLK_TCK)
HOLD_S=$(awk -v h="$HOLD_MS" 'BEGIN { printf "%d", (h + 999) / 1000 }')
LOGROOT=$(mktemp -d /tmp/parley-bench-callpath.XXXXXX)
KEEP=1
FAILED=0
PORT_BASE=16060
BG_PIDS=()
# shellcheck source=../Tests/lib/sipp-common.sh
. "$ROOT/Tests/lib/sipp-common.sh"
trap on_exit EXIT
trap 'exit 130' INT TERM
T0=$(date +%s)
DEADLINE=$(( T0 + MAX_MIN * 60 ))

RATES=""
for r in ${RATE_LIST:-100 200 300 400 500 600 800 1000 1200 1400 1600 1800 2000 2250 2500 2750 3000 3500 4000 5000}; do
  [ "$r" -le "$MAX_RATE" ] && RATES="$RATES $r"
done

# ---------------------------------------------------------------- measuring
# CPU ticks (utime+stime) of every process of the sessions SID... (Kamailio and its children, or
# Parley).
session_ticks() {
  local sids=" $* " f t=0 a
  for f in /proc/[0-9]*/stat; do
    read -r a 2>/dev/null <"$f" || continue
    a=${a##*) }
    set -- $a
    case "$sids" in *" $4 "*) t=$(( t + ${12} + ${13} )) ;; esac
  done
  echo "$t"
}
machine_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
rcvbuf_errors() { awk '/^Udp:/ { if (h) { print $6; exit } h = 1 }' /proc/net/snmp; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
secs() { awk -v t="$1" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }'; }
per_k() { awk -v t="$1" -v hz="$HZ" -v n="$2" 'BEGIN { if (n > 0) printf "%.3f", t / hz * 1000 / n; else print "-" }'; }
num() { case "$1" in ''|*[!0-9]*) echo 0 ;; *) echo "$1" ;; esac; }
# Runs a command and writes the CPU ticks it and its children used to FILE.ticks.
run_timed() { # FILE cmd...
  local out=$1; shift
  bash -c 'out=$1; shift; "$@"; rc=$?; read -r s </proc/$$/stat; s=${s##*) }; set -- $s; echo $(( ${14} + ${15} )) >"$out.ticks"; exit $rc' _ "$out" "$@"
}
# A value from parley serve's --stats-file: stat FILE LINE_PREFIX KEY
stat() { awk -v p="$2" -v k="$3" '$1 == p { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$1" 2>/dev/null | head -n 1; }

# ---------------------------------------------------------------- Parley's configuration
# write_config FILE BLOCK AGENTS: distributor b, buffer b+1; agent i at port b+3+(i mod UAS_COUNT)
write_config() {
  local file=$1 b=$2 n=$3
  {
    echo "# bench/run-callpath.sh: $n agents over $UAS_COUNT SIPp agent processes"
    echo "rules: $RULES"
    echo "roles: [distributor, buffer]"
    # --in-process off: agent handoffs cross the buffer listener (signed, checked) as between two hosts
    if [ "$IN_PROCESS" = off ]; then
      echo "listeners: {distributor: \"$IP:$b\", buffer: \"$IP:$((b + 1))\", in_process: false}"
    else
      echo "listeners: {distributor: \"$IP:$b\", buffer: \"$IP:$((b + 1))\"}"
    fi
    echo "timers: {no_answer_timeout: 15s, wrap_up: 0, max_no_answer: 0, queue_timeout: 30s, heartbeat: 5s, probe: off, stale_after: 15s}"
    echo "log_level: error"
    if [ "$RECORDS" = off ]; then echo "records: {database: off}"; else echo "records: {database: $(dirname "$file")/records.sqlite}"; fi
    echo "skills: [sales, support, billing]"
    [ "$ADMIN" -gt 0 ] && echo "admin: {listen: \"$IP:$((b + 8))\", token: $ADMIN_TOKEN}"
    echo "agents:"
    awk -v n="$n" -v k="$UAS_COUNT" -v ip="$IP" -v b="$b" 'BEGIN {
      for (i = 1; i <= n; i++) printf "  - {id: a%d, skills: [sales, support, billing], contact: \"sip:a%d@%s:%d\"}\n", i, i, ip, b + 3 + (i % k) }'
  } >"$file"
}
agents_for() {
  if [ -n "$FIXED_AGENTS" ]; then echo "$FIXED_AGENTS"; return; fi
  awk -v r="$1" -v h="$HOLD_MS" 'BEGIN { printf "%d", r * (h / 1000 + 1) * 1.25 + 10 }'
}

# start_parley DIR BLOCK AGENTS [buffer] -> PARLEY_PID (session leader); with `buffer`, the
# buffer server alone (--role buffer)
start_parley() {
  local dir=$1 b=$2 n=$3 role=() port=$2
  [ "${4:-}" = buffer ] && { role=(--role buffer); port=$(( b + 1 )); }
  write_config "$dir/parley.yaml" "$b" "$n"
  # the buffer server alone takes the SIPp caller's handoffs unsigned (docs/security.md); a
  # role alone needs a handoff secret to start, though nothing here signs with it
  [ "${4:-}" = buffer ] && echo "security: {unsigned_handoffs_from: [$IP], handoff_secret: bench-secret-$$-0123456789}" >>"$dir/parley.yaml"
  setsid "$PARLEY" serve --config "$dir/parley.yaml" "${role[@]}" --stats-file "$dir/stats.txt" --log-level error >"$dir/parley.log" 2>&1 &
  PARLEY_PID=$!; BG_PIDS+=("$PARLEY_PID")
  wait_listening "$port" udp "$PARLEY_PID" 60
}
# start_admin_clients DIR BLOCK: ADMIN event-stream clients and a /metrics scrape every second
# (bounded in time), each its own session.
ADMIN_PIDS=()
start_admin_clients() {
  local dir=$1 b=$2 i limit=$(( STEP_S + HOLD_S + 60 ))
  ADMIN_PIDS=()
  wait_listening $((b + 8)) tcp "$PARLEY_PID" 20 || return 0
  for i in $(seq "$ADMIN"); do
    setsid timeout -k 2 "$limit" curl -s -N -H "Authorization: Bearer $ADMIN_TOKEN" "http://$IP:$((b + 8))/v1/events" >"$dir/events-$i.txt" 2>/dev/null &
    ADMIN_PIDS+=($!); BG_PIDS+=($!)
  done
  setsid timeout -k 2 "$limit" bash -c "while :; do curl -s -m 5 -H 'Authorization: Bearer $ADMIN_TOKEN' http://$IP:$((b + 8))/metrics >\"$dir/metrics.txt\" 2>/dev/null; sleep 1; done" &
  ADMIN_PIDS+=($!); BG_PIDS+=($!)
  sleep 0.5
}
# stop_admin_clients DIR CALLS: stops them and prints what each stream got.
stop_admin_clients() {
  local dir=$1 calls=$2 p i got line=""
  sleep 1
  for p in "${ADMIN_PIDS[@]}"; do stop_pid "$p"; done
  for i in $(seq "$ADMIN"); do
    got=$(grep -c '^event: call.queued' "$dir/events-$i.txt" 2>/dev/null)
    line="$line ${got:-0}"
  done
  printf '%-9s admin: %s event-stream clients got call.queued for%s of %s calls; /metrics scraped every 1 s\n' "" "$ADMIN" "$line" "$calls"
}
# start_kamailio DIR BLOCK HOPS -> KAM_PIDS (session leaders, the one the caller sends to first).
# HOPS 2: a second instance at BLOCK+1 that Record-Routes and relays to the agents, and the first
# relaying to it without Record-Route, so it sees the INVITE transaction only.
start_kamailio() {
  local dir=$1 b=$2 hops=$3 ports="" rr=yes i
  for i in $(seq 0 $((UAS_COUNT - 1))); do ports="$ports $((b + 3 + i))"; done
  KAM_PIDS=""
  if [ "$hops" = 2 ]; then
    launch_kamailio "$dir/kamailio-2" $((b + 1)) "$ports" yes || return 1
    ports=" $((b + 1))"; rr=no
  fi
  launch_kamailio "$dir/kamailio" "$b" "$ports" "$rr"
}
# launch_kamailio FILE_PREFIX PORT AGENT_PORTS RECORD_ROUTE(yes|no): one instance, put first in
# KAM_PIDS; waits until it listens
launch_kamailio() {
  local prefix=$1 port=$2
  CALLPATH_AGENTS="$3" CALLPATH_RECORD_ROUTE="$4" setsid kamailio -f "$KAMCFG" -DD -E -n 2 -m 512 -M 16 -u root -g root \
    -P "$prefix.pid" -l "udp:$IP:$port" -A "LUA_SCRIPT=\"$KAMLUA\"" >"$prefix.log" 2>&1 &
  KAM_PIDS="$! $KAM_PIDS"; BG_PIDS+=("$!")
  wait_listening "$port" udp "$!" 15
}
# Whether every Kamailio instance of the run is still there.
kamailio_alive() {
  local p
  for p in $KAM_PIDS; do kill -0 "$p" 2>/dev/null || return 1; done
}

COMMON=(-nostdin -i "$IP" -buff_size 4194304 -trace_stat -fd 1 -trace_err)
# start_agents DIR BLOCK SECONDS -> AGENT_PIDS
start_agents() {
  local dir=$1 b=$2 secs=$3 i port
  AGENT_PIDS=()
  for i in $(seq 0 $((UAS_COUNT - 1))); do
    port=$((b + 3 + i))
    (cd "$dir" && exec setsid timeout -k 5 $((secs + 10)) sipp -sf "$SCEN/agent-answers.xml" -p "$port" -timeout "${secs}s" "${COMMON[@]}" \
      -stf "$dir/uas$i.csv" -error_file "$dir/uas$i.errors.log" >"$dir/uas$i.out" 2>&1) &
    AGENT_PIDS+=("$!"); BG_PIDS+=("$!")
  done
  for i in $(seq 0 $((UAS_COUNT - 1))); do wait_listening $((b + 3 + i)) udp "${AGENT_PIDS[$i]}" 5 || true; done
}
# stop_agents DIR -> AGENT_TICKS (CPU of the agent processes, read before they stop), AGENT_FAILED,
# AGENT_UNEXP, AGENT_RETRANS from their statistics files
stop_agents() {
  local dir=$1 i p
  AGENT_TICKS=0; AGENT_FAILED=0; AGENT_UNEXP=0; AGENT_RETRANS=0
  for p in "${AGENT_PIDS[@]}"; do AGENT_TICKS=$(( AGENT_TICKS + $(session_ticks "$p") )); done
  for p in "${AGENT_PIDS[@]}"; do stop_pid "$p"; done
  for i in $(seq 0 $((UAS_COUNT - 1))); do
    AGENT_FAILED=$(( AGENT_FAILED + $(num "$(csv "$dir/uas$i.csv" 'FailedCall(C)')") ))
    AGENT_UNEXP=$(( AGENT_UNEXP + $(num "$(csv "$dir/uas$i.csv" 'FailedUnexpectedMessage(C)')") ))
    AGENT_RETRANS=$(( AGENT_RETRANS + $(num "$(csv "$dir/uas$i.csv" 'Retransmissions(C)')") ))
  done
}

# ---------------------------------------------------------------- the rate steps
# run_step NAME BLOCK RATE DIR: one step of RATE calls/s for STEP_S seconds; prints its line and
# sets STEP_PASSED (0/1), STEP_CPU (the per-1,000-calls figures) and STEP_WHY
run_step() {
  local name=$1 b=$2 rate=$3 sd=$4 calls=$(( $3 * STEP_S )) n="-" sid p0 p1 e0 e1 m0 m1 ok failed unexp retrans tu tp to i
  mkdir -p "$sd"
  if [ "$name" = parley ]; then
    n=$(agents_for "$rate")
    if ! start_parley "$sd" "$b" "$n"; then
      STEP_PASSED=0; STEP_WHY="parley did not start ($(tail -n 2 "$sd/parley.log" | tr '\n' ' ' | cut -c1-200))"; return
    fi
    sid=$PARLEY_PID
    sleep 0.5
    [ "$ADMIN" -gt 0 ] && start_admin_clients "$sd" "$b"
  else
    sid=$KAM_PIDS
  fi
  start_agents "$sd" "$b" $(( STEP_S + HOLD_S + 40 ))
  local scen="$SCEN/caller-answered-through-proxy.xml"
  [ "$name" = parley ] && scen="$SCEN/caller-answered-by-buffer-contact.xml"
  p0=$(session_ticks $sid); e0=$(rcvbuf_errors); m0=$(machine_busy)
  local a0=0 p; for p in "${AGENT_PIDS[@]}"; do a0=$(( a0 + $(session_ticks "$p") )); done
  local w0 w1 achieved; w0=$(date +%s.%N)
  (cd "$sd" && run_timed "$sd/uac" timeout -k 5 $(( STEP_S + HOLD_S + 60 )) sipp "$IP:$b" -sf "$scen" \
    -p $((b + 9)) -m "$calls" -r "$rate" -rp 1000 -l $(( rate * (HOLD_S + 5) + 100 )) -d "$HOLD_MS" \
    -timeout $(( STEP_S + HOLD_S + 40 ))s -recv_timeout 20000 "${COMMON[@]}" -stf "$sd/uac.csv" \
    -error_file "$sd/uac.errors.log" >"$sd/uac.out" 2>&1)
  w1=$(date +%s.%N)
  # the rate the caller achieved: its calls over the time it took less the hold and half a
  # second (a server that keeps up lets SIPp place them in STEP_S seconds; one that falls
  # behind makes SIPp wait, for answers and under its limit of calls in progress)
  achieved=$(awk -v n="$calls" -v a="$w0" -v b="$w1" -v h="$HOLD_S" 'BEGIN { d = b - a - h - 0.5; if (d < 0.001) d = 0.001; printf "%d", n / d }')
  sleep 2.5   # the agents' timewait after the last BYE
  p1=$(session_ticks $sid); e1=$(rcvbuf_errors); m1=$(machine_busy)
  stop_agents "$sd"
  AGENT_TICKS=$(( AGENT_TICKS - a0 ))
  if [ "$name" = parley ]; then
    [ "$ADMIN" -gt 0 ] && stop_admin_clients "$sd" "$calls"
    stop_pid "$PARLEY_PID"
  fi
  ok=$(num "$(csv "$sd/uac.csv" 'SuccessfulCall(C)')"); failed=$(num "$(csv "$sd/uac.csv" 'FailedCall(C)')")
  unexp=$(( $(num "$(csv "$sd/uac.csv" 'FailedUnexpectedMessage(C)')") + AGENT_UNEXP ))
  retrans=$(( $(num "$(csv "$sd/uac.csv" 'Retransmissions(C)')") + AGENT_RETRANS ))
  tu=$(num "$(cat "$sd/uac.ticks" 2>/dev/null)"); tp=$(( p1 - p0 ))
  # other: what the rest of the machine used in the same window (other builds and tests on this
  # shared box): it makes a step's figures noisy when it is not near 0
  to=$(( m1 - m0 - tp - tu - AGENT_TICKS )); [ "$to" -lt 0 ] && to=0
  printf '%-9s %6s %8s %6s %6s %6s %6s %7s %7s %6s | %6s %6s %6s %6s | %s %s %s\n' "" "$rate" "$achieved" "$calls" "$ok" "$((failed + AGENT_FAILED))" "$unexp" \
    "$retrans" "$((e1 - e0))" "$n" "$(secs "$tp")" "$(secs "$tu")" "$(secs "$AGENT_TICKS")" "$(secs "$to")" \
    "$(per_k "$tp" "$calls")" "$(per_k "$tu" "$calls")" "$(per_k "$AGENT_TICKS" "$calls")"
  STEP_CPU="server $(per_k "$tp" "$calls") s, sipp caller $(per_k "$tu" "$calls") s, sipp agents $(per_k "$AGENT_TICKS" "$calls") s"
  # passed: every call successful on both sides (an unexpected message fails its call), placed
  # at 95% of the rate or more.
  # Retransmissions are not failures; the column shows them (a server that keeps up needs none
  # on loopback: many mean replies later than T1, 500 ms)
  if [ "$ok" = "$calls" ] && [ "$failed" = 0 ] && [ "$AGENT_FAILED" = 0 ] && [ "$unexp" = 0 ] \
     && [ $(( achieved * 100 )) -ge $(( rate * 95 )) ]; then
    STEP_PASSED=1; STEP_WHY=""
    [ $(( retrans * 20 )) -gt "$calls" ] && [ -z "$LATE_RATE" ] && LATE_RATE=$rate
  else
    STEP_PASSED=0
    if [ "$ok" != "$calls" ] || [ "$failed" != 0 ] || [ "$AGENT_FAILED" != 0 ] || [ "$unexp" != 0 ]; then
      STEP_WHY="$((calls - ok)) of $calls calls not successful"
    else
      STEP_WHY="every call successful, but placed at $achieved calls/s, under 95% of $rate"
    fi
  fi
}

# bench NAME (kamailio|kamailio2|parley): the steps, each failing step run once more (this box
# is shared: one call lost to a burst of someone else's work should not end the ramp); sets
# BEST_<NAME>
bench() {
  local name=$1 b dir rate best=0 bestline="" stopped="" budget_end try kam=0 p
  LATE_RATE=""
  # Kamailio's steps get the first 25% of the time, the two Kamailio hops' until 45%, Parley's
  # until 75%, the memory run the rest
  case "$name" in
    kamailio) kam=1; budget_end=$(( T0 + MAX_MIN * 60 * 25 / 100 )) ;;
    kamailio2) kam=2; budget_end=$(( T0 + MAX_MIN * 60 * 45 / 100 )) ;;
    *) budget_end=$(( T0 + MAX_MIN * 60 * 75 / 100 )) ;;
  esac
  [ -n "$ONLY" ] && budget_end=$DEADLINE
  b=$(alloc_block) || { echo "$name: no free ports"; return 1; }
  dir="$LOGROOT/$name"; mkdir -p "$dir"
  if [ "$kam" != 0 ] && ! start_kamailio "$dir" "$b" "$kam"; then
    echo "$name: FAILED TO START ($(tail -q -n 3 "$dir"/kamailio*.log | tr '\n' ' ' | cut -c1-200))"; return 1
  fi
  printf '%-9s %6s %8s %6s %6s %6s %6s %7s %7s %6s | %-27s | %s\n' "$name" rate achieved calls ok failed unexp retrans rcvbuf agents \
    "CPU s: server uac uas other" "CPU s per 1,000 calls: server uac uas"
  for rate in $RATES; do
    for try in 1 2; do
      if [ $(( $(date +%s) + STEP_S + HOLD_S + 40 )) -gt "$budget_end" ]; then stopped="time budget reached before $rate calls/s"; break 2; fi
      run_step "$name" "$b" "$rate" "$dir/r$rate-$try"
      [ "$STEP_PASSED" = 1 ] && break
      if [ "$kam" != 0 ] && ! kamailio_alive; then break; fi
    done
    if [ "$STEP_PASSED" = 1 ]; then
      best=$rate; bestline=$STEP_CPU
    else
      stopped="first failing step: $rate calls/s, twice ($STEP_WHY)"
      break
    fi
    if [ "$kam" != 0 ] && ! kamailio_alive; then stopped="kamailio exited during the $rate calls/s step"; break; fi
  done
  # every step passed: the true rate is higher than the last step's (the rate cap, or the last of --rates)
  if [ -z "$stopped" ]; then
    if [ -n "$RATE_LIST" ]; then stopped="every step passed, the last at $best calls/s (--rates)"; else stopped="reached the rate cap ($MAX_RATE calls/s)"; fi
    eval "CAPPED_$name=1"
  fi
  if [ "$kam" != 0 ]; then for p in $KAM_PIDS; do stop_pid "$p"; done; fi
  eval "BEST_$name=$best"
  echo "$name: highest rate with zero failures: $best calls/s ($stopped)"
  [ -n "$bestline" ] && echo "$name: CPU per 1,000 calls at $best calls/s: $bestline"
  [ -n "$LATE_RATE" ] && echo "$name: from $LATE_RATE calls/s on, retransmissions over 5% of the calls (answers later than T1, 500 ms), yet no failed call"
  echo
}

# ---------------------------------------------------------------- memory per active call
# memory MODE CALLS RATE: resident memory of the parley process with CALLS calls held open, minus
# its idle resident memory, per call. MODE full: callers -> distributor -> buffer server (one
# process; CALLS agents, as each agent holds one call). MODE buffer: `parley serve --role
# buffer` alone, the SIPp caller handing each call off itself (INVITE sip:buffer@...;agent=aN,
# the `uri` encoding), so the calls the buffer server holds cost what they cost without the
# distributor's per-call work, which grows with the number of agents.
memory() {
  local mode=$1 mcalls=$2 mrate=$3 b dir n setup hold idle peak steady calls=0 i up=0 sid scen target
  b=$(alloc_block) || { echo "memory: no free ports"; return 1; }
  dir="$LOGROOT/memory-$mode"; mkdir -p "$dir/warm" "$dir/hold"
  n=$(( mcalls + mcalls / 50 + 50 ))
  setup=$(( (mcalls + mrate - 1) / mrate ))
  # held long enough for every call to be up, then 40 s more (the INVITE transactions of the
  # last calls end 64*T1 = 32 s after their answer), then the measurement
  hold=$(( setup + 75 ))
  if [ $(( $(date +%s) + setup + 150 )) -gt "$DEADLINE" ]; then
    echo "memory ($mode): NOT RUN: not enough of the time budget left ($(( DEADLINE - $(date +%s) )) s for ~$(( setup + 150 )) s)"; return 1
  fi
  if [ "$mode" = buffer ]; then
    scen="$SCEN/caller-handoff-to-buffer.xml"; target="$IP:$((b + 1))"
    start_parley "$dir" "$b" "$n" buffer || { echo "memory ($mode): parley did not start ($(tail -n 2 "$dir/parley.log" | tr '\n' ' '))"; return 1; }
  else
    scen="$SCEN/caller-answered-by-buffer-contact.xml"; target="$IP:$b"
    start_parley "$dir" "$b" "$n" || { echo "memory ($mode): parley did not start ($(tail -n 2 "$dir/parley.log" | tr '\n' ' '))"; return 1; }
  fi
  sid=$PARLEY_PID
  # warm-up: 200 short calls, so that what is allocated once (rule state, caches, pools) is in
  # the idle figure; then 36 s for their transactions to end
  start_agents "$dir/warm" "$b" 60
  (cd "$dir/warm" && timeout -k 5 60 sipp "$target" -sf "$scen" -p $((b + 9)) \
    -m 200 -r "$mrate" -d 0 -timeout 40s "${COMMON[@]}" -stf "$dir/warm/uac.csv" >"$dir/warm/uac.out" 2>&1)
  stop_agents "$dir/warm"
  sleep 36
  cp "/proc/$PARLEY_PID/smaps" "$dir/smaps-idle.txt" 2>/dev/null
  idle=$(rss_kb "$PARLEY_PID"); heap_idle=$(num "$(stat "$dir/stats.txt" memory heap_in_use_kib)")
  echo "memory ($mode): $n agents configured, after 200 warm-up calls ($(csv "$dir/warm/uac.csv" 'SuccessfulCall(C)') ok): idle RSS $idle KiB"
  start_agents "$dir/hold" "$b" $(( hold + setup + 30 ))
  local t0 p0 p1 upt; p0=$(session_ticks "$sid")
  (cd "$dir/hold" && exec setsid timeout -k 5 $(( hold + setup + 40 )) sipp "$target" -sf "$scen" \
    -p $((b + 9)) -m "$mcalls" -r "$mrate" -rp 1000 -l $(( mcalls + 100 )) -d $(( hold * 1000 )) \
    -timeout $(( hold + setup + 30 ))s -recv_timeout 30000 "${COMMON[@]}" -stf "$dir/hold/uac.csv" \
    -error_file "$dir/hold/uac.errors.log" >"$dir/hold/uac.out" 2>&1) &
  local uac=$!; BG_PIDS+=("$uac")
  t0=$(date +%s)
  # all calls up: the buffer server's table holds them (bounded wait)
  for i in $(seq $(( (setup + 30) * 2 ))); do
    calls=$(num "$(stat "$dir/stats.txt" buffer_table calls)")
    [ "$calls" -ge "$mcalls" ] && { up=1; break; }
    kill -0 "$uac" 2>/dev/null || break
    sleep 0.5
  done
  peak=$(rss_kb "$PARLEY_PID"); p1=$(session_ticks "$sid"); upt=$(( $(date +%s) - t0 ))
  cp "$dir/stats.txt" "$dir/stats-all-up.txt" 2>/dev/null
  [ "$up" != 1 ] && echo "memory ($mode): only $calls of $mcalls calls up after $upt s (caller: $(csv "$dir/hold/uac.csv" 'SuccessfulCall(C)') ok, $(csv "$dir/hold/uac.csv" 'FailedCall(C)') failed so far)"
  echo "memory ($mode): $calls calls up after $upt s: RSS $peak KiB; parley CPU while setting them up $(secs $(( p1 - p0 ))) s ($(per_k $(( p1 - p0 )) "$calls") s per 1,000 calls)"
  echo "memory ($mode):   $(grep -E '^(distributor_table|buffer_table)' "$dir/stats.txt" | tr '\n' ' ')"
  # 40 s later: the calls' INVITE transactions are over; what is left is the calls themselves
  sleep 40
  steady=$(rss_kb "$PARLEY_PID"); calls=$(num "$(stat "$dir/stats.txt" buffer_table calls)")
  heap_steady=$(num "$(stat "$dir/stats.txt" memory heap_in_use_kib)")
  cp "$dir/stats.txt" "$dir/stats-steady.txt" 2>/dev/null
  cp "/proc/$PARLEY_PID/smaps" "$dir/smaps-steady.txt" 2>/dev/null
  echo "memory ($mode): 40 s later, $calls calls up: RSS $steady KiB"
  echo "memory ($mode):   $(grep -E '^(distributor_table|buffer_table)' "$dir/stats.txt" | tr '\n' ' ')"
  if [ "$calls" -gt 0 ]; then
    echo "memory ($mode) per active call, (RSS - idle RSS) / calls: when all were up $(awk -v a="$peak" -v i="$idle" -v n="$calls" 'BEGIN { printf "%.2f", (a - i) / n }') KiB; steady (transactions over) $(awk -v a="$steady" -v i="$idle" -v n="$calls" 'BEGIN { printf "%.2f", (a - i) / n }') KiB (target: < 8 KB)"
    # of which the C heap holds (mallinfo2 over every arena, from the stats file): what is
    # allocated for the calls, the rest of the figure being pages malloc keeps and Lua's heap
    echo "memory ($mode)   C heap in use per call, steady: $(awk -v a="$heap_steady" -v i="$heap_idle" -v n="$calls" 'BEGIN { printf "%.2f", (a - i) / n }') KiB"
  fi
  stop_pid "$uac"
  stop_agents "$dir/hold"
  stop_pid "$PARLEY_PID"
  echo
}

# ---------------------------------------------------------------- run
echo "# bench/run-callpath.sh: SIPp caller -> server -> $UAS_COUNT SIPp agent processes, loopback UDP, $(nproc) cores shared by everything"
echo "# steps of $STEP_S s of calls, hold $HOLD_MS ms, rate cap $MAX_RATE calls/s, time cap $MAX_MIN min; logs: $LOGROOT"
echo "# Kamailio $(kamailio -v 2>/dev/null | sed -n 's/^version: kamailio \([^ ]*\).*/\1/p'): bench/kamailio/callpath.cfg + callpath.lua (app_lua/KEMI, tm + rr, Record-Route), -n 2"
echo "# kamailio2: two of those chained, -n 2 each, the first without Record-Route (Parley's topology)"
echo "# Parley: $PARLEY serve, distributor + buffer server in one process, rules $RULES"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
BEST_kamailio=0; BEST_kamailio2=0; BEST_parley=0; PARLEY_OK=1; CAPPED_kamailio=0; CAPPED_kamailio2=0; CAPPED_parley=0
if [ ! -x "$PARLEY" ] && [ "$ONLY" != kamailio ] && [ "$ONLY" != kamailio2 ]; then
  echo "parley: NOT RUN: no binary at $PARLEY (build it with: swift build -c release)"; PARLEY_OK=0
fi
M0=$(machine_busy)
[ "$ONLY" = "" ] || [ "$ONLY" = kamailio ] && bench kamailio
[ "$ONLY" = "" ] || [ "$ONLY" = kamailio2 ] && bench kamailio2
[ "$PARLEY_OK" = 1 ] && { [ "$ONLY" = "" ] || [ "$ONLY" = parley ]; } && bench parley
if [ "$ONLY" = "" ] && [ "$PARLEY_OK" = 1 ] && [ "$BEST_kamailio" -gt 0 ]; then
  echo "parley / kamailio (highest rate with zero failures): $BEST_parley / $BEST_kamailio = $(awk -v p="$BEST_parley" -v k="$BEST_kamailio" 'BEGIN { printf "%.2f", p / k }') (target: >= 1.0)"
  [ "$CAPPED_kamailio" = 1 ] && echo "  (Kamailio passed every step: its rate is higher, the ratio lower; raise --max-rate or add steps)"
  [ "$CAPPED_parley" = 1 ] && echo "  (Parley passed every step: its rate is higher, the ratio higher; raise --max-rate or add steps)"
  if [ "$BEST_kamailio2" -gt 0 ]; then
    echo "parley / kamailio2 (two Kamailio hops, Parley's topology; for reference): $BEST_parley / $BEST_kamailio2 = $(awk -v p="$BEST_parley" -v k="$BEST_kamailio2" 'BEGIN { printf "%.2f", p / k }')"
    [ "$CAPPED_kamailio2" = 1 ] && echo "  (the two Kamailio hops passed every step: their rate is higher; raise --max-rate or add steps)"
  fi
  echo
fi
if [ "$PARLEY_OK" = 1 ] && [ "$MEMORY" = 1 ] && { [ "$ONLY" = "" ] || [ "$ONLY" = memory ]; }; then
  case " $MEMORY_MODES " in *" buffer "*) memory buffer "$MEM_CALLS" "$MEM_BUFFER_RATE" ;; esac
  case " $MEMORY_MODES " in *" full "*) memory full "$MEM_FULL_CALLS" "$MEM_RATE" ;; esac
fi
echo "total time: $(( $(date +%s) - T0 )) s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
