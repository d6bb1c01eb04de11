# Tests/sipp-callpath/admin-cases.sh: the admin API (docs/admin.md) with SIPp callers and agents
# on the wire, sourced by run.sh (its helpers, its port blocks). The admin listener takes port
# b+6 of the case's block. Requests go through curl.

ADMIN_TOKEN=admin-suite-full-token-0123
ADMIN_READ=admin-suite-read-token-0123

# admin_serve DIR BLOCK AGENTS [EXTRA_YAML]: AGENTS agents (a1 rank 1 ...), the admin listener on b+6
# (with ADMIN_EXTRA's keys added to its section, e.g. ", idle_timeout: 2s").
admin_serve() {
  local dir=$1 b=$2
  write_config "$dir" "$b" "" "$3"
  [ -n "${4:-}" ] && printf '%s\n' "$4" >>"$dir/parley.yaml"
  printf 'admin: {listen: "%s:%s", token: %s, read_token: %s%s}\n' "$IP" $((b + 6)) "$ADMIN_TOKEN" "$ADMIN_READ" "${ADMIN_EXTRA:-}" >>"$dir/parley.yaml"
  start_serve "$dir" "$b" || return 1
  wait_listening $((b + 6)) tcp "$SERVE_PID" 10 || { REASON="admin listener not up (serve.log)"; return 1; }
}

# api DIR BLOCK METHOD PATH [TOKEN] [BODY] -> "STATUS BODY" (also appended to DIR/api.log);
# TOKEN "" is the full token, "none" sends none.
api() {
  local dir=$1 b=$2 method=$3 path=$4 token=${5:-$ADMIN_TOKEN} body=${6-} out
  local args=(-s -S -m 10 -o "$dir/api-body.txt" -w '%{http_code}' -X "$method")
  [ "$token" != none ] && args+=(-H "Authorization: Bearer $token")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  out=$(curl "${args[@]}" "http://$IP:$((b + 6))$path" 2>>"$dir/api.log")
  out="$out $(cat "$dir/api-body.txt" 2>/dev/null)"
  echo "$method $path -> $out" >>"$dir/api.log"
  echo "$out"
}
# expect_api WANT_STATUS WANT_SUBSTRING... "STATUS BODY": the answer has that status and holds each substring
expect_api() {
  local want=$1 got=${!#} s; shift
  [ "${got%% *}" = "$want" ] || { REASON="admin API answered '${got:0:300}', want status $want (api.log)"; return 1; }
  while [ $# -gt 1 ]; do
    case "$got" in *"$1"*) ;; *) REASON="admin API answer lacks '$1': ${got:0:300} (api.log)"; return 1 ;; esac
    shift
  done
}

