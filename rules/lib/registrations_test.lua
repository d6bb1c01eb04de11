-- Tests for lib/registrations.lua through the order_registrations hook.

function test_skill_address_binds_skilled_agents_longest_idle_first()
  local agents = {
    agent{ id = "ann", skills = { "sales" }, idle_ms = 100 },
    agent{ id = "bob", skills = { "sales", "support" }, idle_ms = 900 },
    agent{ id = "cy", skills = { "support" }, idle_ms = 5000 },
  }
  assert_eq(order_registrations(address{ skill = "sales" }, agents), {
    { id = "bob", q = 1.0 },
    { id = "ann", q = 0.9 },
  })
end

function test_q_never_drops_below_the_minimum()
  local agents = {}
  for i = 1, 12 do agents[i] = agent{ id = "a" .. i, skills = { "sales" }, idle_ms = 100 - i } end
  local order = order_registrations(address{ skill = "sales" }, agents)
  assert_eq(#order, 12)
  assert_eq(order[10].q, 0.1)
  assert_eq(order[12].q, 0.1)
  assert_eq(order[12].id, "a12")
end

function test_offline_agents_get_no_binding()
  local agents = { agent{ id = "ann", skills = { "sales" }, state = "offline" }, agent{ id = "bob", skills = { "sales" } } }
  assert_eq(order_registrations(address{ skill = "sales" }, agents), { { id = "bob", q = 1.0 } })
end

function test_treatment_addresses_get_no_agent_bindings()
  local agents = { agent{ id = "ann", skills = { "sales" } } }
  assert_eq(order_registrations(address{ kind = "treatment", name = "moh" }, agents), {})
end
