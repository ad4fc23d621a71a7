/* lua_request.c: the request object (req) and the response object (res)
 * handed to hooks: fields read lazily from the parsed head, header edits,
 * URI rewriting, routing, answers from the proxy. Glue goes check -> call ->
 * translate; nothing raises while C owns memory. */
#include "lua_request.h"

#include "http_conn.h"
#include "lua_balancer.h"
#include "tls.h"
#include "worker.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REQUEST_MT  "rproxy.request"
#define RESPONSE_MT "rproxy.response"

/* Every box starts with its type: the address of its metatable's registry
 * key. Only C writes a full userdata's bytes, and no other userdata of the
 * state can start with the address of one of these statics, so checking a
 * box (every method call does) reads it instead of fetching and comparing
 * metatables. */
static const char  request_mt_key = 0;
static const char  response_mt_key = 0;

typedef struct {
    const void      *type;       /* &request_mt_key                      */
    rp_http_conn_t  *c;          /* borrowed while a hook runs, else NULL */
} request_box_t;

/* luaL_testudata() by type: the box at idx if it is one of key's (size
 * bytes), or NULL. */
static void *
box_test(lua_State *L, int idx, const void *key, size_t size)
{
    const void *const  *p;

    if (lua_type(L, idx) != LUA_TUSERDATA || lua_rawlen(L, idx) != size) {
        return NULL;
    }
    p = lua_touserdata(L, idx);
    return *p == key ? (void *) p : NULL;
}

static void *
box_check(lua_State *L, int idx, const void *key, size_t size, const char *what)
{
    void  *p = box_test(L, idx, key, size);

    if (p == NULL) {
        luaL_typeerror(L, idx, what);
    }
    return p;
}

typedef struct {
    const void      *type;       /* &response_mt_key                     */
    rp_http_conn_t  *c;          /* borrowed while a hook runs, else NULL */
    int              for_log;
} response_box_t;

/* ---- boxes ---------------------------------------------------------------- */

rp_http_conn_t *
rp_lua_request_check(lua_State *L, int idx)
{
    request_box_t  *box = box_check(L, idx, &request_mt_key, sizeof(request_box_t), REQUEST_MT);

    if (box->c == NULL) {
        luaL_error(L, "request object used after its hook returned");
    }
    return box->c;
}

static rp_http_conn_t *
response_check(lua_State *L, int idx, response_box_t **out)
{
    response_box_t  *box = box_check(L, idx, &response_mt_key, sizeof(response_box_t),
                                      RESPONSE_MT);

    if (box->c == NULL) {
        luaL_error(L, "response object used after its hook returned");
    }
    if (out != NULL) {
        *out = box;
    }
    return box->c;
}

void
rp_lua_request_enter(rp_lua_t *lua, rp_http_conn_t *c)
{
    lua_State      *L = lua->L;
    request_box_t  *box;

    if (c->lua_box_ref == RP_LUA_NOREF) {
        box = lua_newuserdatauv(L, sizeof(request_box_t), 0);
        box->type = &request_mt_key;
        lua_rawgetp(L, LUA_REGISTRYINDEX, &request_mt_key);
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        c->lua_box_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        c->lua_box = box;
    } else {
        lua_rawgeti(L, LUA_REGISTRYINDEX, c->lua_box_ref);
    }
    ((request_box_t *) c->lua_box)->c = c;
}

void
rp_lua_request_leave(rp_lua_t *lua, rp_http_conn_t *c)
{
    if (c->lua_box != NULL) {
        ((request_box_t *) c->lua_box)->c = NULL;
    }
}

void
rp_lua_request_end(rp_lua_t *lua, rp_http_conn_t *c)
{
    rp_lua_request_leave(lua, c);
    if (c->lua_box_ref != RP_LUA_NOREF) {
        luaL_unref(lua->L, LUA_REGISTRYINDEX, c->lua_box_ref);
    }
    if (c->lua_ctx_ref != RP_LUA_NOREF) {
        luaL_unref(lua->L, LUA_REGISTRYINDEX, c->lua_ctx_ref);
    }
    c->lua_box = NULL;
    c->lua_box_ref = RP_LUA_NOREF;
    c->lua_ctx_ref = RP_LUA_NOREF;
}

