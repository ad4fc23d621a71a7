-- wrk script of the latency scenario: after each response a connection pauses for an
-- exponentially distributed time of mean BENCH_DELAY_MS before its next request, so
-- that C connections send about C * 1000 / (mean + latency) req/s in Poisson-like
-- arrivals (a fixed pause would fire the connections in bursts, on wrk's 1 ms timer
-- ticks). done() prints the percentiles in microseconds on lines the bench parses.
local mean_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "8")

function init(args)
    math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function delay()
    return math.floor(-math.log(1 - math.random()) * mean_ms + 0.5)
end

function done(summary, latency, requests)
    for _, p in ipairs({ 50, 90, 99, 99.9 }) do
        io.write(string.format("BENCH p%s %d\n", p, latency:percentile(p)))
    end
    io.write(string.format("BENCH max %d\n", latency.max))
    io.write(string.format("BENCH requests %d\n", summary.requests))
end
