#!/usr/bin/env bash
# bench/run-register.sh: agent registrations per second through Parley's registration role, with
# the fan-out (every agent has two skills, so each registration changes two skill addresses
# upstream), against Parley's own registrar and against Kamailio's; and, in the same run,
# Kamailio's own REGISTER rate (the same SIPp agents straight at Kamailio, no Parley).
#
#   bash bench/run-register.sh [--parley PATH] [--agents N] [--window W] [--max-minutes M]
#
# Each run: N agents (default 2000), each with two skills, register once,
# with at most W (default 200) registrations in flight (bench/register/register-load.py: each
# agent answers its own digest challenge, which SIPp cannot do with a user name per agent); the
# figure is N over the time they took, with the failed count. Then the time until the upstream
# holds every fan-out binding (Parley at q 1.0 and the 200 agents of a skill address, read back
# with a SIPp REGISTER query). Skills: 4, or N/125 when that is more, so that an address holds
# at most 250 agents (the upstream's 200 lists every binding of the address, and must fit a UDP
# datagram and Parley's 32 KiB header limit). Parley: .build/release/parley (this script does not build).
# Loopback only; every process bounded in time; the whole script stops within M (default 5)
# minutes. Figures only, nothing asserted.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAMCFG="$ROOT/bench/kamailio/registrar.cfg"
LOAD="$ROOT/bench/register/register-load.py"
QUERYXML="$ROOT/Tests/sipp-registration/uac-register-query-expect-200.xml"
PARLEY="$ROOT/.build/release/parley"
AGENTS=2000
WINDOW=200
MAX_MIN=5
while [ $# -gt 0 ]; do
  case "$1" in
    --parley) PARLEY=$2; shift 2 ;;
    --agents) AGENTS=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --max-minutes) MAX_MIN=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for tool in sipp kamailio ss timeout setsid python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "missing tool: $tool (apt-get install -y sip-tester kamailio)" >&2; exit 2; }
done
[ -x "$PARLEY" ] || { echo "no parley binary at $PARLEY (swift build -c release, or --parley PATH)" >&2; exit 2; }
case "$AGENTS" in ''|*[!0-9]*) echo "--agents must be a number" >&2; exit 2 ;; esac
[ "$AGENTS" -ge 4 ] && [ "$AGENTS" -le 5000 ] || { echo "--agents must be 4 to 5000" >&2; exit 2; }

IP=127.0.0.1
DOMAIN=cc.test
LOG=$(mktemp -d /tmp/parley-bench-register.XXXXXX)
DEADLINE=$(( $(date +%s) + MAX_MIN * 60 ))
BG_PIDS=()
LOGROOT=$LOG
KEEP=1
PORT_BASE=19060
# shellcheck source=../Tests/lib/sipp-common.sh
. "$ROOT/Tests/lib/sipp-common.sh"
trap stop_all EXIT
trap 'exit 130' INT TERM

left() { echo $(( DEADLINE - $(date +%s) )); }
spawn() { local log=$1; shift; setsid "$@" >>"$log" 2>&1 & SPAWN_PID=$!; BG_PIDS+=("$SPAWN_PID"); }
now() { date +%s.%N; }

