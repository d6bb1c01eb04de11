-- init.lua: the rules of the registration suite (Tests/sipp-registration/run.sh).
-- classify: the Request-URI's user is the call type (sip:sales@... is a sales call).
-- order_registrations: the able agents in the order order.lua lists, q 1.0, 0.5, 0.25 ...;
-- the suite rewrites order.lua to check that a reload re-orders the upstream bindings.
local order = require "order"

function classify(invite)
  return invite.uri_user or "default"
end

function order_registrations(address, agents)
  local out, q = {}, 1.0
  for _, id in ipairs(order) do
    for _, a in ipairs(agents) do
      if a.id == id then
        out[#out + 1] = { id = id, q = q }
        q = q / 2
      end
    end
  end
  return out
end
