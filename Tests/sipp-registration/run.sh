#!/usr/bin/env bash
# Tests/sipp-registration/run.sh: Parley's registration role on the wire (issue 7). SIPp agents
# register through `parley serve` (registration role, distributor, buffer server); the upstream
# registrar is `parley registrar` and Kamailio (bench/kamailio/registrar.cfg, registrar + usrloc +
# path + tm); SIPp asks the upstream what each address holds (a REGISTER with no Contact).
#
#   bash Tests/sipp-registration/run.sh [--registrar parley|kamailio|both] [--parley PATH] [--keep-logs] [FILTER]
#
# Cases, each against each registrar:
#   fanout-reorder  agents register through Parley; the upstream then holds, for each skill
#                   address, Parley at q 1.0 and each agent at 0.9 x the rule's q (and the
#                   treatment system under its own address); a rule change re-orders the q-values.
#   drill           caller -> upstream proxy -> sip:sales@: Parley up: through the distributor and
#                   buffer server; Parley killed (SIGKILL): straight to the highest-q agent (486),
#                   then the next; Parley restarted: through Parley again.
#   bad-input       wrong password 403, replayed nonce 401, unknown Contact scheme 400, huge
#                   Expires cut to 3600, Expires 0 removes the agent's bindings; upstream answering
#                   500 -> 500, upstream down -> 504; each logged, and no binding lost.
# One line per case (`ok NAME` or `FAIL NAME: reason (logs: DIR)`); the last line is
# `N passed, N failed`. Exit 0 only if all passed. Logs: $SIPP_LOG_DIR or /tmp/parley-sipp-reg.XXXXXX
# (kept on failure or with --keep-logs). See docs/registration.md.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
KAMCFG="$ROOT/bench/kamailio/registrar.cfg"
WRONG_XML="$ROOT/Tests/sipp/uac-register-wrong-password-expect-403.xml"
UAS200="$ROOT/Tests/sipp/uas-answer-200.xml"
UAS486="$ROOT/Tests/sipp/uas-answer-486.xml"

REGISTRARS="parley kamailio"
PARLEY="$ROOT/.build/debug/parley"
KEEP=0
FILTER=""
while [ $# -gt 0 ]; do
  case "$1" in
    --registrar) case "${2:-}" in both) REGISTRARS="parley kamailio" ;; *) REGISTRARS=${2:-} ;; esac; shift 2 ;;
    --parley) PARLEY=${2:-}; shift 2 ;;
    --keep-logs) KEEP=1; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option: $1" >&2; exit 2 ;;
    *) FILTER=$1; shift ;;
  esac
done
for r in $REGISTRARS; do
  case "$r" in parley|kamailio) ;; *) echo "--registrar must be parley, kamailio or both" >&2; exit 2 ;; esac
done
for tool in sipp ss timeout setsid; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing tool: $tool (apt-get install -y sip-tester iproute2 coreutils util-linux)" >&2; exit 2; }
done
case " $REGISTRARS " in *" kamailio "*)
  command -v kamailio >/dev/null 2>&1 || { echo "missing tool: kamailio (apt-get install -y kamailio)" >&2; exit 2; } ;;
esac
[ -x "$PARLEY" ] || { echo "parley binary not found at $PARLEY (swift build, or --parley PATH)" >&2; exit 2; }

LOGROOT=${SIPP_LOG_DIR:-$(mktemp -d /tmp/parley-sipp-reg.XXXXXX)}
mkdir -p "$LOGROOT"
IP=127.0.0.1
DOMAIN=cc.test
BG_PIDS=()
PORT_BASE=18060
# shellcheck source=../lib/sipp-common.sh
. "$HERE/../lib/sipp-common.sh"
trap on_exit EXIT
trap 'exit 130' INT TERM

# spawn LOG CMD...: CMD in its own session, output to LOG; sets SPAWN_PID.
spawn() {
  local log=$1; shift
  setsid "$@" >>"$log" 2>&1 &
  SPAWN_PID=$!
  BG_PIDS+=("$SPAWN_PID")
}

