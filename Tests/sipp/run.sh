#!/usr/bin/env bash
# Tests/sipp/run.sh: SIPp on the wire, uac -> proxy -> uas on loopback, one case per expected
# outcome. The proxy is `parley proxy` (default) or Kamailio as a stand-in (bench/kamailio/proxy.cfg).
#
#   bash Tests/sipp/run.sh [--proxy parley|kamailio] [--parley PATH] [--quick] [--keep-logs] [FILTER]
#
# FILTER is an extended regex on case names. One line per case (`ok NAME` or
# `FAIL NAME: reason (logs: DIR)`); the last line is `N passed, N failed`. Exit 0 only if all passed.
# Logs go to $SIPP_LOG_DIR or a fresh /tmp/parley-sipp.XXXXXX (kept on failure or with --keep-logs).
# See docs/testing-on-the-wire.md for each case's ladder and what it expects of the proxy.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KAMCFG="$ROOT/bench/kamailio/proxy.cfg"

PROXY=parley
PARLEY="$ROOT/.build/debug/parley"
QUICK=0
KEEP=0
FILTER=""
while [ $# -gt 0 ]; do
  case "$1" in
    --proxy) PROXY=${2:-}; shift 2 ;;
    --proxy=*) PROXY=${1#*=}; shift ;;
    --parley) PARLEY=${2:-}; shift 2 ;;
    --parley=*) PARLEY=${1#*=}; shift ;;
    --quick) QUICK=1; shift ;;
    --keep-logs) KEEP=1; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) FILTER=$1; shift ;;
  esac
done
case "$PROXY" in parley|kamailio) ;; *) echo "--proxy must be parley or kamailio" >&2; exit 2 ;; esac

for tool in sipp ss timeout setsid; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing tool: $tool (apt-get install -y sip-tester iproute2 coreutils util-linux)" >&2; exit 2; }
done
if [ "$PROXY" = kamailio ] && ! command -v kamailio >/dev/null 2>&1; then
  echo "missing tool: kamailio (apt-get install -y kamailio)" >&2; exit 2
fi

LOGROOT=${SIPP_LOG_DIR:-$(mktemp -d /tmp/parley-sipp.XXXXXX)}
mkdir -p "$LOGROOT"
IP=127.0.0.1   # a case may override it with `local IP=::1`
hp() { case "$1" in *:*) echo "[$1]:$2" ;; *) echo "$1:$2" ;; esac; }   # IP PORT -> host:port

# ---------------------------------------------------------------- processes and cleanup
# Every process is started in its own session (setsid), so it and its children (Kamailio's
# workers) are stopped by process-group id; nothing is ever killed by name.
BG_PIDS=()
PORT_BASE=15060
# shellcheck source=../lib/sipp-common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/sipp-common.sh"
trap on_exit EXIT
trap 'exit 130' INT TERM

# spawn LOG EXITFILE CMD...: start CMD in its own session, output to LOG; sets SPAWN_PID. A
# watcher subshell writes CMD's exit status to EXITFILE when it ends (143 when we stop it), so a
# crash is told apart from a stop, and the shell's "Segmentation fault" note lands in LOG.
spawn() {
  local log=$1 ex=$2 pf; shift 2
  pf="$LOGROOT/.spawn.$$.$RANDOM"
  rm -f "$ex" "$pf"
  ( setsid "$@" >>"$log" 2>&1 &
    echo $! >"$pf"
    wait $!
    echo $? >"$ex" ) 2>>"$log" &
  while [ ! -s "$pf" ]; do sleep 0.02; done
  SPAWN_PID=$(cat "$pf"); rm -f "$pf"
  BG_PIDS+=("$SPAWN_PID")
}
proxy_died() { # DIR -> true when the proxy ended before the runner stopped it
  [ -s "$1/proxy.exit" ]
}
describe_exit() { # STATUS
  local st=$1
  if [ "$st" -gt 128 ] 2>/dev/null; then echo "status $st (signal $(kill -l $((st - 128)) 2>/dev/null || echo $((st - 128))))"; else echo "status $st"; fi
}

