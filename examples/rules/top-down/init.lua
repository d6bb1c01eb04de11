-- top-down/init.lua: ring by seniority ("top-down" hunting).
-- classify: every call is "sales"; calls from the partner domain get priority 5.
-- select_agent: the available agent with the highest attrs.seniority (ties: lowest id) always
--   gets the call; an agent who already declined it (call.attempts) is never asked again.
-- order_registrations: by seniority too, q = seniority / 10 (capped at 1.0).
-- handoff_encoding: "tunnel" for agents on the softphone (attrs.device == "softphone").

local partner_domain = "partner.example.com"

function classify(invite)
  local host = invite.from and invite.from:match("@([^;>]+)")
  if host == partner_domain then return "sales", { priority = 5 } end
  return "sales"
end

local function seniority(a) return tonumber(a.attrs.seniority) or 0 end

local function senior_first(x, y)
  if seniority(x) ~= seniority(y) then return seniority(x) > seniority(y) end
  return x.id < y.id
end

function select_agent(call, agents)
  local list = {}
  for _, a in ipairs(agents) do list[#list + 1] = a end
  table.sort(list, senior_first)
  return list[1] and list[1].id
end

function order_registrations(address, agents)
  local list = {}
  for _, a in ipairs(agents) do list[#list + 1] = a end
  table.sort(list, senior_first)
  local out = {}
  for i, a in ipairs(list) do out[i] = { id = a.id, q = math.min(1.0, seniority(a) / 10) } end
  return out
end

function handoff_encoding(call, agent)
  if agent.attrs.device == "softphone" then return "tunnel" end
  return "uri"
end
