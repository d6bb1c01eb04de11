-- lib/handoff.lua: decides how a chosen agent receives the call: "uri" (the agent's contact in
-- the Request-URI), "message" (a SIP MESSAGE announcing the call first) or "tunnel" (the INVITE
-- carried inside the agent's existing dialog). An agent's attrs.handoff wins; VIP calls are
-- announced with "message" so the agent sees who is calling before answering.

local M = {}

local valid = { uri = true, message = true, tunnel = true }

function M.encoding(config, call, agent)
  local preferred = agent.attrs.handoff
  if preferred and valid[preferred] then return preferred end
  if call.priority >= config.vip_priority then return "message" end
  return "uri"
end

return M
