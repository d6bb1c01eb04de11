-- lib/hours.lua: decides whether the contact center is open at a given time.
-- Times are parley.now_ms() milliseconds; local time is UTC plus config.utc_offset_minutes.

local M = {}

--- The civil date of a day count since 1970-01-01 (proleptic Gregorian).
function M.civil(days)
  local z = days + 719468
  local era = (z >= 0 and z or z - 146096) // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  return y, m, d
end

-- The date string of the last day asked for (hooks run many times a day).
local cached_day, cached_date

--- Local weekday (1 = Monday ... 7 = Sunday), minute of the day and "YYYY-MM-DD" date.
function M.local_time(now_ms, utc_offset_minutes)
  local minutes = now_ms // 60000 + (utc_offset_minutes or 0)
  local days = minutes // 1440
  local minute = minutes % 1440
  local weekday = (days + 3) % 7 + 1 -- 1970-01-01 was a Thursday
  if days ~= cached_day then
    local y, m, d = M.civil(days)
    cached_day, cached_date = days, string.format("%04d-%02d-%02d", y, m, d)
  end
  return weekday, minute, cached_date
end

--- Whether the schedule is open at now_ms.
--- schedule = {utc_offset_minutes =, hours = {[weekday] = {open, close}}, holidays = {[date] = true}}
function M.is_open(schedule, now_ms)
  local weekday, minute, date = M.local_time(now_ms, schedule.utc_offset_minutes)
  if schedule.holidays and schedule.holidays[date] then return false end
  local day = schedule.hours[weekday]
  if not day then return false end
  return minute >= day[1] and minute < day[2]
end

return M
