-- wrk script: POST a JSON array of 1,000 audit events (~500 bytes each) per request to /v1/events.
-- Usage: AUDITLOG_KEY=... wrk -t1 -c8 -d10s --timeout 10s -s bench/post_batch.lua http://127.0.0.1:8000
--
-- BATCH_SIZE (default 1000) and BODIES (default 8) may be set in the environment. The bodies are
-- built once in init() and sent in turn, so Lua costs nothing per request. Events carry no `id`
-- (the server makes one per event) and no `time` (the server uses the receive time), so the
-- same body sent twice stores 2 x BATCH_SIZE new events.
local key = os.getenv("AUDITLOG_KEY") or ""
local batch_size = tonumber(os.getenv("BATCH_SIZE") or "1000")
local n_bodies = tonumber(os.getenv("BODIES") or "8")

local types = {"account.created", "account.deactivated", "account.updated", "invoice.billed",
               "invoice.paid", "invoice.voided", "resource.created", "resource.updated",
               "resource.deleted", "auth.login", "auth.logout", "auth.failed", "role.granted",
               "role.revoked", "plan.upgraded", "plan.downgraded", "payment.refunded",
               "payment.captured", "export.started", "export.finished"}
local cities = {"Seattle", "Paris", "Lagos", "Lima", "Osaka", "Berlin", "Austin", "Pune",
                "Oslo", "Quito", "Accra", "Dublin", "Denver", "Seoul", "Tunis", "Perth"}
local currencies = {"EUR", "USD", "GBP", "JPY"}
local outcomes = {"success", "success", "success", "failure", "unknown"}
local words = {"refund", "issued", "customer", "upgrade", "plan", "quota", "exceeded", "invoice",
               "renewal", "trial", "expired", "password", "reset", "granted", "revoked", "role"}

local requests = {}
local counter = 0

local function message()
  local out = {}
  for i = 1, 8 do out[i] = words[math.random(#words)] end
  return table.concat(out, " ")
end

local function event(b, i)
  return string.format(
    '{"type":"%s","actor":{"id":"user-%d","type":"user"},"subject":{"id":"acct-%d","type":"account"},' ..
    '"source":"billing","outcome":"%s","data":{"amount":%d,"currency":"%s","location":{"city":"%s",' ..
    '"country":"XX"},"request_id":"req-%d-%d-%d","message":"%s","tags":["a","b"],"plan":{"tier":"pro","seats":%d}}}',
    types[math.random(#types)], math.random(10000), math.random(5000), outcomes[math.random(#outcomes)],
    math.random(100000), currencies[math.random(#currencies)], cities[math.random(#cities)],
    math.random(1000000000), b, i, message(), math.random(50))
end

init = function(args)
  math.randomseed(os.time())
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}
  for b = 1, n_bodies do
    local events = {}
    for i = 1, batch_size do events[i] = event(b, i) end
    local body = "[" .. table.concat(events, ",") .. "]"
    requests[b] = wrk.format("POST", "/v1/events", headers, body)
  end
end

request = function()
  counter = counter + 1
  return requests[(counter % n_bodies) + 1]
end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d duration_s=%.2f rps=%.2f events=%d events_per_s=%.1f p50_ms=%.2f p99_ms=%.2f" ..
    " max_ms=%.2f non2xx=%d errors=%d batch=%d\n",
    summary.requests, secs, summary.requests / secs, summary.requests * batch_size,
    summary.requests * batch_size / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    batch_size))
end
