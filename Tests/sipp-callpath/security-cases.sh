# Tests/sipp-callpath/security-cases.sh: the attacks of docs/security.md on the wire, sourced by
# run.sh (its helpers, its port blocks). Each case runs an attack from Tests/security/attack.py
# against `parley serve`, checks what Parley answered and what reached agents or a victim, then
# places a normal call: it must complete, and the buffer server must drain.

ATTACK="$ROOT/Tests/security/attack.py"

# attack NAME ARGS... -> the attack's line in DIR/NAME.txt, also echoed
attack() {
  local dir=$1 name=$2; shift 2
  timeout -k 5 120 python3 "$ATTACK" "$@" >"$dir/$name.txt" 2>"$dir/$name.err"
  cat "$dir/$name.txt"
}
# field LINE KEY -> value
field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print substr($0, length(k) + 2) }'; }

# secure_serve DIR BLOCK [EXTRA_YAML]: one agent (a1), both roles in one process, the tunnel
# on; short message timeout so the slow-connection cases finish quickly.
secure_serve() {
  local dir=$1 b=$2
  local extra="security: {connections: {message_timeout: 3s, per_source: 64}}"
  [ -n "${3:-}" ] && extra=$3
  write_config "$dir" "$b" "" 1
  printf '%s\n' "$extra" >>"$dir/parley.yaml"
  start_serve "$dir" "$b"
}

# a_call_completes DIR BLOCK: one call, caller -> a1, answered and hung up.
a_call_completes() {
  local dir=$1 b=$2 rc rca
  start_agent "$dir" a1-after agent-answers.xml $((b + 3)) 1 30
  run_caller "$dir" caller-after caller-answered-hangs-up.xml "$b" $((b + 9)) 1 30 uri none
  rc=$?
  wait_agent a1-after 10; rca=$?
  check_side "$dir" caller-after "$rc" 1 || { REASON="after the attack: $REASON"; return 1; }
  check_side "$dir" a1-after "$rca" 1 || { REASON="after the attack: $REASON"; return 1; }
  wait_drained "$dir" 10
}

# An unsigned `uri` handoff, and one with a made-up signature: both 403, the agent never rings.
CASE_security_forged_uri_handoff_refused() {
  local dir=$1 b line
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  secure_serve "$dir" "$b" || return 1
  line=$(attack "$dir" forged-uri forged-uri $((b + 1)) $((b + 3)))
  [ "$(field "$line" answer_lines)" = "SIP/2.0_403_Forbidden,SIP/2.0_403_Forbidden" ] || { REASON="answers: $line"; return 1; }
  [ "$(field "$line" agent_received)" = 0 ] || { REASON="the agent was rung: $line"; return 1; }
  # answered once each, statelessly: no retransmissions toward a possibly spoofed source
  [ "$(field "$line" answered_bytes)" -le $(( 3 * $(field "$line" sent) )) ] || { REASON="amplification: $line"; return 1; }
  [ "$(stat "$dir" buffer unauthenticated)" = 2 ] || { REASON="buffer unauthenticated=$(stat "$dir" buffer unauthenticated), want 2"; return 1; }
  a_call_completes "$dir" "$b"
}

# A `message` handoff whose Contact names a victim: 403 to the sender, nothing to the victim
# (no reflection), the agent never rings.
CASE_security_forged_message_handoff_refused_no_reflection() {
  local dir=$1 b line
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  secure_serve "$dir" "$b" || return 1
  line=$(attack "$dir" forged-message forged-message $((b + 1)) $((b + 3)) $((b + 6)))
  [ "$(field "$line" answer_lines)" = "SIP/2.0_403_Forbidden" ] || { REASON="answers: $line"; return 1; }
  [ "$(field "$line" victim_received)" = 0 ] || { REASON="bytes went to the victim: $line"; return 1; }
  [ "$(field "$line" agent_received)" = 0 ] || { REASON="the agent was rung: $line"; return 1; }
  a_call_completes "$dir" "$b"
}

# The tunnel without the handshake's signature, or with a made-up one: HTTP 403, no WebSocket.
CASE_security_forged_tunnel_refused() {
  local dir=$1 b line
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  secure_serve "$dir" "$b" || return 1
  line=$(attack "$dir" forged-tunnel forged-tunnel $((b + 2)))
  [ "$(field "$line" statuses)" = "HTTP/1.1_403_Forbidden,HTTP/1.1_403_Forbidden" ] || { REASON="tunnel: $line"; return 1; }
  # the real distributor's tunnel still works
  local rc rca
  start_agent "$dir" a1 agent-answers.xml $((b + 3)) 1 30
  run_caller "$dir" caller caller-answered-hangs-up.xml "$b" $((b + 9)) 1 30 tunnel none
  rc=$?
  wait_agent a1 10; rca=$?
  check_side "$dir" caller "$rc" 1 || return 1
  check_side "$dir" a1 "$rca" 1 || return 1
  [ "$(stat "$dir" buffer handoffs_tunnel)" = 1 ] || { REASON="buffer handoffs_tunnel=$(stat "$dir" buffer handoffs_tunnel), want 1"; return 1; }
}

