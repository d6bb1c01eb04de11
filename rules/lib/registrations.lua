-- lib/registrations.lua: decides which agents get a binding for a contact-center address, and in
-- what order. Skill addresses: agents holding the skill, longest idle first, q from 1.0 down by
-- config.registration_step (never below config.registration_min_q). Treatments (IVR, music on
-- hold, announcements) are served by Parley itself: no agent bindings.

local M = {}

function M.order(config, address, agents)
  if address.kind ~= "skill" then return {} end
  local eligible = {}
  for i, a in ipairs(agents) do
    if a.skills[address.skill] and a.state ~= "offline" then
      eligible[#eligible + 1] = { agent = a, index = i }
    end
  end
  table.sort(eligible, function(x, y)
    if x.agent.idle_ms ~= y.agent.idle_ms then return x.agent.idle_ms > y.agent.idle_ms end
    return x.index < y.index
  end)
  local out = {}
  for i, e in ipairs(eligible) do
    local q = 1.0 - (i - 1) * config.registration_step
    if q < config.registration_min_q then q = config.registration_min_q end
    out[i] = { id = e.agent.id, q = math.floor(q * 1000 + 0.5) / 1000 }
  end
  return out
end

return M
