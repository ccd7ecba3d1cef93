-- wrk script for bench/dashboard.sh: agents polling their inbox.
--
-- Arguments (after wrk's --): DATA_FILE WRITE_PCT [RATE CONNECTIONS]. DATA_FILE has one line per agent:
--   <api token> <conversation id> <unread notification ids, comma-separated, or ->
-- Meant for wrk -t1 (one Lua state). Requests go to the agents in turn; each agent walks
-- its own cycle of four reads (status counts, notifications, whose page carries the
-- unread count, conversation list page 1, its conversation's messages). WRITE_PCT percent of all requests, drawn
-- from a pseudo-random sequence with a fixed seed (the same every run), are writes
-- instead: half new messages in the agent's conversation, a quarter status changes of it
-- (open and pending in turn), a quarter notification reads (read_all when the agent had
-- no unread ones). Every request carries the agent's Authorization: Bearer token.
--
-- With RATE (requests/s over all CONNECTIONS, which must be wrk's -c), each connection
-- waits a random time before each request, exponentially distributed with mean
-- CONNECTIONS/RATE s: Poisson arrivals, an open load at RATE as long as the server
-- keeps up. Without it (or 0), each connection sends as soon as its answer came: the
-- saturated, closed load whose latency is the queue the connections themselves make.
--
-- At the end, one line:
--   RESULT rps=… p50=… p95=… p99=… errors=… non2xx=… requests=… writes=…
-- latencies in ms; errors are socket errors and timeouts, non2xx the answers outside
-- 200-399. There is no response() hook on purpose: it makes wrk parse every response's
-- headers into Lua tables, CPU taken from the server on a small machine; the cache's
-- hits and misses come from the server's own metrics instead.

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

-- thread state ---------------------------------------------------------------------------
local agents = {}
local nagents = 0
local turn = 0
local rng = 20261129       -- Park-Miller minimal standard generator, fixed seed
local write_cut = 0        -- a draw below this is a write
local messages = 0
local mean_gap_ms = nil   -- set when paced

-- read by done() through thread:get, hence global
n_writes = 0

local function hdr(auth)
  return { Authorization = auth }
end

function init(args)
  local path = args[1]
  if not path then error("dashboard.lua: usage: wrk ... -s dashboard.lua URL -- DATA_FILE [WRITE_PCT]") end
  local pct = tonumber(args[2] or "2") or 2
  local rate, conns = tonumber(args[3] or "0") or 0, tonumber(args[4] or "0") or 0
  if rate > 0 then
    if conns <= 0 then error("dashboard.lua: RATE needs CONNECTIONS") end
    mean_gap_ms = conns * 1000 / rate
    math.randomseed(20261130)
  end
  write_cut = pct / 100 * 2147483647
  for line in io.lines(path) do
    local token, conv, notes = line:match("^(%S+)%s+(%d+)%s+(%S+)%s*$")
    if token then
      local auth = "Bearer " .. token
      local base = "/api/v1/conversations/" .. conv
      local ids = {}
      if notes ~= "-" then
        for id in notes:gmatch("%d+") do ids[#ids + 1] = id end
      end
      agents[#agents + 1] = {
        auth = auth,
        conv = base,
        notes = ids,
        note = 0,
        flip = false,
        step = 0,
        reads = {
          wrk.format("GET", "/api/v1/conversations/status", hdr(auth)),
          wrk.format("GET", "/api/v1/notifications?limit=20", hdr(auth)),
          wrk.format("GET", "/api/v1/conversations?page=1&limit=20", hdr(auth)),
          wrk.format("GET", base .. "/messages?limit=50", hdr(auth)),
        },
      }
    end
  end
  nagents = #agents
  if nagents == 0 then error("dashboard.lua: no agents in " .. path) end
end

local function write(a)
  n_writes = n_writes + 1
  local k = n_writes % 4
  if k == 1 or k == 2 then
    messages = messages + 1
    return wrk.format("POST", a.conv .. "/messages",
      { Authorization = a.auth, ["Content-Type"] = "application/json" },
      '{"text":"bench reply ' .. messages .. '"}')
  elseif k == 3 then
    a.flip = not a.flip
    return wrk.format("PATCH", a.conv,
      { Authorization = a.auth, ["Content-Type"] = "application/json" },
      a.flip and '{"status":"open"}' or '{"status":"pending"}')
  end
  local ids = a.notes
  if #ids == 0 then
    return wrk.format("POST", "/api/v1/notifications/read_all", hdr(a.auth), "")
  end
  a.note = a.note % #ids + 1
  return wrk.format("POST", "/api/v1/notifications/" .. ids[a.note] .. "/read", hdr(a.auth), "")
end

function request()
  turn = turn % nagents + 1
  local a = agents[turn]
  rng = (rng * 16807) % 2147483647
  if rng < write_cut then return write(a) end
  local s = a.step % #a.reads + 1
  a.step = s
  return a.reads[s]
end

-- wrk calls it before each request when defined; nil (no pacing) makes it skip the wait
function delay()
  if mean_gap_ms == nil then return 0 end
  return -math.log(1 - math.random()) * mean_gap_ms
end

-- main state ------------------------------------------------------------------------------
function done(summary, latency, requests)
  local writes = 0
  for _, thread in ipairs(threads) do writes = writes + (thread:get("n_writes") or 0) end
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50=%.3f p95=%.3f p99=%.3f errors=%d non2xx=%d requests=%d writes=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, e.status, summary.requests, writes))
end