# ---------------------------------------------------------------- the pieces
# Ports of a case's block B: B upstream, B+1 distributor, B+2 buffer, B+3 registration role,
# B+4 alice, B+5 bob, B+6 caller, B+7 queries, B+8 treatment (moh), B+9 other agents' clients.
ports() { # BLOCK
  UP=$1; DIST=$(($1 + 1)); BUF=$(($1 + 2)); REG=$(($1 + 3)); ALICE=$(($1 + 4)); BOB=$(($1 + 5))
  CALLER=$(($1 + 6)); QUERY=$(($1 + 7)); MOH=$(($1 + 8)); OTHER=$(($1 + 9))
}

# start_upstream DIR KIND -> UP_PID (the registrar and the proxy in front of it, on $UP)
start_upstream() {
  local dir=$1 kind=$2
  if [ "$kind" = kamailio ]; then
    spawn "$dir/upstream.log" kamailio -f "$KAMCFG" -DD -E -n 2 -m 64 -M 8 -u root -g root -P "$dir/kamailio.pid" \
      -l "udp:$IP:$UP" -A 'AUTH_PASSWORD="up-pw"' -A "BRANCH_TIMEOUT_MS=2000"
  else
    spawn "$dir/upstream.log" "$PARLEY" registrar --listen "$IP:$UP" --realm "$DOMAIN" --user parley:up-pw --algorithm MD5 --trusted "$IP" \
      --branch-timeout 2 --min-expires 10
  fi
  UP_PID=$SPAWN_PID
  wait_listening "$UP" udp "$UP_PID" 10 || { REASON="upstream ($kind) not listening on $UP (upstream.log)"; return 1; }
}

# case_tls_upstream DIR KIND: Kamailio's TLS listener as the upstream registrar (its tls module,
# a certificate made here): Parley forwards alice's registration and registers the fan-out over
# TLS, checking Kamailio's certificate against it; the bindings are read back over UDP. Then bob,
# a real softphone (baresip), registers over TLS to Parley's own TLS listener, checking Parley's
# certificate: TLS on both hops, and bob's TLS contact in the fan-out.
case_tls_upstream() {
  local dir=$1 kind=$2 b t
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  t=$(alloc_block) || { REASON="no free ports"; return 1; }
  ports "$b"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$dir/upstream.key" -out "$dir/upstream.crt" 2>/dev/null || { REASON="openssl could not make a certificate"; return 1; }
  write_config "$dir"
  sed -i "s|  upstream: \"$IP:$UP\"|  upstream: \"$IP:$t\"\n  upstream_transport: tls|" "$dir/parley.yaml"
  # Parley's own TLS listener for agents (port t+1) shows the same test certificate
  printf 'tls: {certificate: %s, key: %s, ca: %s, listeners: {registration: "%s:%s"}}\n' \
    "$dir/upstream.crt" "$dir/upstream.key" "$dir/upstream.crt" "$IP" $((t + 1)) >>"$dir/parley.yaml"
  grep -q "upstream_transport: tls" "$dir/parley.yaml" || { REASON="could not point parley.yaml at the TLS upstream"; return 1; }
  spawn "$dir/upstream.log" kamailio -f "$KAMCFG" -DD -E -n 2 -m 64 -M 8 -u root -g root -P "$dir/kamailio.pid" \
    -l "udp:$IP:$UP" -l "tls:$IP:$t" -A 'AUTH_PASSWORD="up-pw"' -A "BRANCH_TIMEOUT_MS=2000" \
    -A "TLS_CERT=\"$dir/upstream.crt\"" -A "TLS_KEY=\"$dir/upstream.key\""
  UP_PID=$SPAWN_PID
  wait_listening "$t" tcp "$UP_PID" 10 || { REASON="Kamailio's TLS listener not up on $t (upstream.log)"; return 1; }
  start_parley "$dir" || return 1
  agent_register "$dir" alice a-pw "$ALICE" || return 1
  expect_bindings "$dir" sales "sip:sales@$IP:$DIST q=1;sip:alice@$IP:$ALICE q=0.9" || return 1
  [ -n "$(ss -Htn state established "( dport = :$t )" 2>/dev/null)" ] \
    || { REASON="no TLS connection from Parley to Kamailio's port $t"; return 1; }
  command -v baresip >/dev/null 2>&1 || return 0   # the registration suite runs without baresip too
  mkdir -p "$dir/bob"
  printf '%s\n' "poll_method epoll" "sip_listen $IP:$BOB" "net_interface $IP" "sip_cafile $dir/upstream.crt" \
    "module_path /usr/lib/baresip/modules" "module stdio.so" "module g711.so" "module_app account.so" \
    "module_app menu.so" >"$dir/bob/config"
  echo "<sip:bob@$DOMAIN;transport=tls>;auth_pass=b-pw;outbound=\"sip:$IP:$((t + 1));transport=tls\";regint=600" >"$dir/bob/accounts"
  ( sleep 6; echo "/quit"; sleep 2 ) | (cd "$dir" && exec setsid timeout -k 5 20 baresip -f "$dir/bob" -v >"$dir/bob.out" 2>&1) &
  BG_PIDS+=("$!")
  local i got=""
  for i in $(seq 20); do
    got=$(bindings "$dir" "query-support" support | paste -sd';' -)
    case "$got" in *"transport=tls"*) break ;; esac
    sleep 0.5
  done
  case "$got" in *"transport=tls"*) ;; *) REASON="bob (baresip over TLS) is not in support's fan-out: '$got' (bob.out)"; return 1 ;; esac
}

