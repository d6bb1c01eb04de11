-- Tests for the language-first rule set.

function test_prefix_line_sets_the_language()
  assert_eq(classify(sip.invite{ uri = "sip:fr-support@cc.example.com" }), "lang_fr")
end

function test_accept_language_decides_without_a_prefix()
  assert_eq(classify(sip.invite{ uri = "sip:support@cc.example.com", headers = { ["Accept-Language"] = "de-CH, en;q=0.5" } }), "lang_de")
end

function test_accept_language_list_is_split()
  local invite = sip.invite{ headers = { ["Accept-Language"] = "es, en;q=0.5" } }
  assert_eq(invite:headers("accept-language"), { "es", "en;q=0.5" })
end

function test_unsupported_language_falls_back_to_english()
  assert_eq(classify(sip.invite{ uri = "sip:jp-sales@cc.example.com" }), "lang_en")
end

function test_native_speaker_wins_over_a_longer_idle_one()
  local agents = {
    agent{ id = "learner", skills = { "lang_fr" }, idle_ms = 99999 },
    agent{ id = "native", skills = { "lang_fr" }, idle_ms = 1, attrs = { native = true } },
  }
  assert_eq(select_agent(call{ type = "lang_fr" }, agents), "native")
end

function test_among_natives_the_longest_idle_wins()
  local agents = {
    agent{ id = "a", idle_ms = 5, attrs = { native = true } },
    agent{ id = "b", idle_ms = 50, attrs = { native = true } },
  }
  assert_eq(select_agent(call{ type = "lang_fr" }, agents), "b")
end

function test_agent_sees_the_language_first()
  assert_eq(handoff_encoding(call{ type = "lang_fr" }, agent{}), "message")
end
