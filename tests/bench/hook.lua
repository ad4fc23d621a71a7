-- The Lua policy of the bench's hook scenario, for rproxy (DESIGN.md's hook API).
-- For a request under /api/v1/ that carries X-Tenant: rewrite ^/api/v1/(.*) to /%1
-- and add X-Bench-Hook: <tenant>. hook_nginx.lua and hook_haproxy.lua do the same.
-- servers.py loads it with dofile() from the generated rproxy.lua.

function rproxy.on_request(req)
    local tenant = req:header("x-tenant")
    if tenant == nil then return end
    local uri, n = string.gsub(req.uri, "^/api/v1/(.*)$", "/%1")
    if n == 0 then return end
    req.uri = uri
    req:set_header("X-Bench-Hook", tenant)
end
