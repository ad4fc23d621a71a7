/* lua_sandbox.h: the standard libraries a policy's lua_State gets. */
#ifndef RP_LUA_SANDBOX_H
#define RP_LUA_SANDBOX_H

#include <lua.h>

/* Opens the standard libraries for a policy (the loader's state and each
 * worker's), minus what would defeat the proxy's guards: `debug` keeps only
 * traceback and getinfo (sethook would remove the instruction budget;
 * setupvalue and setmetatable could hand rproxy's C functions values they
 * never expect), os.exit raises instead of ending the process, and load,
 * loadfile, dofile and require take Lua source only (precompiled chunks are
 * not verified by Lua: a crafted one can corrupt memory). Raises on memory
 * errors. */
void rp_lua_open_libs(lua_State *L);

/* Loads the source of rproxy.lua (len bytes, read once by the main thread's
 * check; every worker's state runs the same bytes) as the chunk of file path:
 * text only, a UTF-8 BOM and a first line starting with '#' skipped, as
 * luaL_loadfile() does. Pushes the chunk, or the error ("path:line: ..."),
 * and returns lua_load()'s status. */
int rp_lua_load_source(lua_State *L, const char *src, size_t len, const char *path);

#endif
