-- config.lua: what this contact center is. Edit this file; the modules in lib/ decide from it.
-- Decides nothing itself: numbers, VIPs, hours, languages and strategies live here so that the
-- logic in lib/ stays the same from one site to the next.

return {
  -- Dialled number (Request-URI user part, digits as dialled) -> call type (a skill name).
  numbers = {
    ["+18005550100"] = "sales",
    ["+18005550101"] = "support",
    ["+18005550102"] = "billing",
    ["+18005550199"] = "support", -- the French line, see languages below
    ["8000"] = "sales",
    ["8001"] = "support",
    ["8002"] = "billing",
  },

  -- Request-URI user parts that name a skill directly (sip:sales@cc.example.com).
  skills = { sales = true, support = true, billing = true },

  -- Words in the Subject header that decide the call type when the number does not.
  subject_words = {
    invoice = "billing", refund = "billing", payment = "billing", bill = "billing",
    broken = "support", outage = "support", help = "support", ["not working"] = "support",
    quote = "sales", pricing = "sales", upgrade = "sales",
  },

  -- A header an upstream IVR sets with the caller's choice; it wins over everything but VIPs.
  skill_header = "X-Parley-Skill",

  -- VIP callers by number or user part: they keep their call type and are served first.
  vips = {
    ["+14155550123"] = "Acme Corp (key account)",
    ["+442071838750"] = "Globex UK",
    ["ceo"] = "our own CEO",
  },
  vip_priority = 100,

  -- Business hours, local time at utc_offset_minutes (fixed offset: no daylight saving).
  utc_offset_minutes = -300,
  hours = {
    -- weekday (1 = Monday ... 7 = Sunday) -> {open, close} in minutes after midnight
    [1] = { 8 * 60, 20 * 60 }, [2] = { 8 * 60, 20 * 60 }, [3] = { 8 * 60, 20 * 60 },
    [4] = { 8 * 60, 20 * 60 }, [5] = { 8 * 60, 18 * 60 }, [6] = { 9 * 60, 13 * 60 },
  },
  holidays = { ["2025-01-01"] = true, ["2025-07-04"] = true, ["2025-12-25"] = true },
  after_hours_type = "after_hours",

  -- Language lines: dialled number -> language agents should speak.
  languages = { ["+18005550199"] = "fr" },
  -- After this wait a call that needs a language takes any agent with the skill.
  language_wait_ms = 45000,

  -- How each call type picks its agent: longest_idle, least_talk or round_robin.
  strategies = { sales = "longest_idle", support = "least_talk", billing = "round_robin" },
  default_strategy = "longest_idle",

  -- Registration ordering: q goes down by this step per agent, never below min_q.
  registration_step = 0.1,
  registration_min_q = 0.1,
}
