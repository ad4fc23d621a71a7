/* lua_sandbox.c: the standard libraries as a policy gets them (see
 * lua_sandbox.h): everything, but a reduced debug library, an os.exit that
 * raises, and loaders that accept Lua source only. */
#include "lua_sandbox.h"

#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

static int
sandbox_no_exit(lua_State *L)
{
    return luaL_error(L, "os.exit is not available to a policy (stop rproxy with SIGTERM)");
}

/* load / loadfile with their mode argument (at mode_arg) forced to "t".
 * Upvalue 1: the original function. Arguments after it keep their absence
 * (load's env is "given or not", a nil is not the same). */
static int
sandbox_text_only(lua_State *L, int mode_arg)
{
    if (lua_gettop(L) < mode_arg) {
        lua_settop(L, mode_arg);
    }
    lua_pushliteral(L, "t");
    lua_replace(L, mode_arg);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int
sandbox_load(lua_State *L)
{
    return sandbox_text_only(L, 3);       /* load(chunk, chunkname, mode, env) */
}

static int
sandbox_loadfile(lua_State *L)
{
    return sandbox_text_only(L, 2);       /* loadfile(filename, mode, env) */
}

static int
sandbox_dofile(lua_State *L)
{
    const char  *fname = luaL_optstring(L, 1, NULL);

    lua_settop(L, 1);
    if (luaL_loadfilex(L, fname, "t") != LUA_OK) {
        return lua_error(L);
    }
    lua_call(L, 0, LUA_MULTRET);
    return lua_gettop(L) - 1;
}

/* package.searchers[2], source only: finds name on package.path and loads it
 * as text; returns the chunk and its file name (the searcher protocol). */
static int
sandbox_searcher(lua_State *L)
{
    const char  *name = luaL_checkstring(L, 1), *file;

    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath");
    lua_pushstring(L, name);
    lua_getfield(L, -3, "path");
    lua_call(L, 2, 2);                    /* file | nil, why */
    if (lua_isnil(L, -2)) {
        return 1;                         /* why: the files tried */
    }
    lua_pop(L, 1);
    file = lua_tostring(L, -1);
    if (luaL_loadfilex(L, file, "t") != LUA_OK) {
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                          lua_tostring(L, -1));
    }
    lua_pushstring(L, file);
    return 2;
}

static void
sandbox_wrap(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_getglobal(L, name);
    lua_pushcclosure(L, fn, 1);
    lua_setglobal(L, name);
}

void
rp_lua_open_libs(lua_State *L)
{
    luaL_openlibs(L);

    lua_createtable(L, 0, 2);                             /* mini */
    lua_getglobal(L, "debug");                            /* mini debug */
    lua_getfield(L, -1, "traceback");
    lua_setfield(L, -3, "traceback");
    lua_getfield(L, -1, "getinfo");
    lua_setfield(L, -3, "getinfo");
    lua_pop(L, 1);                                        /* mini */
    lua_pushvalue(L, -1);
    lua_setglobal(L, "debug");                            /* mini */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);   /* mini loaded */
    lua_insert(L, -2);                                    /* loaded mini */
    lua_setfield(L, -2, "debug");                         /* loaded: require "debug" too */
    lua_pop(L, 1);

    lua_getglobal(L, "os");
    lua_pushcfunction(L, sandbox_no_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);

    sandbox_wrap(L, "load", sandbox_load);
    sandbox_wrap(L, "loadfile", sandbox_loadfile);
    lua_pushcfunction(L, sandbox_dofile);
    lua_setglobal(L, "dofile");
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    lua_pushcfunction(L, sandbox_searcher);
    lua_rawseti(L, -2, 2);                                /* the Lua-file searcher */
    lua_pop(L, 2);
}

int
rp_lua_load_source(lua_State *L, const char *src, size_t len, const char *path)
{
    int  rc;

    if (len >= 3 && memcmp(src, "\xEF\xBB\xBF", 3) == 0) {
        src += 3;
        len -= 3;
    }
    lua_pushfstring(L, "@%s", path);
    if (len > 0 && src[0] == '#') {
        /* a "#!" line: skipped, its newline kept so that lines count right */
        const char  *nl = memchr(src, '\n', len);

        len = nl ? len - (size_t) (nl - src) : 0;
        src = nl ? nl : src;
    }
    rc = luaL_loadbufferx(L, src, len, lua_tostring(L, -1), "t");
    lua_remove(L, -2);
    return rc;
}
