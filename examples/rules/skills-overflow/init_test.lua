-- Tests for the skills-with-overflow rule set.

local function pro(id, lvl, idle) return agent{ id = id, skills = { "sales" }, attrs = { level = lvl }, idle_ms = idle or 0 } end
local function backup(id) return agent{ id = id, skills = { "sales", "general" }, attrs = { level = 0, overflow = true } } end

function test_dialled_skill_is_the_call_type()
  assert_eq(classify(sip.invite{ uri = "sip:Sales@cc.example.com" }), "sales")
end

function test_unknown_skill_is_general()
  assert_eq(classify(sip.invite{ uri = "sip:12345@cc.example.com" }), "general")
end

function test_highest_level_agent_wins()
  assert_eq(select_agent(call{ type = "sales" }, { pro("ann", 1, 9000), pro("bob", 3, 10) }), "bob")
end

function test_equal_levels_go_to_the_longest_idle()
  assert_eq(select_agent(call{ type = "sales" }, { pro("ann", 2, 10), pro("bob", 2, 20) }), "bob")
end

function test_call_waits_for_a_skilled_agent_before_overflow()
  assert_eq(select_agent(call{ type = "sales", waited_ms = 29999 }, { backup("gil") }), nil)
end

function test_call_overflows_to_general_after_thirty_seconds()
  assert_eq(select_agent(call{ type = "sales", waited_ms = 30000 }, { backup("gil") }), "gil")
end

function test_overflow_needs_the_overflow_flag()
  local plain = agent{ id = "pat", skills = { "sales", "general" }, attrs = { level = 0 } }
  assert_eq(select_agent(call{ type = "sales", waited_ms = 90000 }, { plain }), nil)
end

function test_missing_order_registrations_uses_the_default()
  local order = order_registrations(address{ skill = "sales" },
    { agent{ id = "a", idle_ms = 1 }, agent{ id = "b", idle_ms = 5 }, agent{ id = "c", idle_ms = 3 } })
  assert_eq(order, { { id = "b", q = 1.0 }, { id = "c", q = 0.55 }, { id = "a", q = 0.1 } })
end
