-- Tests for lib/hours.lua. Times are UTC instants; the schedule below is at UTC-5.
local hours = require "lib.hours"

local schedule = {
  utc_offset_minutes = -300,
  hours = { [1] = { 480, 1200 }, [5] = { 480, 1080 }, [6] = { 540, 780 } },
  holidays = { ["2025-12-25"] = true },
}

local MONDAY_10_LOCAL = 1741014000000    -- 2025-03-03T15:00Z
local MONDAY_21_LOCAL = 1741053600000    -- 2025-03-04T02:00Z
local SATURDAY_0830_LOCAL = 1741440600000 -- 2025-03-08T13:30Z
local FRIDAY_1759_LOCAL = 1741388340000  -- 2025-03-07T22:59Z
local FRIDAY_1800_LOCAL = 1741388400000  -- 2025-03-07T23:00Z
local CHRISTMAS_10_LOCAL = 1766674800000 -- 2025-12-25T15:00Z

function test_epoch_is_a_thursday_in_1970()
  local weekday, minute, date = hours.local_time(0, 0)
  assert_eq({ weekday, minute, date }, { 4, 0, "1970-01-01" })
end

function test_leap_day_is_a_real_date()
  local _, _, date = hours.local_time(1709208000000, 0)
  assert_eq(date, "2024-02-29")
end

function test_offset_moves_the_local_day_back()
  local weekday, minute, date = hours.local_time(MONDAY_21_LOCAL, -300)
  assert_eq({ weekday, minute, date }, { 1, 21 * 60, "2025-03-03" })
end

function test_open_on_a_weekday_morning()
  assert(hours.is_open(schedule, MONDAY_10_LOCAL))
end

function test_closed_in_the_evening()
  assert(not hours.is_open(schedule, MONDAY_21_LOCAL))
end

function test_closing_minute_is_closed()
  assert(hours.is_open(schedule, FRIDAY_1759_LOCAL))
  assert(not hours.is_open(schedule, FRIDAY_1800_LOCAL))
end

function test_saturday_opens_at_nine()
  assert(not hours.is_open(schedule, SATURDAY_0830_LOCAL))
  assert(hours.is_open(schedule, SATURDAY_0830_LOCAL + 30 * 60000))
end

function test_day_without_hours_is_closed()
  assert(not hours.is_open(schedule, MONDAY_10_LOCAL + 86400000)) -- Tuesday has no entry here
end

function test_holiday_is_closed()
  assert(not hours.is_open(schedule, CHRISTMAS_10_LOCAL))
end