void *
rp_lua_response_enter(rp_lua_t *lua, rp_http_conn_t *c, int for_log)
{
    response_box_t  *box = lua_newuserdatauv(lua->L, sizeof(response_box_t), 0);

    box->type = &response_mt_key;
    lua_rawgetp(lua->L, LUA_REGISTRYINDEX, &response_mt_key);
    lua_setmetatable(lua->L, -2);
    box->c = c;
    box->for_log = for_log;
    return box;
}

void
rp_lua_response_leave(void *box)
{
    ((response_box_t *) box)->c = NULL;
}

static int
hook_trampoline(lua_State *L)
{
    rp_lua_hook_t  *h = lua_touserdata(L, 1);
    int             n = 1;

    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->fn_ref);
    rp_lua_request_enter(h->lua, h->c);
    if (h->with_res) {
        h->res_box = rp_lua_response_enter(h->lua, h->c, h->for_log);
        n++;
    }
    if (h->extra_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->extra_ref);
        n++;
    }
    lua_call(L, n, h->nresults);
    return h->nresults;
}

int
rp_lua_run_hook(rp_lua_hook_t *h, unsigned phase, const char *what)
{
    int  rc;

    h->res_box = NULL;
    lua_pushcfunction(h->lua->L, hook_trampoline);     /* neither push allocates */
    lua_pushlightuserdata(h->lua->L, h);
    rc = rp_lua_call(h->lua, 1, h->nresults, phase, what);
    rp_lua_request_leave(h->lua, h->c);
    if (h->res_box != NULL) {
        rp_lua_response_leave(h->res_box);
    }
    return rc;
}

/* ---- fields shared by both objects ---------------------------------------- */

/* name, value of a field to add: checked so that no hook can inject a line. */
static void
check_field(lua_State *L, int ni, int vi, const char **name, size_t *nlen, const char **value,
            size_t *vlen)
{
    *name = luaL_checklstring(L, ni, nlen);
    *value = luaL_checklstring(L, vi, vlen);
    if (!rp_msg_valid_field(*name, *nlen, *value, *vlen)) {
        luaL_error(L, "invalid header field: the name must be a token and the value free of "
                      "control characters (CR, LF, NUL, ...; HTAB is allowed)");
    }
}

static int
msg_get(lua_State *L, const rp_msg_t *m, int ni)
{
    size_t       nlen, vlen;
    const char  *name = luaL_checklstring(L, ni, &nlen);
    const char  *v = m ? rp_msg_header(m, name, nlen, &vlen) : NULL;

    if (v == NULL) {
        lua_pushnil(L);
    } else {
        lua_pushlstring(L, v, vlen);
    }
    return 1;
}

/* Iterator: upvalues (object, message getter index); control: field index. */
static int
msg_iter_next(lua_State *L, const rp_msg_t *m)
{
    uint32_t  i = (uint32_t) lua_tointeger(L, lua_upvalueindex(2));

    for (; m != NULL && i < rp_msg_nfields(m); i++) {
        const rp_hdr_t  *f = &m->fields[i];

        if (f->name_len == 0) {
            continue;
        }
        lua_pushinteger(L, i + 1);
        lua_replace(L, lua_upvalueindex(2));
        lua_pushlstring(L, m->buf + f->name, f->name_len);
        lua_pushlstring(L, m->buf + f->value, f->value_len);
        return 2;
    }
    return 0;
}

