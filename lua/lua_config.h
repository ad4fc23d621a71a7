/* lua_config.h: what the configuration loader shares with the rest of the Lua
 * glue. rp_config_load() itself is declared in core/config.h. */
#ifndef RP_LUA_CONFIG_H
#define RP_LUA_CONFIG_H

#include "rp.h"

#include <lua.h>

/* Prepends "DIR/?.lua;DIR/scripts/?.lua;" to package.path, DIR being the
 * directory of conf_path made absolute (so a later chdir() does not break
 * require). A worker's state calls it too, so that require finds the same
 * modules as the loader did. Lua stack: unchanged; raises on memory errors. */
void rp_lua_config_package_path(lua_State *L, const char *conf_path);

#endif