# A call event from a stranger on the callers' port: 403, not counted as an event.
CASE_security_spoofed_call_event_refused() {
  local dir=$1 b line
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  secure_serve "$dir" "$b" || return 1
  line=$(attack "$dir" spoofed-event spoofed-event "$b")
  [ "$(field "$line" answer_lines)" = "SIP/2.0_403_Forbidden" ] || { REASON="answers: $line"; return 1; }
  [ "$(stat "$dir" distributor unauthenticated)" = 1 ] || { REASON="distributor unauthenticated=$(stat "$dir" distributor unauthenticated), want 1"; return 1; }
  a_call_completes "$dir" "$b"
}

# A stranger's transfer: a forged transfer event to the distributor (403, no transfer asked) and a
# REFER to the buffer server in no dialog of its (481): nothing moves, calls go on.
CASE_security_spoofed_transfer_refused() {
  local dir=$1 b line
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  secure_serve "$dir" "$b" || return 1
  line=$(attack "$dir" spoofed-transfer spoofed-transfer "$b")
  [ "$(field "$line" answer_lines)" = "SIP/2.0_403_Forbidden,SIP/2.0_481_Call/Transaction_Does_Not_Exist" ] || { REASON="answers: $line"; return 1; }
  [ "$(stat "$dir" distributor transfers_asked)/$(stat "$dir" buffer transfers_asked)" = "0/0" ] \
    || { REASON="transfers asked (distributor/buffer): $(stat "$dir" distributor transfers_asked)/$(stat "$dir" buffer transfers_asked), want 0/0"; return 1; }
  a_call_completes "$dir" "$b"
}

# 5,000 silent TCP connections with the file limit at 1,024: Parley stays up, refuses what is
# over its limits, closes the silent ones at the message deadline, and calls go on.
CASE_security_silent_tcp_connections_with_1024_files() {
  local dir=$1 b line
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "" 1
  echo "security: {connections: {message_timeout: 3s, per_source: 5000}}" >>"$dir/parley.yaml"
  ( ulimit -Sn 1024; ulimit -Hn 1024; start_serve "$dir" "$b" ) || return 1
  SERVE_PID=$(pgrep -n -f -- "--config $dir/parley.yaml") || { REASON="parley serve not found"; return 1; }
  BG_PIDS+=("$SERVE_PID")
  line=$(attack "$dir" silent silent-tcp "$b" 5000 5)
  kill -0 "$SERVE_PID" 2>/dev/null || { REASON="parley serve died under $line"; return 1; }
  [ "$(field "$line" still_open)" = 0 ] || { REASON="silent connections outlived the message deadline: $line"; return 1; }
  [ "$(stat "$dir" connections refused_total)" -gt 0 ] 2>/dev/null || { REASON="no connection refused over the total (stats: $(stat "$dir" connections refused_total))"; return 1; }
  a_call_completes "$dir" "$b"
}

