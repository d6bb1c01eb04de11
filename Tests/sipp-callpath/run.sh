#!/usr/bin/env bash
# Tests/sipp-callpath/run.sh: the call path on the wire. SIPp callers and agents on loopback,
# `parley serve` in between: caller -> distributor -> (handoff: uri, message or tunnel) -> buffer
# server -> agent. One case per expected outcome and encoding.
#
#   bash Tests/sipp-callpath/run.sh [--parley PATH] [--quick] [--keep-logs] [FILTER]
#
# FILTER is an extended regex on case names. One line per case (`ok NAME` or
# `FAIL NAME: reason (logs: DIR)`); the last line is `N passed, N failed`. Exit 0 only if all passed.
# Logs go to $SIPP_LOG_DIR or a fresh /tmp/parley-callpath.XXXXXX (kept on failure or with
# --keep-logs). Every SIPp run is bounded (-m, -timeout, -nostdin, and `timeout` around it); every
# process is started in its own session and stopped by its process-group id on exit.
#
# Besides each SIPp side's own checks (every scenario fails a call whose messages carry anything
# of the other leg: Call-ID, tags, Via marks, handoff headers), every case checks:
# - from the logs: no message the caller received names an agent's port, and no message an agent
#   received names the caller's or the distributor's port (headers and body alike);
# - from `parley serve --stats-file`: after the calls, the buffer server's routing table is empty
#   (calls=0 dialogs=0: no leak) and no agent is left ringing or busy.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PARLEY="$ROOT/.build/debug/parley"
QUICK=0
KEEP=0
FILTER=""
while [ $# -gt 0 ]; do
  case "$1" in
    --parley) PARLEY=${2:-}; shift 2 ;;
    --parley=*) PARLEY=${1#*=}; shift ;;
    --quick) QUICK=1; shift ;;
    --keep-logs) KEEP=1; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) FILTER=$1; shift ;;
  esac
done

for tool in sipp ss timeout setsid awk; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing tool: $tool (apt-get install -y sip-tester iproute2 coreutils util-linux gawk)" >&2; exit 2; }
done
if [ ! -x "$PARLEY" ]; then echo "parley binary not found at $PARLEY (swift build, or --parley PATH)" >&2; exit 2; fi

LOGROOT=${SIPP_LOG_DIR:-$(mktemp -d /tmp/parley-callpath.XXXXXX)}
mkdir -p "$LOGROOT"
IP=127.0.0.1
RULES="$HERE/rules"

# ---------------------------------------------------------------- processes and cleanup
BG_PIDS=()
PORT_BASE=17060
# shellcheck source=../lib/sipp-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/sipp-common.sh"
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- ports
# alloc_block (Tests/lib/sipp-common.sh) hands out free blocks of 10 ports in 17060..17999:
#   b: distributor  b+1: buffer server  b+2: tunnel (WebSocket)  b+3..b+5: agents  b+9: caller


# ---------------------------------------------------------------- parley serve
# write_config DIR BLOCK [TIMERS] [AGENTS] -> DIR/parley.yaml with AGENTS (default 3) of
# a1 (rank 1), a2 (rank 2), a3 (rank 3)
write_config() {
  local dir=$1 b=$2 agents=${4:-3}
  local timers="no_answer_timeout: 1500ms, wrap_up: 0, heartbeat: 1s, stale_after: 3s, probe: off"
  [ -n "${3:-}" ] && timers=$3
  cat >"$dir/parley.yaml" <<EOF
rules: $RULES
roles: [distributor, buffer]
listeners: {distributor: "$IP:$b", buffer: "$IP:$((b + 1))", tunnel: "$IP:$((b + 2))"}
timers: {$timers}
log_level: debug
skills: [sales]
agents:
  - {id: a1, skills: [sales], contact: "sip:a1@$IP:$((b + 3))", attributes: {rank: 1}}
  - {id: a2, skills: [sales], contact: "sip:a2@$IP:$((b + 4))", attributes: {rank: 2}}
  - {id: a3, skills: [sales], contact: "sip:a3@$IP:$((b + 5))", attributes: {rank: 3}}
EOF
  if [ "$agents" -lt 3 ]; then
    awk -v n="$agents" '/^  - [{]id: a[0-9]/ { k++; if (k > n) next } { print }' "$dir/parley.yaml" >"$dir/parley.yaml.tmp" && mv "$dir/parley.yaml.tmp" "$dir/parley.yaml"
  fi
}

