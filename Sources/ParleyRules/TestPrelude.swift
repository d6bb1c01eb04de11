/// The helpers `parley test` adds to a rule state before loading a test file (rule API v1,
/// "Testing rules"). Run as a chunk that receives two internal functions: one that wraps a table
/// in a read-only proxy (how resident agents look to hooks) and one that makes an INVITE view.
let testPrelude = #"""
local readonly = ...

local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

local function check_fields(what, o, allowed, level)
  for k in pairs(o) do
    if not allowed[k] then
      error(what .. "{}: unknown field '" .. tostring(k) .. "'", level + 1)
    end
  end
end

-- sip.invite{uri =, from =, to =, headers = {Subject = "..."}, body =, content_type =, call_id =}
local function sip_address(a, default_host)
  if a:find("<", 1, true) then return a end
  if not a:find(":", 1, true) then a = "sip:" .. a .. "@" .. default_host end
  return "<" .. a .. ">"
end

local invite_fields = {uri = true, from = true, to = true, headers = true, body = true,
                       content_type = true, call_id = true, from_display = true}

function sip.invite(o)
  o = o or {}
  check_fields("sip.invite", o, invite_fields, 2)
  local uri = o.uri or "sip:sales@cc.example.com"
  if not uri:find(":", 1, true) then uri = "sip:" .. uri .. "@cc.example.com" end
  local from = sip_address(o.from or "sip:caller@example.net", "example.net")
  if o.from_display then from = '"' .. o.from_display .. '" ' .. from end
  local to = sip_address(o.to or uri, "cc.example.com")
  local lines = {
    "INVITE " .. uri .. " SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-parley-test",
    "Max-Forwards: 70",
    "From: " .. from .. ";tag=parley-test",
    "To: " .. to,
    "Call-ID: " .. (o.call_id or "parley-test-call@192.0.2.1"),
    "CSeq: 1 INVITE",
    "Contact: <sip:caller@192.0.2.1:5060>",
  }
  local names = {}
  for name in pairs(o.headers or {}) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local v = o.headers[name]
    if type(v) == "table" then
      for _, one in ipairs(v) do lines[#lines + 1] = name .. ": " .. tostring(one) end
    else
      lines[#lines + 1] = name .. ": " .. tostring(v)
    end
  end
  local body = o.body or ""
  if #body > 0 then
    lines[#lines + 1] = "Content-Type: " .. (o.content_type or "application/sdp")
  end
  lines[#lines + 1] = "Content-Length: " .. #body
  return sip.parse(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body)
end

-- agent{id =, skills = {"sales", ...}, state =, idle_ms =, calls_handled =, talk_ms =, contact =, attrs = {...}}
local agent_fields = {id = true, skills = true, state = true, idle_ms = true, calls_handled = true,
                      talk_ms = true, contact = true, attrs = true}
local agent_count = 0

function agent(o)
  o = o or {}
  check_fields("agent", o, agent_fields, 2)
  agent_count = agent_count + 1
  local skills = {}
  for k, v in pairs(o.skills or {}) do
    if type(k) == "number" then skills[v] = true else skills[k] = v end
  end
  return readonly{
    id = o.id or ("agent" .. agent_count),
    skills = readonly(skills),
    state = o.state or "available",
    idle_ms = o.idle_ms or 0,
    calls_handled = o.calls_handled or 0,
    talk_ms = o.talk_ms or 0,
    contact = o.contact,
    attrs = readonly(copy(o.attrs or {})),
  }
end

-- call{id =, type =, invite =, priority =, waited_ms =, attempts = {...}}
local call_fields = {id = true, type = true, invite = true, priority = true, waited_ms = true, attempts = true}

function call(o)
  o = o or {}
  check_fields("call", o, call_fields, 2)
  return {
    id = o.id or "parley-test-call",
    type = o.type or "default",
    priority = o.priority or 0,
    waited_ms = o.waited_ms or 0,
    attempts = copy(o.attempts or {}),
    invite = o.invite or sip.invite{},
  }
end

-- address{aor =, skill =, kind =, name =}
local address_fields = {aor = true, skill = true, kind = true, name = true}

function address(o)
  o = o or {}
  check_fields("address", o, address_fields, 2)
  local kind = o.kind or (o.skill == nil and o.name ~= nil and "treatment") or "skill"
  local name = o.name or o.skill or "default"
  local skill = o.skill
  if skill == nil and kind == "skill" then skill = name end
  return {
    aor = o.aor or ("sip:" .. name .. "@cc.example.com"),
    skill = skill,
    kind = kind,
    name = name,
  }
end

-- assert_eq(actual, expected [, message]): deep equality for tables.
local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  if depth > 3 then return "{...}" end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  local parts = {}
  local arr = is_array(v)
  for _, k in ipairs(keys) do
    if arr then
      parts[#parts + 1] = show(v[k], depth + 1)
    else
      local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or ("[" .. show(k) .. "]")
      parts[#parts + 1] = key .. " = " .. show(v[k], depth + 1)
    end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function diff(a, b, path, seen)
  if type(a) ~= "table" or type(b) ~= "table" then
    if a == b then return nil end
    return path
  end
  if seen[a] == b then return nil end
  seen[a] = b
  for k, v in pairs(a) do
    local d = diff(v, b[k], path .. "." .. tostring(k), seen)
    if d then return d end
  end
  for k, v in pairs(b) do
    if a[k] == nil and v ~= nil then return path .. "." .. tostring(k) end
  end
  return nil
end

local function lookup(t, path)
  for part in path:gmatch("[^.]+") do
    if type(t) ~= "table" then return nil end
    local v = t[part]
    if v == nil then v = t[tonumber(part)] end
    t = v
  end
  return t
end

function assert_eq(actual, expected, message)
  local d = diff(actual, expected, "", {})
  if d == nil then return end
  local text = "expected " .. show(expected) .. ", got " .. show(actual)
  if d ~= "" then
    text = text .. " (differs at " .. d:sub(2) .. ": expected " .. show(lookup(expected, d)) ..
           ", got " .. show(lookup(actual, d)) .. ")"
  end
  if message then text = message .. ": " .. text end
  error(text, 2)
end

-- The defaults of missing hooks, so tests can call every hook.
if classify == nil then
  function classify(invite) return "default" end
end
if select_agent == nil then
  function select_agent(c, agents)
    local best
    for _, a in ipairs(agents) do
      if best == nil or a.idle_ms > best.idle_ms then best = a end
    end
    return best and best.id
  end
end
if order_registrations == nil then
  function order_registrations(addr, agents)
    local sorted = {}
    for i, a in ipairs(agents) do sorted[i] = {a = a, i = i} end
    table.sort(sorted, function(x, y)
      if x.a.idle_ms ~= y.a.idle_ms then return x.a.idle_ms > y.a.idle_ms end
      return x.i < y.i
    end)
    local out, n = {}, #sorted
    for i, e in ipairs(sorted) do
      local q = n == 1 and 1.0 or 1.0 - 0.9 * (i - 1) / (n - 1)
      out[i] = {id = e.a.id, q = math.floor(q * 1000 + 0.5) / 1000}
    end
    return out
  end
end
if handoff_encoding == nil then
  function handoff_encoding(c, a) return "uri" end
end
"""#
