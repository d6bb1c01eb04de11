-- init.lua: Parley's routing rules for this contact center (rule API v1).
-- classify: after hours, IVR choice, dialled number, Request-URI skill, Subject; VIPs first.
-- select_agent: per call type, longest idle / least talk time / round robin, language lines first.
-- order_registrations: agents with the address's skill, longest idle first.
-- handoff_encoding: the agent's preference, "message" for VIP calls, else "uri".
-- Site data lives in config.lua; the logic in lib/. Tests sit beside each file (*_test.lua).

local config = require "config"
local classify_lib = require "lib.classify"
local select_lib = require "lib.select"
local registrations = require "lib.registrations"
local handoff = require "lib.handoff"

function classify(invite)
  return classify_lib.classify(config, invite, parley.now_ms())
end

function select_agent(call, agents)
  return select_lib.select(config, call, agents)
end

function order_registrations(address, agents)
  return registrations.order(config, address, agents)
end

function handoff_encoding(call, agent)
  return handoff.encoding(config, call, agent)
end
