-- The bench's Lua policy for HAProxy (http-request lua.bench_hook on /api/v1/);
-- the same as hook.lua: read X-Tenant, rewrite ^/api/v1/(.*) to /%1, add X-Bench-Hook.
core.register_action("bench_hook", { "http-req" }, function(txn)
    local tenant = txn.f:req_hdr("x-tenant")
    if tenant == nil or tenant == "" then return end
    local path, n = string.gsub(txn.f:path(), "^/api/v1/(.*)$", "/%1")
    if n == 0 then return end
    txn.http:req_set_path(path)
    txn.http:req_add_header("X-Bench-Hook", tenant)
end)