# ---------------------------------------------------------------- ports
# alloc_block (Tests/lib/sipp-common.sh) hands out free blocks of 10 ports in 15060..15999.


# ---------------------------------------------------------------- the proxy under test
# start_proxy DIR PORT TRANSPORT BRANCH_TIMEOUT_S TARGET_PORT...   (BRANCH_TIMEOUT_S "" = default)
# Sets PROXY_PID; on failure sets REASON and returns 1.
start_proxy() {
  local dir=$1 port=$2 transport=$3 bt=$4; shift 4
  local args=() i=1 t
  if [ "$PROXY" = kamailio ]; then
    for t in "$@"; do
      if [ "$transport" = tcp ]; then
        args+=(-A "TO$i=\"sip:$(hp "$IP" "$t");transport=tcp\"")
      else
        args+=(-A "TO$i=\"sip:$(hp "$IP" "$t")\"")
      fi
      i=$((i + 1))
    done
    [ -n "$bt" ] && args+=(-A "BRANCH_TIMEOUT_MS=$((bt * 1000))")
    # -DD: stay in the foreground; -E: log to stderr; 2 workers per listener (2-core box).
    spawn "$dir/proxy.log" "$dir/proxy.exit" kamailio -f "$KAMCFG" -DD -E -n 2 -m 64 -M 8 \
      -u root -g root -P "$dir/kamailio.pid" -l "udp:$(hp "$IP" "$port")" -l "tcp:$(hp "$IP" "$port")" "${args[@]}"
  else
    if [ ! -x "$PARLEY" ]; then
      REASON="parley binary not found at $PARLEY (swift build, or --parley PATH)"
      return 1
    fi
    for t in "$@"; do args+=(--to "$(hp "$IP" "$t")"); done
    [ -n "$bt" ] && args+=(--branch-timeout "$bt")
    # the SIPp load comes from one address: exempt from the per-source request rate
    spawn "$dir/proxy.log" "$dir/proxy.exit" "$PARLEY" proxy --listen "$(hp "$IP" "$port")" "${args[@]}" \
      --transport "$transport" --trusted "$IP"
  fi
  PROXY_PID=$SPAWN_PID
  echo "$PROXY (pid $PROXY_PID) on $(hp "$IP" "$port")/$transport -> $* branch-timeout=${bt:-default}" >"$dir/proxy.info"
  wait_listening "$port" "$transport" "$PROXY_PID" 10
  case $? in
    0) return 0 ;;
    2) REASON="proxy exited at start (see proxy.log: $(tail -n 3 "$dir/proxy.log" | tr '\n' ' ' | cut -c1-200))"; return 1 ;;
    *) REASON="proxy not listening on $(hp "$IP" "$port")/$transport after 10 s"; return 1 ;;
  esac
}