# 2,000 idle TLS connections (connected, no handshake, nothing said) to the distributor's TLS
# listener: each is closed at the message deadline; Parley stays up and calls go on.
CASE_security_idle_tls_connections_closed() {
  local dir=$1 b t line
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  t=$(alloc_block) || { REASON="no free ports"; return 1; }
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null || { REASON="openssl could not make a certificate"; return 1; }
  secure_serve "$dir" "$b" "security: {connections: {message_timeout: 3s, per_source: 5000}}
tls: {certificate: $dir/tls.crt, key: $dir/tls.key, listeners: {distributor: \"$IP:$t\"}}" || return 1
  line=$(attack "$dir" idle-tls silent-tcp "$t" 2000 5)
  kill -0 "$SERVE_PID" 2>/dev/null || { REASON="parley serve died under $line"; return 1; }
  [ "$(field "$line" opened)" -ge 1900 ] || { REASON="connections not accepted: $line"; return 1; }
  [ "$(field "$line" still_open)" = 0 ] || { REASON="idle TLS connections outlived the message deadline: $line"; return 1; }
  a_call_completes "$dir" "$b"
}

# 1,000 connections each sending half a message: cut off at the message deadline; calls go on.
CASE_security_half_sent_messages_cut_off() {
  local dir=$1 b line
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  secure_serve "$dir" "$b" "security: {connections: {message_timeout: 3s, per_source: 2000}}" || return 1
  line=$(attack "$dir" half half-sent "$b" 1000 5)
  [ "$(field "$line" still_open)" = 0 ] || { REASON="half-sent messages held: $line"; return 1; }
  [ "$(field "$line" opened)" -ge 900 ] || { REASON="connections not accepted: $line"; return 1; }
  a_call_completes "$dir" "$b"
}

# A message trickled a byte at a time is cut off at the deadline (3 s here), however steady.
CASE_security_trickled_message_cut_off() {
  local dir=$1 b line cut
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  secure_serve "$dir" "$b" || return 1
  line=$(attack "$dir" trickle trickle "$b" 15)
  cut=$(field "$line" cut_after)
  [ "$cut" != never ] && awk -v c="$cut" 'BEGIN { exit !(c >= 2.5 && c <= 6) }' || { REASON="trickle: $line (want a cut 3-6 s in)"; return 1; }
  a_call_completes "$dir" "$b"
}

# Over the per-source cap: the extra connections are closed at accept.
CASE_security_per_source_connection_cap() {
  local dir=$1 b line
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  secure_serve "$dir" "$b" "security: {connections: {per_source: 50, message_timeout: 10s}}" || return 1
  # from 127.0.0.2: the roles' own address (127.0.0.1) is exempt from the per-source limits
  line=$(ATTACK_SRC=127.0.0.2 attack "$dir" cap silent-tcp "$b" 200 1)
  [ "$(field "$line" still_open)" = 50 ] || { REASON="want 50 open from one address: $line"; return 1; }
  [ "$(stat "$dir" "connections" refused_per_source)" -ge 150 ] 2>/dev/null || { REASON="refused_per_source=$(stat "$dir" connections refused_per_source)"; return 1; }
  a_call_completes "$dir" "$b"
}

# A message announcing a body over the limit: the connection is closed, Parley goes on.
CASE_security_oversize_tcp_message_closed() {
  local dir=$1 b line
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  secure_serve "$dir" "$b" || return 1
  line=$(attack "$dir" oversize oversize "$b")
  [ "$(field "$line" closed)" = yes ] || { REASON="oversize: $line"; return 1; }
  a_call_completes "$dir" "$b"
}

# 500 requests at once from one address (not a trusted one): the first burst is answered, then
# the address is blocked and the rest dropped unanswered; a caller elsewhere goes on.
CASE_security_request_flood_blocked() {
  local dir=$1 b line
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  secure_serve "$dir" "$b" "security: {rate_limit: {requests_per_second: 20, burst: 50, block: 10s}}" || return 1
  line=$(attack "$dir" flood flood "$b" 500)
  local answered; answered=$(field "$line" answered)
  [ "$answered" -ge 40 ] && [ "$answered" -le 70 ] || { REASON="want about 50 of 500 answered: $line"; return 1; }
  sleep 1.2  # the stats file is written every second
  [ "$(stat "$dir" connections sources_blocked)" -ge 1 ] 2>/dev/null || { REASON="no source blocked (stats: $(stat "$dir" connections sources_blocked))"; return 1; }
  a_call_completes "$dir" "$b"
}

# One INVITE from an address that never ACKs (as if spoofed: the victim's): no agent can take
# it, so its 480 would be retransmitted for 32 s; what reaches the address stays within 3 times
# what came from it.
CASE_security_reflection_bounded() {
  local dir=$1 b line sent received
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "" 1
  sed -i 's/attributes: {rank: 1}}/attributes: {rank: 1}, available: false}/' "$dir/parley.yaml"
  start_serve "$dir" "$b" || return 1
  line=$(attack "$dir" reflect reflect "$b" 12)
  sent=$(field "$line" sent); received=$(field "$line" received)
  [ "$(field "$line" messages)" -ge 2 ] || { REASON="no answer at all: $line"; return 1; }
  [ "$received" -le $(( 3 * sent )) ] || { REASON="amplified: $line"; return 1; }
  sleep 1.2
  [ "$(stat "$dir" connections responses_withheld)" -ge 1 ] 2>/dev/null || { REASON="nothing withheld (stats: $(stat "$dir" connections responses_withheld)); $line"; return 1; }
}

SECURITY_CASES="security-idle-tls-connections-closed security-request-flood-blocked security-reflection-bounded security-forged-uri-handoff-refused security-forged-message-handoff-refused-no-reflection security-forged-tunnel-refused security-spoofed-call-event-refused security-spoofed-transfer-refused security-silent-tcp-connections-with-1024-files security-half-sent-messages-cut-off security-trickled-message-cut-off security-per-source-connection-cap security-oversize-tcp-message-closed"