static int
msg_set(lua_State *L, rp_msg_t *m, int replace)
{
    const char  *name, *value;
    size_t       nlen, vlen;

    check_field(L, 2, 3, &name, &nlen, &value, &vlen);
    if (m == NULL) {
        return luaL_error(L, "no message to change here");
    }
    if (replace) {
        rp_msg_remove_field(m, name, nlen);
    }
    if (rp_msg_add_field(m, name, nlen, value, vlen) != RP_OK) {
        luaL_pushfail(L);
        lua_pushliteral(L, "header fields too large");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int
msg_remove(lua_State *L, rp_msg_t *m)
{
    size_t       nlen;
    const char  *name = luaL_checklstring(L, 2, &nlen);

    lua_pushinteger(L, m ? (lua_Integer) rp_msg_remove_field(m, name, nlen) : 0);
    return 1;
}

/* ---- req: methods ---------------------------------------------------------- */

/* req:header(name) -> value | nil */
static int
l_request_header(lua_State *L)
{
    rp_http_conn_t  *c = rp_lua_request_check(L, 1);

    return msg_get(L, &c->req, 2);
}

static int
l_request_headers_next(lua_State *L)
{
    rp_http_conn_t  *c = rp_lua_request_check(L, lua_upvalueindex(1));

    return msg_iter_next(L, &c->req);
}

/* Pushes an iterator over the fields of the object at 1 (already checked):
 * upvalues (object, next field index). */
static int
push_headers_iter(lua_State *L, lua_CFunction next)
{
    lua_pushvalue(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, next, 2);
    return 1;
}

/* for name, value in req:headers() do ... end */
static int
l_request_headers(lua_State *L)
{
    rp_lua_request_check(L, 1);
    return push_headers_iter(L, l_request_headers_next);
}

/* req:set_header(name, value) -> true | fail, message */
static int
l_request_set_header(lua_State *L)
{
    rp_http_conn_t  *c = rp_lua_request_check(L, 1);

    rp_lua_check_phase(L, RP_PHASE_REQUEST | RP_PHASE_BALANCE);
    return msg_set(L, &c->req, 1);
}

static int
l_request_add_header(lua_State *L)
{
    rp_http_conn_t  *c = rp_lua_request_check(L, 1);
    size_t           nlen;
    const char      *name = luaL_checklstring(L, 2, &nlen);

    rp_lua_check_phase(L, RP_PHASE_REQUEST | RP_PHASE_BALANCE);
    if (rp_field_kind(name, nlen) == RP_F_HOST && c->req.hosts > 0) {
        /* a second Host would be a request any server must refuse */
        return luaL_error(L, "req:add_header(): the request has a Host; "
                             "req:set_header() replaces it");
    }
    return msg_set(L, &c->req, 0);
}

static int
l_request_remove_header(lua_State *L)
{
    rp_http_conn_t  *c = rp_lua_request_check(L, 1);

    rp_lua_check_phase(L, RP_PHASE_REQUEST | RP_PHASE_BALANCE);
    return msg_remove(L, &c->req);
}

/* req:route(name): a pool, else a backend, by name. */
static int
l_request_route(lua_State *L)
{
    rp_http_conn_t           *c = rp_lua_request_check(L, 1);
    const char               *name = luaL_checkstring(L, 2);
    const rp_pool_conf_t     *p;
    const rp_backend_conf_t  *b;
    rp_target_ref_t           to;

    rp_lua_check_phase(L, RP_PHASE_REQUEST);
    if ((p = rp_config_pool(c->gen->conf, name)) != NULL) {
        to.is_pool = 1;
        to.index = p->index;
    } else if ((b = rp_config_backend(c->gen->conf, name)) != NULL) {
        to.is_pool = 0;
        to.index = b->index;
    } else {
        return luaL_error(L, "req:route(): unknown pool or backend '%s'", name);
    }
    c->target = rp_gen_target(c->gen, &to);
    lua_pushboolean(L, 1);
    return 1;
}

/* Framing and connection fields: the proxy writes them for its answer. */
static int
respond_framing_field(const char *name, size_t n)
{
    static const char *const  names[] = {
        "content-length", "transfer-encoding", "connection", "keep-alive", "te", "upgrade",
        "trailer", "proxy-connection", NULL
    };
    unsigned                  i;

    for (i = 0; names[i] != NULL; i++) {
        if (strlen(names[i]) == n && strncasecmp(names[i], name, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Checks a headers table { name = value | { values } } of a respond():
 * returns the bytes its lines take. Raises on anything invalid. */
static size_t
respond_check_fields(lua_State *L, int t)
{
    size_t       total = 0, nlen, vlen;
    const char  *name, *value;
    lua_Integer  i, n;

    if (t <= 0 || lua_isnoneornil(L, t)) {
        return 0;                          /* t 0: no headers argument */
    }
    luaL_checktype(L, t, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            luaL_error(L, "respond(): header names must be strings");
        }
        name = lua_tolstring(L, -2, &nlen);
        if (respond_framing_field(name, nlen)) {
            luaL_error(L, "respond(): header '%s' is the proxy's to set", name);
        }
        n = lua_istable(L, -1) ? (lua_Integer) lua_rawlen(L, -1) : 1;
        for (i = 1; i <= n; i++) {
            if (lua_istable(L, -1)) {
                lua_rawgeti(L, -1, i);
            } else {
                lua_pushvalue(L, -1);
            }
            if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
                luaL_error(L, "respond(): header '%s' must be a string", name);
            }
            lua_pushvalue(L, -1);
            value = lua_tolstring(L, -1, &vlen);        /* a copy: the key stays intact */
            if (!rp_msg_valid_field(name, nlen, value, vlen)) {
                luaL_error(L, "respond(): invalid header field '%s'", name);
            }
            total += nlen + vlen + 4;
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
    }
    return total;
}

/* Copies the checked table into buf: nothing here raises. */
static size_t
respond_copy_fields(lua_State *L, int t, char *buf)
{
    size_t       off = 0, nlen, vlen;
    const char  *name, *value;
    lua_Integer  i, n;

    if (t <= 0 || lua_isnoneornil(L, t)) {
        return 0;
    }
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        name = lua_tolstring(L, -2, &nlen);
        n = lua_istable(L, -1) ? (lua_Integer) lua_rawlen(L, -1) : 1;
        for (i = 1; i <= n; i++) {
            if (lua_istable(L, -1)) {
                lua_rawgeti(L, -1, i);
            } else {
                lua_pushvalue(L, -1);
            }
            lua_pushvalue(L, -1);
            value = lua_tolstring(L, -1, &vlen);
            memcpy(buf + off, name, nlen);
            memcpy(buf + off + nlen, ": ", 2);
            memcpy(buf + off + nlen + 2, value, vlen);
            memcpy(buf + off + nlen + 2 + vlen, "\r\n", 2);
            off += nlen + vlen + 4;
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
    }
    return off;
}

/* Records the hook's own answer: all checks first, then the copies. */
static void
respond_set(lua_State *L, rp_http_conn_t *c, int status, const char *body, size_t blen,
            int fields_idx, const char *location, size_t llen)
{
    size_t        flen = respond_check_fields(L, fields_idx);
    rp_direct_t  *d;

    if (location != NULL) {
        if (!rp_msg_valid_field("Location", 8, location, llen)) {
            luaL_error(L, "redirect(): invalid location");
        }
        flen += llen + 12;
    }
    if (c->direct != NULL) {
        luaL_error(L, "the request was already answered");
    }
    /* c owns d from here, so that a memory error while converting a number
     * value to a string below leaks nothing */
    d = rp_xalloc(sizeof(rp_direct_t));
    d->status = status;
    d->body = rp_xstrndup(body ? body : "", blen);
    d->body_len = blen;
    d->fields = rp_xalloc(flen + 1);
    c->direct = d;
    d->fields_len = respond_copy_fields(L, fields_idx, d->fields);
    if (location != NULL) {
        memcpy(d->fields + d->fields_len, "Location: ", 10);
        memcpy(d->fields + d->fields_len + 10, location, llen);
        memcpy(d->fields + d->fields_len + 10 + llen, "\r\n", 2);
        d->fields_len += llen + 12;
    }
}

/* req:respond(status, body?, headers?) */
static int
l_request_respond(lua_State *L)
{
    rp_http_conn_t  *c = rp_lua_request_check(L, 1);
    lua_Integer      status = luaL_checkinteger(L, 2);
    size_t           blen = 0;
    const char      *body = luaL_optlstring(L, 3, NULL, &blen);

    rp_lua_check_phase(L, RP_PHASE_REQUEST);
    luaL_argcheck(L, status >= 200 && status <= 599, 2, "a status from 200 to 599");
    respond_set(L, c, (int) status, body, blen, 4, NULL, 0);
    return 0;
}

/* req:redirect(status, location) or req:redirect(location) (302) */
static int
l_request_redirect(lua_State *L)
{
    rp_http_conn_t  *c = rp_lua_request_check(L, 1);
    lua_Integer      status = 302;
    int              li = 2;
    size_t           llen;
    const char      *location;

    rp_lua_check_phase(L, RP_PHASE_REQUEST);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        status = luaL_checkinteger(L, 2);
        li = 3;
    }
    location = luaL_checklstring(L, li, &llen);
    luaL_argcheck(L, status == 301 || status == 302 || status == 303 || status == 307
                     || status == 308, 2, "301, 302, 303, 307 or 308");
    respond_set(L, c, (int) status, NULL, 0, 0, location, llen);
    return 0;
}

/* ---- req: fields ----------------------------------------------------------- */

static void
push_ctx(lua_State *L, rp_http_conn_t *c)
{
    if (c->lua_ctx_ref == RP_LUA_NOREF) {
        lua_newtable(L);
        lua_pushvalue(L, -1);
        c->lua_ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->lua_ctx_ref);
}

static void
push_uri(lua_State *L, const rp_http_conn_t *c)
{
    const char   *path, *query;
    size_t        plen, qlen;
    luaL_Buffer   b;

    rp_proxy_target(c, &path, &plen, &query, &qlen);
    if (query == NULL) {
        lua_pushlstring(L, path, plen);
        return;
    }
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, path, plen);
    luaL_addchar(&b, '?');
    luaL_addlstring(&b, query, qlen);
    luaL_pushresult(&b);
}

/* req.tls: the TLS facts as a table (built on access), nil on plain TCP. */
static void
push_tls(lua_State *L, rp_http_conn_t *c)
{
    static const char *const  keys[RP_TLS_H_COUNT] = {
        "subject", "issuer", "serial", "not_before", "not_after", "cipher", "protocol", "sni",
        "fingerprint", "certificate"
    };
    const rp_tls_facts_t     *f = rp_http_conn_tls_facts(c);
    const char               *v;
    unsigned                  h;

    if (f == NULL) {
        lua_pushnil(L);
        return;
    }
    lua_createtable(L, 0, RP_TLS_H_COUNT + 3);
    for (h = 0; h < RP_TLS_H_COUNT; h++) {
        if ((v = rp_tls_facts_get(f, (rp_tls_header_e) h)) != NULL) {
            lua_pushstring(L, v);
            lua_setfield(L, -2, keys[h]);
        }
    }
    lua_pushboolean(L, f->session_reused);
    lua_setfield(L, -2, "session_reused");
    lua_pushboolean(L, f->has_peer_cert);
    lua_setfield(L, -2, "client_cert");
    lua_pushboolean(L, f->has_peer_cert && f->verify_result == 0);
    lua_setfield(L, -2, "client_verified");
    lua_createtable(L, 0, (int) f->nexts);
    for (h = 0; h < f->nexts; h++) {
        if (f->exts[h].value != NULL) {
            lua_pushstring(L, f->exts[h].value);
            lua_setfield(L, -2, f->exts[h].header);
        }
    }
    lua_setfield(L, -2, "extensions");
}

/* Pushes field key of c; returns 0 when there is no such field. */
static int
request_field(lua_State *L, rp_http_conn_t *c, const char *key)
{
    const char  *s, *q;
    size_t       n, qn;

    if (strcmp(key, "method") == 0) {
        if (c->req.target_len == 0 && c->req.stage == RP_MSG_HEAD) {
            lua_pushnil(L);                /* a request line that did not parse */
        } else {
            lua_pushstring(L, llhttp_method_name((llhttp_method_t) rp_msg_method(&c->req)));
        }
    } else if (strcmp(key, "path") == 0) {
        rp_proxy_target(c, &s, &n, &q, &qn);
        lua_pushlstring(L, s, n);
    } else if (strcmp(key, "query") == 0) {
        rp_proxy_target(c, &s, &n, &q, &qn);
        q ? (void) lua_pushlstring(L, q, qn) : lua_pushnil(L);
    } else if (strcmp(key, "uri") == 0) {
        push_uri(L, c);
    } else if (strcmp(key, "version") == 0) {
        lua_pushstring(L, rp_msg_http_minor(&c->req) == 1 ? "1.1" : "1.0");
    } else if (strcmp(key, "host") == 0) {
        s = rp_proxy_host(c, &n);
        s ? (void) lua_pushlstring(L, s, n) : lua_pushnil(L);
    } else if (strcmp(key, "scheme") == 0) {
        lua_pushstring(L, c->ssl ? "https" : "http");
    } else if (strcmp(key, "tls") == 0) {
        push_tls(L, c);
    } else if (strcmp(key, "client_addr") == 0) {
        lua_pushstring(L, c->addr);
    } else if (strcmp(key, "client_port") == 0) {
        lua_pushinteger(L, c->port);
    } else if (strcmp(key, "listener_addr") == 0) {
        lua_pushstring(L, c->lc->address);
    } else if (strcmp(key, "ctx") == 0) {
        push_ctx(L, c);
    } else if (strcmp(key, "vhost") == 0) {
        c->vhost ? (void) lua_pushstring(L, c->vhost->name) : lua_pushnil(L);
    } else if (strcmp(key, "target") == 0) {
        c->target ? (void) lua_pushstring(L, c->target->name) : lua_pushnil(L);
    } else if (strcmp(key, "worker_id") == 0) {
        lua_pushinteger(L, c->w->id);
    } else if (strcmp(key, "generation") == 0) {
        lua_pushinteger(L, c->gen->id);
    } else {
        return 0;
    }
    return 1;
}

/* req.<key>: a method first, with no check of the box (each method checks
 * it when called, and method lookups are most of a policy's indexing), then
 * a field of the live request. */
static int
l_request_index(lua_State *L)
{
    rp_http_conn_t  *c;
    const char      *key;

    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) {
        return 1;
    }
    c = rp_lua_request_check(L, 1);
    key = luaL_checkstring(L, 2);
    if (!request_field(L, c, key)) {
        lua_pushnil(L);
    }
    return 1;
}

/* A path: starts with '/', visible ASCII, no '?' or '#'. */
static int
valid_path(const char *s, size_t n, int is_query)
{
    size_t  i;

    if (!is_query && (n == 0 || s[0] != '/')) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        unsigned char  ch = (unsigned char) s[i];

        if (ch <= 0x20 || ch >= 0x7f || ch == '#' || (!is_query && ch == '?')) {
            return 0;
        }
    }
    return 1;
}

static void
set_path(lua_State *L, rp_http_conn_t *c, const char *s, size_t n)
{
    if (!valid_path(s, n, 0)) {
        luaL_error(L, "req.path: expected an absolute path of visible ASCII without '?' or '#'");
    }
    free(c->path);
    c->path = rp_xstrndup(s, n);
    c->path_len = n;
}

static void
set_query(lua_State *L, rp_http_conn_t *c, const char *s, size_t n)
{
    if (s != NULL && !valid_path(s, n, 1)) {
        luaL_error(L, "req.query: expected visible ASCII without '#'");
    }
    free(c->query);
    c->query = s ? rp_xstrndup(s, n) : NULL;
    c->query_len = s ? n : 0;
    c->query_set = 1;
}

/* req.uri / req.path / req.query = ... (URI rewriting) */
static int
l_request_newindex(lua_State *L)
{
    rp_http_conn_t  *c = rp_lua_request_check(L, 1);
    const char      *key = luaL_checkstring(L, 2), *s, *q;
    size_t           n;

    rp_lua_check_phase(L, RP_PHASE_REQUEST | RP_PHASE_BALANCE);
    if (strcmp(key, "query") == 0) {
        s = lua_isnil(L, 3) ? NULL : luaL_checklstring(L, 3, &n);
        set_query(L, c, s, s ? n : 0);
    } else if (strcmp(key, "path") == 0) {
        s = luaL_checklstring(L, 3, &n);
        set_path(L, c, s, n);
    } else if (strcmp(key, "uri") == 0) {
        s = luaL_checklstring(L, 3, &n);
        q = memchr(s, '?', n);
        if (!valid_path(s, q ? (size_t) (q - s) : n, 0)
            || (q && !valid_path(q + 1, n - (size_t) (q - s) - 1, 1))) {
            return luaL_error(L, "req.uri: expected an absolute path of visible ASCII");
        }
        set_path(L, c, s, q ? (size_t) (q - s) : n);
        set_query(L, c, q ? q + 1 : NULL, q ? n - (size_t) (q - s) - 1 : 0);
    } else {
        return luaL_error(L, "req.%s cannot be set (uri, path and query can)", key);
    }
    return 0;
}

static int
l_request_tostring(lua_State *L)
{
    request_box_t  *box = box_check(L, 1, &request_mt_key, sizeof(request_box_t), REQUEST_MT);

    lua_pushfstring(L, "rproxy.request (%s)", box->c ? "live" : "stale");
    return 1;
}

/* ---- res ----------------------------------------------------------------------- */

static rp_msg_t *
response_msg(rp_http_conn_t *c)
{
    return (c->uc != NULL && c->t_first > 0) ? &c->uc->resp : NULL;
}

static int
l_response_header(lua_State *L)
{
    rp_http_conn_t  *c = response_check(L, 1, NULL);

    return msg_get(L, response_msg(c), 2);
}

static int
l_response_headers_next(lua_State *L)
{
    rp_http_conn_t  *c = response_check(L, lua_upvalueindex(1), NULL);

    return msg_iter_next(L, response_msg(c));
}

static int
l_response_headers(lua_State *L)
{
    response_check(L, 1, NULL);
    return push_headers_iter(L, l_response_headers_next);
}

static int
l_response_set_header(lua_State *L)
{
    rp_http_conn_t  *c = response_check(L, 1, NULL);

    rp_lua_check_phase(L, RP_PHASE_RESPONSE);
    return msg_set(L, response_msg(c), 1);
}

static int
l_response_add_header(lua_State *L)
{
    rp_http_conn_t  *c = response_check(L, 1, NULL);

    rp_lua_check_phase(L, RP_PHASE_RESPONSE);
    return msg_set(L, response_msg(c), 0);
}

static int
l_response_remove_header(lua_State *L)
{
    rp_http_conn_t  *c = response_check(L, 1, NULL);

    rp_lua_check_phase(L, RP_PHASE_RESPONSE);
    return msg_remove(L, response_msg(c));
}

static void
push_time(lua_State *L, double from, double to)
{
    if (from > 0 && to >= from) {
        lua_pushnumber(L, to - from);
    } else {
        lua_pushnil(L);
    }
}

static int
response_field(lua_State *L, rp_http_conn_t *c, const char *key)
{
    double  now = rp_now();

    if (strcmp(key, "status") == 0) {
        lua_pushinteger(L, c->resp_status ? c->resp_status
                           : (c->status ? c->status
                                        : (response_msg(c) ? rp_msg_status(response_msg(c)) : 0)));
    } else if (strcmp(key, "bytes_in") == 0) {
        lua_pushinteger(L, (lua_Integer) c->bytes_in);
    } else if (strcmp(key, "bytes_out") == 0) {
        lua_pushinteger(L, (lua_Integer) c->bytes_out);
    } else if (strcmp(key, "total_time") == 0) {
        push_time(L, c->t_start, now);
    } else if (strcmp(key, "queue_time") == 0) {
        push_time(L, c->t_head, c->t_upstream);
    } else if (strcmp(key, "connect_time") == 0) {
        c->t_upstream > 0 ? lua_pushnumber(L, 0) : lua_pushnil(L);  /* pooled: no connect */
    } else if (strcmp(key, "ttfb") == 0) {
        push_time(L, c->t_upstream, c->t_first);
    } else if (strcmp(key, "upstream_time") == 0) {
        push_time(L, c->t_upstream, now);
    } else if (strcmp(key, "backend") == 0) {
        c->up_backend ? (void) lua_pushstring(L, c->up_backend->conf->name) : lua_pushnil(L);
    } else {
        return 0;
    }
    return 1;
}

/* res.<key>: a method first, then a field (as l_request_index) */
static int
l_response_index(lua_State *L)
{
    rp_http_conn_t  *c;
    const char      *key;

    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) {
        return 1;
    }
    c = response_check(L, 1, NULL);
    key = luaL_checkstring(L, 2);
    if (!response_field(L, c, key)) {
        lua_pushnil(L);
    }
    return 1;
}

