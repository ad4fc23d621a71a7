/* lua_shared.h: rproxy.shared.NAME, the Lua face of core/shared_dict.c. */
#ifndef RP_LUA_SHARED_H
#define RP_LUA_SHARED_H

#include "rp.h"

#include <lua.h>

/* With the rproxy table on top of the stack, sets rproxy.shared to a table
 * whose __index finds a dict by name (rp_shdict_find_ref) and caches a box
 * for it (metatable "rproxy.shared_dict"; the box holds a reference that its
 * __gc drops). Unknown names give nil. Lua stack: unchanged; raises on
 * memory errors. */
void rp_lua_shared_open(lua_State *L);

#endif
