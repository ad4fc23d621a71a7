-- The bench's Lua policy for nginx (rewrite_by_lua_file in location /api/v1/);
-- the same as hook.lua: read X-Tenant, rewrite ^/api/v1/(.*) to /%1, add X-Bench-Hook.
local tenant = ngx.var.http_x_tenant
if tenant == nil then return end
local uri, n = string.gsub(ngx.var.uri, "^/api/v1/(.*)$", "/%1")
if n == 0 then return end
ngx.req.set_uri(uri, false)
ngx.req.set_header("X-Bench-Hook", tenant)
