-- examples/rate-limit.lua: at most RP_RATE_LIMIT requests per client address
-- in RP_RATE_WINDOW seconds, counted across all worker threads in a shared
-- dictionary; more get 429 with Retry-After. Every answer tells the client
-- its budget: `X-RateLimit-Limit` and `X-RateLimit-Remaining`.
--
-- The window starts with a client's first request (the counter is created
-- with the window as its TTL, and incr keeps that TTL), so it needs no clock
-- alignment and no cleanup: an idle client's entry expires by itself, and the
-- dictionary evicts the least recently used entries when it is full.
--
-- Addresses and limits come from the environment, with defaults for a try on
-- one host (tests/e2e/test_examples.py sets them to its own free ports):
--   RP_LISTEN       where to listen               127.0.0.1:8080
--   RP_APP          the application               127.0.0.1:9001
--   RP_RATE_LIMIT   requests per window           100
--   RP_RATE_WINDOW  seconds                       60
--   RP_THREADS      worker threads                0   (one per CPU)

local function env(name, default) return os.getenv(name) or default end

local LIMIT = tonumber(env("RP_RATE_LIMIT", "100"))
local WINDOW = tonumber(env("RP_RATE_WINDOW", "60"))

rproxy.settings {
    threads = tonumber(env("RP_THREADS", "0")),
    log = { error = "stderr", level = "notice" },
}

rproxy.shared_dict "ratelimit" { size = "4m" }

rproxy.backend "app" { address = env("RP_APP", "127.0.0.1:9001"), connections = 8 }
rproxy.listen { address = env("RP_LISTEN", "127.0.0.1:8080") }
rproxy.vhost "app" { default = true, aliases = { "*" }, routes = { { to = "app" } } }

function rproxy.on_request(req)
    local d = rproxy.shared.ratelimit
    local n, err = d:incr("ip:" .. req.client_addr, 1, 0, WINDOW)
    if not n then
        -- cannot count (should not happen): serve rather than lock everybody out
        rproxy.log("warn", "rate limit:", err)
        return
    end
    req.ctx.remaining = math.max(LIMIT - n, 0)
    if n > LIMIT then
        return req:respond(429, "too many requests\n", {
            ["Retry-After"] = tostring(math.ceil(WINDOW)),
            ["Content-Type"] = "text/plain",
            ["X-RateLimit-Limit"] = tostring(LIMIT),
            ["X-RateLimit-Remaining"] = "0",
        })
    end
end

function rproxy.on_response(req, res)
    if req.ctx.remaining ~= nil then
        res:set_header("X-RateLimit-Limit", tostring(LIMIT))
        res:set_header("X-RateLimit-Remaining", tostring(req.ctx.remaining))
    end
end
