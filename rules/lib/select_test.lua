-- Tests for lib/select.lua through the select_agent hook.
local select_lib = require "lib.select"

local function ids(list)
  local out = {}
  for i, a in ipairs(list) do out[i] = a.id end
  return out
end

-- Candidates come longest idle first (Parley keeps them in that order): the first one.
function test_sales_call_goes_to_the_longest_idle_agent()
  local agents = { agent{ id = "bob", idle_ms = 9000 }, agent{ id = "cy", idle_ms = 5000 }, agent{ id = "ann", idle_ms = 1000 } }
  assert_eq(select_agent(call{ type = "sales" }, agents), "bob")
  assert_eq(last_trace(), { "longest idle among 3: bob" })
end

function test_the_first_french_speaker_is_the_longest_idle_of_them()
  local fr = { language = "fr" }
  local agents = { agent{ id = "ann", idle_ms = 9000 }, agent{ id = "bob", idle_ms = 5000, attrs = fr },
                   agent{ id = "cy", idle_ms = 1000, attrs = fr } }
  local c = call{ type = "sales", invite = sip.invite{ uri = "sip:+18005550199@cc.example.com" } }
  assert_eq(select_agent(c, agents), "bob")
  assert_eq(last_trace(), { "language fr: 2 of 3 free agents speak it", "longest idle among 2: bob" })
end

function test_support_call_goes_to_the_agent_with_least_talk_time()
  local agents = { agent{ id = "ann", talk_ms = 50000, idle_ms = 90000 }, agent{ id = "bob", talk_ms = 20000 } }
  assert_eq(select_agent(call{ type = "support" }, agents), "bob")
end

function test_least_talk_tie_goes_to_the_longest_idle()
  local agents = { agent{ id = "ann", talk_ms = 100, idle_ms = 10 }, agent{ id = "bob", talk_ms = 100, idle_ms = 20 } }
  assert_eq(select_agent(call{ type = "support" }, agents), "bob")
end

function test_billing_calls_rotate_round_robin()
  local agents = { agent{ id = "b" }, agent{ id = "a" }, agent{ id = "c" } }
  local got = {}
  for i = 1, 4 do got[i] = select_agent(call{ type = "billing" }, agents) end
  assert_eq(got, { "a", "b", "c", "a" })
end

function test_round_robin_skips_an_agent_that_left()
  local all = { agent{ id = "a" }, agent{ id = "b" }, agent{ id = "c" } }
  assert_eq(select_agent(call{ type = "billing" }, all), "a")
  assert_eq(select_agent(call{ type = "billing" }, { all[1], all[3] }), "c")
end

function test_no_agents_leaves_the_call_queued()
  assert_eq(select_agent(call{ type = "sales" }, {}), nil)
end

function test_french_line_prefers_french_speakers()
  local agents = {
    agent{ id = "ann", idle_ms = 90000, attrs = { language = "en" } },
    agent{ id = "marc", idle_ms = 1000, attrs = { language = "fr" } },
  }
  local c = call{ type = "support", invite = sip.invite{ uri = "sip:+18005550199@cc.example.com" } }
  assert_eq(select_agent(c, agents), "marc")
end

function test_french_caller_waits_for_a_french_speaker()
  local agents = { agent{ id = "ann", attrs = { language = "en" } } }
  local c = call{ type = "support", waited_ms = 10000, invite = sip.invite{ uri = "sip:+18005550199@cc.example.com" } }
  assert_eq(select_agent(c, agents), nil)
end

function test_french_caller_takes_anyone_after_the_language_wait()
  local agents = { agent{ id = "ann", attrs = { language = "en" } } }
  local c = call{ type = "support", waited_ms = 45000, invite = sip.invite{ uri = "sip:+18005550199@cc.example.com" } }
  assert_eq(select_agent(c, agents), "ann")
end

function test_speaking_keeps_everyone_without_a_language()
  local agents = { agent{ id = "a" }, agent{ id = "b" } }
  assert_eq(ids(select_lib.speaking(agents, nil)), { "a", "b" })
end
