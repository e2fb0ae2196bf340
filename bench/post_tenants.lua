-- wrk script: POST one ~500-byte audit event per request, each as a tenant chosen at random
-- among the API keys in the file AUDITLOG_KEYS_FILE (one secret per line).
-- Usage: AUDITLOG_KEYS_FILE=keys.txt wrk -t1 -c32 -d20s -s bench/post_tenants.lua http://127.0.0.1:8000
local keys = {}
for line in io.lines(os.getenv("AUDITLOG_KEYS_FILE")) do
  if #line > 0 then keys[#keys + 1] = line end
end
local counter = 0

request = function()
  counter = counter + 1
  local body = string.format(
    '{"type":"invoice.billed","actor":{"id":"user-%d","type":"user"},"subject":{"id":"acct-%d",' ..
    '"type":"account"},"source":"billing","outcome":"success","data":{"amount":%d,"currency":"EUR",' ..
    '"request_id":"req-%d-%d","message":"refund issued to customer for plan upgrade"}}',
    math.random(10000), math.random(5000), math.random(100000), math.random(1000000000), counter)
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json",
                                           ["Authorization"] = "Bearer " .. keys[math.random(#keys)]}, body)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_s=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f non2xx=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
