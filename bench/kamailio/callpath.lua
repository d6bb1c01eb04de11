-- callpath.lua: the Lua (KEMI) routing of bench/kamailio/callpath.cfg.
-- Decides: an initial INVITE goes to the next agent in turn (round robin over the ports in the
-- environment variable CALLPATH_AGENTS, one rotation per worker process), Record-Routed so the
-- whole dialog crosses this proxy; in-dialog requests follow their Route set; CANCEL follows its
-- INVITE; retransmissions are absorbed by tm.
-- CALLPATH_RECORD_ROUTE=no leaves the Record-Route out: the proxy then sees only the INVITE
-- transaction (the first of the two-hop topology, CALLPATH_AGENTS naming the second proxy).

local agents = nil
local turn = 0
local record = nil

local function agent_ports()
  if agents == nil then
    agents = {}
    local list = KSR.pv.get("$env(CALLPATH_AGENTS)") or ""
    for port in string.gmatch(list, "%d+") do agents[#agents + 1] = port end
  end
  return agents
end

local function relay()
  if KSR.tm.t_relay() < 0 then KSR.sl.sl_reply_error() end
  KSR.x.exit()
end

function ksr_request_route()
  if KSR.maxfwd.process_maxfwd(70) < 0 then
    KSR.sl.sl_send_reply(483, "Too Many Hops")
    KSR.x.exit()
  end

  local method = KSR.pv.get("$rm")
  if method == "CANCEL" then
    if KSR.tm.t_check_trans() > 0 then relay() end
    KSR.x.exit()
  end

  if method ~= "ACK" then
    if KSR.tmx.t_precheck_trans() > 0 then
      KSR.tm.t_check_trans()
      KSR.x.exit()
    end
    if KSR.tm.t_check_trans() == 0 then KSR.x.exit() end
  end

  if KSR.siputils.has_totag() > 0 then
    if KSR.rr.loose_route() > 0 then relay() end
    if method == "ACK" then
      if KSR.tm.t_check_trans() > 0 then relay() end
      KSR.x.exit()
    end
    KSR.sl.sl_send_reply(404, "Not here")
    KSR.x.exit()
  end

  local ports = agent_ports()
  if #ports == 0 then
    KSR.sl.sl_send_reply(500, "No agents configured")
    KSR.x.exit()
  end
  turn = turn % #ports + 1
  if record == nil then record = KSR.pv.get("$env(CALLPATH_RECORD_ROUTE)") ~= "no" end
  if method == "INVITE" and record then KSR.rr.record_route() end
  KSR.setdsturi("sip:127.0.0.1:" .. ports[turn])
  relay()
end