# An agent on break through the API is never offered a call: three calls all go to a2 though
# the rules prefer a1; a1 shows no offer and no missed call. Made available again, a1 takes the
# next call.
CASE_admin_paused_agent_never_offered() {
  local dir=$1 b rc r ref
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  admin_serve "$dir" "$b" 2 || return 1
  # Through the command line (token from the environment), as an operator would.
  r=$(PARLEY_ADMIN_TOKEN=$ADMIN_TOKEN "$PARLEY" agent pause a1 --reason lunch --admin "http://$IP:$((b + 6))" 2>&1)
  [ "$r" = "a1: break (lunch)" ] || { REASON="parley agent pause said: $r"; return 1; }
  r=$(PARLEY_ADMIN_TOKEN=$ADMIN_READ "$PARLEY" agents --admin "http://$IP:$((b + 6))" 2>&1)
  echo "$r" | grep -Eq '^a1 +break +lunch' || { REASON="parley agents: $r"; return 1; }
  start_agent "$dir" a2 agent-answers.xml $((b + 4)) 3 60
  run_caller "$dir" caller caller-answered-hangs-up.xml "$b" $((b + 9)) 3 60 uri none
  rc=$?
  wait_agent a2 15; r=$?
  check_side "$dir" caller "$rc" 3 || return 1
  check_side "$dir" a2 "$r" 3 || return 1
  r=$(api "$dir" "$b" GET /v1/agents/a1 "$ADMIN_READ")
  expect_api 200 '"state":"break"' '"no_answers":0' '"calls_handled":0' "$r" || return 1
  r=$(api "$dir" "$b" GET /v1/agents/a2 "$ADMIN_READ")
  expect_api 200 '"calls_handled":3' "$r" || return 1
  r=$(api "$dir" "$b" GET /v1/queues/sales "$ADMIN_READ")
  expect_api 200 '"waiting":0' '"available":1' '"break":1' '"offered":3' '"answered":3' '"abandoned":0' '"service_level":1' "$r" || return 1
  # Each call's decision trace: classify, select_agent with its one candidate and the rule's
  # words, handoff_encoding.
  r=$(api "$dir" "$b" GET "/v1/calls?state=ended&queue=sales&limit=1" "$ADMIN_READ")
  expect_api 200 '"state":"completed"' '"agent":"a2"' "$r" || return 1
  ref=$(echo "$r" | grep -o '"ref":"c[0-9a-z]*"' | head -n 1 | cut -d'"' -f4)
  r=$(api "$dir" "$b" GET "/v1/calls/$ref" "$ADMIN_READ")
  expect_api 200 '"log":[{"event":"ENTERQUEUE"' '"trace":[{"hook":"classify"' '"result":{"type":"sales","priority":0}' \
    '"hook":"select_agent"' '"candidates":1,"considered":["a2"],"result":"a2","notes":["lowest rank among 1: a2"]' \
    '"hook":"handoff_encoding"' '"result":"uri"' "$r" || return 1
  r=$(PARLEY_ADMIN_TOKEN=$ADMIN_READ "$PARLEY" trace "$ref" --admin "http://$IP:$((b + 6))" 2>&1)
  echo "$r" | grep -q "select_agent -> a2 .*1 candidates: a2" && echo "$r" | grep -q "lowest rank among 1: a2" \
    || { REASON="parley trace: $r"; return 1; }
  r=$(api "$dir" "$b" GET "/v1/calls?colour=red" "$ADMIN_READ"); expect_api 400 "unknown parameter 'colour'" "$r" || return 1
  r=$(api "$dir" "$b" GET "/v1/calls/c-none" "$ADMIN_READ"); expect_api 404 '"code":"not_found"' "$r" || return 1
  r=$(api "$dir" "$b" PUT /v1/agents/a1/state "" '{"state": "available"}')
  expect_api 200 '"state":"available"' "$r" || return 1
  a_call_completes "$dir" "$b" || return 1  # a1 takes it: the rules prefer it again
  records "$dir"
  "$PARLEY" calls --database "$dir/parley-records.sqlite" --call NONE >"$dir/agent-log.txt" 2>&1
  grep -q "PAUSE.*a1" "$dir/agent-log.txt" && grep -q "UNPAUSE.*a1" "$dir/agent-log.txt" \
    || { REASON="no PAUSE and UNPAUSE lines for a1 in the queue log (agent-log.txt)"; return 1; }
}

