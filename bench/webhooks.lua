-- wrk script for bench/webhooks.sh: Meta delivering signed webhooks.
--
-- Arguments (after wrk's --): DATA_FILE PATH [RATE]. DATA_FILE has one
-- line per webhook, "<signature> <payload>" (bench/webhook_gen.c); the requests are
-- built once in init() and sent in turn (wrapping around). Meant for wrk -t1.
--
-- With RATE, requests are sent on a schedule of RATE per second shared by the
-- connections, the way a sender at that rate would: after each answer, the connection
-- waits for the next free slot of the schedule. A slow answer therefore does not slow
-- the offered rate down while other connections are free (with CONNECTIONS over RATE
-- times the latency, they are); a server that cannot keep up shows as an achieved rate
-- under RATE, never as a schedule caught up in a burst. wrk delays by whole
-- milliseconds: a slot is taken at the nearest one. The RESULT line says what was
-- achieved.
--
-- At the end, one line:
--   RESULT rps=… p50=… p90=… p99=… errors=… non2xx=… requests=…
-- latencies in ms; errors are socket errors and timeouts, non2xx the answers outside
-- 200-399.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } webhooks_timespec;
int clock_gettime(int clock, webhooks_timespec *ts);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("webhooks_timespec")
local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local reqs = {}
local n = 0
local i = 0
local interval = nil
local next_slot = nil

function init(args)
  local path, url = args[1], args[2]
  if not path or not url then error("webhooks.lua: usage: wrk ... -s webhooks.lua URL -- DATA_FILE PATH") end
  for line in io.lines(path) do
    local sig, body = line:match("^(%S+) (.*)$")
    if sig then
      n = n + 1
      reqs[n] = wrk.format("POST", url, { ["X-Hub-Signature-256"] = sig, ["Content-Type"] = "application/json" }, body)
    end
  end
  if n == 0 then error("webhooks.lua: no webhooks in " .. path) end
  local rate = tonumber(args[3] or "")
  if rate and rate > 0 then
    interval = 1000 / rate
    -- wrk looks for delay() after init(): defined only when pacing, an unpaced run
    -- costs nothing per request
    delay = function()
      local t = now_ms()
      if next_slot == nil or next_slot < t then next_slot = t end
      next_slot = next_slot + interval
      return math.floor(next_slot - t + 0.5)
    end
  end
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50=%.3f p90=%.3f p99=%.3f errors=%d non2xx=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status, summary.requests))
end
