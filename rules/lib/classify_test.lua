-- Tests for lib/classify.lua through the classify hook (config.lua's numbers, words, VIPs).
local classify_lib = require "lib.classify"

local OPEN = 1741014000000   -- Monday 10:00 at UTC-5
local CLOSED = 1741053600000 -- Monday 21:00 at UTC-5

local function classify_at(ms, o)
  parley.set_now_ms(ms)
  return classify(sip.invite(o))
end

function test_dialled_sales_number_is_sales()
  assert_eq(classify_at(OPEN, { uri = "sip:+18005550100@cc.example.com" }), "sales")
  assert_eq(last_trace(), { "dialled +18005550100 which is the sales line" })
end

function test_number_with_separators_is_normalized()
  assert_eq(classify_lib.normalize_number("+1 (800) 555-0101"), "+18005550101")
  assert_eq(classify_at(OPEN, { uri = "tel:+1-800-555-0102" }), "billing")
end

function test_short_extension_is_understood()
  assert_eq(classify_at(OPEN, { uri = "sip:8001@cc.example.com" }), "support")
end

function test_skill_named_in_the_uri_is_that_skill()
  assert_eq(classify_at(OPEN, { uri = "sip:Billing@cc.example.com" }), "billing")
end

function test_subject_words_decide_when_the_number_does_not()
  assert_eq(classify_at(OPEN, { uri = "sip:main@cc.example.com", headers = { Subject = "Refund for order 42" } }), "billing")
  assert_eq(last_trace(), { "the subject asks for billing" })
  assert_eq(classify_at(OPEN, { uri = "sip:main@cc.example.com", headers = { s = "Internet not working" } }), "support")
end

function test_ivr_header_wins_over_the_number()
  assert_eq(classify_at(OPEN, { uri = "sip:8000@cc.example.com", headers = { ["X-Parley-Skill"] = "Support" } }), "support")
end

function test_unknown_ivr_choice_is_ignored()
  assert_eq(classify_at(OPEN, { uri = "sip:8000@cc.example.com", headers = { ["X-Parley-Skill"] = "astrology" } }), "sales")
end

function test_unknown_call_is_default()
  local kind, opts = classify_at(OPEN, { uri = "sip:someone@cc.example.com" })
  assert_eq({ kind, opts }, { "default", { priority = 0 } })
end

function test_call_after_hours_goes_to_after_hours()
  assert_eq(classify_at(CLOSED, { uri = "sip:8000@cc.example.com" }), "after_hours")
end

function test_vip_caller_goes_to_priority_queue()
  local kind, opts = classify_at(OPEN, { uri = "sip:8000@cc.example.com", from = "sip:+14155550123@carrier.example" })
  assert_eq(kind, "sales")
  assert_eq(opts.priority, 100)
end

function test_vip_by_user_name()
  local _, opts = classify_at(OPEN, { from = "sip:ceo@example.com" })
  assert_eq(opts, { priority = 100 })
end

function test_vip_after_hours_still_gets_priority()
  local kind, opts = classify_at(CLOSED, { from = "sip:+442071838750@carrier.example" })
  assert_eq({ kind, opts.priority }, { "after_hours", 100 })
end

function test_parsed_invite_classifies_like_a_built_one()
  parley.set_now_ms(OPEN)
  local invite = sip.parse([[
INVITE sip:+18005550102@cc.example.com SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds
Max-Forwards: 70
To: <sip:+18005550102@cc.example.com>
f: "Bob" <sip:+15551234567@carrier.example>;tag=1928301774
Call-ID: a84b4c76e66710
CSeq: 314159 INVITE
Contact: <sip:bob@198.51.100.7>
Content-Length: 0
]])
  assert_eq(invite.from_display, "Bob")
  assert_eq(invite:header("From"), [["Bob" <sip:+15551234567@carrier.example>;tag=1928301774]])
  assert_eq(classify(invite), "billing")
end
