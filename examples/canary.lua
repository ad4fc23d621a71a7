-- examples/canary.lua: send a share of the traffic to a canary backend.
--
-- A request goes to the canary when
--   * its cookie `canary=always` or its header `X-Canary: always` asks for it;
--   * otherwise (unless `canary=never` / `X-Canary: never` opts out) when
--     rproxy.hash(client address) % 100 < RP_CANARY_PERCENT: a stable choice
--     per client address, so that a client keeps seeing the same version.
-- When the canary is down, its share goes to the stable backend (and the
-- other way round). Every answer says who served it: `X-Canary: 1` or `0`.
--
-- Addresses come from the environment, with defaults for a try on one host
-- (tests/e2e/test_examples.py sets them to its own free ports):
--   RP_LISTEN          where to listen         127.0.0.1:8080
--   RP_STABLE          the stable backend      127.0.0.1:9001
--   RP_CANARY          the canary backend      127.0.0.1:9002
--   RP_CANARY_PERCENT  share of the clients    10   (0..100)
--   RP_THREADS         worker threads          0    (one per CPU)
--
--   RP_CANARY_PERCENT=25 rproxy -c examples/canary.lua

local function env(name, default) return os.getenv(name) or default end

local percent = tonumber(env("RP_CANARY_PERCENT", "10"))
assert(percent and percent >= 0 and percent <= 100, "RP_CANARY_PERCENT: 0 to 100")

rproxy.settings {
    threads = tonumber(env("RP_THREADS", "0")),
    log = { error = "stderr", level = "notice",
            access = { output = "stdout", format = "combined" } },
}

rproxy.backend "stable" { address = env("RP_STABLE", "127.0.0.1:9001"), connections = 8 }
rproxy.backend "canary" { address = env("RP_CANARY", "127.0.0.1:9002"), connections = 4 }

-- "always", "never" or nil: what the client asked for, header first.
local function forced(req)
    local h = req:header("X-Canary")
    if h == "always" or h == "never" then
        return h
    end
    local cookie = req:header("Cookie")
    if cookie then
        local v = (";" .. cookie):match(";%s*canary=([^;%s]*)")
        if v == "always" or v == "never" then
            return v
        end
    end
    return nil
end

local function wants_canary(req)
    local f = forced(req)
    if f ~= nil then
        return f == "always"
    end
    -- the same address always lands in the same bucket, on every worker and host
    return rproxy.hash(req.client_addr) % 100 < percent
end

rproxy.pool "app" { "stable", "canary", balance = function(req, pool)
    local stable, canary = pool.backends[1], pool.backends[2]
    local pick, other = stable, canary
    if req.ctx.canary then                -- decided in on_request, below
        pick, other = canary, stable
    end
    if pick.up then
        return pick
    end
    if other.up then
        return other
    end
    return nil                        -- both down: the built-in method answers 502
end }

rproxy.listen { address = env("RP_LISTEN", "127.0.0.1:8080") }

rproxy.vhost "canary" { default = true, aliases = { "*" }, routes = { { to = "app" } } }

function rproxy.on_request(req)
    req.ctx.canary = wants_canary(req)
    -- the choice is made: the client's own header does not reach the backend
    req:remove_header("X-Canary")
end

function rproxy.on_response(req, res)
    res:set_header("X-Canary", res.backend == "canary" and "1" or "0")
end
