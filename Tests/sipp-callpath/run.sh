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

for tool in sipp ss timeout setsid awk curl; do
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
    # two processes: the handoffs between them are signed with a shared secret (docs/security.md)
    export PARLEY_HANDOFF_SECRET=callpath-suite-secret-$$
    setsid "$PARLEY" serve --config "$dir/parley.yaml" --role buffer --stats-file "$dir/stats-buffer.txt" >"$dir/buffer.log" 2>&1 &
    pid=$!; BG_PIDS+=("$pid"); SERVE_BUFFER_PID=$pid
    wait_listening $((b + 2)) tcp "$pid" 10 || { REASON="buffer server not listening (buffer.log: $(tail -n 3 "$dir/buffer.log" | tr '\n' ' ' | cut -c1-200))"; return 1; }
    setsid "$PARLEY" serve --config "$dir/parley.yaml" --role distributor --stats-file "$dir/stats-distributor.txt" >"$dir/distributor.log" 2>&1 &
    pid=$!; BG_PIDS+=("$pid"); SERVE_PID=$pid
    wait_listening "$b" udp "$pid" 10 || { REASON="distributor not listening (distributor.log: $(tail -n 3 "$dir/distributor.log" | tr '\n' ' ' | cut -c1-200))"; return 1; }
  else
    unset PARLEY_HANDOFF_SECRET  # one process makes its own
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