# start_serve DIR BLOCK [separate]   (separate: the buffer server and the distributor in two processes)
start_serve() {
  local dir=$1 b=$2 mode=${3:-together} pid
  if [ "$mode" = separate ]; then
    setsid "$PARLEY" serve --config "$dir/parley.yaml" --role buffer --stats-file "$dir/stats-buffer.txt" >"$dir/buffer.log" 2>&1 &
    pid=$!; BG_PIDS+=("$pid"); SERVE_BUFFER_PID=$pid
    wait_listening $((b + 2)) tcp "$pid" 10 || { REASON="buffer server not listening (buffer.log: $(tail -n 3 "$dir/buffer.log" | tr '\n' ' ' | cut -c1-200))"; return 1; }
    setsid "$PARLEY" serve --config "$dir/parley.yaml" --role distributor --stats-file "$dir/stats-distributor.txt" >"$dir/distributor.log" 2>&1 &
    pid=$!; BG_PIDS+=("$pid"); SERVE_PID=$pid
    wait_listening "$b" udp "$pid" 10 || { REASON="distributor not listening (distributor.log: $(tail -n 3 "$dir/distributor.log" | tr '\n' ' ' | cut -c1-200))"; return 1; }
  else
    setsid "$PARLEY" serve --config "$dir/parley.yaml" --stats-file "$dir/stats.txt" >"$dir/serve.log" 2>&1 &
    pid=$!; BG_PIDS+=("$pid"); SERVE_PID=$pid
    wait_listening "$b" udp "$pid" 10 || { REASON="parley serve not listening (serve.log: $(tail -n 3 "$dir/serve.log" | tr '\n' ' ' | cut -c1-200))"; return 1; }
  fi
  sleep 0.3  # the tunnel connects right after start
}

# stats DIR -> every stats file's content
stats() { cat "$1"/stats*.txt 2>/dev/null; }
# stat DIR LINE_PREFIX KEY -> value
stat() { stats "$1" | awk -v p="$2" -v k="$3" '$1 == p { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' | head -n 1; }

# wait_drained DIR SECONDS: the buffer server's routing table empty, no agent ringing or busy.
wait_drained() {
  local dir=$1 tries=$(( $2 * 5 )) calls dialogs ringing busy
  while [ $tries -gt 0 ]; do
    calls=$(stat "$dir" buffer_table calls); dialogs=$(stat "$dir" buffer_table dialogs)
    ringing=$(stat "$dir" agents ringing); busy=$(stat "$dir" agents busy)
    if [ "$calls" = 0 ] && [ "$dialogs" = 0 ] && [ "$ringing" = 0 ] && [ "$busy" = 0 ]; then return 0; fi
    sleep 0.2
    tries=$((tries - 1))
  done
  REASON="not drained after $2 s: buffer calls=$calls dialogs=$dialogs, agents ringing=$ringing busy=$busy (stats*.txt)"
  return 1
}

