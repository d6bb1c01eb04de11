-- Tests of the call-path suite's own rules.

function test_lowest_rank_is_selected()
  local c = call{type = "sales", invite = sip.invite{}}
  assert_eq(select_agent(c, {agent{id = "b", attrs = {rank = 2}}, agent{id = "a", attrs = {rank = 1}}}), "a")
end

function test_handoff_follows_the_test_header()
  local c = call{type = "sales", invite = sip.invite{headers = {["X-Test-Handoff"] = "tunnel"}}}
  assert_eq(handoff_encoding(c, agent{id = "a"}), "tunnel")
end

function test_classify_raises_when_asked()
  local ok = pcall(classify, sip.invite{headers = {["X-Test-Raise"] = "classify"}})
  assert_eq(ok, false)
end

function test_priority_follows_the_test_header()
  local t, opts = classify(sip.invite{headers = {["X-Test-Priority"] = "5"}})
  assert_eq(t, "sales")
  assert_eq(opts, {priority = 5})
  local _, plain = classify(sip.invite{})
  assert_eq(plain, {priority = 0})
end
