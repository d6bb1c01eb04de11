-- Tests for the ring-by-seniority rule set.

local function staff(id, seniority, attrs)
  attrs = attrs or {}
  attrs.seniority = seniority
  return agent{ id = id, skills = { "sales" }, attrs = attrs }
end

function test_most_senior_agent_gets_the_call()
  assert_eq(select_agent(call{ type = "sales" }, { staff("junior", 1), staff("lead", 9), staff("mid", 5) }), "lead")
end

function test_seniority_tie_goes_to_the_lowest_id()
  assert_eq(select_agent(call{ type = "sales" }, { staff("zed", 5), staff("amy", 5) }), "amy")
end

function test_partner_calls_get_priority()
  local kind, opts = classify(sip.invite{ from = "sip:buyer@partner.example.com" })
  assert_eq({ kind, opts }, { "sales", { priority = 5 } })
end

function test_other_calls_have_no_priority_table()
  local kind, opts = classify(sip.invite{ from = "sip:someone@example.org" })
  assert_eq({ kind, opts }, { "sales", nil })
end

function test_registrations_follow_seniority()
  local order = order_registrations(address{ skill = "sales" }, { staff("a", 3), staff("b", 12), staff("c", 7) })
  assert_eq(order, { { id = "b", q = 1.0 }, { id = "c", q = 0.7 }, { id = "a", q = 0.3 } })
end

function test_softphone_agents_get_the_call_tunnelled()
  assert_eq(handoff_encoding(call{}, staff("a", 1, { device = "softphone" })), "tunnel")
  assert_eq(handoff_encoding(call{}, staff("b", 1)), "uri")
end