# ---------------------------------------------------------------- SIPp
# sipp_args NAME -> common options; every run bounded by -timeout and by `timeout` itself.
sipp_common() { # DIR NAME
  local dir=$1 name=$2
  echo -nostdin -i "$IP" -trace_stat -stf "$dir/$name.csv" -fd 5 \
    -trace_err -error_file "$dir/$name.errors.log" \
    -trace_screen -screen_file "$dir/$name.screen.log" \
    -trace_msg -message_file "$dir/$name.messages.log"
}
# start_uas DIR NAME XML PORT UAS_KEY CALLS SECONDS [extra sipp args...]   (background)
start_uas() {
  local dir=$1 name=$2 xml=$3 port=$4 key=$5 calls=$6 secs=$7; shift 7
  (cd "$dir" && exec setsid timeout -k 5 $((secs + 15)) sipp -sf "$HERE/$xml" -p "$port" \
      -m "$calls" -timeout "${secs}s" -timeout_error -recv_timeout 15000 -key uas "$key" \
      $(sipp_common "$dir" "$name") "$@" >"$dir/$name.out" 2>&1) &
  local pid=$!
  BG_PIDS+=("$pid")
  eval "PID_${name//-/_}=$pid"
  wait_listening "$port" "$UAS_PROTO" "$pid" 5 || true
}
# run_uac DIR NAME XML PROXY_PORT LOCAL_PORT CALLS RATE SECONDS [extra sipp args...]  -> exit code
# If the proxy dies meanwhile, the caller is stopped 2 s later rather than left to time out.
run_uac() {
  local dir=$1 name=$2 xml=$3 pport=$4 lport=$5 calls=$6 rate=$7 secs=$8 pid n=0; shift 8
  (cd "$dir" && exec setsid timeout -k 5 $((secs + 15)) sipp "$(hp "$IP" "$pport")" -sf "$HERE/$xml" -p "$lport" \
      -m "$calls" -r "$rate" -rp 1000 -timeout "${secs}s" -timeout_error -recv_timeout 15000 \
      -key uas caller $(sipp_common "$dir" "$name") "$@" >"$dir/$name.out" 2>&1) &
  pid=$!
  BG_PIDS+=("$pid")
  while kill -0 "$pid" 2>/dev/null; do
    if proxy_died "$dir"; then
      n=$((n + 1))
      [ $n -ge 10 ] && { stop_pid "$pid"; return 124; }
    fi
    sleep 0.2
  done
  wait "$pid"
}
# wait_uas NAME SECONDS -> exit code of that SIPp (124 if it had to be stopped)
wait_uas() {
  local name=$1 secs=$2 pidvar="PID_${1//-/_}" pid i
  pid=${!pidvar}
  for i in $(seq $((secs * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    [ -n "${CASE_DIR:-}" ] && proxy_died "$CASE_DIR" && break   # no point waiting
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then stop_pid "$pid"; return 124; fi
  wait "$pid"
}

# csv FILE FIELD -> the field's value in the last line of a SIPp -trace_stat CSV

# check_side DIR NAME RC EXPECTED_CALLS STRICT -> sets REASON, returns 1 when the side failed.
# STRICT=1 also demands zero unexpected, out-of-call and dead-call messages.
check_side() {
  local dir=$1 name=$2 rc=$3 want=$4 strict=$5 f="$1/$2.csv" ok failed unexp ooc dead
  ok=$(csv "$f" 'SuccessfulCall(C)'); failed=$(csv "$f" 'FailedCall(C)')
  unexp=$(csv "$f" 'FailedUnexpectedMessage(C)'); ooc=$(csv "$f" 'OutOfCallMsgs(C)')
  dead=$(csv "$f" 'DeadCallMsgs(C)')
  echo "$name: rc=$rc successful=$ok failed=$failed unexpected=$unexp out-of-call=$ooc dead-call=$dead retrans=$(csv "$f" 'Retransmissions(C)')" >>"$dir/summary.txt"
  if [ "$ok" != "$want" ] || [ "$failed" != 0 ]; then
    REASON="$name: $ok/$want calls succeeded, $failed failed (sipp rc $rc; $name.errors.log)"
    return 1
  fi
  if [ "$strict" = 1 ] && { [ "$unexp" != 0 ] || [ "$ooc" != 0 ] || [ "$dead" != 0 ]; }; then
    REASON="$name: unexpected=$unexp out-of-call=$ooc dead-call=$dead messages (want 0)"
    return 1
  fi
  if [ "$rc" != 0 ]; then
    REASON="$name: sipp exited $rc ($name.out)"
    return 1
  fi
  return 0
}

# ---------------------------------------------------------------- cases
# Each case: CASE_<name> DIR; returns 0 or sets REASON and returns 1.
if [ "$QUICK" = 1 ]; then
  N_BASIC=300; N_LOSS=100; N_SMALL=5; N_V6=50
else
  N_BASIC=2000; N_LOSS=300; N_SMALL=20; N_V6=200
fi

basic_call() { # DIR TRANSPORT CALLS RATE LOSS
  local dir=$1 transport=$2 calls=$3 rate=$4 loss=$5 b tflag=() lflag=() strict=1 secs rc_uac rc_uas
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  [ "$transport" = tcp ] && tflag=(-t t1)
  if [ "$loss" != 0 ]; then lflag=(-lost "$loss"); strict=0; fi
  secs=$(( calls / rate + 60 ))
  start_proxy "$dir" "$b" "$transport" "" $((b + 1)) || return 1
  UAS_PROTO=$transport start_uas "$dir" uas uas-answer-200.xml $((b + 1)) callee "$calls" "$secs" "${tflag[@]}" "${lflag[@]}"
  run_uac "$dir" uac uac-expect-200.xml "$b" $((b + 9)) "$calls" "$rate" "$secs" -d 100 "${tflag[@]}" "${lflag[@]}"
  rc_uac=$?
  wait_uas uas 15; rc_uas=$?
  check_side "$dir" uac "$rc_uac" "$calls" "$strict" || return 1
  check_side "$dir" uas "$rc_uas" "$calls" "$strict" || return 1
}

CASE_udp_uac_expect_200() { basic_call "$1" udp "$N_BASIC" 200 0; }
CASE_tcp_uac_expect_200() { basic_call "$1" tcp "$N_BASIC" 200 0; }
CASE_udp_loss_uac_expect_200() { basic_call "$1" udp "$N_LOSS" 50 3; }
CASE_udp6_uac_expect_200() { local IP=::1; basic_call "$1" udp "$N_V6" 100 0; }

# two-party case with one callee scenario: DIR UAC_XML UAS_XML CALLS RATE BRANCH_TIMEOUT
two_party() {
  local dir=$1 uacxml=$2 uasxml=$3 calls=$4 rate=$5 bt=$6 b rc_uac rc_uas
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  start_proxy "$dir" "$b" udp "$bt" $((b + 1)) || return 1
  UAS_PROTO=udp start_uas "$dir" uas "$uasxml" $((b + 1)) callee "$calls" 60
  run_uac "$dir" uac "$uacxml" "$b" $((b + 9)) "$calls" "$rate" 60
  rc_uac=$?
  wait_uas uas 10; rc_uas=$?
  check_side "$dir" uac "$rc_uac" "$calls" 1 || return 1
  check_side "$dir" uas "$rc_uas" "$calls" 1 || return 1
}

CASE_uac_cancel_expect_487() { two_party "$1" uac-cancel-expect-487.xml uas-ring-expect-cancel.xml "$N_SMALL" 10 ""; }
CASE_uac_expect_486() { two_party "$1" uac-expect-486.xml uas-answer-486.xml "$N_SMALL" 10 ""; }
CASE_uac_expect_408_no_answer() { two_party "$1" uac-expect-408-no-answer.xml uas-ring-expect-cancel.xml 5 5 2; }

CASE_uac_max_forwards_0_expect_483() {
  local dir=$1 b rc1 rc2 n=5
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  start_proxy "$dir" "$b" udp "" $((b + 1)) || return 1
  # a callee that must hear nothing at all
  UAS_PROTO=udp start_uas "$dir" uas uas-answer-200.xml $((b + 1)) callee 1 60
  run_uac "$dir" uac-invite uac-max-forwards-0-expect-483.xml "$b" $((b + 9)) "$n" 10 30
  rc1=$?
  run_uac "$dir" uac-options uac-options-max-forwards-0-expect-483.xml "$b" $((b + 8)) "$n" 10 30
  rc2=$?
  sleep 1
  stop_pid "$PID_uas"
  check_side "$dir" uac-invite "$rc1" "$n" 1 || return 1
  check_side "$dir" uac-options "$rc2" "$n" 1 || return 1
  if grep -q "message received" "$dir/uas.messages.log" 2>/dev/null; then
    REASON="the callee received a request with Max-Forwards 0 behind the proxy (uas.messages.log)"
    return 1
  fi
}

CASE_uac_fork_third_answers() {
  local dir=$1 b n=5 rc rc1 rc2 rc3
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  start_proxy "$dir" "$b" udp 2 $((b + 1)) $((b + 2)) $((b + 3)) || return 1
  UAS_PROTO=udp start_uas "$dir" uas1-busy uas-answer-486.xml $((b + 1)) first "$n" 90
  UAS_PROTO=udp start_uas "$dir" uas2-no-answer uas-ring-expect-cancel.xml $((b + 2)) second "$n" 90
  UAS_PROTO=udp start_uas "$dir" uas3-answers uas-answer-200.xml $((b + 3)) third "$n" 90
  run_uac "$dir" uac uac-fork-third-answers.xml "$b" $((b + 9)) "$n" 5 90 -d 100
  rc=$?
  wait_uas uas1-busy 10; rc1=$?
  wait_uas uas2-no-answer 10; rc2=$?
  wait_uas uas3-answers 10; rc3=$?
  check_side "$dir" uac "$rc" "$n" 1 || return 1
  check_side "$dir" uas1-busy "$rc1" "$n" 1 || return 1
  check_side "$dir" uas2-no-answer "$rc2" "$n" 1 || return 1
  check_side "$dir" uas3-answers "$rc3" "$n" 1 || return 1
}

# Sequential forking with a short branch timer (the SIPProxy core `parley registrar` forks
# with): the first target stays silent past the timer, the second answers. The first target's
# INVITE is retransmitted no more once given up on (a retransmission reaching it after a restart
# would ring a ghost call), and its late 180 gets a CANCEL (RFC 3261 16.8, 16.7 step 10).
CASE_uac_fork_given_up_branch_cancelled() {
  local dir=$1 b n=3 rc rc1 rc2 invites
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  start_proxy "$dir" "$b" udp 1 $((b + 1)) $((b + 2)) || return 1
  UAS_PROTO=udp start_uas "$dir" uas1-late uas-late-ring-expect-cancel.xml $((b + 1)) first "$n" 90
  UAS_PROTO=udp start_uas "$dir" uas2-answers uas-answer-200.xml $((b + 2)) second "$n" 90
  run_uac "$dir" uac uac-expect-200.xml "$b" $((b + 9)) "$n" 1 90 -d 100
  rc=$?
  wait_uas uas1-late 15; rc1=$?
  wait_uas uas2-answers 10; rc2=$?
  check_side "$dir" uac "$rc" "$n" 1 || return 1
  check_side "$dir" uas2-answers "$rc2" "$n" 1 || return 1
  check_side "$dir" uas1-late "$rc1" "$n" 1 || return 1
  # T1 500 ms, branch timer 1 s: the INVITE at 0 and 0.5 s, none after (3.5 s would make 4).
  invites=$(grep -c "^INVITE sip:" "$dir/uas1-late.messages.log")
  [ "$invites" -le $((n * 2)) ] || { REASON="the given-up target got $invites INVITEs for $n calls: still retransmitted after the branch timer (uas1-late.messages.log)"; return 1; }
}

# The registrar: `parley registrar` with digest authentication (SIPp computes the credentials).
start_registrar() { # DIR PORT -> sets PROXY_PID; on failure sets REASON and returns 1
  local dir=$1 port=$2
  spawn "$dir/proxy.log" "$dir/proxy.exit" "$PARLEY" registrar --listen "$(hp "$IP" "$port")" \
    --realm example.com --user alice:s3cret --algorithm MD5 --trusted 127.0.0.1   # SIPp 3.6 answers MD5 only; the replay case registers 10,000 times
  PROXY_PID=$SPAWN_PID
  wait_listening "$port" udp "$PROXY_PID" 10 || { REASON="registrar not listening (proxy.log)"; return 1; }
}
CASE_register_digest_expect_200() {
  local dir=$1 b rc1 rc2
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  start_registrar "$dir" "$b" || return 1
  run_uac "$dir" uac-register uac-register-digest-expect-200.xml "$b" $((b + 9)) "$N_SMALL" 10 30 -au alice -ap s3cret
  rc1=$?
  run_uac "$dir" uac-wrong uac-register-wrong-password-expect-403.xml "$b" $((b + 8)) 3 10 30 -au alice -ap guess
  rc2=$?
  check_side "$dir" uac-register "$rc1" "$N_SMALL" 1 || return 1
  check_side "$dir" uac-wrong "$rc2" 3 1 || return 1
}

# A REGISTER captured on the wire and replayed, with the attacker's Contact, after 10,000 other
# registrations (the nonce-count table used to be emptied after 10,000): a new challenge.
CASE_register_replay_after_10000_challenged() {
  local dir=$1 b line
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  start_registrar "$dir" "$b" || return 1
  line=$(timeout -k 5 120 python3 "$ROOT/Tests/security/register.py" replay "$b" 127.0.0.1 "127.0.0.1:$b" alice s3cret 10000 2>"$dir/replay.err")
  echo "$line" >"$dir/replay.txt"
  case "$line" in "first=200 registered=10000 replay_answer=401") return 0 ;; esac
  REASON="replay: ${line:-nothing} (want first=200 registered=10000 replay_answer=401)"
  return 1
}

# 1,000 password guesses from one address: slowed, then locked out (the right password from
# there is refused too); the real agent, from its own address, still registers.
CASE_register_password_guessing_locked_out() {
  local dir=$1 b line agent
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  start_registrar "$dir" "$b" || return 1
  line=$(timeout -k 5 150 python3 "$ROOT/Tests/security/register.py" guess "$b" 127.0.0.3 "127.0.0.1:$b" alice 1000 s3cret 2>"$dir/guess.err")
  echo "$line" >"$dir/guess.txt"
  case "$line" in *"answered_403=1000 answered_other=0 "*"right_password_from_there=403") ;;
    *) REASON="guessing: ${line:-nothing}"; return 1 ;; esac
  agent=$(timeout -k 5 30 python3 "$ROOT/Tests/security/register.py" contact "$b" 127.0.0.1 "127.0.0.1:$b" alice s3cret 127.0.0.1 2>>"$dir/guess.err")
  [ "$agent" = "answer=200" ] || { REASON="the real agent from its own address: ${agent:-nothing}"; return 1; }
}

