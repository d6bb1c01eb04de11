-- Tests for init.lua.
function test_sales_calls_are_sales()
  assert_eq(classify(sip.invite{ uri = "sip:sales@cc.test" }), "sales")
end

function test_agents_are_bound_in_the_listed_order_halving_q()
  local agents = { agent{ id = "alice", skills = { "sales" } }, agent{ id = "bob", skills = { "sales" } } }
  assert_eq(order_registrations(address{ skill = "sales", aor = "sip:sales@cc.test" }, agents),
            { { id = "bob", q = 1.0 }, { id = "alice", q = 0.5 } })
end