# A busy agent put on break keeps its call (the change pending), and goes on break when it
# ends: the next caller finds no agent logged in and gets the queue's status (486 here). Logged off, it stays so across a
# restart of parley serve.
CASE_admin_busy_agent_paused_keeps_its_call() {
  local dir=$1 b rc r
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  admin_serve "$dir" "$b" 1 "queues: {default: {no_agent: reject, status: 486}}" || return 1
  start_agent "$dir" a1 agent-answers.xml $((b + 3)) 1 30
  bg_caller "$dir" caller caller-answered-hangs-up.xml "$b" $((b + 9)) caller 0 -d 3000
  for _ in $(seq 50); do
    r=$(api "$dir" "$b" GET /v1/agents/a1 "$ADMIN_READ")
    case "$r" in *'"state":"busy"'*) break ;; esac
    sleep 0.1
  done
  expect_api 200 '"state":"busy"' '"call":{"ref":"c' '"queue":"sales"' "$r" || return 1
  r=$(api "$dir" "$b" PUT /v1/agents/a1/state "" '{"state": "break", "reason": "coaching"}')
  expect_api 200 '"state":"busy"' '"pending":{"state":"break","reason":"coaching"}' "$r" || return 1
  callers_ok "$dir" caller || return 1
  wait_agent a1 10; r=$?
  check_side "$dir" a1 "$r" 1 || return 1
  r=$(api "$dir" "$b" GET /v1/agents/a1 "$ADMIN_READ")
  expect_api 200 '"state":"break"' '"reason":"coaching"' '"pending":null' '"calls_handled":1' "$r" || return 1
  bg_caller "$dir" refused caller-expect-486.xml "$b" $((b + 8)) refused 0
  callers_ok "$dir" refused || return 1
  r=$(api "$dir" "$b" PUT /v1/agents/a1/state "" '{"state": "offline", "reason": "shift over"}')
  expect_api 200 '"state":"offline"' '"reason":"shift over"' "$r" || return 1
  stop_pid "$SERVE_PID"
  start_serve "$dir" "$b" || return 1
  wait_listening $((b + 6)) tcp "$SERVE_PID" 10 || { REASON="admin listener not up after the restart"; return 1; }
  r=$(api "$dir" "$b" GET /v1/agents/a1 "$ADMIN_READ")
  expect_api 200 '"state":"offline"' '"reason":"shift over"' "$r" || return 1
  # SIGTERM: the process stops cleanly, exit status 0.
  kill -TERM "$SERVE_PID"
  wait "$SERVE_PID"; rc=$?
  [ "$rc" = 0 ] || { REASON="parley serve exited $rc on SIGTERM (serve.log)"; return 1; }
}

# Bad requests: each gets its JSON error and changes nothing; a call still completes.
# Connections that send nothing or half a request are closed after admin.idle_timeout (2 s
# here); an event stream is not.
CASE_admin_bad_requests_change_nothing() {
  local dir=$1 b r big rc
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  ADMIN_EXTRA=", idle_timeout: 2s" admin_serve "$dir" "$b" 1 || return 1
  r=$(timeout 20 python3 - "$IP" $((b + 6)) <<'PY'
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
def closed_after(first):
    s = socket.create_connection((host, port), timeout=15)
    s.sendall(first)
    t = time.monotonic()
    try:
        while s.recv(4096):
            pass
    except OSError:
        return -1
    return time.monotonic() - t
silent = closed_after(b"")
half = closed_after(b"GET /v1/agents HTTP/1.1\r\nHost: parley\r\n")
print("ok" if 1.5 <= silent <= 6 and 1.5 <= half <= 6 else "bad", round(silent, 1), round(half, 1))
PY
)
  echo "idle connections: $r" >>"$dir/api.log"
  case "$r" in ok*) ;; *) REASON="idle admin connections not closed after 2 s (silent, half a head: $r)"; return 1 ;; esac
  curl -s -N -m 4 -o "$dir/stream.txt" -H "Authorization: Bearer $ADMIN_READ" "http://$IP:$((b + 6))/v1/events"; rc=$?
  [ "$rc" = 28 ] || { REASON="an event stream idle for 4 s ended (curl exit $rc, not its own time-out 28)"; return 1; }
  r=$(api "$dir" "$b" GET /v1/agents none); expect_api 401 '"code":"unauthorized"' "$r" || return 1
  r=$(api "$dir" "$b" GET /v1/agents wrong-token-0123456789); expect_api 401 '"code":"unauthorized"' "$r" || return 1
  r=$(api "$dir" "$b" PUT /v1/agents/a1/state "$ADMIN_READ" '{"state": "break"}'); expect_api 403 '"code":"forbidden"' "$r" || return 1
  r=$(api "$dir" "$b" PUT /v1/agents/a1/state "" '{"state": '); expect_api 400 'not a JSON object' "$r" || return 1
  r=$(api "$dir" "$b" PUT /v1/agents/a1/state "" '{"state": "break", "colour": "red"}'); expect_api 400 "unknown field 'colour'" "$r" || return 1
  r=$(api "$dir" "$b" PUT /v1/agents/a1/state "" '{"state": "asleep"}'); expect_api 400 "field 'state'" "$r" || return 1
  r=$(api "$dir" "$b" PUT /v1/agents/a1/state "" '{"state": "break", "reason": "a\u0007b"}'); expect_api 400 "field 'reason'" "$r" || return 1
  r=$(api "$dir" "$b" PUT /v1/agents/zoe/state "" '{"state": "break"}'); expect_api 404 "agent 'zoe' is not configured" "$r" || return 1
  big=$(head -c 70000 /dev/zero | tr '\0' 'x')
  r=$(api "$dir" "$b" PUT /v1/agents/a1/state "" "{\"state\": \"break\", \"reason\": \"$big\"}"); expect_api 413 '"code":"too_large"' "$r" || return 1
  r=$(api "$dir" "$b" GET /v1/agents "$ADMIN_READ")
  expect_api 200 '"state":"available"' '"reason":null' "$r" || return 1
  grep -q "$ADMIN_TOKEN\|$ADMIN_READ" "$dir/serve.log" && { REASON="a token reached the log (serve.log)"; return 1; }
  a_call_completes "$dir" "$b"
}

