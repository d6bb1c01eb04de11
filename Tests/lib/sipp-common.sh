# Shared by the SIPp suites (Tests/sipp/run.sh, Tests/sipp-callpath/run.sh): process clean-up,
# free port blocks, waiting for a listener, reading SIPp's statistics CSV.
# The including script sets PORT_BASE (first port of its range), KEEP, LOGROOT and uses BG_PIDS
# and FAILED.

# Stops a process started in its own session: the whole group (a leader that died may leave
# workers behind), else the process alone; TERM, up to 3 s, then KILL.
stop_pid() {
  local pid=$1 i
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
stop_all() {
  local pid
  for pid in "${BG_PIDS[@]}"; do stop_pid "$pid"; done
  BG_PIDS=()
}
on_exit() {
  stop_all
  if [ "$KEEP" = 0 ] && [ "${FAILED:-1}" = 0 ] && [ -z "${SIPP_LOG_DIR:-}" ]; then rm -rf "$LOGROOT"; fi
}

# A block of 10 consecutive ports in PORT_BASE..PORT_BASE+939 that nothing listens on (UDP or
# TCP), starting from a random block so that parallel runs rarely meet; never reused in a run.
USED_BLOCKS=" "
port_busy() { [ -n "$(ss -Hlnut "sport = :$1" 2>/dev/null)" ]; }
alloc_block() {
  local start=$(( (RANDOM % 94) )) i b p ok
  for i in $(seq 0 93); do
    b=$(( PORT_BASE + ((start + i) % 94) * 10 ))
    case "$USED_BLOCKS" in *" $b "*) continue ;; esac
    ok=1
    for p in $(seq "$b" $((b + 9))); do
      if port_busy "$p"; then ok=0; break; fi
    done
    if [ $ok = 1 ]; then USED_BLOCKS="$USED_BLOCKS$b "; echo "$b"; return 0; fi
  done
  echo "no free port block in $PORT_BASE-$((PORT_BASE + 939))" >&2
  return 1
}

wait_listening() { # PORT PROTO(udp|tcp) PID SECONDS
  local port=$1 proto=$2 pid=$3 tries=$(( $4 * 10 )) flag
  [ "$proto" = tcp ] && flag=-Hlnt || flag=-Hlnu
  while [ $tries -gt 0 ]; do
    kill -0 "$pid" 2>/dev/null || return 2
    [ -n "$(ss $flag "sport = :$port" 2>/dev/null)" ] && return 0
    sleep 0.1
    tries=$((tries - 1))
  done
  return 1
}

csv() { # FILE COLUMN_NAME: the column's value in SIPp's last statistics line
  local f=$1 name=$2
  [ -f "$f" ] || { echo "?"; return; }
  awk -F';' -v n="$name" 'NR==1 { for (i = 1; i <= NF; i++) if ($i == n) c = i } END { if (c) print $c; else print "?" }' "$f"
}