# write_config DIR: parley.yaml and a copy of the suite's rules (the drill and reorder edit it).
write_config() {
  local dir=$1
  mkdir -p "$dir/rules"
  cp "$HERE/rules/init.lua" "$HERE/rules/order.lua" "$dir/rules/"
  cat >"$dir/parley.yaml" <<EOF
rules: rules
listeners: {distributor: "$IP:$DIST", buffer: "$IP:$BUF"}
timers: {no_answer_timeout: 5s, probe: off, t1: 100ms}
skills: [sales, support]
treatments: {moh: "sip:moh@$IP:$MOH"}
records: {database: off}
# The configured contacts lead nowhere: calls reach the agents at the contacts they registered.
agents:
  - {id: alice, skills: [sales], contact: "sip:alice@$IP:$OTHER"}
  - {id: bob, skills: [sales, support], contact: "sip:bob@$IP:$OTHER"}
registration:
  listen: "$IP:$REG"
  domain: $DOMAIN
  algorithm: MD5        # the agents are SIPp 3.6, which answers MD5 only
  upstream: "$IP:$UP"
  upstream_user: parley
  upstream_password: up-pw
  min_expires: 10
  upstream_timeout: 2s
  reorder_interval: 200ms
  database: registrations.sqlite
  credentials: {alice: a-pw, bob: b-pw}
EOF
}

# start_parley DIR [LOGNAME] -> PARLEY_PID
start_parley() {
  local dir=$1 log=${2:-parley.log}
  (cd "$dir" && exec setsid "$PARLEY" serve --config parley.yaml) >>"$dir/$log" 2>&1 &
  PARLEY_PID=$!
  BG_PIDS+=("$PARLEY_PID")
  wait_listening "$REG" udp "$PARLEY_PID" 10 || { REASON="parley serve not listening on $REG ($log)"; return 1; }
}

# sipp_run DIR NAME XML TARGET_PORT LOCAL_PORT [args...] -> SIPp's exit status (one call, bounded)
sipp_run() {
  local dir=$1 name=$2 xml=$3 target=$4 lport=$5; shift 5
  (cd "$dir" && exec timeout -k 5 40 sipp "$IP:$target" -sf "$xml" -p "$lport" -i "$IP" -m 1 -nostdin \
      -timeout 30s -timeout_error -recv_timeout 20000 -key domain "$DOMAIN" -auth_uri "$DOMAIN" \
      -trace_msg -message_file "$dir/$name.messages.log" -trace_err -error_file "$dir/$name.errors.log" \
      -trace_stat -stf "$dir/$name.csv" "$@" >"$dir/$name.out" 2>&1)
}

# agent_register DIR AGENT PASSWORD PORT [EXPIRES] -> 0 when the agent got its 200
agent_register() {
  local dir=$1 agent=$2 pw=$3 port=$4 expires=${5:-600}
  sipp_run "$dir" "register-$agent-$expires" "$HERE/uac-agent-register-expect-200.xml" "$REG" "$port" \
    -key agent "$agent" -key expires "$expires" -au "$agent" -ap "$pw" \
    || { REASON="$agent's REGISTER (Expires $expires) through Parley did not get its 200 (register-$agent-$expires.*)"; return 1; }
}

