-- wrk script of the latency scenario: each connection waits BENCH_DELAY_MS after
-- each response before its next request (closed-loop pacing: with C connections
-- the rate is about C * 1000 / (delay + latency) req/s). done() prints the
-- percentiles in microseconds on lines the bench parses.
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "8")

function delay()
    return delay_ms
end

function done(summary, latency, requests)
    for _, p in ipairs({ 50, 90, 99, 99.9 }) do
        io.write(string.format("BENCH p%s %d\n", p, latency:percentile(p)))
    end
    io.write(string.format("BENCH max %d\n", latency.max))
    io.write(string.format("BENCH requests %d\n", summary.requests))
end
