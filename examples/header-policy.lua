-- examples/header-policy.lua: a header policy in front of an application.
--
-- Requests:
--   * headers a client must not choose are removed: httpoxy's `Proxy`, the
--     URL and method overrides some frameworks trust (`X-Original-URL`,
--     `X-Rewrite-URL`, `X-HTTP-Method-Override`, ...), `X-Forwarded-Host`,
--     any `X-Internal-*`, and the client's own `X-Forwarded-For` / `X-Real-IP`
--     (the listener then adds the real peer address only);
--   * TRACE is refused with 405 (TRACK, which llhttp does not parse, gets 501);
--   * every request gets an `X-Request-Id`: the client's own when it is 1 to
--     64 characters of [A-Za-z0-9._-], else a new one (32 hex digits).
-- Responses:
--   * `X-Request-Id` comes back to the client;
--   * `Server` and `X-Powered-By` are removed;
--   * security headers are added unless the application set its own.
--
-- Addresses come from the environment, with defaults for a try on one host
-- (tests/e2e/test_examples.py sets them to its own free ports):
--   RP_LISTEN   where to listen          127.0.0.1:8080
--   RP_APP      the application          127.0.0.1:9001
--   RP_THREADS  worker threads           0   (one per CPU)

local function env(name, default) return os.getenv(name) or default end

rproxy.settings {
    threads = tonumber(env("RP_THREADS", "0")),
    log = { error = "stderr", level = "notice",
            access = { output = "stdout", format = "combined" } },
}

rproxy.backend "app" { address = env("RP_APP", "127.0.0.1:9001"), connections = 8 }

rproxy.listen { address = env("RP_LISTEN", "127.0.0.1:8080"),
                x_headers = { "X-Forwarded-For", "X-Real-IP", "X-Forwarded-Proto" } }

rproxy.vhost "app" { default = true, aliases = { "*" }, routes = { { to = "app" } } }

local STRIP = {
    "Proxy", "X-Forwarded-Host", "X-Forwarded-Server", "X-Forwarded-For", "X-Real-IP",
    "X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override", "X-HTTP-Method",
    "X-Method-Override",
}

local SECURITY = {
    ["X-Content-Type-Options"] = "nosniff",
    ["X-Frame-Options"] = "DENY",
    ["Referrer-Policy"] = "strict-origin-when-cross-origin",
    ["Content-Security-Policy"] = "default-src 'self'",
}

local counter = 0                         -- per worker: ids differ by worker_id and time too

local function new_request_id(req)
    counter = counter + 1
    local seed = table.concat({ rproxy.worker_id(), counter, string.format("%.6f", rproxy.now()),
                                req.client_addr, req.client_port }, "|")
    return rproxy.sha256_hex(seed):sub(1, 32)
end

function rproxy.on_request(req)
    if req.method == "TRACE" then
        return req:respond(405, "method not allowed\n",
                           { ["Allow"] = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
                             ["Content-Type"] = "text/plain" })
    end
    for _, name in ipairs(STRIP) do
        req:remove_header(name)
    end
    local internal = {}                   -- collected first: no removal while iterating
    for name in req:headers() do
        if name:lower():sub(1, 11) == "x-internal-" then
            internal[#internal + 1] = name
        end
    end
    for _, name in ipairs(internal) do
        req:remove_header(name)
    end

    local id = req:header("X-Request-Id")
    if id == nil or #id > 64 or not id:match("^[%w._-]+$") then
        id = new_request_id(req)
    end
    req:set_header("X-Request-Id", id)
    req.ctx.request_id = id
end

function rproxy.on_response(req, res)
    res:remove_header("Server")
    res:remove_header("X-Powered-By")
    for name, value in pairs(SECURITY) do
        if res:header(name) == nil then
            res:set_header(name, value)
        end
    end
    if req.ctx.request_id then
        res:set_header("X-Request-Id", req.ctx.request_id)
    end
end