CASES="udp-uac-expect-200 tcp-uac-expect-200 udp-loss-uac-expect-200 uac-cancel-expect-487
uac-expect-486 uac-expect-408-no-answer uac-max-forwards-0-expect-483 uac-fork-third-answers
uac-fork-given-up-branch-cancelled udp6-uac-expect-200"
# Registrar cases run against Parley only (the Kamailio stand-in is a plain proxy).
[ "$PROXY" = parley ] && CASES="$CASES register-digest-expect-200 register-replay-after-10000-challenged register-password-guessing-locked-out"

# ---------------------------------------------------------------- main
PASSED=0
FAILED=0
echo "# proxy: $PROXY$([ "$PROXY" = parley ] && echo " ($PARLEY)"); logs: $LOGROOT"
if [ "$PROXY" = parley ] && [ -x "$PARLEY" ] && ! "$PARLEY" proxy --help >/dev/null 2>&1; then
  echo "# note: '$PARLEY proxy --help' fails: the proxy command may not exist yet"
fi
for name in $CASES; do
  if [ -n "$FILTER" ] && ! echo "$name" | grep -Eq -- "$FILTER"; then continue; fi
  dir="$LOGROOT/$name"
  rm -rf "$dir"; mkdir -p "$dir"
  REASON=""
  started=$(date +%s)
  PROXY_PID=""
  CASE_DIR=$dir
  "CASE_${name//-/_}" "$dir"
  rc=$?
  if [ -n "$PROXY_PID" ] && proxy_died "$dir"; then
    # whatever else happened, a proxy that ended on its own during the case is a failure
    REASON="proxy exited during the case with $(describe_exit "$(cat "$dir/proxy.exit")") (proxy.log)${REASON:+; then $REASON}"
    rc=1
  fi
  stop_all
  took=$(( $(date +%s) - started ))
  echo "$name: rc=$rc ${took}s ${REASON:-}" >>"$LOGROOT/timings.txt"
  if [ $rc = 0 ]; then
    echo "ok $name"
    PASSED=$((PASSED + 1))
  else
    echo "FAIL $name: ${REASON:-failed} (logs: $dir)"
    # what CI shows of the logs, which die with its machine: each side's counts, the proxy's
    # last lines and the first errors SIPp logged
    { cat "$dir/summary.txt" 2>/dev/null; tail -n 3 "$dir/proxy.log" 2>/dev/null
      for f in "$dir"/*.errors.log; do [ -s "$f" ] && { echo "${f##*/}:"; head -n 12 "$f"; }; done
    } | cut -c1-240 | sed 's/^/  | /'
    FAILED=$((FAILED + 1))
  fi
done
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
