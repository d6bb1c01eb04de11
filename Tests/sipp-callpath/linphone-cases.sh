# Tests/sipp-callpath/linphone-cases.sh: a second real softphone beside baresip. linphone's
# console client (Debian's linphone-cli, `linphonec`), driven through a FIFO on its standard
# input, as a caller moved from music on hold to an agent, and as an agent that transfers its
# caller. Sourced by run.sh (its helpers, ports and processes).

need_linphone() {
  command -v linphonec >/dev/null 2>&1 || { REASON="linphonec not installed (apt-get install -y linphone-cli; make test does)"; return 1; }
}

# linphone_start DIR NAME SIP_PORT RTP_PORT [-a]: linphonec on SIP_PORT (UDP only), audio RTP on
# RTP_PORT, no video, no registration; -a answers incoming calls. Its commands come from a FIFO
# (`lp NAME COMMAND`), its log (-d 6) goes to DIR/NAME/linphone.log.
linphone_start() {
  local dir=$1 name=$2 sip=$3 rtp=$4 auto=${5:-} pid fd
  mkdir -p "$dir/$name/.local/share/linphone"  # its database: without it the core never starts listening
  cat >"$dir/$name/linphonerc" <<EOF
[sip]
contact="Linphone $name" <sip:linphone-$name@$IP>
guess_hostname=0
sip_port=$sip
sip_tcp_port=0
sip_tls_port=0
bind_address=$IP
default_proxy=-1
ping_with_options=0
[rtp]
audio_rtp_port=$rtp
[video]
enabled=0
capture=0
display=0
[sound]
echocancellation=0
[misc]
max_calls=2
EOF
  rm -f "$dir/$name/cmd"
  mkfifo "$dir/$name/cmd"
  (cd "$dir/$name" && HOME="$dir/$name" exec setsid timeout -k 5 90 linphonec -c "$dir/$name/linphonerc" -d 6 \
      -l "$dir/$name/linphone.log" $auto <"$dir/$name/cmd" >"$dir/$name/out.txt" 2>&1) &
  pid=$!
  BG_PIDS+=("$pid")
  exec {fd}>"$dir/$name/cmd"
  eval "LP_FD_$name=$fd; LP_PID_$name=$pid"
  wait_listening "$sip" udp "$pid" 10 || { REASON="linphonec $name not listening on $sip ($name/out.txt)"; return 1; }
}
# lp NAME COMMAND: a linphonec console command
lp() { local v="LP_FD_$1"; echo "$2" >&"${!v}"; }
# lp_stop NAME: quit, and close its FIFO
lp_stop() {
  local v="LP_FD_$1" p="LP_PID_$1" i
  echo quit >&"${!v}" 2>/dev/null
  eval "exec ${!v}>&-"
  for i in $(seq 30); do kill -0 "${!p}" 2>/dev/null || return 0; sleep 0.1; done
  stop_pid "${!p}"
}

