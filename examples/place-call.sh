#!/usr/bin/env bash
# Places one call through a running `make run` (parley serve --config examples/parley.yaml):
# four SIPp agents answer as alice, bob, chloe and dmitri on 127.0.0.1:5081-5084, and one SIPp
# caller dials sip:sales@127.0.0.1:5060, talks for 2 s and hangs up. Prints the messages each
# side received, so you can see that neither leg sees the other's Call-ID, tags or addresses.
#   bash examples/place-call.sh [CALLS]
set -u
cd "$(dirname "$0")/.."
CALLS=${1:-1}
SCEN=Tests/sipp-callpath
LOG=$(mktemp -d /tmp/parley-call.XXXXXX)
command -v sipp >/dev/null || { echo "sipp is missing: apt-get install -y sip-tester" >&2; exit 2; }
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done' EXIT
for port in 5081 5082 5083 5084; do
  (cd "$LOG" && exec timeout 60 sipp -sf "$OLDPWD/$SCEN/agent-answers.xml" -i 127.0.0.1 -p "$port" -m "$CALLS" \
     -timeout 50s -nostdin -trace_msg -message_file "agent-$port.log" >/dev/null 2>&1) &
  pids+=($!)
done
sleep 1
(cd "$LOG" && timeout 60 sipp 127.0.0.1:5060 -sf "$OLDPWD/$SCEN/caller-answered-hangs-up.xml" -i 127.0.0.1 -p 5099 \
   -s sales -m "$CALLS" -r 1 -d 2000 -timeout 50s -nostdin -key handoff rules -key raise none \
   -trace_msg -message_file caller.log -trace_stat -stf caller.csv >/dev/null 2>&1)
rc=$?
echo "== what the caller received"
grep -E '^(SIP/2.0 |[A-Z]+ sip:)' "$LOG/caller.log" | sed 's/^/  /'
for port in 5081 5082 5083 5084; do
  [ -s "$LOG/agent-$port.log" ] || continue
  echo "== what the agent on port $port received"
  grep -E '^(SIP/2.0 |[A-Z]+ sip:)' "$LOG/agent-$port.log" | sed 's/^/  /'
done
echo "logs: $LOG"
if [ "$rc" -eq 0 ]; then echo "the call completed"; else echo "the call did not complete (sipp exit $rc): is 'make run' running?"; fi
exit "$rc"