# bindings DIR NAME AOR_USER: what the upstream holds for sip:AOR_USER@DOMAIN, one
# "contact q=Q" line each (q as %g: 1, 0.9, 0.45), highest q first.
bindings() {
  local dir=$1 name=$2 user=$3 f="$1/$2.messages.log"
  rm -f "$f"
  sipp_run "$dir" "$name" "$HERE/uac-register-query-expect-200.xml" "$UP" "$QUERY" -key agent "$user" -au parley -ap up-pw \
    || { echo "query-failed"; return 1; }
  awk '/^SIP\/2\.0 200/ { grab = 1; lines = ""; next } /^-----/ { if (grab) last = lines; grab = 0 }
       grab && tolower($0) ~ /^(contact|m):/ { sub(/^[^:]*: */, ""); lines = lines $0 "," }
       END { if (grab) last = lines; print last }' "$f" | tr ',' '\n' |
    awk 'match($0, /<[^>]*>/) { uri = substr($0, RSTART + 1, RLENGTH - 2); q = 1
         if (match($0, /;q=[0-9.]+/)) q = substr($0, RSTART + 3, RLENGTH - 3)
         printf "%s %s q=%g\n", q, uri, q }' | sort -s -k1,1gr | cut -d' ' -f2-
}

# expect_bindings DIR USER EXPECTED (lines "contact q=Q" joined by ';') [SECONDS] -> waits for it
expect_bindings() {
  local dir=$1 user=$2 want=$3 secs=${4:-6} got="" i=0
  while [ $i -lt $((secs * 2)) ]; do
    got=$(bindings "$dir" "query-$user" "$user" | paste -sd';' -)
    [ "$got" = "$want" ] && { echo "$user: $got" >>"$dir/summary.txt"; return 0; }
    sleep 0.5
    i=$((i + 1))
  done
  REASON="upstream holds for sip:$user@$DOMAIN: '$got'; expected '$want'"
  return 1
}

# start_agents DIR: alice answers 200, bob 486, for every call of the case.
start_agents() {
  local dir=$1
  (cd "$dir" && exec setsid timeout -k 5 90 sipp -sf "$UAS200" -p "$ALICE" -i "$IP" -nostdin -timeout 80s -key uas alice \
      -trace_msg -message_file "$dir/uas-alice.messages.log" -trace_stat -stf "$dir/uas-alice.csv" -fd 1 >"$dir/uas-alice.out" 2>&1) &
  BG_PIDS+=("$!"); ALICE_PID=$!
  (cd "$dir" && exec setsid timeout -k 5 90 sipp -sf "$UAS486" -p "$BOB" -i "$IP" -nostdin -timeout 80s -key uas bob \
      -trace_msg -message_file "$dir/uas-bob.messages.log" >"$dir/uas-bob.out" 2>&1) &
  BG_PIDS+=("$!"); BOB_PID=$!
  wait_listening "$ALICE" udp "$ALICE_PID" 5 && wait_listening "$BOB" udp "$BOB_PID" 5 || { REASON="SIPp agents did not start"; return 1; }
}

# invites FILE -> the top Via port of every INVITE received, one a line
invites() {
  [ -f "$1" ] || return 0
  awk '/^INVITE / { want = 1; next } want && /^Via:/ { n = split($0, a, /[ ;]/); for (i = 1; i <= n; i++) if (a[i] ~ /:[0-9]+$/) { sub(/.*:/, "", a[i]); print a[i]; break } want = 0 }' "$1"
}

call_sales() { # DIR NAME -> 0 when the caller's call succeeded
  sipp_run "$1" "$2" "$HERE/uac-call-address-expect-200.xml" "$UP" "$CALLER" -s sales \
    || { REASON="$2: the call to sip:sales@$DOMAIN through the upstream failed ($2.*)"; return 1; }
}

