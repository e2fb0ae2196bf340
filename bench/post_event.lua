-- wrk script: POST one ~500-byte audit event per request to /v1/events.
-- Usage: AUDITLOG_KEY=... wrk -t1 -c64 -d10s -s bench/post_event.lua http://127.0.0.1:8000
local key = os.getenv("AUDITLOG_KEY") or ""
local types = {"account.created", "account.deactivated", "invoice.billed", "resource.updated", "auth.login"}
local cities = {"Seattle", "Paris", "Lagos", "Lima", "Osaka", "Berlin", "Austin", "Pune"}
local words = {"refund", "issued", "customer", "upgrade", "plan", "quota", "exceeded", "invoice",
               "renewal", "trial", "expired", "password", "reset", "granted", "revoked", "role"}
local counter = 0

local function message()
  local out = {}
  for i = 1, 8 do out[i] = words[math.random(#words)] end
  return table.concat(out, " ")
end

request = function()
  counter = counter + 1
  local body = string.format(
    '{"type":"%s","actor":{"id":"user-%d","type":"user"},"subject":{"id":"acct-%d","type":"account"},' ..
    '"source":"billing","outcome":"success","data":{"amount":%d,"currency":"EUR","location":{"city":"%s",' ..
    '"country":"XX"},"request_id":"req-%d-%d","message":"%s","tags":["a","b"],"plan":{"tier":"pro","seats":%d}}}',
    types[math.random(#types)], math.random(10000), math.random(5000), math.random(100000),
    cities[math.random(#cities)], math.random(1000000000), counter, message(), math.random(50))
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json",
                                           ["Authorization"] = "Bearer " .. key}, body)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_s=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f non2xx=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
