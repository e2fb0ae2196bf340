-- wrk script: POST the same 594-byte JSON event each time (measured-ceilings.md section A).
-- Usage: wrk -t1 -c64 -d10s -s bench/post_fixed.lua http://127.0.0.1:8000
-- Prints the RESULT line of post_event.lua. AUDITLOG_KEY, when set, is sent as a bearer key.
local key = os.getenv("AUDITLOG_KEY") or ""
wrk.method = "POST"
wrk.path = "/v1/events"
wrk.headers["Content-Type"] = "application/json"
if key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
wrk.body = '{"type":"invoice.paid","time":"2026-11-27T10:00:00.123456Z","actor":{"id":"user-00042","type":"user","name":"Alice Example"},"subject":{"id":"acct-0042","type":"account"},"source":"billing","outcome":"success","data":{"amount":12345,"currency":"EUR","location":{"city":"Seattle","country":"US","ip":"10.1.2.3"},"request_id":"req-000000000042","message":"refund issued customer upgrade plan quota exceeded invoice renewal trial","tags":["audit","billing"],"plan":{"tier":"pro","seats":42},"user_agent":"Mozilla/5.0 (X11; Linux x86_64) bench/1.0 Mozilla/5.0 (X11; Linux x86_64) bench/1.0 Mozil"}}'

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_s=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f non2xx=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
