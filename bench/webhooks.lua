-- wrk script for bench/webhooks.sh: Meta delivering signed webhooks.
--
-- Arguments (after wrk's --): DATA_FILE PATH [RATE CONNECTIONS]. DATA_FILE has one
-- line per webhook, "<signature> <payload>" (bench/webhook_gen.c); the requests are
-- built once in init() and sent in turn (wrapping around). Meant for wrk -t1.
--
-- With RATE, each connection waits CONNECTIONS / RATE seconds after each answer before
-- its next request, which offers at most RATE requests/s (a little less: the answer's
-- own time adds to each cycle); the RESULT line says what was achieved.
--
-- At the end, one line:
--   RESULT rps=… p50=… p90=… p99=… errors=… non2xx=… requests=…
-- latencies in ms; errors are socket errors and timeouts, non2xx the answers outside
-- 200-399.

local reqs = {}
local n = 0
local i = 0
local pause = nil

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
  local rate, conns = tonumber(args[3] or ""), tonumber(args[4] or "")
  if rate and conns and rate > 0 then
    pause = 1000 * conns / rate
    -- wrk looks for delay() after init(): defined only when pacing, an unpaced run
    -- costs nothing per request
    delay = function() return pause end
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