/* res.status = 503 in on_response */
static int
l_response_newindex(lua_State *L)
{
    rp_http_conn_t  *c = response_check(L, 1, NULL);
    const char      *key = luaL_checkstring(L, 2);
    lua_Integer      status;

    rp_lua_check_phase(L, RP_PHASE_RESPONSE);
    if (strcmp(key, "status") != 0) {
        return luaL_error(L, "res.%s cannot be set (status and headers can)", key);
    }
    if (!lua_isinteger(L, 3) || (status = lua_tointeger(L, 3)) < 200 || status > 599) {
        return luaL_error(L, "res.status: expected a status from 200 to 599, got %s",
                          luaL_tolstring(L, 3, NULL));
    }
    c->resp_status = (int) status;
    return 0;
}

/* ---- registration ------------------------------------------------------------- */

static void
new_class(lua_State *L, const char *mt, const void *key, const luaL_Reg *methods,
          lua_CFunction index, lua_CFunction newindex, lua_CFunction tostring)
{
    luaL_newmetatable(L, mt);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
    lua_newtable(L);                     /* [mt, methods] */
    luaL_setfuncs(L, methods, 0);
    lua_pushcclosure(L, index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, newindex);
    lua_setfield(L, -2, "__newindex");
    if (tostring != NULL) {
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pushliteral(L, "rproxy object");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

void
rp_lua_request_open(lua_State *L)
{
    static const luaL_Reg  req_methods[] = {
        { "header", l_request_header },         { "headers", l_request_headers },
        { "set_header", l_request_set_header }, { "add_header", l_request_add_header },
        { "remove_header", l_request_remove_header },
        { "route", l_request_route },           { "respond", l_request_respond },
        { "redirect", l_request_redirect },     { NULL, NULL },
    };
    static const luaL_Reg  res_methods[] = {
        { "header", l_response_header },         { "headers", l_response_headers },
        { "set_header", l_response_set_header }, { "add_header", l_response_add_header },
        { "remove_header", l_response_remove_header }, { NULL, NULL },
    };

    new_class(L, REQUEST_MT, &request_mt_key, req_methods, l_request_index, l_request_newindex,
              l_request_tostring);
    new_class(L, RESPONSE_MT, &response_mt_key, res_methods, l_response_index,
              l_response_newindex, NULL);
}
