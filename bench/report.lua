-- wrk script: at the end, one machine-readable line with requests/s and the
-- latency percentiles in milliseconds (wrk's own --latency output has no p95).
--
-- Optional arguments (after wrk's --): RATE CONNECTIONS: each connection then waits
-- CONNECTIONS / RATE seconds after each answer, offering about RATE requests/s (a
-- steady load whose latency is the server's, not a queue's).
init = function(args)
  local rate, conns = tonumber(args[1] or ""), tonumber(args[2] or "")
  if rate and conns and rate > 0 then
    local pause = 1000 * conns / rate
    delay = function() return pause end
  end
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50=%.3f p95=%.3f p99=%.3f errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, errors))
end
