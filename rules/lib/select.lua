-- lib/select.lua: decides which available agent takes a call.
-- Strategies: longest_idle, least_talk (least talk time so far, then longest idle) and round_robin
-- (the next agent by id after the one chosen last, per rule state). Language lines first narrow
-- the candidates to agents speaking the language, until the call has waited language_wait_ms.

local classify = require "lib.classify"

local M = {}

-- Parley hands select_agent its candidates longest idle first (docs/rules.md), so the longest
-- idle agent is the first one: no need to look at the others, however many there are. The
-- tests build their candidate lists in that order too.
function M.longest_idle(agents)
  return agents[1]
end

function M.least_talk(agents)
  local best, best_talk, best_idle
  for i = 1, #agents do
    local a = agents[i]
    local talk, idle = a.talk_ms, a.idle_ms
    if best == nil or talk < best_talk or (talk == best_talk and idle > best_idle) then
      best, best_talk, best_idle = a, talk, idle
    end
  end
  return best
end

-- The last agent id round robin gave each call type. Lives in this Lua state: one rotation per
-- thread and per rules version, which is enough to spread calls evenly.
local last_by_type = {}

function M.round_robin(agents, call_type)
  if #agents == 0 then return nil end
  local last = last_by_type[call_type or ""]
  local first, next_after
  for _, a in ipairs(agents) do
    if first == nil or a.id < first.id then first = a end
    if last and a.id > last and (next_after == nil or a.id < next_after.id) then next_after = a end
  end
  local chosen = next_after or first
  last_by_type[call_type or ""] = chosen.id
  return chosen
end

--- The language a call needs, or nil.
function M.language(config, call)
  local inv = call.invite
  if inv == nil then return nil end
  local user = inv.uri_user
  if user == nil then return nil end
  return config.languages[user] or config.languages[classify.normalize_number(user)]
end

--- Candidates speaking `language` (all of them when language is nil).
function M.speaking(agents, language)
  if language == nil then return agents end
  local out = {}
  for _, a in ipairs(agents) do
    if a.attrs.language == language then out[#out + 1] = a end
  end
  return out
end

--- select_agent(call, agents) for a config: an agent id or nil.
function M.select(config, call, agents)
  local language = M.language(config, call)
  local pool = M.speaking(agents, language)
  if #pool == 0 then
    if language and call.waited_ms < config.language_wait_ms then
      trace("no", language, "speaker free yet: the caller waits for one (" .. call.waited_ms .. " of " .. config.language_wait_ms .. " ms)")
      return nil
    end
    if language then trace("no", language, "speaker free after", config.language_wait_ms, "ms: any agent") end
    pool = agents
  elseif language then
    trace("language", language .. ":", #pool, "of", #agents, "free agents speak it")
  end
  local strategy = config.strategies[call.type] or config.default_strategy
  local chosen
  if strategy == "least_talk" then
    chosen = M.least_talk(pool)
  elseif strategy == "round_robin" then
    chosen = M.round_robin(pool, call.type)
  else
    chosen = M.longest_idle(pool)
  end
  if chosen then
    local why = { least_talk = "least talk time today", round_robin = "next in turn" }
    trace(why[strategy] or "longest idle", "among", #pool .. ":", chosen.id)
  end
  return chosen and chosen.id
end

return M