# Rules reloaded through the API: a broken file is 422 with its file and line, the old
# version stays in force and calls go on; fixed, the reload puts the new version in force.
CASE_admin_reload_reports_errors_and_keeps_the_old_rules() {
  local dir=$1 b r v1 v2
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  cp -r "$RULES" "$dir/rules"
  write_config "$dir" "$b" "" 1
  sed -i "s|^rules: .*|rules: $dir/rules|" "$dir/parley.yaml"
  printf 'admin: {listen: "%s:%s", token: %s, read_token: %s%s}\n' "$IP" $((b + 6)) "$ADMIN_TOKEN" "$ADMIN_READ" "${ADMIN_EXTRA:-}" >>"$dir/parley.yaml"
  start_serve "$dir" "$b" || return 1
  wait_listening $((b + 6)) tcp "$SERVE_PID" 10 || { REASON="admin listener not up (serve.log)"; return 1; }
  r=$(api "$dir" "$b" GET /v1/rules "$ADMIN_READ")
  expect_api 200 '"generation":1' '"hook_failures":{"classify":0' "$r" || return 1
  v1=$(echo "$r" | grep -o '"version":"[0-9a-f]*"' | cut -d'"' -f4)
  r=$(api "$dir" "$b" POST /v1/rules/reload "$ADMIN_READ"); expect_api 403 '"code":"forbidden"' "$r" || return 1
  r=$(api "$dir" "$b" POST /v1/rules/reload); expect_api 200 "\"version\":\"$v1\"" '"changed":false' "$r" || return 1
  printf '\nfunction broken(\n' >>"$dir/rules/init.lua"
  r=$(api "$dir" "$b" POST /v1/rules/reload)
  expect_api 422 '"code":"rules_invalid"' '"errors":[{"file":"init.lua","line":' "$r" || return 1
  r=$(api "$dir" "$b" GET /v1/rules "$ADMIN_READ"); expect_api 200 "\"version\":\"$v1\"" "$r" || return 1
  a_call_completes "$dir" "$b" || return 1
  cp "$RULES/init.lua" "$dir/rules/init.lua"
  printf '\n-- a new version\n' >>"$dir/rules/init.lua"
  r=$(api "$dir" "$b" POST /v1/rules/reload); expect_api 200 '"version":"' "$r" || return 1
  v2=$(echo "$r" | grep -o '"version":"[0-9a-f]*"' | cut -d'"' -f4)
  [ -n "$v2" ] && [ "$v2" != "$v1" ] || { REASON="the fixed rules are not in force: version $v2, was $v1 (api.log)"; return 1; }
}