SKILLS=(sales support billing tech)
for i in $(seq 5 $(( (AGENTS + 124) / 125 ))); do SKILLS+=("skill$i"); done
NS=${#SKILLS[@]}
# Agents a0..aN-1: skills i%4 and (i+1)%4; contacts on ports 40000+i (nobody listens: only the
# registrations are measured).
make_files() { # DIR REG_PORT UP_PORT DIST_PORT
  local dir=$1 i
  {
    echo "rules: $ROOT/rules"
    echo "roles: [registration]"
    echo "listeners: {distributor: \"$IP:$4\", buffer: \"$IP:$(( $4 + 1 ))\"}"
    (IFS=,; echo "skills: [${SKILLS[*]}]")
    echo "records: {database: off}"
    echo "log_level: warning"
    echo "agents:"
    for i in $(seq 0 $((AGENTS - 1))); do
      echo "  - {id: a$i, skills: [${SKILLS[$((i % NS))]}, ${SKILLS[$(((i + 1) % NS))]}], contact: \"sip:a$i@$IP:$((40000 + i))\"}"
    done
    echo "registration:"
    echo "  listen: \"$IP:$2\""
    echo "  domain: $DOMAIN"
    echo "  algorithm: MD5"
    echo "  upstream: \"$IP:$3\""
    echo "  upstream_user: parley"
    echo "  upstream_password: up-pw"
    echo "  upstream_timeout: 5s"
    echo "  database: registrations.sqlite"
    echo "  credentials:"
    for i in $(seq 0 $((AGENTS - 1))); do echo "    a$i: pw$i"; done
  } >"$dir/parley.yaml"
}

start_upstream() { # DIR KIND PORT
  if [ "$2" = kamailio ]; then
    spawn "$1/upstream.log" kamailio -f "$KAMCFG" -DD -E -n 2 -m 256 -M 32 -u root -g root -P "$1/kamailio.pid" \
      -l "udp:$IP:$3" -l "tcp:$IP:$3" -A 'AUTH_PASSWORD="up-pw"' -A "BRANCH_TIMEOUT_MS=2000"
  else
    spawn "$1/upstream.log" "$PARLEY" registrar --listen "$IP:$3" --realm "$DOMAIN" --user parley:up-pw --algorithm MD5 --trusted "$IP" --log-level warning
  fi
  UP_PID=$SPAWN_PID
  wait_listening "$3" udp "$UP_PID" 10
}

# register DIR NAME TARGET_PORT PASSWORD_FORMAT -> prints "rate failed seconds"
register() {
  local dir=$1 name=$2 port=$3 pw=$4 ok failed secs
  timeout -k 5 100 python3 "$LOAD" --target "$IP:$port" --domain "$DOMAIN" --agents "$AGENTS" --password "$pw" \
    --window "$WINDOW" --timeout 90 >"$dir/$name.out" 2>&1
  read -r ok failed secs <"$dir/$name.out"
  awk -v n="${ok:-0}" -v f="${failed:-?}" -v s="${secs:-0}" 'BEGIN { printf "%.0f %s %.2f\n", (s > 0 ? n / s : 0), f, s }'
}

# settled DIR UP_PORT -> seconds until sip:sales@ holds Parley + every sales agent (or "not")
settled() {
  local dir=$1 port=$2 t0 want n i
  # Parley's binding, and every agent with the first skill (i % NS == 0 or (i + 1) % NS == 0)
  want=$(awk -v a="$AGENTS" -v n="$NS" 'BEGIN { c = 1; for (i = 0; i < a; i++) if (i % n == 0 || (i + 1) % n == 0) c++; print c }')
  t0=$(now)
  for i in $(seq 60); do
    rm -f "$dir/query.messages.log"
    (cd "$dir" && timeout 10 sipp "$IP:$port" -sf "$QUERYXML" -i "$IP" -p "$QCLIENT" -m 1 -nostdin -timeout 8s -key domain "$DOMAIN" \
        -key agent "${SKILLS[0]}" -au parley -ap up-pw -auth_uri "$DOMAIN" -trace_msg -message_file "$dir/query.messages.log" >/dev/null 2>&1)
    n=$(grep -io "<sip:[^>]*>" "$dir/query.messages.log" 2>/dev/null | grep -c "@$IP:")
    # the query's own REGISTERs carry no Contact: every match is from the 200's Contact set
    [ "$n" -ge "$want" ] && { awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f\n", b - a }'; return 0; }
    [ "$(left)" -le 5 ] && break
    sleep 0.5
  done
  echo "not within 30 s ($n of $want)"
}

echo "# $AGENTS agents, 2 skills each, $NS skill addresses ($(( AGENTS * 2 / NS )) agents each), $WINDOW in flight; logs: $LOG"
printf "%-44s %10s %7s %8s %s\n" "what" "REG/s" "failed" "seconds" "fan-out settled"
for kind in kamailio parley; do
  [ "$(left)" -gt 30 ] || { echo "# out of time"; break; }
  dir="$LOG/$kind"; mkdir -p "$dir"
  b=$(alloc_block) || { echo "no free ports" >&2; exit 1; }
  UP=$b; REG=$((b + 1)); DIST=$((b + 2)); QCLIENT=$((b + 5))
  make_files "$dir" "$REG" "$UP" "$DIST"
  start_upstream "$dir" "$kind" "$UP" || { echo "$kind did not start (see $dir/upstream.log)"; continue; }
  if [ "$kind" = kamailio ]; then
    read -r r f s < <(register "$dir" direct "$UP" up-pw)
    printf "%-44s %10s %7s %8s %s\n" "Kamailio alone (agents -> Kamailio)" "$r" "$f" "$s" "-"
    stop_pid "$UP_PID"
    start_upstream "$dir" "$kind" "$UP" || { echo "kamailio did not restart"; continue; }
  fi
  (cd "$dir" && exec setsid "$PARLEY" serve --config parley.yaml) >>"$dir/parley.log" 2>&1 &
  PPID_=$!; BG_PIDS+=("$PPID_")
  wait_listening "$REG" udp "$PPID_" 20 || { echo "parley serve did not start (see $dir/parley.log)"; continue; }
  sleep 1
  read -r r f s < <(register "$dir" through-parley "$REG" 'pw{i}')
  t=$(settled "$dir" "$UP")
  label="agents -> Parley (fan-out) -> $([ "$kind" = kamailio ] && echo Kamailio || echo parley registrar)"
  printf "%-44s %10s %7s %8s %s\n" "$label" "$r" "$f" "$s" "$t s after the last 200"
  stop_all
done
