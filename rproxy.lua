-- rproxy.lua: the default configuration `make run` serves.
-- One listener on 127.0.0.1:8080 in front of the demo backend on 127.0.0.1:9001.
-- docs/configuration.md describes every key.

rproxy.settings {
    threads = 2,
    grace = 10,
    log = { error = "stderr", level = "notice",
            access = { output = "stdout", format = "combined" } },
}

rproxy.backend "demo" {
    address = "127.0.0.1:9001",
    connections = 8,         -- persistent connections per worker thread
    retry = 0.5,             -- first reconnect delay when DOWN (doubles up to retry_max)
    read_timeout = 30,
}

rproxy.pool "app" { "demo", balance = "rtt" }

rproxy.listen {
    address = "127.0.0.1:8080",
    read_timeout = 30, write_timeout = 30, keepalive_timeout = 75,
    pending_timeout = 10, max_pending = 1024,
    x_headers = { "X-Forwarded-For", "X-Forwarded-Proto", "X-Real-IP" },
}

rproxy.vhost "localhost" {
    aliases = { "127.0.0.1", "*.localhost" },
    default = true,
    routes = {
        { path = "/*", to = "app" },
    },
}
