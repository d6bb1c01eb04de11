-- Tests for lib/handoff.lua through the handoff_encoding hook.

function test_ordinary_call_is_handed_off_by_uri()
  assert_eq(handoff_encoding(call{ type = "sales" }, agent{}), "uri")
end

function test_vip_call_is_announced_by_message()
  assert_eq(handoff_encoding(call{ type = "sales", priority = 100 }, agent{}), "message")
end

function test_agent_preference_wins()
  assert_eq(handoff_encoding(call{ priority = 100 }, agent{ attrs = { handoff = "tunnel" } }), "tunnel")
end

function test_invalid_agent_preference_is_ignored()
  assert_eq(handoff_encoding(call{}, agent{ attrs = { handoff = "carrier-pigeon" } }), "uri")
end