# The event stream: a call's events and the agent's, in order with ids; a client resuming with
# Last-Event-ID gets what it missed. 500 streams that never read: beyond the cap they get 429
# at once, a call still completes and the API still answers.
CASE_admin_event_stream() {
  local dir=$1 b r id line pid
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  admin_serve "$dir" "$b" 1 || return 1
  (exec setsid timeout -k 2 30 curl -s -N "http://$IP:$((b + 6))/v1/events?token=$ADMIN_READ" >"$dir/events.txt" 2>&1) &
  pid=$!; BG_PIDS+=("$pid")
  sleep 0.5
  a_call_completes "$dir" "$b" || return 1
  sleep 1.5
  stop_pid "$pid"
  for want in "event: call.queued" "event: call.offered" "event: call.answered" '"outcome":"completed"' \
              'event: agent.state' '"state":"busy"' 'event: queue.update'; do
    grep -qF "$want" "$dir/events.txt" || { REASON="no '$want' on the event stream (events.txt)"; return 1; }
  done
  line=$(grep -n "^event: call.queued" "$dir/events.txt" | head -n 1 | cut -d: -f1)
  id=$(sed -n "$((line - 1))p" "$dir/events.txt" | sed 's/^id: //')
  timeout -k 2 3 curl -s -N "http://$IP:$((b + 6))/v1/events" -H "Authorization: Bearer $ADMIN_READ" \
    -H "Last-Event-ID: $((id - 1))" >"$dir/resumed.txt" 2>&1
  grep -q "^id: $id\$" "$dir/resumed.txt" && grep -q "^event: call.ended" "$dir/resumed.txt" \
    || { REASON="resuming after id $((id - 1)) did not replay call.queued ($id) and call.ended (resumed.txt)"; return 1; }
  r=$(api "$dir" "$b" GET /v1/events none); expect_api 401 '"code":"unauthorized"' "$r" || return 1
  (timeout -k 5 60 python3 "$HERE/idle-streams.py" $((b + 6)) "$ADMIN_READ" 500 8 >"$dir/idle.txt" 2>&1) &
  pid=$!; BG_PIDS+=("$pid")
  sleep 3
  r=$(api "$dir" "$b" GET /v1/agents/a1 "$ADMIN_READ"); expect_api 200 '"state":"available"' "$r" || return 1
  start_agent "$dir" a1-during agent-answers.xml $((b + 3)) 1 30
  run_caller "$dir" caller-during caller-answered-hangs-up.xml "$b" $((b + 9)) 1 30 uri none
  r=$?
  wait_agent a1-during 10
  check_side "$dir" caller-during "$r" 1 || { REASON="with 500 idle streams: $REASON"; return 1; }
  wait "$pid"
  line=$(cat "$dir/idle.txt")
  # The cap is 100 streams; the few a closed client still holds until the next write count too.
  local ok refused
  ok=$(echo "$line" | sed -n 's/.* ok=\([0-9]*\).*/\1/p'); refused=$(echo "$line" | sed -n 's/.* refused=\([0-9]*\).*/\1/p')
  case "$line" in opened=500*other=0) ;; *) REASON="idle streams: $line (idle.txt)"; return 1 ;; esac
  [ "$ok" -ge 90 ] && [ "$ok" -le 100 ] && [ $((ok + refused)) = 500 ] || { REASON="idle streams: $line, want at most 100 open and the rest 429 (idle.txt)"; return 1; }
  wait_drained "$dir" 10
}