# replay DIR: sends again the authenticated REGISTER of replay.messages.log (same nonce, same
# nonce count) as a new transaction (new branch, next CSeq) from a bash UDP socket; the answer
# must be a fresh 401.
replay() {
  local dir=$1 msg answer=""
  msg=$(awk '/^-----/ { if (inreg && auth) { print buf; exit } inreg = 0 } /^REGISTER / { inreg = 1; auth = 0; buf = "" }
             inreg { buf = buf $0 "\n"; if ($0 ~ /^Authorization:/) auth = 1 }' "$dir/replay.messages.log" | tr -d '\r' |
        sed -e 's/;branch=[^;]*/;branch=z9hG4bKreplay;rport/' -e 's/^CSeq: \([0-9]*\)/CSeq: 9\1/' | sed '/^$/d')
  [ -n "$msg" ] || { REASON="no authenticated REGISTER in replay.messages.log"; return 1; }
  printf '%s\n' "$msg" >"$dir/replay.sent.txt"
  exec 3<>"/dev/udp/$IP/$REG" || { REASON="cannot open a UDP socket to $REG"; return 1; }
  printf '%s\r\n\r\n' "$(printf '%s\n' "$msg" | sed 's/$/\r/' | sed '$ s/\r$//')" >&3   # CRLF line ends
  # One read takes one whole datagram (bash's read would take one byte of it).
  answer=$(timeout 5 dd bs=65536 count=1 status=none <&3 | head -n 1 | tr -d '\r')
  exec 3<&-
  echo "replayed REGISTER answered: $answer" >>"$dir/summary.txt"
  case "$answer" in "SIP/2.0 401"*) return 0 ;; esac
  REASON="a replayed nonce and nonce count got '${answer:-no answer}', not 401 (replay.sent.txt)"
  return 1
}

# ---------------------------------------------------------------- cases
case_fanout_reorder() { # DIR KIND
  local dir=$1 kind=$2 b
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  ports "$b"
  write_config "$dir"
  start_upstream "$dir" "$kind" || return 1
  start_parley "$dir" || return 1
  expect_bindings "$dir" moh "sip:moh@$IP:$DIST q=1;sip:moh@$IP:$MOH q=0.9" || return 1
  agent_register "$dir" alice a-pw "$ALICE" || return 1
  agent_register "$dir" bob b-pw "$BOB" || return 1
  # The rule lists bob (1.0 -> 0.9) before alice (0.5 -> 0.45); support is bob's alone.
  expect_bindings "$dir" sales "sip:sales@$IP:$DIST q=1;sip:bob@$IP:$BOB q=0.9;sip:alice@$IP:$ALICE q=0.45" || return 1
  expect_bindings "$dir" support "sip:support@$IP:$DIST q=1;sip:bob@$IP:$BOB q=0.9" || return 1
  # Each agent's own address holds its contact (reached through Parley's Path while it is up).
  expect_bindings "$dir" alice "sip:alice@$IP:$ALICE q=1" || return 1
  # A rule change (the watcher reloads it) re-orders the q-values upstream.
  echo 'return { "alice", "bob" }' >"$dir/rules/order.lua"
  expect_bindings "$dir" sales "sip:sales@$IP:$DIST q=1;sip:alice@$IP:$ALICE q=0.9;sip:bob@$IP:$BOB q=0.45" 8 || return 1
  "$PARLEY" registrations --database "$dir/registrations.sqlite" >"$dir/registrations.txt" 2>&1
  grep -Eq "sip:sales@$DOMAIN +sip:bob@$IP:$BOB +agent:bob +0\.5 +0\.45" "$dir/registrations.txt" \
    || { REASON="parley registrations does not show bob at rule q 0.5, q 0.45 (registrations.txt)"; return 1; }
}

