-- wrk script for bench/soak.sh: one kind of a steady mixed load, at a fixed rate.
--
-- Arguments (after wrk's --): KIND RATE CONNECTIONS DATA_FILE [PATH]
--
--   reads     the cached reads an agent's inbox polls, in turn: status counts,
--             conversation list pages, a conversation's messages (the conversations in
--             turn), notifications, the unread count, the connections list
--   lookups   reads that do not go through the cache: contact searches (name prefix,
--             phone digits prefix), the contact list, one conversation, a contact
--             lookup by phone number, the campaigns list, /api/health
--   writes    in turn: a conversation's status flipped between open and pending, a new
--             contact with a phone number of its own, read_all on the notifications,
--             one notification read (idempotent), an agent's reply in a conversation
--             (sent through the stand-in Cloud API, whose status webhooks come back)
--   webhooks  Meta's signed webhooks to PATH, in turn (wrapping around)
--
-- DATA_FILE for reads, lookups and writes has lines "KEY VALUE": token (the API token),
-- run (a number that makes this run's phone numbers its own), conv (a conversation id,
-- several), notif (a notification id of the token's user, several), phone (a contact's
-- phone number, several). For webhooks it has one line per webhook,
-- "<X-Hub-Signature-256> <payload>" (bench/webhook_gen.c).
--
-- Each connection waits CONNECTIONS / RATE seconds after each answer before its next
-- request: at most RATE requests/s (a little less, as the answer's own time adds to each
-- cycle). Meant for wrk -t1 (one Lua state).
--
-- At the end, one line:
--   RESULT kind=… rps=… p50=… p99=… max=… requests=… errors=… non2xx=… codes=200:n,201:n,… cache=HIT:n,MISS:n
-- latencies in ms; errors are socket errors and timeouts, non2xx the answers outside
-- 200-399, codes every status seen, cache the X-Cache headers seen.

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

-- thread state ---------------------------------------------------------------------------
local kind
local reqs = {}
local n = 0
local i = 0
local auth
local convs, notifs = {}, {}
local flips = {}
local run = 0
local seq = 0

-- read by done() through thread:get, hence global
codes = {}
cache = {}
soak_kind = "?"

local function json_hdr()
  return { Authorization = auth, ["Content-Type"] = "application/json" }
end

local function get(path)
  return wrk.format("GET", path, { Authorization = auth })
end

local function load_data(path)
  local data = { conv = {}, notif = {}, phone = {} }
  for line in io.lines(path) do
    local k, v = line:match("^(%S+)%s+(%S+)%s*$")
    if k == "token" then
      auth = "Bearer " .. v
    elseif k == "run" then
      run = tonumber(v) or 0
    elseif data[k] then
      data[k][#data[k] + 1] = v
    end
  end
  if not auth then error("soak.lua: no token in " .. path) end
  if #data.conv == 0 then error("soak.lua: no conv in " .. path) end
  return data
end

function init(args)
  kind = args[1]
  soak_kind = kind
  local rate, conns, path = tonumber(args[2] or ""), tonumber(args[3] or ""), args[4]
  if not kind or not rate or not conns or not path then
    error("soak.lua: usage: wrk ... -s soak.lua URL -- KIND RATE CONNECTIONS DATA_FILE [PATH]")
  end
  if rate > 0 then
    local pause = 1000 * conns / rate
    delay = function() return pause end
  end

  if kind == "webhooks" then
    local url = args[5] or error("soak.lua: webhooks need a PATH")
    for line in io.lines(path) do
      local sig, body = line:match("^(%S+) (.*)$")
      if sig then
        reqs[#reqs + 1] = wrk.format("POST", url,
          { ["X-Hub-Signature-256"] = sig, ["Content-Type"] = "application/json" }, body)
      end
    end
  else
    local d = load_data(path)
    convs, notifs = d.conv, d.notif
    if kind == "reads" then
      reqs = {
        get("/api/v1/conversations/status"),
        get("/api/v1/conversations?page=1&limit=20"),
        get("/api/v1/notifications?limit=20"),
        get("/api/v1/conversations?page=1&limit=20&status=open"),
        get("/api/v1/notifications/unread_count"),
        get("/api/v1/conversations?page=2&limit=10&assignee=all"),
        get("/api/v1/connections"),
      }
      -- a conversation's messages after each of the others, the conversations in turn
      local mixed = {}
      for k, r in ipairs(reqs) do
        mixed[#mixed + 1] = r
        local c = convs[(k - 1) % #convs + 1]
        mixed[#mixed + 1] = get("/api/v1/conversations/" .. c .. "/messages?limit=50")
      end
      reqs = mixed
    elseif kind == "lookups" then
      reqs = {
        get("/api/v1/contacts?q=Mar"),
        get("/api/v1/contacts?q=5511&limit=50"),
        get("/api/v1/contacts?page=1&limit=20"),
        get("/api/v1/contacts?q=soak"),
        get("/api/v1/campaigns?limit=20"),
        get("/api/health"),
      }
      for _, c in ipairs(convs) do reqs[#reqs + 1] = get("/api/v1/conversations/" .. c) end
      for _, p in ipairs(d.phone) do reqs[#reqs + 1] = get("/api/v1/contacts/lookup?phone=" .. p) end
    elseif kind == "writes" then
      for _, c in ipairs(convs) do flips[c] = false end
      -- built per request in request()
      reqs = { false, false, false, false, false }
    else
      error("soak.lua: unknown kind " .. kind)
    end
  end
  n = #reqs
  if n == 0 then error("soak.lua: nothing to send for " .. kind .. " in " .. path) end
end

local function write(k)
  seq = seq + 1
  local c = convs[seq % #convs + 1]
  if k == 1 then
    flips[c] = not flips[c]
    return wrk.format("PATCH", "/api/v1/conversations/" .. c, json_hdr(),
      flips[c] and '{"status":"pending"}' or '{"status":"open"}')
  elseif k == 2 then
    -- 15 digits: 59 (no country uses it as a prefix here), the run, the sequence
    return wrk.format("POST", "/api/v1/contacts", json_hdr(),
      string.format('{"phone_number":"+59 %04d %09d","name":"Soak contact %d","labels":["soak"]}',
        run % 10000, seq, seq))
  elseif k == 3 then
    return wrk.format("POST", "/api/v1/notifications/read_all", { Authorization = auth }, "")
  elseif k == 4 and #notifs > 0 then
    return wrk.format("POST", "/api/v1/notifications/" .. notifs[seq % #notifs + 1] .. "/read",
      { Authorization = auth }, "")
  end
  return wrk.format("POST", "/api/v1/conversations/" .. c .. "/messages", json_hdr(),
    '{"text":"soak reply ' .. seq .. '"}')
end

function request()
  i = i % n + 1
  if kind == "writes" then return write(i) end
  return reqs[i]
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
  local x = headers["X-Cache"] or headers["x-cache"]
  if x then cache[x] = (cache[x] or 0) + 1 end
end

-- main state ------------------------------------------------------------------------------
local function merge(name)
  local sum = {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get(name) or {}) do sum[k] = (sum[k] or 0) + v end
  end
  local keys = {}
  for k in pairs(sum) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = tostring(k) .. ":" .. sum[k] end
  return #out > 0 and table.concat(out, ",") or "-"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT kind=%s rps=%.1f p50=%.3f p99=%.3f max=%.3f requests=%d errors=%d non2xx=%d codes=%s cache=%s\n",
    threads[1] and threads[1]:get("soak_kind") or "?", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status, merge("codes"), merge("cache")))
end
