/* lua_config.c: rproxy.settings/backend/pool/listen/vhost -> the immutable
 * config snapshot. rproxy.lua runs once in a throwaway lua_State; each
 * declaration copies what it needs into C, and nothing points into Lua. */
#include "lua_config.h"

#include "log.h"
#include "lua_sandbox.h"
#include "lua_state.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "balancer.h"
#include "config.h"
#include "tls.h"
#include "lua_state.h"
#include "shared_dict.h"

#define CONFIG_WHERE_LEN  160       /* "backend 'app1'": the subject of messages */
#define CONFIG_MSG_LEN    512

/* Where a declaration was made, and the names it refers to: those are
 * resolved once the whole file has run, since a pool may name a backend
 * declared after it. */
typedef struct {
    char      *file;        /* owned: the chunk name, as Lua prints it      */
    int        line;        /* where the declaration's call starts          */
    char     **names;       /* owned: pool members, or route targets         */
    unsigned   nnames;      /* a pool's nmembers, or a vhost's nroutes       */
} config_decl_t;

/* One load. Everything a declaration allocates hangs from conf or from here
 * before anything can raise, so a raise never leaks; and the first error is
 * fatal even when the file catches it with pcall, so a half-filled record
 * never reaches a caller. */
typedef struct {
    rp_config_t    *conf;        /* owned until rp_config_load() returns it     */
    config_decl_t  *backends;    /* owned: parallel to conf->backends           */
    config_decl_t  *pools;       /* owned: parallel to conf->pools              */
    config_decl_t  *listeners;   /* owned: parallel to conf->listeners          */
    config_decl_t  *vhosts;      /* owned: parallel to conf->vhosts; names are
                                    the targets of its routes                   */
    config_decl_t   settings;    /* file != NULL once rproxy.settings ran       */
    int             busy;        /* a declaration runs: a nested one is refused */
    int             closed;      /* the file has run: declarations are refused  */
    int             failed;      /* err holds the first error                   */
    char           *err;         /* borrowed: the caller's buffer               */
    size_t          errlen;      /* 0: the caller wants no message              */
    size_t          mem_used;    /* bytes the load's state holds                */
    int             mem_failed;  /* an allocation went over conf->lua_memory    */
    unsigned long   steps;       /* instructions the top-level code has run     */
} config_ctx_t;

/* The registry key of the rproxy table a load installs. */
static const char  config_api_key = 0;

/* An options table being read, and how to name it in messages. */
typedef struct {
    lua_State     *L;             /* the state running the declaration          */
    config_ctx_t  *ctx;           /* borrowed: the load                         */
    int            t;             /* absolute stack index of the table          */
    const char    *where;         /* borrowed: "backend 'app1'"                 */
    char           prefix[64];    /* key path inside the declaration: "log."    */
} config_opts_t;

/* log.level; "error" is accepted for "err", as docs/logging.md spells it. */
static const char *const     config_level_names[] = {
    "err", "error", "warn", "notice", "info", "debug"
};
static const rp_log_level_e  config_levels[] = {
    RP_LOG_ERR, RP_LOG_ERR, RP_LOG_WARN, RP_LOG_NOTICE, RP_LOG_INFO, RP_LOG_DEBUG
};


/* ---- errors ------------------------------------------------------------ */

static void
config_fail_msg(config_ctx_t *ctx, const char *msg)
{
    if (ctx->failed) {
        return;
    }
    ctx->failed = 1;
    if (ctx->errlen > 0) {
        snprintf(ctx->err, ctx->errlen, "%s", msg);
    }
}

/* Records "file:line: message" as the load's error, unless one is there. */
static void
config_fail(config_ctx_t *ctx, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
config_fail(config_ctx_t *ctx, const char *file, int line, const char *fmt, ...)
{
    char     msg[CONFIG_MSG_LEN], full[CONFIG_MSG_LEN + PATH_MAX];
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "%s:%d: %s", file, line, msg);
    config_fail_msg(ctx, full);
}

/* Finds the innermost Lua function with a current line: the declaration's
 * caller, or further out when it was called through pcall or another C
 * function. Returns 0 when there is none. */
static int
config_caller(lua_State *L, lua_Debug *ar)
{
    int  level;

    for (level = 1; lua_getstack(L, level, ar); level++) {
        if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0) {
            return 1;
        }
    }
    return 0;
}

/* luaL_error() with the caller found by config_caller() and the message kept
 * as the load's error. Never returns. */