# /metrics after a call: promtool finds nothing to say, the call's series are there, no agent
# id or call reference is a label, and a real Prometheus scrapes it (with the read token) and
# answers a query with Parley's series.
CASE_admin_metrics_scraped_by_prometheus() {
  local dir=$1 b r pid i
  command -v promtool >/dev/null && command -v prometheus >/dev/null || { REASON="promtool and prometheus are not installed (apt-get install prometheus)"; return 1; }
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  admin_serve "$dir" "$b" 1 || return 1
  a_call_completes "$dir" "$b" || return 1
  r=$(api "$dir" "$b" GET /metrics none); expect_api 401 '"code":"unauthorized"' "$r" || return 1
  curl -s -m 10 -H "Authorization: Bearer $ADMIN_READ" "http://$IP:$((b + 6))/metrics" >"$dir/metrics.txt"
  promtool check metrics <"$dir/metrics.txt" >"$dir/promtool.txt" 2>&1 || { REASON="promtool check metrics: $(head -c 300 "$dir/promtool.txt")"; return 1; }
  [ -s "$dir/promtool.txt" ] && { REASON="promtool has findings: $(head -c 300 "$dir/promtool.txt")"; return 1; }
  for want in 'parley_calls_total{queue="sales",outcome="completed"} 1' 'parley_queue_wait_seconds_bucket{queue="sales",outcome="answered",le="20.0"} 1' \
              'parley_sip_requests_received_total{method="INVITE",transport="udp"}' 'parley_agent_offers_total{result="answered"} 1' \
              'parley_rule_hook_seconds_count{hook="select_agent"} 1' 'parley_agents{queue="sales",state="available"} 1' \
              'process_resident_memory_bytes' 'parley_build_info{version='; do
    grep -qF "$want" "$dir/metrics.txt" || { REASON="no '$want' in /metrics (metrics.txt)"; return 1; }
  done
  grep -Eq '="(a1|c0[0-9a-z]+|sip:[^"]*)"' "$dir/metrics.txt" && { REASON="an agent id, call reference or address is a label (metrics.txt)"; return 1; }
  cat >"$dir/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: parley
    authorization: {credentials: $ADMIN_READ}
    static_configs: [{targets: ["$IP:$((b + 6))"]}]
EOF
  (cd "$dir" && exec setsid timeout -k 5 60 prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
      --web.listen-address="$IP:$((b + 7))" >"$dir/prometheus.log" 2>&1) &
  pid=$!; BG_PIDS+=("$pid")
  for i in $(seq 40); do
    r=$(curl -s -m 2 "http://$IP:$((b + 7))/api/v1/query?query=parley_calls_total" 2>/dev/null)
    case "$r" in *'"outcome":"completed"'*'"1"'*) break ;; esac
    sleep 0.5
  done
  echo "$r" >"$dir/query.json"
  case "$r" in *'"status":"success"'*'"queue":"sales"'*'"1"'*) ;; *) REASON="Prometheus did not answer with parley_calls_total (query.json, prometheus.log)"; return 1 ;; esac
  stop_pid "$pid"
}

# The wallboard in headless Chromium: queues and agents on the page, an agent put on break
# through the API changes there within a second; a screenshot is kept (wallboard.png).
CASE_admin_wallboard_in_a_browser() {
  local dir=$1 b r
  [ -x /usr/bin/chromedriver ] && /usr/bin/python3 -c 'import selenium' 2>/dev/null \
    || { REASON="chromium-driver or python3-selenium missing (apt-get install chromium chromium-driver python3-selenium)"; return 1; }
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  admin_serve "$dir" "$b" 2 || return 1
  r=$(curl -s -m 5 -D - -o "$dir/page.html" "http://$IP:$((b + 6))/?token=$ADMIN_READ")
  case "$r" in *"Content-Security-Policy: default-src 'none'; script-src 'nonce-"*) ;; *) REASON="the page has no strict CSP: $r"; return 1 ;; esac
  grep -Eq '(src|href)="(https?:)?//' "$dir/page.html" && { REASON="the page loads something from elsewhere (page.html)"; return 1; }
  r=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://$IP:$((b + 6))/"); [ "$r" = 401 ] || { REASON="the page without a token: $r"; return 1; }
  a_call_completes "$dir" "$b" || return 1
  r=$(HOME="$dir" timeout -k 5 90 /usr/bin/python3 "$HERE/wallboard.py" "http://$IP:$((b + 6))" "$ADMIN_READ" "$ADMIN_TOKEN" a2 sales "$dir/wallboard.png" 2>"$dir/wallboard.err")
  echo "$r" >"$dir/wallboard.txt"
  case "$r" in ok*) ;; *) REASON="wallboard: ${r:-$(tail -n 3 "$dir/wallboard.err" | tr '\n' ' ')}"; return 1 ;; esac
  mkdir -p "$LOGROOT/artifacts" && cp "$dir/wallboard.png" "$LOGROOT/artifacts/wallboard.png"
}

ADMIN_CASES="admin-wallboard-in-a-browser admin-metrics-scraped-by-prometheus admin-event-stream admin-reload-reports-errors-and-keeps-the-old-rules admin-paused-agent-never-offered admin-busy-agent-paused-keeps-its-call admin-bad-requests-change-nothing"