# ---------------------------------------------------------------- SIPp
sipp_common() { # DIR NAME
  echo -nostdin -i "$IP" -trace_stat -stf "$1/$2.csv" -fd 5 \
    -trace_err -error_file "$1/$2.errors.log" -trace_msg -message_file "$1/$2.messages.log"
}
# start_agent DIR NAME XML PORT CALLS SECONDS [extra sipp args...]   (background)
start_agent() {
  local dir=$1 name=$2 xml=$3 port=$4 calls=$5 secs=$6; shift 6
  (cd "$dir" && exec setsid timeout -k 5 $((secs + 15)) sipp -sf "$HERE/$xml" -p "$port" \
      -m "$calls" -timeout "${secs}s" -timeout_error -recv_timeout 20000 \
      $(sipp_common "$dir" "$name") "$@" >"$dir/$name.out" 2>&1) &
  local pid=$!
  BG_PIDS+=("$pid")
  eval "PID_${name//-/_}=$pid"
  wait_listening "$port" udp "$pid" 5 || true
}
# run_caller DIR NAME XML DISTRIBUTOR_PORT LOCAL_PORT CALLS SECONDS HANDOFF RAISE [extra...] -> rc
run_caller() {
  local dir=$1 name=$2 xml=$3 dport=$4 lport=$5 calls=$6 secs=$7 handoff=$8 raise=$9; shift 9
  (cd "$dir" && exec timeout -k 5 $((secs + 15)) sipp "$IP:$dport" -sf "$HERE/$xml" -p "$lport" -s sales \
      -cid_str 'caller-%u-%p@%s' -m "$calls" -l 1 -r 5 -rp 1000 -timeout "${secs}s" -timeout_error \
      -recv_timeout 20000 -key handoff "$handoff" -key raise "$raise" \
      $(sipp_common "$dir" "$name") "$@" >"$dir/$name.out" 2>&1)
}
wait_agent() { # NAME SECONDS -> rc (124 if it had to be stopped)
  local pidvar="PID_${1//-/_}" pid i
  pid=${!pidvar}
  for i in $(seq $(( $2 * 10 ))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then stop_pid "$pid"; return 124; fi
  wait "$pid"
}
check_side() { # DIR NAME RC EXPECTED_CALLS
  local dir=$1 name=$2 rc=$3 want=$4 f="$1/$2.csv" ok failed unexp
  ok=$(csv "$f" 'SuccessfulCall(C)'); failed=$(csv "$f" 'FailedCall(C)'); unexp=$(csv "$f" 'FailedUnexpectedMessage(C)')
  echo "$name: rc=$rc successful=$ok failed=$failed unexpected=$unexp" >>"$dir/summary.txt"
  if [ "$ok" != "$want" ] || [ "$failed" != 0 ]; then
    REASON="$name: $ok/$want calls succeeded, $failed failed (sipp rc $rc; $name.errors.log)"
    return 1
  fi
  if [ "$rc" != 0 ]; then REASON="$name: sipp exited $rc ($name.out)"; return 1; fi
}
# received NAME.messages.log -> only the messages that SIPp received
received() { awk '/message received/ { on = 1; next } /^-{20,}/ { on = 0 } on' "$1" 2>/dev/null; }
# no_port_leak DIR NAME PORT... : none of these ports in anything NAME received
no_port_leak() {
  local dir=$1 name=$2 p; shift 2
  for p in "$@"; do
    if received "$dir/$name.messages.log" | grep -q ":$p\b"; then
      REASON="$name received a message naming port $p of the other leg ($name.messages.log)"
      return 1
    fi
  done
}

# ---------------------------------------------------------------- cases
if [ "$QUICK" = 1 ]; then N=3; else N=10; fi

# answered DIR ENCODING CALLER_XML AGENT_XML [separate] [raise]: one agent, a1, takes every call
answered() {
  local dir=$1 enc=$2 cxml=$3 axml=$4 mode=${5:-together} raise=${6:-none} b rc rca
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "" 1
  start_serve "$dir" "$b" "$mode" || return 1
  start_agent "$dir" a1 "$axml" $((b + 3)) "$N" 90 -d 300
  run_caller "$dir" caller "$cxml" "$b" $((b + 9)) "$N" 90 "$enc" "$raise" -d 300
  rc=$?
  wait_agent a1 15; rca=$?
  check_side "$dir" caller "$rc" "$N" || return 1
  check_side "$dir" a1 "$rca" "$N" || return 1
  no_port_leak "$dir" caller $((b + 3)) || return 1
  no_port_leak "$dir" a1 $((b + 9)) "$b" || return 1
  wait_drained "$dir" 10 || return 1
  local h; h=$(stat "$dir" buffer "handoffs_$enc")
  [ "$h" = "$N" ] || { REASON="buffer server counted $h handoffs by $enc, want $N"; return 1; }
}

# next_agent DIR ENCODING FIRST_AGENT_XML: a1 refuses or rings out, a2 answers every call
next_agent() {
  local dir=$1 enc=$2 first=$3 b rc r1 r2
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "no_answer_timeout: 1s, wrap_up: 0, max_no_answer: 0, heartbeat: 1s, stale_after: 3s, probe: off"
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 "$first" $((b + 3)) "$N" 90
  start_agent "$dir" a2 agent-answers.xml $((b + 4)) "$N" 90
  run_caller "$dir" caller caller-answered-hangs-up.xml "$b" $((b + 9)) "$N" 90 "$enc" none -d 300
  rc=$?
  wait_agent a1 15; r1=$?
  wait_agent a2 15; r2=$?
  check_side "$dir" caller "$rc" "$N" || return 1
  check_side "$dir" a1 "$r1" "$N" || return 1
  check_side "$dir" a2 "$r2" "$N" || return 1
  no_port_leak "$dir" caller $((b + 3)) $((b + 4)) || return 1
  no_port_leak "$dir" a1 $((b + 9)) "$b" || return 1
  no_port_leak "$dir" a2 $((b + 9)) "$b" || return 1
  wait_drained "$dir" 10 || return 1
}

cancel_case() {
  local dir=$1 enc=$2 b rc r1
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "no_answer_timeout: 20s, wrap_up: 0, heartbeat: 1s, stale_after: 3s, probe: off"
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 agent-rings-expect-cancel.xml $((b + 3)) "$N" 90
  run_caller "$dir" caller caller-cancel-expect-487.xml "$b" $((b + 9)) "$N" 90 "$enc" none
  rc=$?
  wait_agent a1 15; r1=$?
  check_side "$dir" caller "$rc" "$N" || return 1
  check_side "$dir" a1 "$r1" "$N" || return 1
  no_port_leak "$dir" caller $((b + 3)) || return 1
  no_port_leak "$dir" a1 $((b + 9)) "$b" || return 1
  wait_drained "$dir" 10 || return 1
}

for enc in uri message tunnel; do
  eval "CASE_${enc}_answered_caller_hangs_up() { answered \"\$1\" $enc caller-answered-hangs-up.xml agent-answers.xml; }"
  eval "CASE_${enc}_answered_agent_hangs_up() { answered \"\$1\" $enc caller-answered-agent-hangs-up.xml agent-answers-hangs-up.xml; }"
  eval "CASE_${enc}_caller_cancel_expect_487() { cancel_case \"\$1\" $enc; }"
  eval "CASE_${enc}_agent_486_next_agent_answers() { next_agent \"\$1\" $enc agent-busy-486.xml; }"
  eval "CASE_${enc}_agent_no_answer_next_agent_answers() { next_agent \"\$1\" $enc agent-rings-expect-cancel.xml; }"
  eval "CASE_${enc}_hold_resume_info_options_update() { answered \"\$1\" $enc caller-hold-resume.xml agent-answers-hold-resume.xml; }"
  eval "CASE_${enc}_agent_holds_resumes() { answered \"\$1\" $enc caller-held-by-agent.xml agent-holds-resumes.xml; }"
  eval "CASE_${enc}_separate_processes() { answered \"\$1\" $enc caller-answered-hangs-up.xml agent-answers.xml separate; }"
done

# A hook that raises at call time: logged with file:line, counted, its default used; the call connects.
rule_raises() {
  local dir=$1 hook=$2 n
  answered "$dir" uri caller-answered-hangs-up.xml agent-answers.xml together "$hook" || return 1
  n=$(stat "$dir" rules failures)
  [ "$n" = "$N" ] || { REASON="rules failures=$n, want $N (one per call)"; return 1; }
  grep -q "init.lua:[0-9]*:.*raised on purpose" "$dir/serve.log" || { REASON="no 'init.lua:LINE: ... raised on purpose' in serve.log"; return 1; }
}
CASE_rule_classify_raises_call_connects() { rule_raises "$1" classify; }
CASE_rule_select_agent_raises_call_connects() { rule_raises "$1" select_agent; }
CASE_rule_handoff_raises_call_connects() { rule_raises "$1" handoff; }

# Agent state: after max_no_answer no-answers in a row the agent goes on break (offline); the
# calls go to the next agent, and the agent on break gets no more.
CASE_agent_no_answers_go_on_break() {
  local dir=$1 b rc r1 r2 state
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "no_answer_timeout: 1s, wrap_up: 0, max_no_answer: 2, break: 60s, heartbeat: 1s, stale_after: 3s, probe: off"
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 agent-rings-expect-cancel.xml $((b + 3)) 2 60
  start_agent "$dir" a2 agent-answers.xml $((b + 4)) 4 60
  run_caller "$dir" caller caller-answered-hangs-up.xml "$b" $((b + 9)) 4 60 uri none -d 200
  rc=$?
  wait_agent a1 10; r1=$?
  wait_agent a2 10; r2=$?
  check_side "$dir" caller "$rc" 4 || return 1
  check_side "$dir" a1 "$r1" 2 || return 1
  check_side "$dir" a2 "$r2" 4 || return 1
  sleep 1.2
  state=$(stats "$dir" | awk '$1 == "agent" && $2 == "a1" { print $3 }')
  [ "$state" = "state=offline" ] || { REASON="agent a1: $state after 2 no-answers, want state=offline (on break)"; return 1; }
}

# Wrap-up: an agent is busy until the buffer server reports the call ended, then in wrap-up; a call
# that comes meanwhile goes to the next agent.
CASE_agent_wrap_up_sends_next_call_elsewhere() {
  local dir=$1 b rc r1 r2
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "no_answer_timeout: 2s, wrap_up: 30s, heartbeat: 1s, stale_after: 3s, probe: off"
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 agent-answers.xml $((b + 3)) 1 60
  start_agent "$dir" a2 agent-answers.xml $((b + 4)) 1 60
  run_caller "$dir" caller caller-answered-hangs-up.xml "$b" $((b + 9)) 2 60 uri none -d 200
  rc=$?
  wait_agent a1 10; r1=$?
  wait_agent a2 10; r2=$?
  check_side "$dir" caller "$rc" 2 || return 1
  check_side "$dir" a1 "$r1" 1 || return 1
  check_side "$dir" a2 "$r2" 1 || return 1
  sleep 1.2
  stats "$dir" | grep -q '^agent a1 state=wrapup' || { REASON="agent a1 not in wrap-up after its call ($(stats "$dir" | grep '^agent a1'))"; return 1; }
}

# Separate processes, and the buffer server dies mid-call: the distributor, missing its
# heartbeats, frees the busy agent after stale_after (no agent stuck busy).
CASE_separate_buffer_crash_frees_agent() {
  local dir=$1 b state i
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "no_answer_timeout: 2s, wrap_up: 0, heartbeat: 500ms, stale_after: 2s, probe: off"
  start_serve "$dir" "$b" separate || return 1
  start_agent "$dir" a1 agent-answers.xml $((b + 3)) 1 30
  (cd "$dir" && exec timeout -k 2 20 sipp "$IP:$b" -sf "$HERE/caller-answered-hangs-up.xml" -p $((b + 9)) -s sales \
      -cid_str 'caller-%u-%p@%s' -m 1 -timeout 15s -key handoff uri -key raise none -d 10000 \
      $(sipp_common "$dir" caller) >"$dir/caller.out" 2>&1) &
  BG_PIDS+=("$!")
  for i in $(seq 50); do
    grep -q '^agent a1 state=busy' "$dir/stats-distributor.txt" 2>/dev/null && break
    sleep 0.1
  done
  grep -q '^agent a1 state=busy' "$dir/stats-distributor.txt" || { REASON="agent a1 never busy"; return 1; }
  kill -KILL -- "-$SERVE_BUFFER_PID" 2>/dev/null
  wait "$SERVE_BUFFER_PID" 2>/dev/null  # reap it quietly (bash would print "Killed")
  for i in $(seq 80); do
    state=$(awk '$1 == "agent" && $2 == "a1" { print $3 }' "$dir/stats-distributor.txt")
    [ "$state" = "state=available" ] && break
    sleep 0.1
  done
  [ "$state" = "state=available" ] || { REASON="agent a1 still $state 8 s after the buffer server died"; return 1; }
  grep -q 'reconciled=[1-9]' "$dir/stats-distributor.txt" || { REASON="no reconciliation counted"; return 1; }
}

# A lost BYE: the caller answers and vanishes. The buffer server's in-dialog OPTIONS probe of the
# caller leg goes unanswered, so it hangs up the agent (who gets a BYE), reports the call ended,
# and the agent is free again. T1 is 100 ms here so that the probe times out (64*T1) quickly.
CASE_lost_bye_probe_hangs_up_agent() {
  local dir=$1 b rc r1 n
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "no_answer_timeout: 2s, wrap_up: 0, heartbeat: 1s, stale_after: 30s, probe: 1s, t1: 100ms" 1
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 agent-answers-probes.xml $((b + 3)) 1 40
  run_caller "$dir" caller caller-answered-vanishes.xml "$b" $((b + 9)) 1 20 uri none
  rc=$?
  wait_agent a1 30; r1=$?
  check_side "$dir" caller "$rc" 1 || return 1
  check_side "$dir" a1 "$r1" 1 || return 1
  wait_drained "$dir" 10 || return 1
  n=$(stat "$dir" buffer probes_failed)
  [ "${n:-0}" -ge 1 ] || { REASON="buffer probes_failed=$n, want >= 1"; return 1; }
}

# A bad configuration file stops start-up: exit status 2, every problem with its line and key.
CASE_config_bad_file_refused() {
  local dir=$1 rc
  cat >"$dir/bad.yaml" <<'YAML'
listeners:
  distributor: 127.0.0.1:5060
  bufer: 127.0.0.1:5070
timers: {wrap_up: soon}
agents:
  - {id: a1, contact: "mailto:a1@example.com"}
YAML
  "$PARLEY" serve --config "$dir/bad.yaml" >"$dir/out.txt" 2>&1
  rc=$?
  [ "$rc" = 2 ] || { REASON="exit status $rc, want 2 (out.txt)"; return 1; }
  for want in "bad.yaml:3: listeners.bufer: unknown key" "bad.yaml: listeners.buffer: missing" \
              "bad.yaml:4: timers.wrap_up: expected a duration" "bad.yaml:6: agents[0].contact: 'mailto:a1@example.com' is not a SIP URI"; do
    grep -qF "$want" "$dir/out.txt" || { REASON="no '$want' in the output (out.txt)"; return 1; }
  done
}

CASES=""
for enc in uri message tunnel; do
  CASES="$CASES $enc-answered-caller-hangs-up $enc-answered-agent-hangs-up $enc-caller-cancel-expect-487 $enc-agent-486-next-agent-answers $enc-agent-no-answer-next-agent-answers $enc-hold-resume-info-options-update $enc-agent-holds-resumes $enc-separate-processes"
done
CASES="$CASES config-bad-file-refused lost-bye-probe-hangs-up-agent rule-classify-raises-call-connects rule-select-agent-raises-call-connects rule-handoff-raises-call-connects agent-no-answers-go-on-break agent-wrap-up-sends-next-call-elsewhere separate-buffer-crash-frees-agent"

# ---------------------------------------------------------------- main
PASSED=0
FAILED=0
echo "# parley: $PARLEY; logs: $LOGROOT"
for name in $CASES; do
  if [ -n "$FILTER" ] && ! echo "$name" | grep -Eq -- "$FILTER"; then continue; fi
  dir="$LOGROOT/$name"
  rm -rf "$dir"; mkdir -p "$dir"
  REASON=""
  started=$(date +%s)
  "CASE_${name//-/_}" "$dir"
  rc=$?
  stop_all
  took=$(( $(date +%s) - started ))
  echo "$name: rc=$rc ${took}s ${REASON:-}" >>"$LOGROOT/timings.txt"
  if [ $rc = 0 ]; then
    echo "ok $name"
    PASSED=$((PASSED + 1))
  else
    echo "FAIL $name: ${REASON:-failed} (logs: $dir)"
    FAILED=$((FAILED + 1))
  fi
done
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