static int
config_raise(lua_State *L, config_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
config_raise(lua_State *L, config_ctx_t *ctx, const char *fmt, ...)
{
    char       msg[CONFIG_MSG_LEN];
    lua_Debug  ar;
    va_list    ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (config_caller(L, &ar)) {
        lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
    } else {
        lua_pushstring(L, msg);
    }
    config_fail_msg(ctx, lua_tostring(L, -1));
    return lua_error(L);
}

/* Whether the first line of msg already carries a ":LINE:" position. */
static int
config_has_position(const char *msg)
{
    const char  *p, *q;

    for (p = msg; *p != '\0' && *p != '\n'; p++) {
        if (*p != ':' || !isdigit((unsigned char) p[1])) {
            continue;
        }
        for (q = p + 1; isdigit((unsigned char) *q); q++) {
            /* skip the line number */
        }
        if (*q == ':') {
            return 1;
        }
    }
    return 0;
}

/* Message handler of the file's pcall: [err] -> [string starting "file:line:"]
 * for error objects that are not strings and for error("x", 0). */
static int
config_msgh(lua_State *L)
{
    const char  *msg;
    lua_Debug    ar;

    if (lua_type(L, 1) == LUA_TSTRING) {
        msg = lua_tostring(L, 1);
    } else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
        msg = lua_tostring(L, -1);
    } else {
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    if (!config_has_position(msg) && config_caller(L, &ar)) {
        lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
    } else {
        lua_pushstring(L, msg);
    }
    return 1;
}


/* ---- reading options ----------------------------------------------------- */

static void
opts_init(config_opts_t *o, lua_State *L, config_ctx_t *ctx, int t, const char *where)
{
    o->L = L;
    o->ctx = ctx;
    o->t = lua_absindex(L, t);
    o->where = where;
    o->prefix[0] = '\0';
}

/* "where: 'key' must be what". Never returns. */
static int
opts_error(config_opts_t *o, const char *key, const char *what)
{
    return config_raise(o->L, o->ctx, "%s: '%s%s' must be %s", o->where, o->prefix, key, what);
}

static int
config_known(const char *const keys[], const char *key)
{
    for (; *keys != NULL; keys++) {
        if (strcmp(*keys, key) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Raises on a key of o's table not in keys (NULL-terminated); with array_ok,
 * the items of its array part are allowed too. */
static void
opts_check_keys(config_opts_t *o, const char *const keys[], int array_ok)
{
    lua_State    *L = o->L;
    lua_Integer   n = (lua_Integer) lua_rawlen(L, o->t), i;
    char          shown[48];
    const char   *key;

    lua_pushnil(L);
    while (lua_next(L, o->t)) {
        lua_pop(L, 1);                  /* the value; lua_next needs the key */
        if (lua_type(L, -1) == LUA_TSTRING) {
            key = lua_tostring(L, -1);
            if (config_known(keys, key)) {
                continue;
            }
        } else if (lua_isinteger(L, -1)) {
            i = lua_tointeger(L, -1);
            if (array_ok && i >= 1 && i <= n) {
                continue;
            }
            snprintf(shown, sizeof(shown), "[%lld]", (long long) i);
            key = shown;
        } else {
            snprintf(shown, sizeof(shown), "[%s]", luaL_typename(L, -1));
            key = shown;
        }
        config_raise(L, o->ctx, "unknown key '%s%s' in %s", o->prefix, key, o->where);
    }
}

/* Raises unless the table at idx is a sequence (keys 1..#t only). */
static void
opts_check_array(config_opts_t *o, const char *key, int idx, const char *what)
{
    lua_State    *L = o->L;
    lua_Integer   n, i;

    idx = lua_absindex(L, idx);
    n = (lua_Integer) lua_rawlen(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        i = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
        if (i < 1 || i > n) {
            opts_error(o, key, what);
        }
    }
}

/* Pushes o[key] and returns 1, or pushes nothing and returns 0 when nil. */
static int
opts_push(config_opts_t *o, const char *key)
{
    lua_pushstring(o->L, key);
    if (lua_rawget(o->L, o->t) == LUA_TNIL) {
        lua_pop(o->L, 1);
        return 0;
    }
    return 1;
}

/* Reads an integer in [min, max]; returns 0 (out untouched) when absent. */
static int
opts_integer(config_opts_t *o, const char *key, lua_Integer min, lua_Integer max,
             lua_Integer *out)
{
    lua_Integer  i;
    int          isnum = 0;

    if (!opts_push(o, key)) {
        return 0;
    }
    i = lua_type(o->L, -1) == LUA_TNUMBER ? lua_tointegerx(o->L, -1, &isnum) : 0;
    if (!isnum || i < min) {
        opts_error(o, key, min > 0 ? "a positive integer" : "a non-negative integer");
    }
    if (i > max) {
        config_raise(o->L, o->ctx, "%s: '%s%s' must be at most %lld", o->where, o->prefix, key,
                     (long long) max);
    }
    lua_pop(o->L, 1);
    *out = i;
    return 1;
}

static void
opts_uint(config_opts_t *o, const char *key, unsigned min, unsigned *out)
{
    lua_Integer  i;

    if (opts_integer(o, key, min, UINT_MAX, &i)) {
        *out = (unsigned) i;
    }
}

static void
opts_int(config_opts_t *o, const char *key, int min, int *out)
{
    lua_Integer  i;

    if (opts_integer(o, key, min, INT_MAX, &i)) {
        *out = (int) i;
    }
}

static void
opts_ulong(config_opts_t *o, const char *key, unsigned long *out)
{
    lua_Integer  i;

    if (opts_integer(o, key, 0, LUA_MAXINTEGER, &i)) {
        *out = (unsigned long) i;
    }
}

/* A duration: a number of seconds, fractional allowed, > 0. */
static void
opts_duration(config_opts_t *o, const char *key, double *out)
{
    double  d;

    if (!opts_push(o, key)) {
        return;
    }
    d = lua_type(o->L, -1) == LUA_TNUMBER ? (double) lua_tonumber(o->L, -1) : 0;
    if (!(d > 0) || !isfinite(d)) {
        opts_error(o, key, "a positive number of seconds");
    }
    lua_pop(o->L, 1);
    *out = d;
}

/* "256k", "1m", "2G", "4096": k/m/g are powers of 1024; the result is > 0. */
static int
config_parse_size(const char *s, size_t *out)
{
    unsigned long long  v;
    size_t              mult = 1;
    char               *end;

    if (!isdigit((unsigned char) s[0])) {
        return RP_ERROR;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0) {
        return RP_ERROR;
    }
    switch (*end) {
    case 'k': case 'K': mult = (size_t) 1 << 10; end++; break;
    case 'm': case 'M': mult = (size_t) 1 << 20; end++; break;
    case 'g': case 'G': mult = (size_t) 1 << 30; end++; break;
    default: break;
    }
    if (*end != '\0' || v == 0 || v > SIZE_MAX / mult) {
        return RP_ERROR;
    }
    *out = (size_t) v * mult;
    return RP_OK;
}

/* A size: a positive integer of bytes, or a string with a k/m/g suffix. */
static void
opts_size(config_opts_t *o, const char *key, size_t *out)
{
    lua_Integer  i;
    size_t       n = 0;
    int          isnum = 0, rc = RP_ERROR;

    if (!opts_push(o, key)) {
        return;
    }
    if (lua_type(o->L, -1) == LUA_TNUMBER) {
        i = lua_tointegerx(o->L, -1, &isnum);
        if (isnum && i > 0 && (unsigned long long) i <= SIZE_MAX) {
            n = (size_t) i;
            rc = RP_OK;
        }
    } else if (lua_type(o->L, -1) == LUA_TSTRING) {
        rc = config_parse_size(lua_tostring(o->L, -1), &n);
    }
    if (rc != RP_OK) {
        opts_error(o, key, "a size: a positive number of bytes, or a string like \"256k\"");
    }
    lua_pop(o->L, 1);
    *out = n;
}

static void
opts_bool(config_opts_t *o, const char *key, int *out)
{
    if (!opts_push(o, key)) {
        return;
    }
    if (lua_type(o->L, -1) != LUA_TBOOLEAN) {
        opts_error(o, key, "a boolean");
    }
    *out = lua_toboolean(o->L, -1);
    lua_pop(o->L, 1);
}

/* A non-empty string, copied into *out (which owns it; an old value, such as
 * a default, is freed). Returns 0 when absent. */
static int
opts_string(config_opts_t *o, const char *key, char **out)
{
    if (!opts_push(o, key)) {
        return 0;
    }
    if (lua_type(o->L, -1) != LUA_TSTRING || lua_rawlen(o->L, -1) == 0) {
        opts_error(o, key, "a non-empty string");
    }
    free(*out);
    *out = rp_xstrdup(lua_tostring(o->L, -1));
    lua_pop(o->L, 1);
    return 1;
}

/* Writes 'one of "a", "b", "c"' for a message. */
static void
config_one_of(char *buf, size_t len, const char *const names[], unsigned n)
{
    size_t    used;
    unsigned  i;

    used = (size_t) snprintf(buf, len, "one of");
    for (i = 0; i < n && used < len; i++) {
        used += (size_t) snprintf(buf + used, len - used, "%s \"%s\"", i ? "," : "", names[i]);
    }
}

/* One of names (n of them); *out is its position. */
static void
opts_enum(config_opts_t *o, const char *key, const char *const names[], unsigned n, int *out)
{
    char         what[160];
    const char  *s;
    unsigned     i;

    if (!opts_push(o, key)) {
        return;
    }
    s = lua_type(o->L, -1) == LUA_TSTRING ? lua_tostring(o->L, -1) : "";
    for (i = 0; i < n; i++) {
        if (strcmp(names[i], s) == 0) {
            lua_pop(o->L, 1);
            *out = (int) i;
            return;
        }
    }
    config_one_of(what, sizeof(what), names, n);
    opts_error(o, key, what);
}

/* sub's key path is parent + key + ".": "log." -> "log.access.". Paths are
 * short ("routes[N]." is the deepest), so the cut below never happens. */
static void
opts_prefix(config_opts_t *sub, const char *parent, const char *key)
{
    size_t  n = strlen(parent), k = strlen(key);

    memcpy(sub->prefix, parent, n + 1);
    if (n + k + 2 <= sizeof(sub->prefix)) {
        memcpy(sub->prefix + n, key, k);
        sub->prefix[n + k] = '.';
        sub->prefix[n + k + 1] = '\0';
    }
}

/* Pushes the sub-table o[key] and fills sub to read it; the caller pops it.
 * Returns 0 (nothing pushed) when absent. */
static int
opts_table(config_opts_t *o, const char *key, config_opts_t *sub)
{
    if (!opts_push(o, key)) {
        return 0;
    }
    if (!lua_istable(o->L, -1)) {
        opts_error(o, key, "a table");
    }
    opts_init(sub, o->L, o->ctx, -1, o->where);
    opts_prefix(sub, o->prefix, key);
    return 1;
}

/* An array of non-empty strings, copied into *out (owned, *n items). */
static void
opts_strings(config_opts_t *o, const char *key, char ***out, unsigned *n)
{
    static const char  what[] = "an array of non-empty strings";
    lua_State         *L = o->L;
    unsigned           i, len;

    if (!opts_push(o, key)) {
        return;
    }
    if (!lua_istable(L, -1)) {
        opts_error(o, key, what);
    }
    opts_check_array(o, key, -1, what);
    len = (unsigned) lua_rawlen(L, -1);
    for (i = 1; i <= len; i++) {
        if (lua_rawgeti(L, -1, i) != LUA_TSTRING || lua_rawlen(L, -1) == 0) {
            opts_error(o, key, what);
        }
        lua_pop(L, 1);
    }
    /* checks done: nothing below raises */
    *out = rp_xalloc(len * sizeof(char *));
    *n = len;
    for (i = 1; i <= len; i++) {
        lua_rawgeti(L, -1, i);
        (*out)[i - 1] = rp_xstrdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}


/* ---- addresses ------------------------------------------------------------ */

static int
config_parse_port(const char *s, uint16_t *port)
{
    unsigned long  v = 0;
    const char    *p;

    for (p = s; isdigit((unsigned char) *p) && p - s < 5; p++) {
        v = v * 10 + (unsigned long) (*p - '0');
    }
    if (p == s || *p != '\0' || v == 0 || v > 65535) {
        return RP_ERROR;
    }
    *port = (uint16_t) v;
    return RP_OK;
}

/* Splits "host:port" or "[v6]:port" (a bare v6 address needs brackets). */
static int
config_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char  *h = s, *colon;
    size_t       n;

    if (s[0] == '[') {
        h = s + 1;
        if ((colon = strchr(h, ']')) == NULL || colon[1] != ':') {
            return RP_ERROR;
        }
        n = (size_t) (colon - h);
        colon++;
    } else {
        if ((colon = strrchr(s, ':')) == NULL) {
            return RP_ERROR;
        }
        n = (size_t) (colon - s);
        if (memchr(s, ':', n) != NULL) {
            return RP_ERROR;
        }
    }
    if (n == 0 || n >= hostlen) {
        return RP_ERROR;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    return config_parse_port(colon + 1, port);
}

/* getaddrinfo()'s first result for host:port; numeric and passive (a
 * listening address) when passive is set. On failure writes why. */
static int
config_resolve(const char *host, uint16_t port, int passive, struct sockaddr_storage *ss,
               socklen_t *len, char *why, size_t whylen)
{
    struct addrinfo   hints, *res;
    char              serv[8];
    int               rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE | AI_NUMERICHOST : 0);
    snprintf(serv, sizeof(serv), "%u", (unsigned) port);
    if ((rc = getaddrinfo(host, serv, &hints, &res)) != 0) {
        snprintf(why, whylen, "%s", rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return RP_ERROR;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return RP_OK;
}


/* ---- declarations: common ------------------------------------------------- */

static void *
config_grow(void *arr, unsigned n, size_t size)
{
    arr = rp_xrealloc(arr, ((size_t) n + 1) * size);
    memset((char *) arr + (size_t) n * size, 0, size);
    return arr;
}

/* Appends a record of the caller's file and line to *decls (n long). */
static void
config_decl_here(lua_State *L, config_decl_t *d)
{
    lua_Debug  ar;

    if (config_caller(L, &ar)) {
        d->file = rp_xstrdup(ar.short_src);
        d->line = ar.currentline;
    } else {
        d->file = rp_xstrdup("?");
        d->line = 0;
    }
}

static config_decl_t *
config_decl_add(lua_State *L, config_decl_t **decls, unsigned n)
{
    *decls = config_grow(*decls, n, sizeof(config_decl_t));
    config_decl_here(L, &(*decls)[n]);
    return &(*decls)[n];
}

static void
config_decls_free(config_decl_t *decls, unsigned n)
{
    unsigned  i, j;

    for (i = 0; i < n; i++) {
        for (j = 0; j < decls[i].nnames; j++) {
            free(decls[i].names[j]);
        }
        free(decls[i].names);
        free(decls[i].file);
    }
    free(decls);
}

/* Starts a declaration whose options table is argument 1: checks it and its
 * keys, and that no other declaration runs. Pair with config_end(). */
static config_ctx_t *
config_begin(lua_State *L, config_opts_t *o, const char *where, const char *const keys[],
             int array_ok)
{
    config_ctx_t  *ctx = lua_touserdata(L, lua_upvalueindex(1));

    if (ctx->closed) {
        config_raise(L, ctx, "%s: declared after the configuration file has run", where);
    }
    if (ctx->busy) {
        config_raise(L, ctx, "%s: declarations cannot be nested", where);
    }
    if (!lua_istable(L, 1)) {
        config_raise(L, ctx, "%s: expected a table of options, got %s", where,
                     luaL_typename(L, 1));
    }
    opts_init(o, L, ctx, 1, where);
    opts_check_keys(o, keys, array_ok);
    ctx->busy = 1;
    return ctx;
}

static void
config_end(config_ctx_t *ctx)
{
    ctx->busy = 0;
}

/* rproxy.KIND "name" -> a function taking the options table, with the name
 * as its second upvalue. */
static int
config_curry(lua_State *L, const char *kind, lua_CFunction f)
{
    config_ctx_t  *ctx = lua_touserdata(L, lua_upvalueindex(1));

    if (lua_type(L, 1) != LUA_TSTRING || lua_rawlen(L, 1) == 0) {
        return config_raise(L, ctx, "rproxy.%s: expected a name, as in rproxy.%s \"name\" { ... }",
                            kind, kind);
    }
    lua_pushlightuserdata(L, ctx);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, f, 2);
    return 1;
}

/* Refuses a second backend or pool of that name: a route's "to" names either,
 * so they share one namespace. kind is "backend" or "pool". */
static void
config_check_name(lua_State *L, config_ctx_t *ctx, const char *kind, const char *name)
{
    const rp_backend_conf_t  *b;
    const rp_pool_conf_t     *p;
    const config_decl_t      *d;
    const char               *other;

    if ((b = rp_config_backend(ctx->conf, name)) != NULL) {
        d = &ctx->backends[b->index];
        other = "backend";
    } else if ((p = rp_config_pool(ctx->conf, name)) != NULL) {
        d = &ctx->pools[p->index];
        other = "pool";
    } else {
        return;
    }
    if (strcmp(kind, other) == 0) {
        config_raise(L, ctx, "duplicate %s '%s' (first declared at %s:%d)", kind, name, d->file,
                     d->line);
    }
    config_raise(L, ctx, "%s '%s': the name is already taken by %s '%s' (%s:%d)", kind, name,
                 other, name, d->file, d->line);
}

/* log = { [error = ..., level = ...,] access = { output = ..., format = ... } }:
 * error and level only in settings (conf != NULL). */
static void
config_access_log(config_opts_t *lo, rp_access_log_conf_t *al)
{
    static const char *const  keys[] = { "output", "format", NULL };
    config_opts_t             ao;
    char                      err[512];

    if (!opts_table(lo, "access", &ao)) {
        return;
    }
    opts_check_keys(&ao, keys, 0);
    if (!opts_string(&ao, "output", &al->output)) {
        config_raise(ao.L, ao.ctx, "%s: '%soutput' is required", ao.where, ao.prefix);
    }
    if (!opts_string(&ao, "format", &al->format)) {
        al->format = rp_xstrdup("combined");
    }
    if (strcmp(al->format, "combined") != 0 && strcmp(al->format, "json") != 0
        && strchr(al->format, '{') == NULL) {
        opts_error(&ao, "format", "\"combined\", \"json\" or a template of {TOKENS}");
    }
    /* (a format without braces is refused above, naming the key) the
     * tokens, and that the file opens: what the start (or the reload) would
     * refuse with no file:line, after a check that said ok */
    if (rp_access_log_check(al->output, al->format, err, sizeof(err)) != RP_OK) {
        config_raise(ao.L, ao.ctx, "%s: %saccess: %s", ao.where, lo->prefix, err);
    }
    lua_pop(ao.L, 1);
}

static void
config_log(config_opts_t *o, rp_access_log_conf_t *al, rp_config_t *conf)
{
    static const char *const  keys[] = { "error", "level", "access", NULL };
    config_opts_t             lo;
    int                       level;

    if (!opts_table(o, "log", &lo)) {
        return;
    }
    opts_check_keys(&lo, conf != NULL ? keys : keys + 2, 0);
    if (conf != NULL) {
        char  err[512];

        if (opts_string(&lo, "error", &conf->error_log)
            && rp_error_log_check(conf->error_log, err, sizeof(err)) != RP_OK) {
            config_raise(lo.L, lo.ctx, "%s: %serror: %s", lo.where, lo.prefix, err);
        }
        level = -1;
        opts_enum(&lo, "level", config_level_names,
                  sizeof(config_level_names) / sizeof(config_level_names[0]), &level);
        if (level >= 0) {
            conf->log_level = config_levels[level];
        }
    }
    config_access_log(&lo, al);
    lua_pop(o->L, 1);
}


/* ---- tls = { ... } ------------------------------------------------------------ */

/* The names tls.protocols accepts, and their bits. */
static const char *const  config_tls_proto_names[] = { "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" };
static const unsigned     config_tls_proto_bits[] = {
    RP_TLS_PROTO_TLSv1, RP_TLS_PROTO_TLSv1_1, RP_TLS_PROTO_TLSv1_2, RP_TLS_PROTO_TLSv1_3
};

/* tls.headers: the key of each fact, and its default header name (which is
 * also the name x_headers knows it by). */
static const char *const  config_tls_fact_keys[RP_TLS_H_COUNT] = {
    "subject", "issuer", "serial", "not_before", "not_after", "cipher", "protocol", "sni",
    "fingerprint", "certificate"
};
static const char *const  config_tls_fact_headers[RP_TLS_H_COUNT] = {
    "X-SSL-Subject", "X-SSL-Issuer", "X-SSL-Serial", "X-SSL-NotBefore", "X-SSL-NotAfter",
    "X-SSL-Cipher", "X-SSL-Protocol", "X-SSL-SNI", "X-SSL-Fingerprint", "X-SSL-Certificate"
};

static const char *const  config_tls_verify_names[] = { "none", "optional", "require" };
static const char *const  config_tls_misdirected_names[] = { "reject", "allow" };

/* A header name is an RFC 9110 token. */
static int
config_is_token(const char *s)
{
    if (*s == '\0') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (!isalnum((unsigned char) *s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL) {
            return 0;
        }
    }
    return 1;
}

static int
opts_has(config_opts_t *o, const char *key)
{
    if (!opts_push(o, key)) {
        return 0;
    }
    lua_pop(o->L, 1);
    return 1;
}

/* p made absolute against the directory of the configuration file, so that
 * the file is found whatever the current directory (and again on reload). */
static char *
config_abs_path(const char *conf_path, const char *p)
{
    char         dir[PATH_MAX], abs[PATH_MAX], *out;
    const char  *slash = strrchr(conf_path, '/'), *d = dir;
    size_t       n;

    if (p[0] == '/') {
        return rp_xstrdup(p);
    }
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else {
        n = (size_t) (slash - conf_path);
        n = n == 0 ? 1 : n < sizeof(dir) ? n : sizeof(dir) - 1;
        memcpy(dir, conf_path, n);
        dir[n] = '\0';
    }
    if (realpath(dir, abs) != NULL) {
        d = strcmp(abs, "/") == 0 ? "" : abs;
    }
    n = strlen(d) + strlen(p) + 2;
    out = rp_xalloc(n);
    snprintf(out, n, "%s/%s", d, p);
    return out;
}

/* A path string: as opts_string(), then made absolute. */
static int
opts_path(config_opts_t *o, const char *key, char **out)
{
    char  *abs;

    if (!opts_string(o, key, out)) {
        return 0;
    }
    abs = config_abs_path(o->ctx->conf->path, *out);
    free(*out);
    *out = abs;
    return 1;
}

/* A header name (a token), copied into *out. */
static void
opts_header_name(config_opts_t *o, const char *key, char **out)
{
    if (opts_string(o, key, out) && !config_is_token(*out)) {
        opts_error(o, key, "a header name (letters, digits and !#$%&'*+-.^_`|~)");
    }
}

/* cert = ..., key = ... or certs = { { cert = ..., key = ... }, ... }: one is
 * required. The array is attached to its owner before an item is read, so a
 * raise leaves nothing unowned. */
static void
config_tls_certs(config_opts_t *o, rp_tls_cert_conf_t **certs, unsigned *n)
{
    static const char *const  keys[] = { "cert", "key", NULL };
    static const char         what[] = "an array of { cert = \"...\", key = \"...\" } tables";
    lua_State                *L = o->L;
    config_opts_t             po;
    char                      item[24];
    unsigned                  i, len;
    int                       has_cert = opts_has(o, "cert"), has_key = opts_has(o, "key");

    if (!opts_has(o, "certs")) {
        if (!has_cert || !has_key) {
            config_raise(L, o->ctx, "%s: '%scert' and '%skey' are required (or '%scerts')",
                         o->where, o->prefix, o->prefix, o->prefix);
        }
        *certs = rp_xalloc(sizeof(rp_tls_cert_conf_t));
        *n = 1;
        opts_path(o, "cert", &(*certs)[0].cert);
        opts_path(o, "key", &(*certs)[0].key);
        return;
    }
    if (has_cert || has_key) {
        config_raise(L, o->ctx, "%s: '%scerts' cannot be used with '%scert' and '%skey'",
                     o->where, o->prefix, o->prefix, o->prefix);
    }
    opts_push(o, "certs");
    if (!lua_istable(L, -1) || lua_rawlen(L, -1) == 0) {
        opts_error(o, "certs", what);
    }
    opts_check_array(o, "certs", -1, what);
    len = (unsigned) lua_rawlen(L, -1);
    *certs = rp_xalloc(len * sizeof(rp_tls_cert_conf_t));
    *n = len;
    for (i = 1; i <= len; i++) {
        if (lua_rawgeti(L, -1, i) != LUA_TTABLE) {
            opts_error(o, "certs", what);
        }
        opts_init(&po, L, o->ctx, -1, o->where);
        snprintf(item, sizeof(item), "certs[%u]", i);
        opts_prefix(&po, o->prefix, item);
        opts_check_keys(&po, keys, 0);
        if (!opts_path(&po, "cert", &(*certs)[i - 1].cert)
            || !opts_path(&po, "key", &(*certs)[i - 1].key)) {
            config_raise(L, o->ctx, "%s: '%scert' and '%skey' are required", o->where,
                         po.prefix, po.prefix);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static void
config_tls_protocols(config_opts_t *o, unsigned *out)
{
    char         what[160];
    lua_State   *L = o->L;
    const char  *s;
    unsigned     i, k, n, bits = 0;

    if (!opts_push(o, "protocols")) {
        return;
    }
    snprintf(what, sizeof(what), "a non-empty array of ");
    config_one_of(what + strlen(what), sizeof(what) - strlen(what), config_tls_proto_names, 4);
    if (!lua_istable(L, -1) || lua_rawlen(L, -1) == 0) {
        opts_error(o, "protocols", what);
    }
    opts_check_array(o, "protocols", -1, what);
    n = (unsigned) lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
        s = lua_rawgeti(L, -1, i) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        for (k = 0; k < 4 && strcmp(s, config_tls_proto_names[k]) != 0; k++) {
            /* find the name */
        }
        if (k == 4) {
            opts_error(o, "protocols", what);
        }
        bits |= config_tls_proto_bits[k];
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    *out = bits;
}

/* key = false | true | { size = N, <time_key> = S }. */
static void
config_tls_cache(config_opts_t *o, const char *key, const char *time_key, int *on,
                 unsigned *size, double *time)
{
    const char     *keys[] = { "size", time_key, NULL };
    char            what[96];
    config_opts_t   co;

    if (!opts_push(o, key)) {
        return;
    }
    if (lua_type(o->L, -1) == LUA_TBOOLEAN) {
        *on = lua_toboolean(o->L, -1);
    } else if (lua_istable(o->L, -1)) {
        *on = 1;
        opts_init(&co, o->L, o->ctx, -1, o->where);
        opts_prefix(&co, o->prefix, key);
        opts_check_keys(&co, keys, 0);
        opts_uint(&co, "size", 1, size);
        opts_duration(&co, time_key, time);
    } else {
        snprintf(what, sizeof(what), "false, true or a table { size = N, %s = S }", time_key);
        opts_error(o, key, what);
    }
    lua_pop(o->L, 1);
}

/* alpn = { "http/1.1" }: absent keeps the default, {} answers no ALPN. */
static void
config_tls_alpn(config_opts_t *o, rp_tls_conf_t *tc)
{
    unsigned  i;

    if (!opts_has(o, "alpn")) {
        tc->alpn = rp_xalloc(sizeof(char *));
        tc->alpn[0] = rp_xstrdup("http/1.1");
        tc->nalpn = 1;
        return;
    }
    opts_strings(o, "alpn", &tc->alpn, &tc->nalpn);
    for (i = 0; i < tc->nalpn; i++) {
        /* a client that is offered "h2" and takes it speaks HTTP/2, which
         * rproxy does not: it would get a 400 for its connection preface */
        if (strcmp(tc->alpn[i], "http/1.1") != 0 && strcmp(tc->alpn[i], "http/1.0") != 0) {
            opts_error(o, "alpn", "an array of \"http/1.1\" and \"http/1.0\" (rproxy speaks "
                       "HTTP/1.x only)");
        }
    }
}

/* headers = { subject = "X-Client-DN", ... }: renames what a fact is sent as. */
static void
config_tls_headers(config_opts_t *o, rp_tls_conf_t *tc)
{
    const char     *keys[RP_TLS_H_COUNT + 1];
    config_opts_t   ho;
    unsigned        h;

    for (h = 0; h < RP_TLS_H_COUNT; h++) {
        tc->headers[h] = rp_xstrdup(config_tls_fact_headers[h]);
        keys[h] = config_tls_fact_keys[h];
    }
    keys[RP_TLS_H_COUNT] = NULL;
    if (!opts_table(o, "headers", &ho)) {
        return;
    }
    opts_check_keys(&ho, keys, 0);
    for (h = 0; h < RP_TLS_H_COUNT; h++) {
        opts_header_name(&ho, config_tls_fact_keys[h], &tc->headers[h]);
    }
    lua_pop(o->L, 1);
}

static int
config_tls_ext_cmp(const void *a, const void *b)
{
    return strcasecmp(((const rp_tls_ext_conf_t *) a)->header,
                      ((const rp_tls_ext_conf_t *) b)->header);
}

/* extensions = { ["X-SSL-Ext-SAN"] = "subjectAltName", ... }, kept sorted by
 * header name so that the order does not depend on Lua's hashing. The names
 * of extensions are checked by core/tls.c when the listener is built. */
static void
config_tls_extensions(config_opts_t *o, rp_tls_conf_t *tc)
{
    static const char  what[] = "a table of header name = extension name or OID";
    lua_State         *L = o->L;
    unsigned           n = 0, i;

    if (!opts_push(o, "extensions")) {
        return;
    }
    if (!lua_istable(L, -1)) {
        opts_error(o, "extensions", what);
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) != LUA_TSTRING || !config_is_token(lua_tostring(L, -2))
            || lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0) {
            opts_error(o, "extensions", what);
        }
        lua_pop(L, 1);
        n++;
    }
    /* checks done: nothing below raises */
    tc->exts = rp_xalloc(n * sizeof(rp_tls_ext_conf_t));
    i = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (i < n) {
            tc->exts[i].header = rp_xstrdup(lua_tostring(L, -2));
            tc->exts[i].ext = rp_xstrdup(lua_tostring(L, -1));
            i++;
        }
        lua_pop(L, 1);
    }
    tc->nexts = i;
    qsort(tc->exts, tc->nexts, sizeof(rp_tls_ext_conf_t), config_tls_ext_cmp);
    lua_pop(L, 1);
}

static rp_tls_conf_t *
config_tls_conf_new(void)
{
    rp_tls_conf_t  *tc = rp_xalloc(sizeof(rp_tls_conf_t));

    tc->protocols = RP_TLS_PROTO_TLSv1_2 | RP_TLS_PROTO_TLSv1_3;
    tc->handshake_timeout = 10;
    tc->verify_depth = 4;
    tc->session_cache = 1;
    tc->session_cache_size = 20480;
    tc->session_timeout = 300;
    tc->tickets = 1;
    tc->ticket_rotate = 3600;
    tc->cert_cache = 1;
    tc->cert_cache_size = 10000;
    tc->cert_cache_ttl = 300;
    tc->misdirected_reject = 1;
    return tc;
}

/* The checks between keys of a listener's tls. */
static void
config_tls_check(config_opts_t *o, rp_tls_conf_t *tc, int verify)
{
    int  has_ca = tc->client_ca != NULL || tc->client_ca_dir != NULL;

    if (verify < 0) {
        tc->verify_client = has_ca ? RP_TLS_VERIFY_REQUIRE : RP_TLS_VERIFY_NONE;
    } else {
        tc->verify_client = (rp_tls_verify_e) verify;
    }
    if (tc->verify_client != RP_TLS_VERIFY_NONE && !has_ca) {
        config_raise(o->L, o->ctx, "%s: 'tls.verify_client' = \"%s\" needs 'tls.client_ca' or "
                     "'tls.client_ca_dir'", o->where,
                     config_tls_verify_names[tc->verify_client]);
    }
    if (tc->verify_client == RP_TLS_VERIFY_NONE && has_ca) {
        config_raise(o->L, o->ctx, "%s: 'tls.client_ca' is set but 'tls.verify_client' is "
                     "\"none\"", o->where);
    }
    if (tc->crl != NULL && tc->verify_client == RP_TLS_VERIFY_NONE) {
        config_raise(o->L, o->ctx, "%s: 'tls.crl' needs client certificates "
                     "('tls.client_ca')", o->where);
    }
    if (tc->ticket_key_file != NULL && !tc->tickets) {
        config_raise(o->L, o->ctx, "%s: 'tls.ticket_key_file' is set but 'tls.tickets' is "
                     "false", o->where);
    }
}

/* tls.tickets: true, false or "stateless". */
static void
config_tls_tickets(config_opts_t *o, rp_tls_conf_t *tc)
{
    if (!opts_push(o, "tickets")) {
        return;
    }
    if (lua_type(o->L, -1) == LUA_TBOOLEAN) {
        tc->tickets = lua_toboolean(o->L, -1);
    } else if (lua_type(o->L, -1) == LUA_TSTRING && strcmp(lua_tostring(o->L, -1),
                                                           "stateless") == 0) {
        tc->tickets = tc->tickets_stateless = 1;
    } else {
        opts_error(o, "tickets", "a boolean or \"stateless\"");
    }
    lua_pop(o->L, 1);
}

/* A listener's tls = { ... }; see docs/tls.md. Lua stack: unchanged. */
static void
config_listen_tls(config_opts_t *o, rp_listen_conf_t *l)
{
    static const char *const  keys[] = {
        "cert", "key", "certs", "protocols", "ciphers", "ciphersuites", "groups", "alpn",
        "handshake_timeout", "client_ca", "client_ca_dir", "verify_client", "verify_depth",
        "crl", "session_cache", "tickets", "ticket_key_file", "ticket_rotate", "cert_cache",
        "misdirected", "headers", "extensions", NULL
    };
    config_opts_t             to;
    rp_tls_conf_t            *tc;
    lua_Integer               depth;
    int                       verify = -1, misdirected = 0;

    if (!opts_table(o, "tls", &to)) {
        return;
    }
    opts_check_keys(&to, keys, 0);
    tc = l->tls = config_tls_conf_new();
    config_tls_headers(&to, tc);
    config_tls_certs(&to, &tc->certs, &tc->ncerts);
    config_tls_protocols(&to, &tc->protocols);
    opts_string(&to, "ciphers", &tc->ciphers);
    opts_string(&to, "ciphersuites", &tc->ciphersuites);
    opts_string(&to, "groups", &tc->groups);
    config_tls_alpn(&to, tc);
    opts_duration(&to, "handshake_timeout", &tc->handshake_timeout);
    opts_path(&to, "client_ca", &tc->client_ca);
    opts_path(&to, "client_ca_dir", &tc->client_ca_dir);
    opts_enum(&to, "verify_client", config_tls_verify_names, 3, &verify);
    if (opts_integer(&to, "verify_depth", 0, 100, &depth)) {
        tc->verify_depth = (int) depth;
    }
    opts_path(&to, "crl", &tc->crl);
    config_tls_cache(&to, "session_cache", "timeout", &tc->session_cache,
                     &tc->session_cache_size, &tc->session_timeout);
    config_tls_tickets(&to, tc);
    opts_path(&to, "ticket_key_file", &tc->ticket_key_file);
    opts_duration(&to, "ticket_rotate", &tc->ticket_rotate);
    config_tls_cache(&to, "cert_cache", "ttl", &tc->cert_cache, &tc->cert_cache_size,
                     &tc->cert_cache_ttl);
    opts_enum(&to, "misdirected", config_tls_misdirected_names, 2, &misdirected);
    tc->misdirected_reject = misdirected == 0;
    config_tls_extensions(&to, tc);
    config_tls_check(o, tc, verify);
    lua_pop(o->L, 1);
}

/* A vhost's tls = { cert = ..., key = ... } or { certs = { ... } }. */
static void
config_vhost_tls(config_opts_t *o, rp_vhost_conf_t *v)
{
    static const char *const  keys[] = { "cert", "key", "certs", NULL };
    config_opts_t             to;

    if (!opts_table(o, "tls", &to)) {
        return;
    }
    opts_check_keys(&to, keys, 0);
    config_tls_certs(&to, &v->tls_certs, &v->ntls_certs);
    lua_pop(o->L, 1);
}

static int
config_is_ip(const char *s)
{
    unsigned char  buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A backend's tls = true or { ... }, read after its address. */
static void
config_backend_tls(config_opts_t *o, rp_backend_conf_t *b)
{
    static const char *const  keys[] = {
        "verify", "ca", "depth", "sni", "name", "cert", "key", NULL
    };
    config_opts_t             to;
    rp_tls_client_conf_t     *cc;
    lua_Integer               depth;
    int                       sni = 1;

    if (!opts_push(o, "tls")) {
        return;
    }
    if (lua_type(o->L, -1) == LUA_TBOOLEAN) {
        if (lua_toboolean(o->L, -1)) {
            cc = b->tls = rp_xalloc(sizeof(rp_tls_client_conf_t));
            cc->verify = 1;
            cc->depth = 4;
            cc->sni = config_is_ip(b->host) ? NULL : rp_xstrdup(b->host);
            cc->name = rp_xstrdup(b->host);
        }
        lua_pop(o->L, 1);
        return;
    }
    if (!lua_istable(o->L, -1)) {
        opts_error(o, "tls", "true, false or a table");
    }
    opts_init(&to, o->L, o->ctx, -1, o->where);
    opts_prefix(&to, o->prefix, "tls");
    opts_check_keys(&to, keys, 0);
    cc = b->tls = rp_xalloc(sizeof(rp_tls_client_conf_t));
    cc->verify = 1;
    cc->depth = 4;
    opts_bool(&to, "verify", &cc->verify);
    opts_path(&to, "ca", &cc->ca);
    if (opts_integer(&to, "depth", 0, 100, &depth)) {
        cc->depth = (int) depth;
    }
    if (opts_push(&to, "sni")) {
        if (lua_type(o->L, -1) == LUA_TBOOLEAN && !lua_toboolean(o->L, -1)) {
            sni = 0;
        }
        lua_pop(o->L, 1);
        if (sni) {
            opts_string(&to, "sni", &cc->sni);      /* raises on anything but a string */
        }
    }
    if (sni && cc->sni == NULL && !config_is_ip(b->host)) {
        cc->sni = rp_xstrdup(b->host);
    }
    if (!opts_string(&to, "name", &cc->name)) {
        cc->name = rp_xstrdup(cc->sni != NULL ? cc->sni : b->host);
    }
    opts_path(&to, "cert", &cc->cert);
    opts_path(&to, "key", &cc->key);
    if ((cc->cert == NULL) != (cc->key == NULL)) {
        config_raise(o->L, o->ctx, "%s: 'tls.cert' and 'tls.key' go together", o->where);
    }
    if (!cc->verify && (cc->ca != NULL || opts_has(&to, "name"))) {
        config_raise(o->L, o->ctx, "%s: 'tls.verify' is false: 'tls.ca' and 'tls.name' would "
                     "not be used", o->where);
    }
    lua_pop(o->L, 1);
}


/* ---- rproxy.settings { ... } ---------------------------------------------- */

/* lua = { instructions = 10000000, memory = "64m" }: the limits of a hook call
 * and of each worker's lua_State. */
static void
config_lua_limits(config_opts_t *o, rp_config_t *conf)
{
    static const char *const  keys[] = { "instructions", "memory", NULL };
    config_opts_t             sub;
    lua_Integer               n;

    if (!opts_table(o, "lua", &sub)) {
        return;
    }
    opts_check_keys(&sub, keys, 0);
    if (opts_integer(&sub, "instructions", 0, LUA_MAXINTEGER, &n)) {
        if (n < RP_LUA_BUDGET_STEP) {
            config_raise(o->L, o->ctx, "%s: '%sinstructions' must be at least %d (the budget is "
                         "counted in steps of %d)", sub.where, sub.prefix, RP_LUA_BUDGET_STEP,
                         RP_LUA_BUDGET_STEP);
        }
        conf->lua_instructions = (unsigned long) n;
    }
    opts_size(&sub, "memory", &conf->lua_memory);
    lua_pop(o->L, 1);
}

static int
l_config_settings(lua_State *L)
{
    static const char *const  keys[] = {
        "threads", "max_nofile", "pidfile", "grace", "log", "lua", "watch", NULL
    };
    config_opts_t             o;
    config_ctx_t             *ctx;
    rp_config_t              *conf;

    ctx = config_begin(L, &o, "settings", keys, 0);
    conf = ctx->conf;
    if (ctx->settings.file != NULL) {
        config_raise(L, ctx, "rproxy.settings may be called only once (first at %s:%d)",
                     ctx->settings.file, ctx->settings.line);
    }
    config_decl_here(L, &ctx->settings);

    opts_uint(&o, "threads", 0, &conf->threads);
    opts_ulong(&o, "max_nofile", &conf->max_nofile);
    opts_string(&o, "pidfile", &conf->pidfile);
    opts_duration(&o, "grace", &conf->grace);
    opts_bool(&o, "watch", &conf->watch);
    config_log(&o, &conf->access_log, conf);
    config_lua_limits(&o, conf);
    config_end(ctx);
    return 0;
}


/* ---- rproxy.backend "name" { ... } ------------------------------------------ */

static rp_backend_conf_t *
config_add_backend(lua_State *L, config_ctx_t *ctx, const char *name)
{
    rp_config_t        *conf = ctx->conf;
    rp_backend_conf_t  *b;
    config_decl_t      *d;

    d = config_decl_add(L, &ctx->backends, conf->nbackends);
    conf->backends = config_grow(conf->backends, conf->nbackends, sizeof(rp_backend_conf_t));
    b = &conf->backends[conf->nbackends];
    b->index = conf->nbackends++;
    b->line = d->line;
    b->name = rp_xstrdup(name);
    b->connections = 4;
    b->retry = 0.5;
    b->retry_max = 10;
    b->connect_timeout = 5;
    b->read_timeout = 60;
    b->write_timeout = 60;
    b->high_watermark = 256 * 1024;
    b->enabled = 1;
    b->weight = 1;
    return b;
}

static void
config_backend_address(config_opts_t *o, rp_backend_conf_t *b)
{
    char  host[256], why[256];

    if (!opts_string(o, "address", &b->address)) {
        config_raise(o->L, o->ctx, "%s: 'address' is required", o->where);
    }
    if (config_split_hostport(b->address, host, sizeof(host), &b->port) != RP_OK) {
        config_raise(o->L, o->ctx, "%s: bad address '%s' (expected host:port or [ipv6]:port)",
                     o->where, b->address);
    }
    b->host = rp_xstrdup(host);
    if (config_resolve(host, b->port, 0, &b->addr, &b->addrlen, why, sizeof(why)) != RP_OK) {
        config_raise(o->L, o->ctx, "%s: cannot resolve '%s': %s", o->where, host, why);
    }
}

static int
l_config_backend_opts(lua_State *L)
{
    static const char *const  keys[] = {
        "address", "connections", "retry", "retry_max", "connect_timeout", "read_timeout",
        "write_timeout", "high_watermark", "enabled", "weight", "tls", NULL
    };
    const char               *name = lua_tostring(L, lua_upvalueindex(2));
    char                      where[CONFIG_WHERE_LEN];
    config_opts_t             o;
    config_ctx_t             *ctx;
    rp_backend_conf_t        *b;

    snprintf(where, sizeof(where), "backend '%s'", name);
    ctx = config_begin(L, &o, where, keys, 0);
    config_check_name(L, ctx, "backend", name);
    b = config_add_backend(L, ctx, name);

    opts_uint(&o, "connections", 1, &b->connections);
    opts_duration(&o, "retry", &b->retry);
    opts_duration(&o, "retry_max", &b->retry_max);
    if (b->retry_max < b->retry) {
        /* the delay doubles from retry up to retry_max: a smaller cap given
         * is a mistake; the default one follows a longer retry */
        if (opts_has(&o, "retry_max")) {
            config_raise(L, ctx, "%s: 'retry_max' (%g) must be at least 'retry' (%g)", o.where,
                         b->retry_max, b->retry);
        }
        b->retry_max = b->retry;
    }
    opts_duration(&o, "connect_timeout", &b->connect_timeout);
    opts_duration(&o, "read_timeout", &b->read_timeout);
    opts_duration(&o, "write_timeout", &b->write_timeout);
    opts_size(&o, "high_watermark", &b->high_watermark);
    opts_bool(&o, "enabled", &b->enabled);
    opts_uint(&o, "weight", 0, &b->weight);
    config_backend_address(&o, b);
    config_backend_tls(&o, b);
    config_end(ctx);
    return 0;
}

static int
l_config_backend(lua_State *L)
{
    return config_curry(L, "backend", l_config_backend_opts);
}


/* ---- rproxy.pool "name" { "b1", "b2", balance = "rtt" } --------------------- */

/* Checks the members (array part of argument 1); returns how many. */
static unsigned
config_pool_check_members(config_opts_t *o)
{
    lua_State  *L = o->L;
    unsigned    n, i, j;

    n = (unsigned) lua_rawlen(L, 1);
    if (n == 0) {
        config_raise(L, o->ctx, "%s: needs at least one backend, as in { \"app1\", \"app2\" }",
                     o->where);
    }
    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 1, i) != LUA_TSTRING) {
            config_raise(L, o->ctx, "%s: member %u must be a backend name, got %s", o->where, i,
                         luaL_typename(L, -1));
        }
        for (j = 1; j < i; j++) {
            lua_rawgeti(L, 1, j);
            if (lua_rawequal(L, -1, -2)) {
                config_raise(L, o->ctx, "%s: backend '%s' is listed twice", o->where,
                             lua_tostring(L, -1));
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return n;
}

/* balance = "rtt" (core/balancer.c knows the names), a function(req, pool),
 * or the name of an rproxy.balancer, checked once the file has run (*lua_name
 * is then a copy the caller owns). */
static void
config_pool_balance(config_opts_t *o, rp_balance_e *out, int *lua_fn, char **lua_name)
{
    const char  *names[RP_BALANCE_FIRST + 1];
    char         what[220];
    unsigned     m;

    if (!opts_push(o, "balance")) {
        return;
    }
    if (lua_isfunction(o->L, -1)) {
        *lua_fn = 1;
    } else if (lua_type(o->L, -1) != LUA_TSTRING) {
        for (m = RP_BALANCE_RTT; m <= RP_BALANCE_FIRST; m++) {
            names[m] = rp_balancer_name((rp_balance_e) m);
        }
        config_one_of(what, sizeof(what), names, RP_BALANCE_FIRST + 1);
        strncat(what, ", a function(req, pool) or an rproxy.balancer name",
                sizeof(what) - strlen(what) - 1);
        opts_error(o, "balance", what);
    } else if (rp_balancer_parse(lua_tostring(o->L, -1), out) != RP_OK) {
        *lua_name = rp_xstrdup(lua_tostring(o->L, -1));
    }
    lua_pop(o->L, 1);
}

static int
l_config_pool_opts(lua_State *L)
{
    static const char *const  keys[] = { "balance", NULL };
    const char               *name = lua_tostring(L, lua_upvalueindex(2));
    char                      where[CONFIG_WHERE_LEN];
    config_opts_t             o;
    config_ctx_t             *ctx;
    rp_config_t              *conf;
    rp_pool_conf_t           *p;
    config_decl_t            *d;
    unsigned                  n, i;
    rp_balance_e              balance = RP_BALANCE_RTT;
    int                       lua_fn = 0;
    char                     *lua_name = NULL;

    snprintf(where, sizeof(where), "pool '%s'", name);
    ctx = config_begin(L, &o, where, keys, 1);
    conf = ctx->conf;
    config_check_name(L, ctx, "pool", name);
    n = config_pool_check_members(&o);
    config_pool_balance(&o, &balance, &lua_fn, &lua_name);   /* the last check */

    /* checks done: nothing below raises */
    d = config_decl_add(L, &ctx->pools, conf->npools);
    conf->pools = config_grow(conf->pools, conf->npools, sizeof(rp_pool_conf_t));
    p = &conf->pools[conf->npools];
    p->index = conf->npools++;
    p->line = d->line;
    p->name = rp_xstrdup(name);
    p->balance = balance;
    p->lua_balance = lua_fn;
    p->balancer = lua_name;
    p->members = rp_xalloc(n * sizeof(unsigned));     /* filled once the file has run */
    p->nmembers = n;
    d->names = rp_xalloc(n * sizeof(char *));
    d->nnames = n;
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, 1, (lua_Integer) i + 1);
        d->names[i] = rp_xstrdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    config_end(ctx);
    return 0;
}

static int
l_config_pool(lua_State *L)
{
    return config_curry(L, "pool", l_config_pool_opts);
}


/* ---- rproxy.listen { ... } -------------------------------------------------- */

static rp_listen_conf_t *
config_add_listener(lua_State *L, config_ctx_t *ctx)
{
    rp_config_t       *conf = ctx->conf;
    rp_listen_conf_t  *l;
    config_decl_t     *d;

    d = config_decl_add(L, &ctx->listeners, conf->nlisteners);
    conf->listeners = config_grow(conf->listeners, conf->nlisteners, sizeof(rp_listen_conf_t));
    l = &conf->listeners[conf->nlisteners++];
    l->line = d->line;
    l->backlog = 1024;
    l->defer_accept = 1;
    l->read_timeout = 60;
    l->write_timeout = 60;
    l->keepalive_timeout = 75;
    l->pending_timeout = 10;
    l->max_pending = 1024;
    l->high_watermark = 256 * 1024;
    l->x_headers = RP_XH_FORWARDED_FOR;
    l->max_request_line = 8192;
    l->max_header_size = 32 * 1024;
    l->max_headers = 100;
    return l;
}

/* "*:port" and "0.0.0.0:port" are IPv4 any, "[::]:port" IPv6 any; numeric
 * only. Also refuses an address declared by an earlier listener. */
static void
config_listen_address(config_opts_t *o, rp_listen_conf_t *l)
{
    config_ctx_t  *ctx = o->ctx;
    char           host[64], why[256];
    uint16_t       port;
    unsigned       i;

    if (!opts_string(o, "address", &l->address)) {
        config_raise(o->L, ctx, "listen: 'address' is required");
    }
    if (config_split_hostport(l->address, host, sizeof(host), &port) != RP_OK
        || config_resolve(strcmp(host, "*") == 0 ? "0.0.0.0" : host, port, 1, &l->addr,
                          &l->addrlen, why, sizeof(why)) != RP_OK) {
        config_raise(o->L, ctx, "listen: bad address '%s'", l->address);
    }
    for (i = 0; i + 1 < ctx->conf->nlisteners; i++) {
        if (ctx->conf->listeners[i].addrlen == l->addrlen
            && memcmp(&ctx->conf->listeners[i].addr, &l->addr, l->addrlen) == 0) {
            config_raise(o->L, ctx, "listen: address '%s' is already declared at %s:%d",
                         l->address, ctx->listeners[i].file, ctx->listeners[i].line);
        }
    }
}

/* x_headers = { "X-Forwarded-For", ... }: names are case-insensitive. */
static void
config_x_headers(config_opts_t *o, unsigned *out)
{
    static const struct {
        const char  *name;
        unsigned     bit;
    } known[] = {
        { "X-Forwarded-For", RP_XH_FORWARDED_FOR },
        { "X-Forwarded-Proto", RP_XH_FORWARDED_PROTO },
        { "X-Real-IP", RP_XH_REAL_IP },
        { "X-SSL-Subject", RP_XH_SSL_SUBJECT },
        { "X-SSL-Issuer", RP_XH_SSL_ISSUER },
        { "X-SSL-Serial", RP_XH_SSL_SERIAL },
        { "X-SSL-NotBefore", RP_XH_SSL_NOT_BEFORE },
        { "X-SSL-NotAfter", RP_XH_SSL_NOT_AFTER },
        { "X-SSL-Cipher", RP_XH_SSL_CIPHER },
        { "X-SSL-Protocol", RP_XH_SSL_PROTOCOL },
        { "X-SSL-SNI", RP_XH_SSL_SNI },
        { "X-SSL-Fingerprint", RP_XH_SSL_FINGERPRINT },
        { "X-SSL-Certificate", RP_XH_SSL_CERTIFICATE },
        { "X-SSL-Ext", RP_XH_SSL_EXT },
    };
    static const char  what[] = "an array of header names";
    char               names[512];
    size_t             used;
    lua_State         *L = o->L;
    const char        *s;
    unsigned           i, k, n, bits = 0;

    if (!opts_push(o, "x_headers")) {
        return;
    }
    if (!lua_istable(L, -1)) {
        opts_error(o, "x_headers", what);
    }
    opts_check_array(o, "x_headers", -1, what);
    n = (unsigned) lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
            opts_error(o, "x_headers", what);
        }
        s = lua_tostring(L, -1);
        for (k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
            if (strcasecmp(s, known[k].name) == 0) {
                break;
            }
        }
        if (k == sizeof(known) / sizeof(known[0])) {
            for (k = 0, used = 0; k < sizeof(known) / sizeof(known[0]); k++) {
                used += (size_t) snprintf(names + used, sizeof(names) - used, "%s%s",
                                          k ? ", " : "", known[k].name);
            }
            config_raise(L, o->ctx, "%s: unknown x_header '%s' (known: %s)", o->where, s, names);
        }
        bits |= known[k].bit;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    *out = bits;
}

static int
l_config_listen(lua_State *L)
{
    static const char *const  keys[] = {
        "address", "backlog", "defer_accept", "read_timeout", "write_timeout",
        "keepalive_timeout", "pending_timeout", "max_pending", "high_watermark", "x_headers",
        "max_request_line", "max_header_size", "max_headers", "log", "tls", NULL
    };
    config_opts_t             o;
    config_ctx_t             *ctx;
    rp_listen_conf_t         *l;

    ctx = config_begin(L, &o, "listen", keys, 0);
    l = config_add_listener(L, ctx);

    config_listen_address(&o, l);
    opts_int(&o, "backlog", 1, &l->backlog);
    opts_bool(&o, "defer_accept", &l->defer_accept);
    opts_duration(&o, "read_timeout", &l->read_timeout);
    opts_duration(&o, "write_timeout", &l->write_timeout);
    opts_duration(&o, "keepalive_timeout", &l->keepalive_timeout);
    opts_duration(&o, "pending_timeout", &l->pending_timeout);
    opts_uint(&o, "max_pending", 1, &l->max_pending);
    opts_size(&o, "high_watermark", &l->high_watermark);
    config_x_headers(&o, &l->x_headers);
    opts_size(&o, "max_request_line", &l->max_request_line);
    opts_size(&o, "max_header_size", &l->max_header_size);
    opts_uint(&o, "max_headers", 1, &l->max_headers);
    config_log(&o, &l->access_log, NULL);
    config_listen_tls(&o, l);
    config_end(ctx);
    return 0;
}


/* ---- rproxy.vhost "name" { ... } -------------------------------------------- */

/* Appends a zeroed route to v, and a slot for its target's name to d. */
static rp_route_conf_t *
config_add_route(rp_vhost_conf_t *v, config_decl_t *d)
{
    v->routes = config_grow(v->routes, v->nroutes, sizeof(rp_route_conf_t));
    d->names = config_grow(d->names, d->nnames, sizeof(char *));
    d->nnames++;
    return &v->routes[v->nroutes++];
}

/* The path test: at most one of path (glob if it has * ? or [, else exact),
 * prefix, regex, exact; none matches every path. */
static void
config_route_match(config_opts_t *o, rp_route_conf_t *r)
{
    static const struct {
        const char  *key;
        rp_match_e   match;
    } kinds[] = {
        { "path", RP_MATCH_GLOB }, { "prefix", RP_MATCH_PREFIX },
        { "regex", RP_MATCH_REGEX }, { "exact", RP_MATCH_EXACT },
    };
    char      why[256];
    unsigned  k, found = 0, nfound = 0;
    int       rc;

    for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if (!opts_string(o, kinds[k].key, &r->pattern)) {
            continue;
        }
        if (nfound++ > 0) {
            config_raise(o->L, o->ctx, "%s: '%.*s' has both '%s' and '%s'", o->where,
                         (int) strlen(o->prefix) - 1, o->prefix, kinds[found].key, kinds[k].key);
        }
        found = k;
    }
    if (nfound == 0) {
        r->match = RP_MATCH_ANY;
        return;
    }
    if (kinds[found].match == RP_MATCH_REGEX) {
        /* match stays RP_MATCH_ANY until compiled: config.c frees by it */
        if ((rc = regcomp(&r->regex, r->pattern, REG_EXTENDED)) != 0) {
            regerror(rc, NULL, why, sizeof(why));
            config_raise(o->L, o->ctx, "%s: '%sregex': bad regular expression '%s': %s",
                         o->where, o->prefix, r->pattern, why);
        }
    } else if (kinds[found].match == RP_MATCH_GLOB && strpbrk(r->pattern, "*?[") == NULL) {
        r->match = RP_MATCH_EXACT;
        return;
    }
    r->match = kinds[found].match;
}

/* Returns the first bad '%' escape of a replacement, or NULL: %0..%N where N
 * is the regex's number of groups, and %%. */
static const char *
config_bad_replacement(const char *s, size_t nsub)
{
    for (; *s != '\0'; s++) {
        if (*s != '%') {
            continue;
        }
        if (s[1] == '%' || (isdigit((unsigned char) s[1]) && (size_t) (s[1] - '0') <= nsub)) {
            s++;
            continue;
        }
        return s;
    }
    return NULL;
}

/* The first byte of s (n bytes) a path cannot hold, or NULL: what
 * req.path refuses too (lua_request.c, valid_path). */
static const char *
config_bad_path_byte(const char *s, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        unsigned char  ch = (unsigned char) s[i];

        if (ch <= 0x20 || ch >= 0x7f || ch == '?' || ch == '#') {
            return s + i;
        }
    }
    return NULL;
}

/* rewrite = { "regex", "replacement" }. Lua stack: unchanged. */
static void
config_route_rewrite(config_opts_t *o, rp_route_conf_t *r)
{
    static const char  what[] = "a pair { \"regex\", \"replacement\" }";
    lua_State         *L = o->L;
    const char        *re, *to, *bad;
    char               why[256];
    int                rc;

    if (!opts_push(o, "rewrite")) {
        return;
    }
    if (!lua_istable(L, -1) || lua_rawlen(L, -1) != 2) {
        opts_error(o, "rewrite", what);
    }
    opts_check_array(o, "rewrite", -1, what);
    if (lua_rawgeti(L, -1, 1) != LUA_TSTRING || lua_rawgeti(L, -2, 2) != LUA_TSTRING) {
        opts_error(o, "rewrite", what);
    }
    re = lua_tostring(L, -2);
    to = lua_tostring(L, -1);
    if ((rc = regcomp(&r->rewrite_re, re, REG_EXTENDED)) != 0) {
        regerror(rc, NULL, why, sizeof(why));
        config_raise(L, o->ctx, "%s: '%srewrite': bad regular expression '%s': %s", o->where,
                     o->prefix, re, why);
    }
    r->has_rewrite = 1;
    r->rewrite_to = rp_xstrdup(to);
    if ((bad = config_bad_path_byte(to, lua_rawlen(L, -1))) != NULL) {
        /* it becomes the request line's path: no header injection from here */
        config_raise(L, o->ctx,
                     "%s: '%srewrite': bad replacement: byte %u (0x%02x) cannot be in a path "
                     "(visible ASCII without '?' and '#')", o->where, o->prefix,
                     (unsigned) (bad - to) + 1, (unsigned) (unsigned char) *bad);
    }
    if ((bad = config_bad_replacement(to, r->rewrite_re.re_nsub)) != NULL) {
        config_raise(L, o->ctx,
                     "%s: '%srewrite': bad replacement '%s' at '%.2s' (the regex has %u "
                     "capture%s: %%0..%%%u; %%%% is a '%%')", o->where, o->prefix, to, bad,
                     (unsigned) r->rewrite_re.re_nsub, r->rewrite_re.re_nsub == 1 ? "" : "s",
                     (unsigned) r->rewrite_re.re_nsub);
    }
    lua_pop(L, 3);
}

/* routes[i], the table on top of the stack; its target name goes into d. */
static void
config_route(config_opts_t *vo, rp_vhost_conf_t *v, config_decl_t *d, unsigned i)
{
    static const char *const  keys[] = {
        "path", "prefix", "regex", "exact", "to", "rewrite", "on_request", NULL
    };
    config_opts_t             o;
    rp_route_conf_t          *r;
    unsigned                  slot;

    opts_init(&o, vo->L, vo->ctx, -1, vo->where);
    snprintf(o.prefix, sizeof(o.prefix), "routes[%u].", i);
    opts_check_keys(&o, keys, 0);
    r = config_add_route(v, d);
    slot = v->nroutes - 1;
    config_route_match(&o, r);
    if (!opts_string(&o, "to", &d->names[slot])) {
        config_raise(o.L, o.ctx, "%s: '%sto' is required", o.where, o.prefix);
    }
    config_route_rewrite(&o, r);
    if (opts_push(&o, "on_request")) {
        if (!lua_isfunction(o.L, -1)) {
            opts_error(&o, "on_request", "a function(req)");
        }
        r->has_hook = 1;              /* each worker's state keeps the function */
        lua_pop(o.L, 1);
    }
}

static void
config_routes(config_opts_t *o, rp_vhost_conf_t *v, config_decl_t *d)
{
    static const char  what[] = "an array of route tables";
    lua_State         *L = o->L;
    unsigned           i, n;

    if (!opts_push(o, "routes")) {
        return;
    }
    if (!lua_istable(L, -1)) {
        opts_error(o, "routes", what);
    }
    opts_check_array(o, "routes", -1, what);
    n = (unsigned) lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -1, i) != LUA_TTABLE) {
            config_raise(L, o->ctx, "%s: 'routes[%u]' must be a table, got %s", o->where, i,
                         luaL_typename(L, -1));
        }
        config_route(o, v, d, i);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static int
config_find_vhost(const rp_config_t *conf, const char *name)
{
    unsigned  i;

    for (i = 0; i < conf->nvhosts; i++) {
        /* host names: "APP.test" is "app.test", and could never be chosen */
        if (conf->vhosts[i].name != NULL && strcasecmp(conf->vhosts[i].name, name) == 0) {
            return (int) i;
        }
    }
    return -1;
}

/* Refuses a second vhost of that name, or a second default one. */
static void
config_vhost_check(config_opts_t *o, const char *name, int is_default)
{
    config_ctx_t  *ctx = o->ctx;
    unsigned       i;
    int            k;

    if ((k = config_find_vhost(ctx->conf, name)) >= 0) {
        config_raise(o->L, ctx, "duplicate vhost '%s' (first declared at %s:%d)", name,
                     ctx->vhosts[k].file, ctx->vhosts[k].line);
    }
    for (i = 0; is_default && i < ctx->conf->nvhosts; i++) {
        if (ctx->conf->vhosts[i].is_default) {
            config_raise(o->L, ctx, "%s: vhost '%s' (%s:%d) is already the default; only one "
                         "vhost may be the default", o->where, ctx->conf->vhosts[i].name,
                         ctx->vhosts[i].file, ctx->vhosts[i].line);
        }
    }
}

static int
l_config_vhost_opts(lua_State *L)
{
    static const char *const  keys[] = {
        "aliases", "default", "log", "routes", "tls", NULL
    };
    const char               *name = lua_tostring(L, lua_upvalueindex(2));
    char                      where[CONFIG_WHERE_LEN];
    config_opts_t             o;
    config_ctx_t             *ctx;
    rp_config_t              *conf;
    rp_vhost_conf_t          *v;
    config_decl_t            *d;
    int                       is_default = 0;

    snprintf(where, sizeof(where), "vhost '%s'", name);
    ctx = config_begin(L, &o, where, keys, 0);
    conf = ctx->conf;
    opts_bool(&o, "default", &is_default);
    config_vhost_check(&o, name, is_default);

    d = config_decl_add(L, &ctx->vhosts, conf->nvhosts);
    conf->vhosts = config_grow(conf->vhosts, conf->nvhosts, sizeof(rp_vhost_conf_t));
    v = &conf->vhosts[conf->nvhosts++];
    v->line = d->line;
    v->name = rp_xstrdup(name);
    v->is_default = is_default;

    opts_strings(&o, "aliases", &v->aliases, &v->naliases);
    config_log(&o, &v->access_log, NULL);
    config_routes(&o, v, d);
    config_vhost_tls(&o, v);
    config_end(ctx);
    return 0;
}

static int
l_config_vhost(lua_State *L)
{
    return config_curry(L, "vhost", l_config_vhost_opts);
}


/* ---- rproxy.balancer "name" (function(req, pool) ... end) -------------------- */

static int
config_has_balancer(const rp_config_t *conf, const char *name)
{
    unsigned  i;

    for (i = 0; i < conf->nbalancers; i++) {
        if (strcmp(conf->balancers[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

static int
l_config_balancer_fn(lua_State *L)
{
    config_ctx_t  *ctx = lua_touserdata(L, lua_upvalueindex(1));
    const char    *name = lua_tostring(L, lua_upvalueindex(2));
    rp_config_t   *conf = ctx->conf;
    rp_balance_e   builtin;

    if (ctx->closed) {
        return config_raise(L, ctx, "rproxy.balancer is a declaration: call it at the top level");
    }
    if (!lua_isfunction(L, 1)) {
        return config_raise(L, ctx, "balancer '%s': expects a function(req, pool), got %s", name,
                            luaL_typename(L, 1));
    }
    if (rp_balancer_parse(name, &builtin) == RP_OK || config_has_balancer(conf, name)) {
        return config_raise(L, ctx, "balancer '%s': the name is already taken", name);
    }
    conf->balancers = config_grow(conf->balancers, conf->nbalancers, sizeof(char *));
    conf->balancers[conf->nbalancers++] = rp_xstrdup(name);
    return 0;
}

static int
l_config_balancer(lua_State *L)
{
    config_ctx_t  *ctx = lua_touserdata(L, lua_upvalueindex(1));

    if (lua_type(L, 1) != LUA_TSTRING || lua_rawlen(L, 1) == 0) {
        return config_raise(L, ctx, "rproxy.balancer expects a name, as in "
                            "rproxy.balancer \"weighted\" (function(req, pool) ... end)");
    }
    lua_pushlightuserdata(L, ctx);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, l_config_balancer_fn, 2);
    return 1;
}

/* ---- rproxy.shared_dict "name" { size = "1m" } ------------------------------ */

static int
l_config_shared_dict_opts(lua_State *L)
{
    static const char *const  keys[] = { "size", NULL };
    const char               *name = lua_tostring(L, lua_upvalueindex(2));
    char                      where[CONFIG_WHERE_LEN];
    config_opts_t             o;
    config_ctx_t             *ctx;
    rp_config_t              *conf;
    rp_dict_conf_t           *d;
    size_t                    size = 0;
    unsigned                  i;
    config_decl_t             here;

    snprintf(where, sizeof(where), "shared_dict '%s'", name);
    ctx = config_begin(L, &o, where, keys, 0);
    conf = ctx->conf;
    for (i = 0; i < conf->ndicts; i++) {
        if (strcmp(conf->dicts[i].name, name) == 0) {
            config_raise(L, ctx, "%s: declared twice", where);
        }
    }
    opts_size(&o, "size", &size);
    if (size == 0) {
        config_raise(L, ctx, "%s: 'size' is required, as in { size = \"1m\" }", where);
    }
    if (size < RP_SHDICT_MIN_SIZE) {
        config_raise(L, ctx, "%s: 'size' must be at least %dk", where,
                     (int) (RP_SHDICT_MIN_SIZE / 1024));
    }
    memset(&here, 0, sizeof(here));
    config_decl_here(L, &here);
    free(here.file);
    conf->dicts = config_grow(conf->dicts, conf->ndicts, sizeof(rp_dict_conf_t));
    d = &conf->dicts[conf->ndicts++];
    d->name = rp_xstrdup(name);
    d->size = size;
    d->line = here.line;
    config_end(ctx);
    return 0;
}

static int
l_config_shared_dict(lua_State *L)
{
    return config_curry(L, "shared_dict", l_config_shared_dict_opts);
}

/* ---- after the file has run -------------------------------------------------- */

static int
config_resolve_pools(config_ctx_t *ctx)
{
    rp_config_t              *conf = ctx->conf;
    const rp_backend_conf_t  *b;
    config_decl_t            *d;
    unsigned                  i, j;

    for (i = 0; i < conf->npools; i++) {
        d = &ctx->pools[i];
        if (conf->pools[i].balancer != NULL && !config_has_balancer(conf, conf->pools[i].balancer)) {
            config_fail(ctx, d->file, d->line,
                        "pool '%s': 'balance': \"%s\" is neither a built-in balancer nor an "
                        "rproxy.balancer", conf->pools[i].name, conf->pools[i].balancer);
            return RP_ERROR;
        }
        for (j = 0; j < d->nnames; j++) {
            if ((b = rp_config_backend(conf, d->names[j])) != NULL) {
                conf->pools[i].members[j] = b->index;
                continue;
            }
            if (rp_config_pool(conf, d->names[j]) != NULL) {
                config_fail(ctx, d->file, d->line, "pool '%s': '%s' is a pool, not a backend",
                            conf->pools[i].name, d->names[j]);
            } else {
                config_fail(ctx, d->file, d->line, "pool '%s': unknown backend '%s'",
                            conf->pools[i].name, d->names[j]);
            }
            return RP_ERROR;
        }
    }
    return RP_OK;
}

/* A route's "to" names a pool, else a backend. */
static int
config_resolve_routes(config_ctx_t *ctx)
{
    rp_config_t              *conf = ctx->conf;
    const rp_backend_conf_t  *b;
    const rp_pool_conf_t     *p;
    rp_route_conf_t          *r;
    config_decl_t            *d;
    unsigned                  i, j;

    for (i = 0; i < conf->nvhosts; i++) {
        d = &ctx->vhosts[i];
        for (j = 0; j < conf->vhosts[i].nroutes; j++) {
            r = &conf->vhosts[i].routes[j];
            if ((p = rp_config_pool(conf, d->names[j])) != NULL) {
                r->to.is_pool = 1;
                r->to.index = p->index;
            } else if ((b = rp_config_backend(conf, d->names[j])) != NULL) {
                r->to.is_pool = 0;
                r->to.index = b->index;
            } else {
                config_fail(ctx, d->file, d->line,
                            "vhost '%s': 'routes[%u].to': unknown pool or backend '%s'",
                            conf->vhosts[i].name, j + 1, d->names[j]);
                return RP_ERROR;
            }
        }
    }
    return RP_OK;
}

/* The number of the file's last line: where a missing declaration is
 * reported. */
static int
config_last_line(const char *path)
{
    FILE  *f;
    int    c, prev = '\n', line = 0;

    if ((f = fopen(path, "r")) == NULL) {
        return 1;
    }
    while ((c = getc(f)) != EOF) {
        if (prev == '\n') {
            line++;
        }
        prev = c;
    }
    fclose(f);
    return line > 0 ? line : 1;
}

/* Loads every certificate and builds the SSL_CTXs, once the whole file has
 * run (a listener serves the certificates of vhosts declared after it), so a
 * missing file or a key that does not match is a configuration error at the
 * line of the declaration that names it. */
static int
config_build_tls(config_ctx_t *ctx)
{
    rp_config_t        *conf = ctx->conf;
    rp_vhost_conf_t    *v;
    rp_listen_conf_t   *l;
    rp_backend_conf_t  *b;
    char                why[CONFIG_MSG_LEN];
    unsigned            i;

    for (i = 0; i < conf->nvhosts; i++) {
        v = &conf->vhosts[i];
        if (v->ntls_certs > 0
            && (v->tls_certset = rp_tls_certset_load(v->tls_certs, v->ntls_certs, why,
                                                     sizeof(why))) == NULL) {
            config_fail(ctx, ctx->vhosts[i].file, ctx->vhosts[i].line, "vhost '%s': tls: %s",
                        v->name, why);
            return RP_ERROR;
        }
    }
    for (i = 0; i < conf->nlisteners; i++) {
        l = &conf->listeners[i];
        if (l->tls != NULL
            && (l->tls_server = rp_tls_server_new(conf, l, why, sizeof(why))) == NULL) {
            config_fail(ctx, ctx->listeners[i].file, ctx->listeners[i].line,
                        "listen '%s': tls: %s", l->address, why);
            return RP_ERROR;
        }
    }
    for (i = 0; i < conf->nbackends; i++) {
        b = &conf->backends[i];
        if (b->tls != NULL && (b->tls_client = rp_tls_client_new(b, why, sizeof(why))) == NULL) {
            config_fail(ctx, ctx->backends[i].file, ctx->backends[i].line, "backend '%s': tls: %s",
                        b->name, why);
            return RP_ERROR;
        }
    }
    return RP_OK;
}

/* Resolves names, checks what the whole file must declare, fills defaults
 * that depend on the whole file. */
static int
config_finish(config_ctx_t *ctx)
{
    rp_config_t  *conf = ctx->conf;
    unsigned      i;
    long          ncpu;

    if (config_resolve_pools(ctx) != RP_OK || config_resolve_routes(ctx) != RP_OK) {
        return RP_ERROR;
    }
    if (conf->nlisteners == 0 || conf->nvhosts == 0) {
        config_fail(ctx, conf->path, config_last_line(conf->path), "no rproxy.%s declared",
                    conf->nlisteners == 0 ? "listen" : "vhost");
        return RP_ERROR;
    }
    for (i = 0; i < conf->nvhosts && !conf->vhosts[i].is_default; i++) {
        /* find the one marked default */
    }
    if (i == conf->nvhosts) {
        conf->vhosts[0].is_default = 1;
    }
    if (conf->threads == 0) {
        ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        conf->threads = ncpu > 0 ? (unsigned) ncpu : 1;
    }
    return config_build_tls(ctx);
}


/* ---- the load -------------------------------------------------------------- */

void
rp_lua_config_package_path(lua_State *L, const char *conf_path)
{
    char         dir[PATH_MAX], abs[PATH_MAX];
    const char  *slash = strrchr(conf_path, '/'), *d = dir;
    size_t       n;

    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else {
        n = (size_t) (slash - conf_path);
        if (n >= sizeof(dir)) {
            n = sizeof(dir) - 1;
        }
        memcpy(dir, conf_path, n);
        dir[n] = '\0';
    }
    if (dir[0] != '\0' && realpath(dir, abs) != NULL) {
        d = strcmp(abs, "/") == 0 ? "" : abs;     /* no "//?.lua" */
    }
    lua_getglobal(L, "package");                          /* package */
    lua_getfield(L, -1, "path");                          /* package old */
    lua_pushfstring(L, "%s/?.lua;%s/scripts/?.lua;%s", d, d,
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
    lua_setfield(L, -3, "path");                          /* package old */
    lua_pop(L, 2);
}

static void
config_install(lua_State *L, config_ctx_t *ctx)
{
    static const luaL_Reg  decls[] = {
        { "settings", l_config_settings },
        { "backend", l_config_backend },
        { "pool", l_config_pool },
        { "listen", l_config_listen },
        { "vhost", l_config_vhost },
        { "balancer", l_config_balancer },
        { "shared_dict", l_config_shared_dict },
        { NULL, NULL },
    };

    lua_newtable(L);
    lua_pushlightuserdata(L, ctx);
    luaL_setfuncs(L, decls, 1);
    rp_lua_api_open(L, NULL);        /* top-level code may use the runtime API */
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &config_api_key);
    lua_setglobal(L, "rproxy");
}

/* What each worker takes from the file once it has run: the rproxy table
 * it was given, with the hooks in it as functions. A file that replaced
 * the table, or set a hook to something else, passed the check and then
 * failed every worker's start (or lost its hook without a word). Raises
 * naming the file: an assignment leaves no line behind. */
static void
config_check_api(lua_State *L, const char *path)
{
    static const char *const  hooks[] = { "on_request", "on_response", "on_log", NULL };
    unsigned                  i;

    lua_getglobal(L, "rproxy");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &config_api_key);
    if (!lua_rawequal(L, -1, -2)) {
        luaL_error(L, "%s: the global 'rproxy' was replaced (it is now a %s value): the "
                      "hooks and declarations live in it", path, luaL_typename(L, -2));
    }
    for (i = 0; hooks[i] != NULL; i++) {
        lua_pushstring(L, hooks[i]);
        if (lua_rawget(L, -2) != LUA_TNIL && !lua_isfunction(L, -1)) {
            luaL_error(L, "%s: rproxy.%s is a %s value, not a function", path, hooks[i],
                       luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
}

/* The file's top-level code runs within the memory cap it may set itself
 * (lua.memory; the default until then) and within RP_LUA_LOAD_INSTRUCTIONS:
 * an endless loop or a runaway allocation there is an error at file:line,
 * not a hung or swollen main thread that no signal stops. */
static void *
config_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    config_ctx_t  *ctx = ud;

    return rp_lua_capped_realloc(&ctx->mem_used, ctx->conf->lua_memory, &ctx->mem_failed, ptr,
                                 osize, nsize);
}

#define CONFIG_BUDGET_STEP 1000

static void
config_budget_hook(lua_State *L, lua_Debug *ar)
{
    config_ctx_t  *ctx;

    lua_getallocf(L, (void **) &ctx);
    if (ctx->steps <= RP_LUA_LOAD_INSTRUCTIONS) {
        ctx->steps += CONFIG_BUDGET_STEP;
        if (ctx->steps <= RP_LUA_LOAD_INSTRUCTIONS) {
            return;
        }
        lua_sethook(L, config_budget_hook, LUA_MASKCOUNT, 1);   /* no pcall swallows it */
    }
    rp_lua_budget_error(L, RP_LUA_LOAD_INSTRUCTIONS, 1);
}

static int
config_panic(lua_State *L)
{
    rp_log_error("lua: unprotected error in the config loader: %s (this is a bug)",
                 lua_tostring(L, -1));
    abort();
}

/* Runs in protected mode: [ctx] -> nothing, or raises the load's error. */
static int
config_pmain(lua_State *L)
{
    config_ctx_t  *ctx = lua_touserdata(L, 1);
    int            msgh;

    *(void **) lua_getextraspace(L) = NULL;     /* no worker: rp_lua_of() is NULL */
    rp_lua_open_libs(L);
    rp_lua_config_package_path(L, ctx->conf->path);
    config_install(L, ctx);
    lua_pushcfunction(L, config_msgh);
    msgh = lua_gettop(L);
    if (rp_lua_load_source(L, ctx->conf->source, ctx->conf->source_len, ctx->conf->path)
        != LUA_OK) {                                       /* "file:line: ..." already */
        return lua_error(L);
    }
    if (lua_pcall(L, 0, 0, msgh) != LUA_OK) {
        return lua_error(L);
    }
    config_check_api(L, ctx->conf->path);
    return 0;
}

static rp_config_t *
config_new(const char *path)
{
    rp_config_t  *conf;

    conf = rp_xalloc(sizeof(rp_config_t));
    atomic_init(&conf->refs, 1);
    conf->path = rp_xstrdup(path);
    conf->grace = 30;
    conf->error_log = rp_xstrdup("stderr");
    conf->log_level = RP_LOG_NOTICE;
    conf->lua_instructions = 10000000;
    conf->lua_memory = 64 * 1024 * 1024;
    return conf;
}

/* Reads the whole file into conf->source: the bytes the check runs are the
 * bytes every worker runs, whatever happens to the file meanwhile (a worker
 * that read it again at its next request boundary could run a version
 * nobody checked, or fail on one and stay behind). Returns 0, or -1 with
 * the error recorded. */
static int
config_read_source(config_ctx_t *ctx)
{
    rp_config_t  *conf = ctx->conf;
    FILE         *f = fopen(conf->path, "rb");
    size_t        cap = 16384, n;
    char          msg[CONFIG_MSG_LEN + PATH_MAX];

    if (f == NULL) {
        snprintf(msg, sizeof(msg), "cannot open %s: %s", conf->path, strerror(errno));
        config_fail_msg(ctx, msg);
        return -1;
    }
    conf->source = rp_xalloc(cap);
    while ((n = fread(conf->source + conf->source_len, 1, cap - conf->source_len, f)) > 0) {
        conf->source_len += n;
        if (conf->source_len == cap) {
            cap *= 2;
            conf->source = rp_xrealloc(conf->source, cap);
        }
    }
    if (ferror(f)) {
        snprintf(msg, sizeof(msg), "cannot read %s: %s", conf->path, strerror(errno));
        config_fail_msg(ctx, msg);
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

rp_config_t *
rp_config_load(const char *path, char *err, size_t errlen)
{
    config_ctx_t  ctx;
    lua_State    *L;

    memset(&ctx, 0, sizeof(ctx));
    ctx.err = err;
    ctx.errlen = err != NULL ? errlen : 0;
    if (ctx.errlen > 0) {
        err[0] = '\0';
    }
    ctx.conf = config_new(path);

    if (config_read_source(&ctx) != 0) {
        L = NULL;                             /* the error is recorded */
    } else if ((L = lua_newstate(config_alloc, &ctx)) == NULL) {
        config_fail(&ctx, path, 0, "cannot create a Lua state: out of memory");
    } else {
        lua_atpanic(L, config_panic);
        lua_sethook(L, config_budget_hook, LUA_MASKCOUNT, CONFIG_BUDGET_STEP);
        lua_pushcfunction(L, config_pmain);
        lua_pushlightuserdata(L, &ctx);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            if (ctx.mem_failed) {
                /* Lua runs no message handler for a memory error: no line */
                char  msg[CONFIG_MSG_LEN + PATH_MAX];

                snprintf(msg, sizeof(msg), "%s: the file's top-level code went over the Lua "
                         "memory cap (lua.memory = %zu bytes)", path, ctx.conf->lua_memory);
                config_fail_msg(&ctx, msg);
            } else {
                config_fail_msg(&ctx, lua_isstring(L, -1) ? lua_tostring(L, -1)
                                                          : "error object is not a string");
            }
        }
        ctx.closed = 1;                       /* a __gc run by lua_close() may call us */
        lua_close(L);
    }
    if (!ctx.failed) {
        config_finish(&ctx);
    }

    config_decls_free(ctx.backends, ctx.conf->nbackends);
    config_decls_free(ctx.pools, ctx.conf->npools);
    config_decls_free(ctx.listeners, ctx.conf->nlisteners);
    config_decls_free(ctx.vhosts, ctx.conf->nvhosts);
    free(ctx.settings.file);
    if (ctx.failed) {
        rp_config_unref(ctx.conf);            /* refs == 1: frees what was built */
        return NULL;
    }
    return ctx.conf;
}
