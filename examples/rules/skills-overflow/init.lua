-- skills-overflow/init.lua: skills-based routing with overflow.
-- classify: the dialled skill (sip:sales@...); unknown skills go to "general".
-- select_agent: agents with the call's skill, highest attrs.level first, then longest idle;
--   after overflow_ms a call may also go to agents of its overflow skill, who must have
--   attrs.overflow == true (the distributor passes every available agent with the call type's
--   skill, so overflow agents list the primary skill too, with level 0).
-- handoff_encoding: always "uri".

local overflow = {
  sales = { to = "general", after_ms = 30000 },
  support = { to = "general", after_ms = 60000 },
}
local skills = { sales = true, support = true, general = true }

function classify(invite)
  local user = invite.uri_user and invite.uri_user:lower()
  if user and skills[user] then return user end
  return "general"
end

local function level(a)
  return tonumber(a.attrs.level) or 0
end

local function best(agents, accept)
  local chosen
  for _, a in ipairs(agents) do
    if accept(a) then
      if chosen == nil or level(a) > level(chosen)
          or (level(a) == level(chosen) and a.idle_ms > chosen.idle_ms) then
        chosen = a
      end
    end
  end
  return chosen
end

function select_agent(call, agents)
  local primary = best(agents, function(a) return level(a) > 0 end)
  if primary then return primary.id end
  local rule = overflow[call.type]
  if rule and call.waited_ms >= rule.after_ms then
    local backup = best(agents, function(a) return a.attrs.overflow == true and a.skills[rule.to] end)
    if backup then return backup.id end
  end
  return nil
end

function handoff_encoding(call, agent)
  return "uri"
end