# wait_drained DIR SECONDS: the buffer server's routing table empty, no agent ringing or busy,
# no call still looking for an agent in the distributor (where one runs).
wait_drained() {
  local dir=$1 tries=$(( $2 * 5 )) calls dialogs ringing busy open
  while [ $tries -gt 0 ]; do
    calls=$(stat "$dir" buffer_table calls); dialogs=$(stat "$dir" buffer_table dialogs)
    ringing=$(stat "$dir" agents ringing); busy=$(stat "$dir" agents busy)
    open=$(stat "$dir" distributor_table open)
    if [ "$calls" = 0 ] && [ "$dialogs" = 0 ] && [ "$ringing" = 0 ] && [ "$busy" = 0 ] && [ "${open:-0}" = 0 ]; then return 0; fi
    sleep 0.2
    tries=$((tries - 1))
  done
  REASON="not drained after $2 s: buffer calls=$calls dialogs=$dialogs, agents ringing=$ringing busy=$busy, distributor open=${open:-none} (stats*.txt)"
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
  case "$xml" in /*) ;; *) xml="$HERE/$xml" ;; esac
  (cd "$dir" && exec setsid timeout -k 5 $((secs + 15)) sipp -sf "$xml" -p "$port" \
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
  case "$xml" in /*) ;; *) xml="$HERE/$xml" ;; esac
  (cd "$dir" && exec timeout -k 5 $((secs + 15)) sipp "$IP:$dport" -sf "$xml" -p "$lport" -s sales \
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
received() { awk '/message received/ { on = 1; next } /^-{20,}/ || /message sent/ { on = 0 } on' "$1" 2>/dev/null; }
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

# one_to_tag DIR NAME: every response NAME received but 100 has one and the same To tag
# (RFC 3261 8.2.6.2: a UAS tags all its responses to a request alike; used where no agent's
# early dialog comes between, e.g. 182 Queued then the final status)
one_to_tag() {
  local tags
  tags=$(received "$1/$2.messages.log" | awk '/^SIP\/2.0 / { resp = ($2 != "100") } /^(To|t):/ && resp { if (match($0, /;tag=[^;> \r]+/)) print substr($0, RSTART + 5, RLENGTH - 5); resp = 0 }' | sort -u)
  [ -n "$tags" ] || { REASON="$2 received no tagged response ($2.messages.log)"; return 1; }
  [ "$(printf '%s\n' "$tags" | wc -l)" = 1 ] || { REASON="$2's responses carried different To tags: $(echo $tags) ($2.messages.log)"; return 1; }
}
# one_sdp_session DIR NAME: the session descriptions NAME received share one origin (username,
# session id, address) and each version is the last one or one more, rising at least once
# (RFC 3264 8: the B2BUA's own session toward the leg, its version raised on each change)
one_sdp_session() {
  local out
  out=$(received "$1/$2.messages.log" | awk '/^o=/ { sub(/\r$/, ""); split($0, f, " ");
      key = f[1] " " f[2] " " f[4] " " f[5] " " f[6]; v = f[3] + 0
      if (n > 0 && key != k0) { print "origin changed: " k0 " -> " key; bad = 1 }
      if (n > 0 && v != last && v != last + 1) { print "version " last " -> " v; bad = 1 }
      if (n == 0) { k0 = key; first = v }; last = v; n++ }
    END { if (n < 2) print "only " n " description(s)"; else if (last == first) print "the version never rose (" n " descriptions)"; else if (!bad) print "ok" }')
  [ "$out" = ok ] || { REASON="$2's session descriptions: $(echo $out | cut -c1-200) ($2.messages.log)"; return 1; }
}

# ---------------------------------------------------------------- cases
if [ "$QUICK" = 1 ]; then N=3; else N=10; fi

# answered DIR ENCODING CALLER_XML AGENT_XML [together|separate|socket] [raise] [CALLER_ARGS]: one
# agent, a1, takes every call (socket: both roles in one process, handoffs through the buffer
# listener); CALLER_ARGS go to the caller's SIPp as they are (word-split)
answered() {
  local dir=$1 enc=$2 cxml=$3 axml=$4 mode=${5:-together} raise=${6:-none} cargs=${7:-} b rc rca
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "" 1
  if [ "$mode" = socket ]; then
    sed -i 's/^listeners: {\(.*\)}$/listeners: {\1, in_process: false}/' "$dir/parley.yaml"
    grep -q "in_process: false" "$dir/parley.yaml" || { REASON="could not turn in_process off in parley.yaml"; return 1; }
  fi
  start_serve "$dir" "$b" "$mode" || return 1
  start_agent "$dir" a1 "$axml" $((b + 3)) "$N" 90 -d 300
  # shellcheck disable=SC2086
  run_caller "$dir" caller "$cxml" "$b" $((b + 9)) "$N" 90 "$enc" "$raise" -d 300 $cargs
  rc=$?
  wait_agent a1 15; rca=$?
  check_side "$dir" caller "$rc" "$N" || return 1
  check_side "$dir" a1 "$rca" "$N" || return 1
  no_port_leak "$dir" caller $((b + 3)) || return 1
  no_port_leak "$dir" a1 $((b + 9)) "$b" || return 1
  wait_drained "$dir" 10 || return 1
  local h; h=$(stat "$dir" buffer "handoffs_$enc")
  [ "$h" = "$N" ] || { REASON="buffer server counted $h handoffs by $enc, want $N"; return 1; }
  # uri with both roles in one process: in memory unless the configuration turns it off (socket)
  local want=0; [ "$enc" = uri ] && [ "$mode" = together ] && want=$N
  h=$(stat "$dir" distributor handoffs_in_process)
  [ "$h" = "$want" ] || { REASON="distributor counted $h handoffs in process, want $want"; return 1; }
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

# uri between the roles of one process through the buffer listener (listeners.in_process: false),
# as between two processes
CASE_uri_in_process_off() { answered "$1" uri caller-answered-hangs-up.xml agent-answers.xml socket; }

# TCP between the caller and Parley (RFC 3261 18): the INVITE reaches the distributor over TCP
# and its answers come back on that connection; the buffer server's 200 names a Contact with
# ;transport=tcp, so the caller's ACK and BYE go to the buffer server over a TCP connection of
# their own (SIPp -t tn: one connection per call, setdest reconnects it), while the agent leg
# stays UDP. The scenarios are the UDP ones with their transport switched and the Contact check
# made to require ;transport=tcp.
# tcp_caller DIR CALLER_XML AGENT_XML [CALLER_CONTACT_SAYS_TCP]
tcp_caller() {
  local dir=$1 cxml=$2 axml=$3 contact_tcp=${4:-}
  local out="$dir/tcp-$cxml"
  sed -e 's/protocol="udp"/protocol="tcp"/' \
      -e 's|regexp="sip:(\[^@>;\]\*@)?(\[0-9.\]+):(\[0-9\]+)" search_in="hdr" header="Contact:"|regexp="sip:([^@>;]*@)?([0-9.]+):([0-9]+);transport=tcp" search_in="hdr" header="Contact:"|' \
      "$HERE/$cxml" >"$out"
  grep -q 'protocol="tcp"' "$out" && grep -q ';transport=tcp" search_in="hdr" header="Contact:"' "$out" \
    || { REASON="could not make the TCP caller scenario from $cxml"; return 1; }
  if [ -n "$contact_tcp" ]; then
    # the caller's own Contact says ;transport=tcp: requests to it (the agent's BYE) go over TCP
    sed -i 's|^\( *Contact: <sip:caller@\[local_ip\]:\[local_port\]\)>|\1;transport=tcp>|' "$out"
    [ "$(grep -c 'Contact: <sip:caller@\[local_ip\]:\[local_port\];transport=tcp>' "$out")" -ge 2 ] \
      || { REASON="could not give the caller's Contact ;transport=tcp in $cxml"; return 1; }
  fi
  answered "$dir" uri "$out" "$axml" together none "-t tn -max_socket 64" || return 1
  received "$dir/caller.messages.log" | grep -q "^SIP/2.0 200" || { REASON="caller.messages.log shows no 200 received"; return 1; }
}
CASE_uri_caller_over_tcp() { tcp_caller "$1" caller-answered-hangs-up.xml agent-answers.xml; }
# The agent hangs up: the buffer server's BYE reaches the TCP caller at its Contact over TCP (a
# connection the buffer server opens), the caller's 200 comes back, and the call leaves the table.
CASE_uri_caller_over_tcp_agent_hangs_up() {
  local dir=$1
  tcp_caller "$dir" caller-answered-agent-hangs-up.xml agent-answers-hangs-up.xml contact-tcp || return 1
  # SIPp logs "TCP message received [N] bytes :" and an empty line above each message it got
  local over_tcp
  over_tcp=$(grep -B2 "^BYE sip:" "$dir/caller.messages.log" | grep -c "^TCP message received")
  [ "$over_tcp" = "$N" ] || { REASON="$over_tcp of $N BYEs reached the caller over TCP (caller.messages.log)"; return 1; }
  wait_drained "$dir" 10
}

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

# ---------------------------------------------------------------- queues and treatments
# write_queue_config DIR BLOCK QUEUE_SETTINGS [AVAILABLE]: one agent (a1, logged in unless
# AVAILABLE is false), music on hold at b+6, an announcement at b+7, the default queue QUEUE_SETTINGS.
write_queue_config() {
  local dir=$1 b=$2 queue=$3 avail=${4:-true}
  write_config "$dir" "$b" "no_answer_timeout: 3s, wrap_up: 0, heartbeat: 1s, stale_after: 10s, probe: off" 1
  if [ "$avail" = false ]; then
    sed -i 's|attributes: {rank: 1}}|attributes: {rank: 1}, available: false}|' "$dir/parley.yaml"
  fi
  {
    echo "treatments: {moh: \"sip:moh@$IP:$((b + 6))\", announcement: \"sip:announcement@$IP:$((b + 7))\"}"
    echo "queues:"
    echo "  default: {$queue}"
  } >>"$dir/parley.yaml"
}
# bg_caller DIR NAME XML DPORT LPORT WHO PRIO [extra...]: one call in the background
bg_caller() {
  local dir=$1 name=$2 xml=$3 dport=$4 lport=$5 who=$6 prio=$7; shift 7
  (cd "$dir" && exec setsid timeout -k 5 40 sipp "$IP:$dport" -sf "$HERE/$xml" -p "$lport" -s sales \
      -cid_str 'caller-%u-%p@%s' -m 1 -timeout 30s -timeout_error -recv_timeout 20000 \
      -key handoff uri -key raise none -key who "$who" -key prio "$prio" \
      $(sipp_common "$dir" "$name") "$@" >"$dir/$name.out" 2>&1) &
  local pid=$!
  BG_PIDS+=("$pid")
  eval "PID_${name//-/_}=$pid"
}
# records DIR: stops parley serve (its records flushed) and lists its calls into DIR/calls.txt
records() {
  stop_pid "$SERVE_PID"
  "$PARLEY" calls --database "$1/parley-records.sqlite" --limit 50 >"$1/calls.txt" 2>&1
}
# expect_call DIR WHO OUTCOME AGENT CODE EVENTS...: the record of the call from sip:WHO@ has this
# outcome, agent and final code ("-" for none), and its queue log holds EVENTS in this order
# (an event with an agent or treatment is written EVENT(NAME)).
expect_call() {
  local dir=$1 who=$2 outcome=$3 agent=$4 code=$5 row ref got; shift 5
  row=$(awk -v w="sip:$who@" 'index($4, w) == 1' "$dir/calls.txt")
  [ -n "$row" ] || { REASON="no record of the call from $who (calls.txt)"; return 1; }
  got=$(echo "$row" | awk '{ print $6 " " $7 " " $8 }')
  [ "$got" = "$agent $outcome $code" ] || { REASON="call from $who recorded as '$got', want '$agent $outcome $code' (calls.txt)"; return 1; }
  ref=$(echo "$row" | awk '{ print $1 }')
  "$PARLEY" calls --database "$dir/parley-records.sqlite" --call "$ref" >"$dir/log-$who.txt" 2>&1
  got=$(awk 'NR > 1 { printf "%s%s", sep, ($5 == "-" ? $3 : $3 "(" $5 ")"); sep = " " }' "$dir/log-$who.txt")
  [ "$got" = "$*" ] || { REASON="queue log of $who: '$got', want '$*' (log-$who.txt)"; return 1; }
}
# after_restart DIR BLOCK: parley serve starts again on the same database and stops; every record
# is still there, unchanged.
after_restart() {
  local dir=$1
  cp "$dir/calls.txt" "$dir/calls-before.txt"
  start_serve "$dir" "$2" || return 1
  records "$dir"
  cmp -s "$dir/calls.txt" "$dir/calls-before.txt" || { REASON="records changed across a restart (calls-before.txt, calls.txt)"; return 1; }
}
# agent_order DIR AGENT: the caller users of the INVITEs the agent received, in order
agent_order() {
  received "$1/$2.messages.log" | awk '/^INVITE / { inv = 1; next } inv && /^From:/ { match($0, /sip:[^@]*@/); printf "%s ", substr($0, RSTART + 4, RLENGTH - 5); inv = 0 }'
}
# callers_ok DIR NAME...: each background caller made its one call
callers_ok() {
  local dir=$1 who r; shift
  for who in "$@"; do wait_agent "$who" 30; r=$?; check_side "$dir" "$who" "$r" 1 || return 1; done
}

# Every agent busy: two callers wait (182); the higher priority one, though it came later, is
# served first when the agent frees up. Records and queue log say so, before and after a restart.
CASE_queue_priority_order() {
  local dir=$1 b order r
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_queue_config "$dir" "$b" "max_wait: 30s"
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 agent-answers.xml $((b + 3)) 3 60
  bg_caller "$dir" first caller-answered-hangs-up.xml "$b" $((b + 6)) first 0 -d 2500
  sleep 0.7
  bg_caller "$dir" low caller-queued-answered.xml "$b" $((b + 7)) low 1 -d 300
  sleep 0.5
  bg_caller "$dir" high caller-queued-answered.xml "$b" $((b + 8)) high 5 -d 300
  callers_ok "$dir" first low high || return 1
  wait_agent a1 10; r=$?
  check_side "$dir" a1 "$r" 3 || return 1
  order=$(agent_order "$dir" a1)
  [ "$order" = "caller high low " ] || { REASON="agent a1 got the calls in the order '$order', want 'caller high low'"; return 1; }
  wait_drained "$dir" 10 || return 1
  records "$dir"
  expect_call "$dir" high completed a1 200 ENTERQUEUE "OFFER(a1)" "CONNECT(a1)" "COMPLETE(a1)" || return 1
  expect_call "$dir" low completed a1 200 ENTERQUEUE "OFFER(a1)" "CONNECT(a1)" "COMPLETE(a1)" || return 1
  after_restart "$dir" "$b" || return 1
}

# Every agent busy: a queued caller gives up (CANCEL): 487, recorded as abandoned.
CASE_queue_caller_abandons_while_queued() {
  local dir=$1 b r
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_queue_config "$dir" "$b" "max_wait: 30s"
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 agent-answers.xml $((b + 3)) 1 60
  bg_caller "$dir" first caller-answered-hangs-up.xml "$b" $((b + 6)) first 0 -d 3000
  sleep 0.7
  bg_caller "$dir" quitter caller-queued-cancel-expect-487.xml "$b" $((b + 7)) quitter 0
  callers_ok "$dir" first quitter || return 1
  one_to_tag "$dir" quitter || return 1  # the 182 and the 487 (and the CANCEL's 200)
  wait_agent a1 10; r=$?
  check_side "$dir" a1 "$r" 1 || return 1
  wait_drained "$dir" 10 || return 1
  records "$dir"
  expect_call "$dir" quitter abandoned - 487 ENTERQUEUE ABANDON || return 1
  after_restart "$dir" "$b" || return 1
}

# Every agent busy: the caller waits on music on hold (connected by the buffer server), and when
# the agent frees up it is moved to the agent by a re-INVITE; the hold server gets a BYE.
CASE_queue_music_on_hold_then_moved_to_agent() {
  local dir=$1 b r
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_queue_config "$dir" "$b" "max_wait: 30s, treatment: moh"
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 agent-answers.xml $((b + 3)) 2 60
  start_agent "$dir" moh treatment-answers.xml $((b + 6)) 1 60
  bg_caller "$dir" first caller-answered-hangs-up.xml "$b" $((b + 8)) first 0 -d 2500
  sleep 0.7
  bg_caller "$dir" held caller-treatment-moved.xml "$b" $((b + 9)) held 0 -d 500
  callers_ok "$dir" first held || return 1
  wait_agent a1 10; r=$?; check_side "$dir" a1 "$r" 2 || return 1
  wait_agent moh 10; r=$?; check_side "$dir" moh "$r" 1 || return 1
  # hold music's answer, then the re-INVITE with the agent's: one origin, the version one up
  one_sdp_session "$dir" held || return 1
  no_port_leak "$dir" held $((b + 3)) $((b + 6)) || return 1
  no_port_leak "$dir" moh $((b + 9)) "$b" || return 1
  no_port_leak "$dir" a1 $((b + 9)) "$b" $((b + 6)) || return 1
  wait_drained "$dir" 10 || return 1
  [ "$(stat "$dir" buffer_table on_treatment)" = 0 ] || { REASON="buffer on_treatment=$(stat "$dir" buffer_table on_treatment) after the calls"; return 1; }
  [ "$(stat "$dir" distributor moves)/$(stat "$dir" buffer moves)/$(stat "$dir" buffer treatments)" = "1/1/1" ] \
    || { REASON="moves (distributor/buffer) and treatments: $(stat "$dir" distributor moves)/$(stat "$dir" buffer moves)/$(stat "$dir" buffer treatments), want 1/1/1"; return 1; }
  records "$dir"
  expect_call "$dir" held completed a1 200 ENTERQUEUE "TREATMENT(moh)" "OFFER(a1)" "CONNECT(a1)" "COMPLETE(a1)" || return 1
  after_restart "$dir" "$b" || return 1
}

# The hold server does not answer (nothing listens there): after a few seconds the distributor
# gives it up, and the caller waits without it (182 only) until the agent takes the call.
CASE_queue_silent_treatment_does_not_block_the_agent() {
  local dir=$1 b r
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_queue_config "$dir" "$b" "max_wait: 30s, treatment: moh"
  # T1 100 ms: the buffer server's INVITE to the silent hold server times out (64*T1) in 6.4 s.
  sed -i 's|probe: off}|probe: off, t1: 100ms}|' "$dir/parley.yaml"
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 agent-answers.xml $((b + 3)) 2 60
  bg_caller "$dir" first caller-answered-hangs-up.xml "$b" $((b + 8)) first 0 -d 2000
  sleep 0.7
  bg_caller "$dir" held caller-queued-answered.xml "$b" $((b + 9)) held 0 -d 300
  callers_ok "$dir" first held || return 1
  wait_agent a1 10; r=$?; check_side "$dir" a1 "$r" 2 || return 1
  wait_drained "$dir" 15 || return 1
  grep -q "treatment moh did not answer" "$dir/serve.log" || { REASON="no 'treatment moh did not answer' in serve.log"; return 1; }
  records "$dir"
  expect_call "$dir" held completed a1 200 ENTERQUEUE "OFFER(a1)" "CONNECT(a1)" "COMPLETE(a1)" || return 1
}

# On music on hold, the caller hangs up: the hold server gets a BYE, the call is abandoned.
CASE_queue_caller_hangs_up_on_hold_abandoned() {
  local dir=$1 b r
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_queue_config "$dir" "$b" "max_wait: 30s, treatment: moh, no_agent: queue" false
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" moh treatment-answers.xml $((b + 6)) 1 60
  bg_caller "$dir" quitter caller-treatment-hangs-up.xml "$b" $((b + 9)) quitter 0
  callers_ok "$dir" quitter || return 1
  wait_agent moh 10; r=$?; check_side "$dir" moh "$r" 1 || return 1
  wait_drained "$dir" 10 || return 1
  records "$dir"
  expect_call "$dir" quitter abandoned - 487 ENTERQUEUE "TREATMENT(moh)" ABANDON || return 1
}

# No agent logged in, the queue waits anyway; over max wait the caller gets the queue's status.
CASE_queue_max_wait_gives_the_status() {
  local dir=$1 b
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_queue_config "$dir" "$b" "max_wait: 1s, no_agent: queue, status: 486" false
  start_serve "$dir" "$b" || return 1
  bg_caller "$dir" waiter caller-queued-expect-486.xml "$b" $((b + 9)) waiter 0
  callers_ok "$dir" waiter || return 1
  one_to_tag "$dir" waiter || return 1  # the 182 and the 486
  records "$dir"
  expect_call "$dir" waiter timeout - 486 ENTERQUEUE EXITWITHTIMEOUT || return 1
}

# No agent logged in and the queue rejects: the queue's status at once, no 182.
CASE_queue_no_agent_rejects_with_status() {
  local dir=$1 b
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_queue_config "$dir" "$b" "no_agent: reject, status: 486" false
  start_serve "$dir" "$b" || return 1
  bg_caller "$dir" rejected caller-expect-486.xml "$b" $((b + 9)) rejected 0
  callers_ok "$dir" rejected || return 1
  records "$dir"
  expect_call "$dir" rejected failed - 486 ENTERQUEUE FAILED || return 1
}

# Max length 1: the second caller overflows at once to the announcement; the first, over max
# wait, too. The announcement hangs up each after 1 s.
CASE_queue_max_length_and_max_wait_overflow_to_announcement() {
  local dir=$1 b r
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_queue_config "$dir" "$b" "max_wait: 2s, max_length: 1, no_agent: queue, overflow: announcement" false
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" announcement treatment-announces.xml $((b + 7)) 2 60
  bg_caller "$dir" first caller-treatment-hung-up.xml "$b" $((b + 8)) first 0
  sleep 0.5
  bg_caller "$dir" second caller-treatment-hung-up.xml "$b" $((b + 9)) second 0
  callers_ok "$dir" first second || return 1
  wait_agent announcement 10; r=$?; check_side "$dir" announcement "$r" 2 || return 1
  wait_drained "$dir" 10 || return 1
  records "$dir"
  expect_call "$dir" second failed - - ENTERQUEUE "EXITWITHFULL(announcement)" "TREATMENT(announcement)" || return 1
  expect_call "$dir" first timeout - - ENTERQUEUE "EXITWITHTIMEOUT(announcement)" "TREATMENT(announcement)" || return 1
}

# On music on hold past max wait, with a status as overflow: the buffer server hangs up caller
# and hold server; recorded as a timeout.
CASE_queue_max_wait_on_hold_hangs_up() {
  local dir=$1 b r
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_queue_config "$dir" "$b" "max_wait: 1500ms, treatment: moh, no_agent: queue, status: 486" false
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" moh treatment-answers.xml $((b + 6)) 1 60
  bg_caller "$dir" waiter caller-treatment-hung-up.xml "$b" $((b + 9)) waiter 0
  callers_ok "$dir" waiter || return 1
  wait_agent moh 10; r=$?; check_side "$dir" moh "$r" 1 || return 1
  wait_drained "$dir" 10 || return 1
  records "$dir"
  expect_call "$dir" waiter timeout - - ENTERQUEUE "TREATMENT(moh)" EXITWITHTIMEOUT || return 1
}

# Blind transfer (REFER, RFC 3515): a1 answers and transfers the caller to TARGET (agent a2, or
# the queue sales, whose rules choose a2); the buffer server answers 202, NOTIFYs a1 the progress
# (100, 180, 200), re-INVITEs the caller with a2's session (one origin, the next version), and
# hangs a1's leg up. The records show the TRANSFER between the two agents' CONNECTs.
# slow_first_answer XML OUT: the scenario with a 1 s pause before its first response. The
# transferring agent's SIPp takes one NOTIFY at a time, answering each before the next may come
# (a NOTIFY that arrives while SIPp is about to answer the previous one fails its call), so the
# target's progress must come well after the first NOTIFY (100 Trying, sent with the 202).
slow_first_answer() {
  awk '!done && /^  <send/ { print "  <pause milliseconds=\"1000\"/>"; done = 1 } { print }' "$HERE/$1" >"$2"
  grep -q '<pause milliseconds="1000"/>' "$2" || { REASON="could not slow $1 down"; return 1; }
}
# transfer_case DIR TARGET [A1_XML [A2_XML]]
transfer_case() {
  local dir=$1 target=$2 a1xml=${3:-agent-answers-transfers.xml} a2xml=${4:-agent-answers.xml} b r
  slow_first_answer "$a2xml" "$dir/target.xml" || return 1
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "no_answer_timeout: 3s, wrap_up: 0, heartbeat: 1s, stale_after: 10s, probe: off" 2
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 "$a1xml" $((b + 3)) 1 60 -key target "$target"
  start_agent "$dir" a2 "$dir/target.xml" $((b + 4)) 1 60
  bg_caller "$dir" caller caller-transferred.xml "$b" $((b + 9)) caller 0 -d 1500
  callers_ok "$dir" caller || return 1
  wait_agent a1 10; r=$?; check_side "$dir" a1 "$r" 1 || return 1
  wait_agent a2 10; r=$?; check_side "$dir" a2 "$r" 1 || return 1
  one_sdp_session "$dir" caller || return 1
  no_port_leak "$dir" caller $((b + 3)) $((b + 4)) || return 1
  no_port_leak "$dir" a1 $((b + 9)) "$b" $((b + 4)) || return 1
  no_port_leak "$dir" a2 $((b + 9)) "$b" $((b + 3)) || return 1
  wait_drained "$dir" 10 || return 1
  [ "$(stat "$dir" distributor transfers)/$(stat "$dir" buffer transfers_asked)" = "1/1" ] \
    || { REASON="transfers (distributor) / asked (buffer): $(stat "$dir" distributor transfers)/$(stat "$dir" buffer transfers_asked), want 1/1"; return 1; }
  records "$dir"
  expect_call "$dir" caller completed a2 200 ENTERQUEUE "OFFER(a1)" "CONNECT(a1)" "TRANSFER(a1)" "OFFER(a2)" "CONNECT(a2)" "COMPLETE(a2)" || return 1
}
CASE_transfer_blind_to_agent() { transfer_case "$1" a2; }
# The agent hangs up right after its REFER's 202 and first NOTIFY (as many phones do): the
# caller stays up, waits, and is moved to a2; nothing more is sent to the agent.
# The agent hangs up right after the first NOTIFY; the target rings 1 s after its INVITE (as in
# every transfer case), so there is no more progress to NOTIFY by then.
CASE_transfer_agent_hangs_up_at_once() { transfer_case "$1" a2 agent-transfers-and-leaves.xml; }
CASE_transfer_blind_to_queue() { transfer_case "$1" sales; }

# The target refuses (486): a1 gets a final NOTIFY with 486 and keeps the caller, who talks on
# with a1 and hangs up; a2 was offered the call once. The distributor counts the failed transfer.
CASE_transfer_refused_caller_stays_with_agent() {
  local dir=$1 b r
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "no_answer_timeout: 3s, wrap_up: 0, heartbeat: 1s, stale_after: 10s, probe: off" 2
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 agent-transfer-fails.xml $((b + 3)) 1 60 -key target a2
  slow_first_answer agent-busy-486.xml "$dir/target.xml" || return 1
  start_agent "$dir" a2 "$dir/target.xml" $((b + 4)) 1 60
  bg_caller "$dir" caller caller-answered-hangs-up.xml "$b" $((b + 9)) caller 0 -d 2500
  callers_ok "$dir" caller || return 1
  wait_agent a1 10; r=$?; check_side "$dir" a1 "$r" 1 || return 1
  wait_agent a2 10; r=$?; check_side "$dir" a2 "$r" 1 || return 1
  wait_drained "$dir" 10 || return 1
  [ "$(stat "$dir" distributor transfers_failed)/$(stat "$dir" buffer transfers_failed)" = "1/1" ] \
    || { REASON="failed transfers (distributor/buffer): $(stat "$dir" distributor transfers_failed)/$(stat "$dir" buffer transfers_failed), want 1/1"; return 1; }
  records "$dir"
  expect_call "$dir" caller completed a1 200 ENTERQUEUE "OFFER(a1)" "CONNECT(a1)" "TRANSFER(a1)" "OFFER(a2)" "RINGNOANSWER(a2)" "COMPLETE(a1)" || return 1
}

# An INVITE that requires 100rel (reliable provisionals, which the call path does not relay): 420
# Bad Extension with Unsupported: 100rel from the distributor, before any rule or agent.
CASE_caller_requires_100rel_gets_420() {
  local dir=$1 b rc n tries=25
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "" 1
  start_serve "$dir" "$b" || return 1
  run_caller "$dir" caller caller-requires-100rel-expect-420.xml "$b" $((b + 9)) "$N" 30 uri none
  rc=$?
  check_side "$dir" caller "$rc" "$N" || return 1
  while [ $tries -gt 0 ]; do
    n=$(stat "$dir" distributor bad_extensions)
    [ "$n" = "$N" ] && break
    sleep 0.2; tries=$((tries - 1))
  done
  [ "$n" = "$N" ] || { REASON="distributor bad_extensions=$n, want $N (stats.txt)"; return 1; }
  [ "$(stat "$dir" distributor handoffs_uri)" = 0 ] || { REASON="a call that requires 100rel was handed off (stats.txt)"; return 1; }
}
# A re-INVITE that requires 100rel, once the call is up: 420 from the buffer server, nothing to
# the agent (whose scenario fails on an unexpected INVITE), and the call goes on.
CASE_reinvite_requires_100rel_gets_420() {
  answered "$1" uri caller-reinvite-requires-100rel-expect-420.xml agent-answers.xml
}

# ---------------------------------------------------------------- a real softphone
# baresip (Debian's baresip-core), driven through its stdio menu with timed commands, as the caller
# or as the agent; SIPp on the other side checks the re-addressing as in every case above. Its
# audio is a sine tone (ausine needs 48 kHz stereo; PCMU is resampled), played into a file.
# baresip_config DIR NAME SIP_PORT RTP_PORT ACCOUNT -> DIR/NAME/config and accounts
baresip_config() {
  local dir=$1 name=$2 sip=$3 rtp=$4 account=$5
  mkdir -p "$dir/$name"
  cat >"$dir/$name/config" <<EOF
poll_method epoll
sip_listen $IP:$sip
net_interface $IP
module_path /usr/lib/baresip/modules
module stdio.so
module g711.so
module ausine.so
module aufile.so
module_app account.so
module_app menu.so
audio_player aufile,$dir/$name/heard.wav
audio_source ausine,440
audio_alert aufile,$dir/$name/alert.wav
ausrc_srate 48000
auplay_srate 48000
ausrc_channels 2
auplay_channels 2
rtp_ports $rtp-$((rtp + 1))
EOF
  echo "$account" >"$dir/$name/accounts"
}
# start_baresip DIR NAME SECONDS "DELAY COMMAND" ...   (background; each command DELAY seconds
# after the one before; /quit after the last)
start_baresip() {
  local dir=$1 name=$2 secs=$3 step; shift 3
  ( for step in "$@"; do sleep "${step%% *}"; echo "${step#* }"; done; sleep 1; echo "/quit"; sleep 2 ) \
    | (cd "$dir" && exec setsid timeout -k 5 "$secs" baresip -f "$dir/$name" -v >"$dir/$name.out" 2>&1) &
  local pid=$!
  BG_PIDS+=("$pid")
  eval "PID_${name//-/_}=$pid"
}
# baresip_saw DIR NAME TEXT... : each TEXT appears in NAME.out (fixed strings)
baresip_saw() {
  local dir=$1 name=$2 t; shift 2
  for t in "$@"; do
    grep -qF -- "$t" "$dir/$name.out" || { REASON="$name.out has no '$t'"; return 1; }
  done
}
need_baresip() {
  command -v baresip >/dev/null 2>&1 || { REASON="baresip not installed (apt-get install -y baresip-core; make test does)"; return 1; }
}

# softphone_calls DIR AGENT_XML URI_PARAMS "DELAY COMMAND"...: baresip, as the caller (its account
# and the URI it dials both with URI_PARAMS), dials sales after 1 s, then runs the commands; a
# SIPp agent a1 runs AGENT_XML. The call must be established and end on both sides.
softphone_calls() {
  local dir=$1 axml=$2 params=$3 b r; shift 3
  need_baresip || return 1
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "" 1
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 "$axml" $((b + 3)) 1 30 -d 2000
  baresip_config "$dir" phone $((b + 9)) $((b + 6)) "<sip:caller@$IP$params>;regint=0"
  start_baresip "$dir" phone 30 "1 /dial sip:sales@$IP:$b$params" "$@"
  wait_agent phone 20
  wait_agent a1 15; r=$?
  check_side "$dir" a1 "$r" 1 || return 1
  baresip_saw "$dir" phone "Call established: sip:sales@$IP:$b$params" "terminated" || return 1
  wait_drained "$dir" 10
}
# softphone_answers DIR CALLER_XML "DELAY COMMAND"...: baresip is agent a1 (auto-answer) and runs
# the commands; a SIPp caller runs CALLER_XML once. The call must be established and end.
softphone_answers() {
  local dir=$1 cxml=$2 b rc; shift 2
  need_baresip || return 1
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "" 1
  start_serve "$dir" "$b" || return 1
  baresip_config "$dir" a1 $((b + 3)) $((b + 6)) "<sip:a1@$IP>;regint=0;answermode=auto"
  start_baresip "$dir" a1 30 "$@"
  wait_listening $((b + 3)) udp "$PID_a1" 5 || { REASON="baresip not listening (a1.out)"; return 1; }
  run_caller "$dir" caller "$cxml" "$b" $((b + 9)) 1 20 uri none
  rc=$?
  check_side "$dir" caller "$rc" 1 || return 1
  wait_agent a1 15
  baresip_saw "$dir" a1 "Call established" "terminated" || return 1
  wait_drained "$dir" 10
}

# baresip calls the contact center, a SIPp agent answers, baresip hangs up after 3 s; the record
# says so.
CASE_softphone_caller_talks_and_hangs_up() {
  softphone_calls "$1" agent-answers.xml "" "3 /hangup" || return 1
  records "$1"
  expect_call "$1" caller completed a1 200 ENTERQUEUE "OFFER(a1)" "CONNECT(a1)" "COMPLETE(a1)"
}

# baresip calls over TCP (its account and the Request-URI say ;transport=tcp); the SIPp agent
# answers and hangs up: the agent's BYE reaches baresip over TCP, and baresip's 200 comes back.
# The agent leg stays UDP.
CASE_softphone_caller_over_tcp_agent_hangs_up() {
  softphone_calls "$1" agent-answers-hangs-up.xml ";transport=tcp" "5 /listcalls" || return 1
  if grep -q "transport=tcp" "$1/a1.messages.log"; then REASON="the agent leg names TCP (a1.messages.log): it is UDP"; return 1; fi
}

# baresip calls over TLS (RFC 3261 26; its account and the Request-URI say ;transport=tls), to
# the distributor's TLS listener, checking Parley's certificate against a CA file; the SIPp
# agent answers and hangs up: the call is set up across TLS and the agent's BYE reaches baresip
# on the TLS connection it set up. The agent leg stays UDP.
CASE_softphone_caller_over_tls_agent_hangs_up() {
  local dir=$1 b t r
  need_baresip || return 1
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  t=$(alloc_block) || { REASON="no free ports"; return 1; }
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null || { REASON="openssl could not make a certificate"; return 1; }
  write_config "$dir" "$b" "" 1
  printf 'tls: {certificate: %s, key: %s, listeners: {distributor: "%s:%s", buffer: "%s:%s"}}\n' \
    "$dir/tls.crt" "$dir/tls.key" "$IP" "$t" "$IP" $((t + 1)) >>"$dir/parley.yaml"
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 agent-answers-hangs-up.xml $((b + 3)) 1 30 -d 2000
  baresip_config "$dir" phone $((b + 9)) $((b + 6)) "<sip:caller@$IP;transport=tls>;regint=0"
  echo "sip_cafile $dir/tls.crt" >>"$dir/phone/config"
  start_baresip "$dir" phone 30 "1 /dial sip:sales@$IP:$t;transport=tls" "5 /listcalls"
  wait_agent phone 20
  wait_agent a1 15; r=$?
  check_side "$dir" a1 "$r" 1 || return 1
  baresip_saw "$dir" phone "Call established: sip:sales@$IP:$t;transport=tls" "terminated" || return 1
  if grep -q "transport=tls" "$1/a1.messages.log"; then REASON="the agent leg names TLS (a1.messages.log): it is UDP"; return 1; fi
  wait_drained "$dir" 10
}

# The tunnel as secure WebSocket (tls.tunnel): the distributor's connection to the buffer server
# is TLS, its certificate checked against tls.ca; calls handed off through it are answered.
CASE_tunnel_over_wss_answered() {
  local dir=$1 b rc rca h line
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null || { REASON="openssl could not make a certificate"; return 1; }
  write_config "$dir" "$b" "" 1
  printf 'tls: {certificate: %s, key: %s, ca: %s, tunnel: true}\n' "$dir/tls.crt" "$dir/tls.key" "$dir/tls.crt" >>"$dir/parley.yaml"
  start_serve "$dir" "$b" || return 1
  grep -q "secure WebSocket, WSS" "$dir/serve.log" || { REASON="the tunnel is not WSS (serve.log)"; return 1; }
  start_agent "$dir" a1 agent-answers.xml $((b + 3)) "$N" 60 -d 300
  run_caller "$dir" caller caller-answered-hangs-up.xml "$b" $((b + 9)) "$N" 60 tunnel none -d 300
  rc=$?
  wait_agent a1 15; rca=$?
  check_side "$dir" caller "$rc" "$N" || return 1
  check_side "$dir" a1 "$rca" "$N" || return 1
  h=$(stat "$dir" buffer handoffs_tunnel)
  [ "$h" = "$N" ] || { REASON="buffer server counted $h handoffs by tunnel, want $N"; return 1; }
  # A plain-WebSocket client gets no upgrade from a WSS listener.
  line=$(timeout -k 5 20 python3 "$ROOT/Tests/security/attack.py" forged-tunnel $((b + 2)) 2>/dev/null)
  case "$line" in *"HTTP/1.1_101"*) REASON="a plain WebSocket upgrade was taken on the WSS listener: $line"; return 1 ;; esac
  wait_drained "$dir" 10
}

# A SIPp caller reaches baresip as agent a1; baresip puts the caller on hold and takes it off
# (re-INVITEs a=sendonly, then a=sendrecv, relayed to the caller, who checks them), then the
# caller hangs up.
CASE_softphone_agent_holds_resumes() {
  softphone_answers "$1" caller-held-by-agent.xml "2.5 /hold" "1.5 /resume" "3 /listcalls" || return 1
  baresip_saw "$1" a1 "call: hold" "call: resume"
}

# baresip as agent answers and hangs up after 3 s; the SIPp caller gets the BYE re-addressed.
CASE_softphone_agent_hangs_up() { softphone_answers "$1" caller-answered-agent-hangs-up.xml "3 /hangup"; }

# shellcheck source=security-cases.sh
. "$HERE/security-cases.sh"
# shellcheck source=linphone-cases.sh
. "$HERE/linphone-cases.sh"
# shellcheck source=admin-cases.sh
. "$HERE/admin-cases.sh"

CASES=""
for enc in uri message tunnel; do
  CASES="$CASES $enc-answered-caller-hangs-up $enc-answered-agent-hangs-up $enc-caller-cancel-expect-487 $enc-agent-486-next-agent-answers $enc-agent-no-answer-next-agent-answers $enc-hold-resume-info-options-update $enc-agent-holds-resumes $enc-separate-processes"
done
CASES="$CASES uri-in-process-off uri-caller-over-tcp uri-caller-over-tcp-agent-hangs-up queue-priority-order queue-caller-abandons-while-queued queue-music-on-hold-then-moved-to-agent queue-caller-hangs-up-on-hold-abandoned queue-silent-treatment-does-not-block-the-agent queue-max-wait-gives-the-status queue-no-agent-rejects-with-status queue-max-length-and-max-wait-overflow-to-announcement queue-max-wait-on-hold-hangs-up transfer-blind-to-agent transfer-blind-to-queue transfer-agent-hangs-up-at-once transfer-refused-caller-stays-with-agent"
CASES="$CASES caller-requires-100rel-gets-420 reinvite-requires-100rel-gets-420 softphone-caller-talks-and-hangs-up softphone-agent-holds-resumes softphone-agent-hangs-up softphone-caller-over-tcp-agent-hangs-up softphone-caller-over-tls-agent-hangs-up tunnel-over-wss-answered"
CASES="$CASES config-bad-file-refused lost-bye-probe-hangs-up-agent rule-classify-raises-call-connects rule-select-agent-raises-call-connects rule-handoff-raises-call-connects agent-no-answers-go-on-break agent-wrap-up-sends-next-call-elsewhere separate-buffer-crash-frees-agent $SECURITY_CASES $LINPHONE_CASES $ADMIN_CASES"

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