case_drill() { # DIR KIND
  local dir=$1 kind=$2 b before after
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  ports "$b"
  write_config "$dir"
  start_upstream "$dir" "$kind" || return 1
  start_parley "$dir" || return 1
  agent_register "$dir" alice a-pw "$ALICE" || return 1
  agent_register "$dir" bob b-pw "$BOB" || return 1
  expect_bindings "$dir" sales "sip:sales@$IP:$DIST q=1;sip:bob@$IP:$BOB q=0.9;sip:alice@$IP:$ALICE q=0.45" || return 1
  start_agents "$dir" || return 1

  # 1. Parley up: the call reaches alice through the buffer server.
  call_sales "$dir" call-up || return 1
  [ "$(invites "$dir/uas-alice.messages.log" | tail -n 1)" = "$BUF" ] \
    || { REASON="Parley up: alice's INVITE did not come from the buffer server (uas-alice.messages.log)"; return 1; }

  # 2. Parley killed: the upstream tries Parley's binding (no answer), then bob (q 0.9) who
  #    answers 486, then alice (q 0.45), straight from the upstream proxy.
  kill -KILL "$PARLEY_PID" 2>/dev/null
  wait "$PARLEY_PID" 2>/dev/null
  before=$(invites "$dir/uas-bob.messages.log" | grep -c "^$UP\$")
  call_sales "$dir" call-down || return 1
  after=$(invites "$dir/uas-bob.messages.log" | grep -c "^$UP\$")
  [ "$after" = $((before + 1)) ] || { REASON="Parley down: bob (highest q) was not tried first, straight from the upstream"; return 1; }
  [ "$(invites "$dir/uas-alice.messages.log" | tail -n 1)" = "$UP" ] \
    || { REASON="Parley down: alice's INVITE did not come straight from the upstream (uas-alice.messages.log)"; return 1; }

  # 3. Parley back (its bindings read back from SQLite): through Parley again.
  start_parley "$dir" parley-restarted.log || return 1
  grep -q "restored 2 agent" "$dir/parley-restarted.log" || { REASON="the restarted Parley did not restore its 2 agents (parley-restarted.log)"; return 1; }
  call_sales "$dir" call-back || return 1
  [ "$(invites "$dir/uas-alice.messages.log" | tail -n 1)" = "$BUF" ] \
    || { REASON="Parley back: alice's INVITE did not come from the buffer server"; return 1; }
  echo "alice INVITEs by top Via port: $(invites "$dir/uas-alice.messages.log" | paste -sd' ' -) (buffer $BUF, upstream $UP)" >>"$dir/summary.txt"
}

