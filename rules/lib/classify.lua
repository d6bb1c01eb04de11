-- lib/classify.lua: decides a call's type and priority from the INVITE.
-- Order: after hours first, then the IVR's skill header, the dialled number, a skill named in the
-- Request-URI, words in the Subject; VIP callers keep their type and get config.vip_priority.

local hours = require "lib.hours"

local M = {}

--- Digits as dialled: keeps a leading + and the digits, drops visual separators.
function M.normalize_number(user)
  if user == nil then return nil end
  if not user:find("[^%d+]") then return user end -- already plain digits
  local plus = user:sub(1, 1) == "+" and "+" or ""
  local digits = user:gsub("[^%d]", "")
  if digits == "" then return user end
  return plus .. digits
end

--- The VIP entry of a caller, or nil.
function M.vip(config, invite)
  local user = invite.from_user
  if user == nil then return nil end
  return config.vips[M.normalize_number(user)] or config.vips[user]
end

local function type_from_subject(config, subject)
  if subject == nil then return nil end
  local s = subject:lower()
  local best, best_at
  for word, kind in pairs(config.subject_words) do
    local at = s:find(word, 1, true)
    if at and (best_at == nil or at < best_at or (at == best_at and kind < best)) then
      best, best_at = kind, at
    end
  end
  return best
end

--- The call type alone (no priority).
-- Each branch says why with trace(...): the call's decision trace shows it to supervisors.
function M.call_type(config, invite, now_ms)
  if not hours.is_open(config, now_ms) then
    trace("outside business hours")
    return config.after_hours_type
  end
  local chosen = invite:header(config.skill_header)
  if chosen and config.skills[chosen:lower()] then
    trace("the IVR chose", chosen:lower())
    return chosen:lower()
  end
  local uri_user = invite.uri_user
  local number = M.normalize_number(uri_user)
  if number and config.numbers[number] then
    trace("dialled", number, "which is the", config.numbers[number], "line")
    return config.numbers[number]
  end
  local user = uri_user and uri_user:lower()
  if user and config.skills[user] then
    trace("dialled the", user, "address")
    return user
  end
  local by_subject = type_from_subject(config, invite:header("Subject"))
  if by_subject then
    trace("the subject asks for", by_subject)
    return by_subject
  end
  trace("nothing in the call names a skill: default queue")
  return "default"
end

--- classify(invite) for a config: type, {priority = N}.
function M.classify(config, invite, now_ms)
  local kind = M.call_type(config, invite, now_ms)
  local vip = M.vip(config, invite)
  if vip then
    log.info("VIP caller", invite.from_user, "(" .. vip .. ")")
    trace("VIP caller (" .. vip .. "): priority", config.vip_priority)
    return kind, { priority = config.vip_priority }
  end
  return kind, { priority = 0 }
end

return M