# linphone calls sales while the only agent is busy: it waits on music on hold (the SIPp hold
# server answers it), then is moved to the agent by a re-INVITE, which linphone takes as a new
# offer of the same session (Parley's origin, version up by one): its log shows the audio stream
# restarted toward the agent's media port, not the hold server's.
CASE_linphone_caller_moved_from_hold_to_agent() {
  local dir=$1 b r agent_media moh_media
  need_linphone || return 1
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  agent_media=$((25000 + b - 17060)); moh_media=$((agent_media + 4))
  write_queue_config "$dir" "$b" "max_wait: 30s, treatment: moh"
  start_serve "$dir" "$b" || return 1
  start_agent "$dir" a1 agent-answers.xml $((b + 3)) 2 60 -mp "$agent_media"
  # The hold server and the agent's phone write the same o= line (one kind of device, or one
  # media server behind both): passed through, the agent's answer would look like the hold
  # music's again to a phone that goes by the origin's version (RFC 3264 8). Parley sends its
  # own origin, the version one up (checked below in what linphone received).
  sed 's|o=moh 1 1 IN|o=user1 53655765 2353687637 IN|' "$HERE/treatment-answers.xml" >"$dir/treatment-same-origin.xml"
  grep -q "o=user1 53655765 2353687637" "$dir/treatment-same-origin.xml" || { REASON="could not give the hold server the agent's origin"; return 1; }
  start_agent "$dir" moh "$dir/treatment-same-origin.xml" $((b + 6)) 1 60 -mp "$moh_media"
  bg_caller "$dir" first caller-answered-hangs-up.xml "$b" $((b + 8)) first 0 -d 3000
  sleep 0.7
  linphone_start "$dir" phone $((b + 9)) $((24000 + b - 17060)) || return 1
  lp phone "call sip:sales@$IP:$b"
  sleep 6
  lp phone "terminate"
  sleep 1
  lp_stop phone
  callers_ok "$dir" first || return 1
  wait_agent a1 10; r=$?; check_side "$dir" a1 "$r" 2 || return 1
  wait_agent moh 10; r=$?; check_side "$dir" moh "$r" 1 || return 1
  # the descriptions linphone received (its log has every message; its own o= lines name it):
  # one origin, Parley's, the version one up at the move
  local origins
  origins=$(awk '/^o=/ && !/^o=linphone-/ { sub(/\r$/, ""); print }' "$dir/phone/linphone.log" | uniq)
  echo "$origins" >"$dir/phone/origins.txt"
  awk '{ split($0, f, " "); if (f[1] != "o=parley") bad = 1; if (NR == 1) { id = f[2]; v = f[3] }
         else { if (f[2] != id) bad = 1; if (f[3] != v && f[3] != v + 1) bad = 1; v = f[3] } ; n++ }
       END { exit (bad || n < 2) }' "$dir/phone/origins.txt" \
    || { REASON="linphone received these origins: $(tr '\n' ';' <"$dir/phone/origins.txt"), not Parley's one session with its version raised (phone/origins.txt)"; return 1; }
  # mediastreamer logs where each RTP session sends: the hold server's port, then the agent's
  awk -v m=":$moh_media " -v a=":$agent_media " '/sending to rtp/ && index($0, m) { moh = NR } /sending to rtp/ && index($0, a) && moh { ok = 1 }
      END { exit !ok }' "$dir/phone/linphone.log" \
    || { REASON="linphone's audio never went to the agent's port $agent_media after the hold server's $moh_media (phone/linphone.log)"; return 1; }
  wait_drained "$dir" 10 || return 1
  records "$dir"
  expect_call "$dir" linphone-phone completed a1 200 ENTERQUEUE "TREATMENT(moh)" "OFFER(a1)" "CONNECT(a1)" "COMPLETE(a1)" || return 1
}

# linphone as agent a1 (it answers by itself) transfers its caller blind to TARGET: agent a2, or
# the queue sales (whose rules choose a2). The SIPp caller is re-INVITEd to a2 and talks on; a2
# takes the call; linphone's call with the caller ends; the records show the transfer.
# linphone_transfers DIR TARGET
linphone_transfers() {
  local dir=$1 target=$2 b r
  need_linphone || return 1
  b=$(alloc_block) || { REASON="no free ports"; return 1; }
  write_config "$dir" "$b" "no_answer_timeout: 5s, wrap_up: 0, heartbeat: 1s, stale_after: 10s, probe: off" 2
  start_serve "$dir" "$b" || return 1
  linphone_start "$dir" a1 $((b + 3)) $((24000 + b - 17060)) -a || return 1
  start_agent "$dir" a2 agent-answers.xml $((b + 4)) 1 60
  bg_caller "$dir" caller caller-transferred.xml "$b" $((b + 9)) caller 0 -d 3000
  sleep 2.5
  lp a1 "transfer sip:$target@$IP"
  callers_ok "$dir" caller || { lp_stop a1; return 1; }
  wait_agent a2 10; r=$?
  lp_stop a1
  check_side "$dir" a2 "$r" 1 || return 1
  grep -q "^REFER sip:" "$dir/a1/linphone.log" || { REASON="linphone sent no REFER (a1/linphone.log)"; return 1; }
  grep -q "SIP/2.0 202" "$dir/a1/linphone.log" || { REASON="linphone's REFER got no 202 (a1/linphone.log)"; return 1; }
  grep -q "message/sipfrag" "$dir/a1/linphone.log" || { REASON="linphone got no NOTIFY with the transfer's progress (a1/linphone.log)"; return 1; }
  one_sdp_session "$dir" caller || return 1
  wait_drained "$dir" 10 || return 1
  [ "$(stat "$dir" distributor transfers)" = 1 ] || { REASON="distributor transfers=$(stat "$dir" distributor transfers), want 1"; return 1; }
  records "$dir"
  expect_call "$dir" caller completed a2 200 ENTERQUEUE "OFFER(a1)" "CONNECT(a1)" "TRANSFER(a1)" "OFFER(a2)" "CONNECT(a2)" "COMPLETE(a2)" || return 1
}
CASE_linphone_agent_transfers_to_agent() { linphone_transfers "$1" a2; }
CASE_linphone_agent_transfers_to_queue() { linphone_transfers "$1" sales; }

LINPHONE_CASES="linphone-caller-moved-from-hold-to-agent linphone-agent-transfers-to-agent linphone-agent-transfers-to-queue"