case_bad_input() { # DIR KIND
  local dir=$1 kind=$2 b
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  ports "$b"
  write_config "$dir"
  start_upstream "$dir" "$kind" || return 1
  start_parley "$dir" || return 1
  agent_register "$dir" alice a-pw "$ALICE" || return 1
  agent_register "$dir" bob b-pw "$BOB" || return 1
  local full="sip:sales@$IP:$DIST q=1;sip:bob@$IP:$BOB q=0.9;sip:alice@$IP:$ALICE q=0.45"
  expect_bindings "$dir" sales "$full" || return 1

  sipp_run "$dir" wrong-password "$WRONG_XML" "$REG" "$OTHER" -au alice -ap guess -auth_uri "$IP:$REG" \
    || { REASON="a wrong password did not get 403 (wrong-password.*)"; return 1; }
  sipp_run "$dir" replay "$HERE/uac-agent-register-expect-200.xml" "$REG" "$OTHER" -key agent alice -key expires 600 \
      -au alice -ap a-pw || { REASON="alice's REGISTER from a second port failed (replay.*)"; return 1; }
  replay "$dir" || return 1
  sipp_run "$dir" mailto "$HERE/uac-register-mailto-contact-expect-400.xml" "$REG" "$OTHER" -key agent alice -au alice -ap a-pw \
    || { REASON="a mailto: Contact did not get 400 (mailto.*)"; return 1; }
  # A contact outside where alice may register (not her REGISTER's address, nothing configured):
  # 403, nothing forwarded (the bindings are checked whole below).
  local attack
  attack=$(timeout -k 5 30 python3 "$ROOT/Tests/security/register.py" contact "$REG" "$IP" "$DOMAIN" alice a-pw 192.0.2.99 2>>"$dir/attacks.err")
  [ "$attack" = "answer=403" ] || { REASON="a contact at 192.0.2.99 got '${attack:-nothing}', not 403"; return 1; }
  # A stranger's INVITE for alice through the registration listener: 403, no relay.
  attack=$(timeout -k 5 30 python3 "$ROOT/Tests/security/register.py" stranger "$REG" 127.0.0.2 "$DOMAIN" alice 2>>"$dir/attacks.err")
  [ "$attack" = "answers=403" ] || { REASON="a stranger's INVITE through the registration listener got '${attack:-nothing}', not 403"; return 1; }
  grep -q "refused: wrong password for alice" "$dir/parley.log" && grep -q "reused a nonce count" "$dir/parley.log" \
    && grep -q "unsupported Contact scheme mailto" "$dir/parley.log" || { REASON="refusals not logged (parley.log)"; return 1; }
  # The replay test's own first REGISTER bound the replay client's port: take it away again.
  sipp_run "$dir" huge "$HERE/uac-register-huge-expires-expect-200.xml" "$REG" "$OTHER" -key agent alice -au alice -ap a-pw \
    || { REASON="Expires 4000000000 did not get a 200 with expires=3600 (huge.*)"; return 1; }
  # Re-register alice from her own port (the last REGISTER moved her contact): the set is whole.
  agent_register "$dir" alice a-pw "$ALICE" || return 1
  expect_bindings "$dir" sales "$full" || return 1

  # Expires 0 for a contact bob never registered (his REGISTER from another port names that
  # port): only that contact may go; bob's fan-out and his own binding stay.
  sipp_run "$dir" stray-removal "$HERE/uac-agent-register-expect-200.xml" "$REG" "$OTHER" -key agent bob -key expires 0 \
      -au bob -ap b-pw || { REASON="bob's Expires 0 for another contact did not get its 200 (stray-removal.*)"; return 1; }
  sleep 1
  expect_bindings "$dir" sales "$full" || return 1
  expect_bindings "$dir" bob "sip:bob@$IP:$BOB q=1" || return 1

  # Expires 0: bob's own binding and his fan-out bindings go.
  agent_register "$dir" bob b-pw "$BOB" 0 || return 1
  expect_bindings "$dir" sales "sip:sales@$IP:$DIST q=1;sip:alice@$IP:$ALICE q=0.9" || return 1
  expect_bindings "$dir" bob "" || return 1

  # The upstream answers 500: the agent gets 500, Parley keeps alice.
  stop_pid "$UP_PID"
  (cd "$dir" && exec setsid timeout -k 5 40 sipp -sf "$HERE/uas-registrar-answer-500.xml" -p "$UP" -i "$IP" -nostdin \
      -timeout 30s -trace_msg -message_file "$dir/upstream-500.messages.log" >"$dir/upstream-500.out" 2>&1) &
  local p500=$!
  BG_PIDS+=("$p500")
  wait_listening "$UP" udp "$p500" 5 || { REASON="the 500 upstream did not start"; return 1; }
  sipp_run "$dir" upstream-500 "$HERE/uac-register-upstream-500-expect-500.xml" "$REG" "$ALICE" -key agent alice -au alice -ap a-pw \
    || { REASON="an upstream 500 did not give the agent 500 (upstream-500.*)"; return 1; }
  stop_pid "$p500"
  # Nothing answers at all: 504.
  sipp_run "$dir" upstream-down "$HERE/uac-register-upstream-down-expect-504.xml" "$REG" "$ALICE" -key agent alice -au alice -ap a-pw \
    || { REASON="an upstream that is down did not give the agent 504 (upstream-down.*)"; return 1; }
  grep -q "upstream answered 500 to alice's REGISTER" "$dir/parley.log" && grep -q "did not answer alice's REGISTER" "$dir/parley.log" \
    || { REASON="upstream failures not logged (parley.log)"; return 1; }
  "$PARLEY" registrations --database "$dir/registrations.sqlite" >"$dir/registrations.txt" 2>&1
  grep -Eq "^alice +sip:alice@$DOMAIN +sip:alice@$IP:$ALICE " "$dir/registrations.txt" \
    && grep -Eq "sip:sales@$DOMAIN +sip:alice@$IP:$ALICE +agent:alice" "$dir/registrations.txt" \
    || { REASON="alice's registration or her sales binding was lost after the upstream failures (registrations.txt)"; return 1; }
}

# ---------------------------------------------------------------- main
PASSED=0
FAILED=0
echo "# registrars: $REGISTRARS; parley: $PARLEY; logs: $LOGROOT"
for kind in $REGISTRARS; do
  cases="fanout-reorder drill bad-input"
  [ "$kind" = kamailio ] && cases="$cases tls-upstream"   # Kamailio's tls module as the upstream
  for c in $cases; do
    name="$kind-$c"
    if [ -n "$FILTER" ] && ! echo "$name" | grep -Eq -- "$FILTER"; then continue; fi
    dir="$LOGROOT/$name"
    rm -rf "$dir"; mkdir -p "$dir"
    REASON=""
    started=$(date +%s)
    "case_${c//-/_}" "$dir" "$kind"
    rc=$?
    stop_all
    echo "$name: rc=$rc $(( $(date +%s) - started ))s ${REASON:-}" >>"$LOGROOT/timings.txt"
    if [ $rc = 0 ]; then
      echo "ok $name"
      PASSED=$((PASSED + 1))
    else
      echo "FAIL $name: ${REASON:-failed} (logs: $dir)"
      FAILED=$((FAILED + 1))
    fi
  done
done
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
