-- Tests/sipp-callpath/rules/init.lua: rules for the call-path SIPp suite. Deterministic on
-- purpose: the caller's scenario chooses what the rules decide through test headers.
-- classify: X-Test-Raise: classify makes the hook raise (the call must still connect, on the
--   default "default", which every agent serves); otherwise the type is "sales", with the
--   priority X-Test-Priority gives (0 without it).
-- select_agent: the candidate with the lowest attrs.rank (so "agent 1 refuses, agent 2 answers"
--   is repeatable); X-Test-Raise: select_agent makes it raise (default: longest idle).
-- handoff_encoding: X-Test-Handoff (uri, message or tunnel); X-Test-Raise: handoff makes it raise.

local function raises(invite, hook)
  local v = invite:header("X-Test-Raise")
  return v ~= nil and v == hook
end

function classify(invite)
  if raises(invite, "classify") then error("classify raised on purpose (X-Test-Raise)") end
  -- X-Test-Priority: N (the queue tests) sets the call's priority.
  return "sales", {priority = tonumber(invite:header("X-Test-Priority") or "") or 0}
end

function select_agent(call, agents)
  if raises(call.invite, "select_agent") then error("select_agent raised on purpose (X-Test-Raise)") end
  local best
  for _, a in ipairs(agents) do
    if best == nil or (a.attrs.rank or 99) < (best.attrs.rank or 99) then best = a end
  end
  if best then trace("lowest rank among", #agents .. ":", best.id) end
  return best and best.id
end

function handoff_encoding(call, agent)
  if raises(call.invite, "handoff") then error("handoff_encoding raised on purpose (X-Test-Raise)") end
  return call.invite:header("X-Test-Handoff") or "uri"
end
