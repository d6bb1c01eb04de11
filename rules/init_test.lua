-- End-to-end tests of init.lua: the four hooks as Parley calls them.

local OPEN = 1741014000000 -- Monday 10:00 at UTC-5

function test_every_hook_is_defined()
  for _, name in ipairs({ "classify", "select_agent", "order_registrations", "handoff_encoding" }) do
    assert_eq(type(_G[name]), "function", name)
  end
end

function test_vip_sales_call_routes_to_the_longest_idle_sales_agent_announced_by_message()
  parley.set_now_ms(OPEN)
  local invite = sip.invite{ uri = "sip:+18005550100@cc.example.com", from = "sip:ceo@example.com" }
  local kind, opts = classify(invite)
  local c = call{ type = kind, priority = opts.priority, invite = invite }
  -- candidates come longest idle first, as Parley hands them
  local agents = { agent{ id = "bob", skills = { "sales" }, idle_ms = 20 }, agent{ id = "ann", skills = { "sales" }, idle_ms = 10 } }
  local chosen = select_agent(c, agents)
  assert_eq(chosen, "bob")
  assert_eq(handoff_encoding(c, agents[1]), "message")
end

function test_invite_view_is_read_only()
  local ok, err = pcall(function() local inv = sip.invite{}; inv.uri = "sip:evil@x" end)
  assert(not ok)
  assert(err:find("read-only", 1, true), err)
end

function test_agents_are_read_only()
  local ok = pcall(function() local a = agent{}; a.idle_ms = 0 end)
  assert(not ok)
end
