-- language-first/init.lua: the caller's language decides everything.
-- classify: the language from the dialled number's prefix line (sip:fr-...), else the first
--   language of Accept-Language, else "en"; the call type is "lang_<code>", so agents hold
--   skills such as "lang_fr". Unsupported languages fall back to "lang_en".
-- select_agent: agents whose attrs.native == true for the language first, then longest idle.
-- handoff_encoding: "message", so the agent sees the caller's language before answering.

local supported = { en = true, fr = true, de = true, es = true }

local function language_of(invite)
  local user = invite.uri_user or ""
  local prefix = user:match("^(%a%a)%-")
  if prefix and supported[prefix:lower()] then return prefix:lower() end
  local accept = invite:headers("Accept-Language")[1]
  if accept then
    local code = accept:match("^%s*(%a%a)")
    if code and supported[code:lower()] then return code:lower() end
  end
  return "en"
end

function classify(invite)
  return "lang_" .. language_of(invite)
end

function select_agent(call, agents)
  local chosen
  for _, a in ipairs(agents) do
    local native = a.attrs.native == true
    local chosen_native = chosen and chosen.attrs.native == true
    if chosen == nil or (native and not chosen_native)
        or (native == chosen_native and a.idle_ms > chosen.idle_ms) then
      chosen = a
    end
  end
  return chosen and chosen.id
end

function handoff_encoding(call, agent)
  return "message"
end
