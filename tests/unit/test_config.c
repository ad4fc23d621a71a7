/* test_config.c: rp_config_load() on real files: values and defaults of a full
 * configuration, one error per case with its "file:line:" prefix, require from
 * the config's directory, and the snapshot's reference count. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

/* Writes text to a new /tmp file named like a config; path gets its name. */
static void
temp_config(char *path, size_t len, const char *text)
{
    FILE  *f;
    int    fd;

    snprintf(path, len, "/tmp/rp_test_config_XXXXXX.lua");
    fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
write_file(const char *path, const char *text)
{
    FILE  *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Loads text from a temp file, which is removed before returning. */
static rp_config_t *
load_text(const char *text, char *path, size_t pathlen, char *err, size_t errlen)
{
    rp_config_t  *conf;

    temp_config(path, pathlen, text);
    conf = rp_config_load(path, err, errlen);
    remove(path);
    return conf;
}

static unsigned
port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *) ss)->sin_port);
    }
    return ntohs(((const struct sockaddr_in6 *) ss)->sin6_port);
}


/* ---- a full configuration --------------------------------------------------- */

static const char full_config[] =
    "-- rproxy.lua used by test_full\n"                                                   /* 1 */
    "rproxy.settings { threads = 2, max_nofile = 65536, pidfile = '/run/rproxy.pid',\n"   /* 2 */
    "  grace = 12.5, log = { error = '/dev/null', level = 'debug',\n"
    "  access = { output = 'stdout', format = 'combined' } } }\n"
    "rproxy.backend 'app1' { address = '127.0.0.1:9001', connections = 8, retry = 0.25,\n" /* 5 */
    "  retry_max = 3, connect_timeout = 1.5, read_timeout = 20, write_timeout = 21,\n"
    "  high_watermark = '1m', enabled = false }\n"
    "rproxy.backend 'app2' { address = '[::1]:9002' }\n"                                   /* 8 */
    "rproxy.backend 'app3' { address = 'localhost:9003', high_watermark = 4096 }\n"        /* 9 */
    "rproxy.pool 'app' { 'app2', 'app1', balance = 'most_idle' }\n"                        /* 10 */
    "rproxy.pool 'later' { 'app4' }\n"                                                     /* 11 */
    "rproxy.backend 'app4' { address = '10.0.0.4:80', high_watermark = '2K' }\n"           /* 12 */
    "rproxy.listen { address = '*:8080' }\n"                                               /* 13 */
    "rproxy.listen { address = '[::]:8443', backlog = 511, read_timeout = 1,\n"            /* 14 */
    "  write_timeout = 2, keepalive_timeout = 3, pending_timeout = 4, max_pending = 5,\n"
    "  high_watermark = '64k', x_headers = { 'x-forwarded-for', 'X-FORWARDED-PROTO',\n"
    "  'X-Real-IP' }, max_request_line = 4096, max_header_size = '16k', max_headers = 50,\n"
    "  log = { access = { output = '/tmp/access.log', format = 'json' } } }\n"
    "rproxy.listen { address = '127.0.0.1:8081', x_headers = {}, defer_accept = false }\n" /* 19 */
    "rproxy.vhost 'example.com' { aliases = { '*.example.com', 'www.example.*' },\n"       /* 20 */
    "  log = { access = { output = 'stdout', format = '{SRC} {METH} {URI} {STATUS}' } },\n"
    "  routes = {\n"
    "    { path = '/api/*', to = 'app', rewrite = { '^/api/(.*)$', '/%1' } },\n"
    "    { path = '/exact', to = 'app1' },\n"
    "    { prefix = '/static/', to = 'app1' },\n"
    "    { regex = '^/v[0-9]+/', to = 'later' },\n"
    "    { exact = '/health', to = 'app3' },\n"
    "    { to = 'app2' } } }\n"
    "rproxy.vhost 'other.org' { default = true }\n"                                        /* 29 */
    "function rproxy.on_request(req) return nil end\n";

static void
check_full_settings(const rp_config_t *conf)
{
    assert_int_equal(conf->threads, 2);
    assert_int_equal(conf->max_nofile, 65536);
    assert_string_equal(conf->pidfile, "/run/rproxy.pid");
    assert_true(conf->grace == 12.5);
    assert_string_equal(conf->error_log, "/dev/null");
    assert_int_equal(conf->log_level, RP_LOG_DEBUG);
    assert_string_equal(conf->access_log.output, "stdout");
    assert_string_equal(conf->access_log.format, "combined");
}

static void
check_full_backends(const rp_config_t *conf)
{
    const rp_backend_conf_t  *b;

    assert_int_equal(conf->nbackends, 4);
    b = rp_config_backend(conf, "app1");
    assert_non_null(b);
    assert_int_equal(b->index, 0);
    assert_int_equal(b->line, 5);
    assert_string_equal(b->address, "127.0.0.1:9001");
    assert_string_equal(b->host, "127.0.0.1");
    assert_int_equal(b->port, 9001);
    assert_int_equal(b->addr.ss_family, AF_INET);
    assert_int_equal(b->addrlen, sizeof(struct sockaddr_in));
    assert_int_equal(port_of(&b->addr), 9001);
    assert_int_equal(b->connections, 8);
    assert_true(b->retry == 0.25 && b->retry_max == 3 && b->connect_timeout == 1.5);
    assert_true(b->read_timeout == 20 && b->write_timeout == 21);
    assert_int_equal(b->high_watermark, 1024 * 1024);
    assert_int_equal(b->enabled, 0);

    b = rp_config_backend(conf, "app2");          /* all defaults */
    assert_string_equal(b->host, "::1");
    assert_int_equal(b->addr.ss_family, AF_INET6);
    assert_int_equal(port_of(&b->addr), 9002);
    assert_int_equal(b->connections, 4);
    assert_true(b->retry == 0.5 && b->retry_max == 10 && b->connect_timeout == 5);
    assert_true(b->read_timeout == 60 && b->write_timeout == 60);
    assert_int_equal(b->high_watermark, 256 * 1024);
    assert_int_equal(b->enabled, 1);

    b = rp_config_backend(conf, "app3");          /* a name, resolved at load */
    assert_string_equal(b->host, "localhost");
    assert_true(b->addr.ss_family == AF_INET || b->addr.ss_family == AF_INET6);
    assert_int_equal(port_of(&b->addr), 9003);
    assert_int_equal(b->high_watermark, 4096);

    b = rp_config_backend(conf, "app4");
    assert_int_equal(b->index, 3);
    assert_int_equal(b->high_watermark, 2048);
    assert_null(rp_config_backend(conf, "app"));
}

static void
check_full_pools(const rp_config_t *conf)
{
    const rp_pool_conf_t  *p;

    assert_int_equal(conf->npools, 2);
    p = rp_config_pool(conf, "app");
    assert_non_null(p);
    assert_int_equal(p->line, 10);
    assert_int_equal(p->balance, RP_BALANCE_MOST_IDLE);
    assert_int_equal(p->nmembers, 2);
    assert_int_equal(p->members[0], 1);
    assert_int_equal(p->members[1], 0);
    p = rp_config_pool(conf, "later");            /* names a backend declared after it */
    assert_int_equal(p->index, 1);
    assert_int_equal(p->balance, RP_BALANCE_RTT);
    assert_int_equal(p->nmembers, 1);
    assert_int_equal(p->members[0], 3);
    assert_null(rp_config_pool(conf, "app1"));
}

static void
check_full_listeners(const rp_config_t *conf)
{
    const rp_listen_conf_t     *l;
    const struct sockaddr_in6  *sin6;
    const struct sockaddr_in   *sin;

    assert_int_equal(conf->nlisteners, 3);
    l = &conf->listeners[0];                      /* all defaults */
    assert_int_equal(l->line, 13);
    sin = (const struct sockaddr_in *) &l->addr;
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
    assert_int_equal(ntohs(sin->sin_port), 8080);
    assert_int_equal(l->backlog, 1024);
    assert_int_equal(l->defer_accept, 1);
    assert_true(l->read_timeout == 60 && l->write_timeout == 60);
    assert_true(l->keepalive_timeout == 75 && l->pending_timeout == 10);
    assert_int_equal(l->max_pending, 1024);
    assert_int_equal(l->high_watermark, 256 * 1024);
    assert_int_equal(l->x_headers, RP_XH_FORWARDED_FOR);
    assert_int_equal(l->max_request_line, 8192);
    assert_int_equal(l->max_header_size, 32768);
    assert_int_equal(l->max_headers, 100);
    assert_null(l->access_log.output);

    l = &conf->listeners[1];
    sin6 = (const struct sockaddr_in6 *) &l->addr;
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_memory_equal(&sin6->sin6_addr, &in6addr_any, sizeof(in6addr_any));
    assert_int_equal(ntohs(sin6->sin6_port), 8443);
    assert_string_equal(l->address, "[::]:8443");
    assert_int_equal(l->backlog, 511);
    assert_true(l->read_timeout == 1 && l->write_timeout == 2);
    assert_true(l->keepalive_timeout == 3 && l->pending_timeout == 4);
    assert_int_equal(l->max_pending, 5);
    assert_int_equal(l->high_watermark, 64 * 1024);
    assert_int_equal(l->x_headers,
                     RP_XH_FORWARDED_FOR | RP_XH_FORWARDED_PROTO | RP_XH_REAL_IP);
    assert_int_equal(l->max_request_line, 4096);
    assert_int_equal(l->max_header_size, 16 * 1024);
    assert_int_equal(l->max_headers, 50);
    assert_string_equal(l->access_log.output, "/tmp/access.log");
    assert_string_equal(l->access_log.format, "json");

    assert_int_equal(conf->listeners[2].x_headers, 0);
    assert_int_equal(conf->listeners[2].defer_accept, 0);
}

static void
check_full_routes(const rp_vhost_conf_t *v)
{
    const rp_route_conf_t  *r = v->routes;

    assert_int_equal(v->nroutes, 6);
    assert_int_equal(r[0].match, RP_MATCH_GLOB);
    assert_string_equal(r[0].pattern, "/api/*");
    assert_true(r[0].to.is_pool);
    assert_int_equal(r[0].to.index, 0);
    assert_true(r[0].has_rewrite);
    assert_string_equal(r[0].rewrite_to, "/%1");
    assert_int_equal(regexec(&r[0].rewrite_re, "/api/users", 0, NULL, 0), 0);

    assert_int_equal(r[1].match, RP_MATCH_EXACT);        /* path without * ? [ */
    assert_string_equal(r[1].pattern, "/exact");
    assert_false(r[1].to.is_pool);
    assert_int_equal(r[1].to.index, 0);
    assert_false(r[1].has_rewrite);

    assert_int_equal(r[2].match, RP_MATCH_PREFIX);
    assert_string_equal(r[2].pattern, "/static/");

    assert_int_equal(r[3].match, RP_MATCH_REGEX);
    assert_int_equal(regexec(&r[3].regex, "/v12/x", 0, NULL, 0), 0);
    assert_int_not_equal(regexec(&r[3].regex, "/vx/", 0, NULL, 0), 0);
    assert_true(r[3].to.is_pool);
    assert_int_equal(r[3].to.index, 1);

    assert_int_equal(r[4].match, RP_MATCH_EXACT);
    assert_string_equal(r[4].pattern, "/health");
    assert_false(r[4].to.is_pool);
    assert_int_equal(r[4].to.index, 2);

    assert_int_equal(r[5].match, RP_MATCH_ANY);
    assert_null(r[5].pattern);
    assert_int_equal(r[5].to.index, 1);
}

static void
check_full_vhosts(const rp_config_t *conf)
{
    const rp_vhost_conf_t  *v;

    assert_int_equal(conf->nvhosts, 2);
    v = &conf->vhosts[0];
    assert_string_equal(v->name, "example.com");
    assert_int_equal(v->line, 20);
    assert_int_equal(v->naliases, 2);
    assert_string_equal(v->aliases[0], "*.example.com");
    assert_string_equal(v->aliases[1], "www.example.*");
    assert_false(v->is_default);
    assert_string_equal(v->access_log.output, "stdout");
    assert_string_equal(v->access_log.format, "{SRC} {METH} {URI} {STATUS}");
    check_full_routes(v);

    v = &conf->vhosts[1];
    assert_string_equal(v->name, "other.org");
    assert_true(v->is_default);
    assert_int_equal(v->nroutes, 0);
    assert_int_equal(v->naliases, 0);
    assert_null(v->access_log.output);
}

static void
test_full(void **state)
{
    char          path[64], err[512];
    rp_config_t  *conf;

    RP_UNUSED(state);

    conf = load_text(full_config, path, sizeof(path), err, sizeof(err));
    if (conf == NULL) {
        fail_msg("load failed: %s", err);
    }
    assert_string_equal(conf->path, path);
    assert_int_equal(atomic_load(&conf->refs), 1);
    check_full_settings(conf);
    check_full_backends(conf);
    check_full_pools(conf);
    check_full_listeners(conf);
    check_full_vhosts(conf);
    rp_config_unref(conf);
}

/* What a file that declares little gets. */
static void
test_defaults(void **state)
{
    char          path[64], err[512];
    rp_config_t  *conf;
    long          ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    RP_UNUSED(state);

    conf = load_text("rproxy.backend 'b' { address = '127.0.0.1:1' }\n"
                     "rproxy.listen { address = '0.0.0.0:8080' }\n"
                     "rproxy.vhost 'a' { routes = { { to = 'b' } } }\n"
                     "rproxy.vhost 'c' { default = false }\n",
                     path, sizeof(path), err, sizeof(err));
    if (conf == NULL) {
        fail_msg("load failed: %s", err);
    }
    assert_int_equal(conf->threads, ncpu > 0 ? (unsigned) ncpu : 1);
    assert_int_equal(conf->max_nofile, 0);
    assert_null(conf->pidfile);
    assert_true(conf->grace == 30);
    assert_string_equal(conf->error_log, "stderr");
    assert_int_equal(conf->log_level, RP_LOG_NOTICE);
    assert_null(conf->access_log.output);
    assert_int_equal(conf->npools, 0);
    assert_int_equal(conf->listeners[0].addr.ss_family, AF_INET);
    assert_true(conf->vhosts[0].is_default);      /* the first, when none says so */
    assert_false(conf->vhosts[1].is_default);
    rp_config_unref(conf);
}

/* threads = 0 is the number of CPUs; level "error" is "err"; an access log
 * without a format is "combined". */
static void
test_settings_forms(void **state)
{
    char          path[64], err[512];
    rp_config_t  *conf;

    RP_UNUSED(state);

    conf = load_text("rproxy.settings { threads = 0,\n"
                     "  log = { level = 'error', access = { output = 'off' } } }\n"
                     "rproxy.backend 'b' { address = '127.0.0.1:1' }\n"
                     "rproxy.listen { address = '127.0.0.1:8080' }\n"
                     "rproxy.vhost 'a' { routes = { { to = 'b' } } }\n",
                     path, sizeof(path), err, sizeof(err));
    if (conf == NULL) {
        fail_msg("load failed: %s", err);
    }
    assert_true(conf->threads >= 1);
    assert_int_equal(conf->log_level, RP_LOG_ERR);
    assert_string_equal(conf->access_log.output, "off");
    assert_string_equal(conf->access_log.format, "combined");
    rp_config_unref(conf);
}

static void
test_refcount(void **state)
{
    char          path[64], err[512];
    rp_config_t  *conf;

    RP_UNUSED(state);

    conf = load_text(full_config, path, sizeof(path), err, sizeof(err));
    assert_non_null(conf);
    rp_config_ref(conf);
    rp_config_ref(conf);
    assert_int_equal(atomic_load(&conf->refs), 3);
    rp_config_unref(conf);
    rp_config_unref(conf);
    assert_int_equal(atomic_load(&conf->refs), 1);
    assert_non_null(rp_config_backend(conf, "app1"));
    rp_config_unref(conf);                        /* frees: ASan's leak check agrees */
    rp_config_unref(NULL);
}


/* ---- require from the config's directory --------------------------------- */

/* Files made under a temp directory, to remove in reverse order. */
typedef struct {
    const char  *dir;
    char         files[4][128];
    int          nfiles;
} tree_t;

static const char *
tree_add(tree_t *t, const char *name, const char *text)
{
    char  *path = t->files[t->nfiles++];

    snprintf(path, sizeof(t->files[0]), "%s/%s", t->dir, name);
    if (text == NULL) {
        assert_int_equal(mkdir(path, 0700), 0);
    } else {
        write_file(path, text);
    }
    return path;
}

static void
tree_remove(tree_t *t)
{
    while (t->nfiles > 0) {
        remove(t->files[--t->nfiles]);            /* files, then their directories */
    }
    rmdir(t->dir);
}

static void
test_require(void **state)
{
    char          dir[] = "/tmp/rp_test_config_XXXXXX", err[512];
    tree_t        t = { .dir = dir, .nfiles = 0 };
    const char   *path;
    rp_config_t  *conf;

    RP_UNUSED(state);

    assert_non_null(mkdtemp(dir));
    tree_add(&t, "scripts", NULL);
    tree_add(&t, "helpers.lua",
             "local M = {}\n"
             "function M.backends(n)\n"
             "  for i = 1, n do\n"
             "    rproxy.backend('b' .. i) { address = '127.0.0.1:' .. (9000 + i) }\n"
             "  end\n"
             "end\n"
             "return M\n");
    tree_add(&t, "scripts/policy.lua", "return { target = 'b2' }\n");
    path = tree_add(&t, "rproxy.lua",
                    "local h = require 'helpers'\n"
                    "local p = require 'policy'\n"
                    "h.backends(2)\n"
                    "rproxy.listen { address = '127.0.0.1:8080' }\n"
                    "rproxy.vhost 'a' { routes = { { to = p.target } } }\n");
    conf = rp_config_load(path, err, sizeof(err));
    tree_remove(&t);
    if (conf == NULL) {
        fail_msg("load failed: %s", err);
    }
    assert_int_equal(conf->nbackends, 2);
    assert_int_equal(conf->backends[1].line, 4);  /* a line of helpers.lua */
    assert_int_equal(port_of(&conf->backends[1].addr), 9002);
    assert_int_equal(conf->vhosts[0].routes[0].to.index, 1);
    rp_config_unref(conf);
}

/* An error in a declaration made by a required module names the module. */
static void
test_require_error(void **state)
{
    char          dir[] = "/tmp/rp_test_config_XXXXXX", err[512];
    char          real[PATH_MAX], prefix[PATH_MAX + 64];
    tree_t        t = { .dir = dir, .nfiles = 0 };
    const char   *path;
    rp_config_t  *conf;

    RP_UNUSED(state);

    assert_non_null(mkdtemp(dir));
    assert_non_null(realpath(dir, real));
    tree_add(&t, "broken.lua", "-- a module\nrproxy.backend 'x' { address = '127.0.0.1:1', bogus = 1 }\n");
    path = tree_add(&t, "rproxy.lua", "require 'broken'\n");
    conf = rp_config_load(path, err, sizeof(err));
    tree_remove(&t);
    assert_null(conf);
    snprintf(prefix, sizeof(prefix), "%s/broken.lua:2: unknown key 'bogus' in backend 'x'", real);
    assert_string_equal(err, prefix);
}

static void
test_missing_file(void **state)
{
    char  err[512];

    RP_UNUSED(state);

    assert_null(rp_config_load("/nonexistent/rproxy.lua", err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open /nonexistent/rproxy.lua"));
    assert_null(rp_config_load("/nonexistent/rproxy.lua", NULL, 0));
}


/* ---- errors: each case is its own test --------------------------------------- */

/* Three valid lines that cases build on. */
#define BASE                                                     \
    "rproxy.backend 'app1' { address = '127.0.0.1:9001' }\n"     \
    "rproxy.listen { address = '127.0.0.1:8080' }\n"             \
    "rproxy.vhost 'a' { routes = { { to = 'app1' } } }\n"

typedef struct {
    const char  *name;
    const char  *text;
    int          line;       /* expected in "file:line:" */
    const char  *what;       /* expected substring       */
} error_case_t;

static const error_case_t error_cases[] = {
    { "unknown_key", BASE "rproxy.backend 'app2' { address = '127.0.0.1:9002', conections = 4 }\n",
      4, "unknown key 'conections' in backend 'app2'" },
    { "unknown_nested_key",
      BASE "rproxy.settings { log = { access = { output = 'stdout', fmt = 'json' } } }\n",
      4, "unknown key 'log.access.fmt' in settings" },
    { "positional_option", BASE "rproxy.backend 'app2' { '127.0.0.1:9002' }\n",
      4, "unknown key '[1]' in backend 'app2'" },
    { "listen_log_error_key",
      BASE "rproxy.listen { address = '127.0.0.1:8081', log = { error = 'x' } }\n",
      4, "unknown key 'log.error' in listen" },
    { "wrong_type", BASE "rproxy.backend 'app2' { address = '127.0.0.1:9002', connections = '4' }\n",
      4, "backend 'app2': 'connections' must be a positive integer" },
    { "zero_connections", BASE "rproxy.backend 'app2' { address = '127.0.0.1:9002', connections = 0 }\n",
      4, "backend 'app2': 'connections' must be a positive integer" },
    { "defer_accept_not_boolean", BASE "rproxy.listen { address = '127.0.0.1:8081', defer_accept = 1 }\n",
      4, "listen: 'defer_accept' must be a boolean" },
    { "fractional_integer", BASE "rproxy.listen { address = '127.0.0.1:8081', backlog = 1.5 }\n",
      4, "listen: 'backlog' must be a positive integer" },
    { "negative_threads", BASE "rproxy.settings { threads = -1 }\n",
      4, "settings: 'threads' must be a non-negative integer" },
    { "zero_duration", BASE "rproxy.backend 'app2' { address = '127.0.0.1:9002', retry = 0 }\n",
      4, "backend 'app2': 'retry' must be a positive number of seconds" },
    { "string_duration", BASE "rproxy.listen { address = '127.0.0.1:8081', read_timeout = '5' }\n",
      4, "listen: 'read_timeout' must be a positive number of seconds" },
    { "bad_size", BASE "rproxy.backend 'app2' { address = '127.0.0.1:9002', high_watermark = '12q' }\n",
      4, "backend 'app2': 'high_watermark' must be a size" },
    { "zero_size", BASE "rproxy.listen { address = '127.0.0.1:8081', max_header_size = 0 }\n",
      4, "listen: 'max_header_size' must be a size" },
    { "bad_bool", BASE "rproxy.backend 'app2' { address = '127.0.0.1:9002', enabled = 'yes' }\n",
      4, "backend 'app2': 'enabled' must be a boolean" },
    { "empty_string", BASE "rproxy.settings { pidfile = '' }\n",
      4, "settings: 'pidfile' must be a non-empty string" },
    { "missing_address", BASE "rproxy.backend 'app2' { connections = 2 }\n",
      4, "backend 'app2': 'address' is required" },
    { "backend_no_port", BASE "rproxy.backend 'app2' { address = '127.0.0.1' }\n",
      4, "backend 'app2': bad address '127.0.0.1'" },
    { "backend_bare_v6", BASE "rproxy.backend 'app2' { address = '::1:80' }\n",
      4, "backend 'app2': bad address '::1:80'" },
    { "backend_no_name", BASE "rproxy.backend { address = '127.0.0.1:9002' }\n",
      4, "rproxy.backend: expected a name" },
    { "backend_no_table", BASE "rproxy.backend 'app2' 'x'\n",
      4, "backend 'app2': expected a table of options" },
    { "unknown_target", BASE "rproxy.vhost 'b' {\n  routes = { { to = 'app1' }, { to = 'nope' } } }\n",
      4, "vhost 'b': 'routes[2].to': unknown pool or backend 'nope'" },
    { "unknown_member", BASE "rproxy.pool 'p' { 'app1', 'ghost' }\n",
      4, "pool 'p': unknown backend 'ghost'" },
    { "member_is_pool", BASE "rproxy.pool 'p' { 'app1' }\nrproxy.pool 'q' { 'p' }\n",
      5, "pool 'q': 'p' is a pool, not a backend" },
    { "empty_pool", BASE "rproxy.pool 'p' { balance = 'rtt' }\n",
      4, "pool 'p': needs at least one backend" },
    { "member_twice", BASE "rproxy.pool 'p' { 'app1', 'app1' }\n",
      4, "pool 'p': backend 'app1' is listed twice" },
    { "bad_balance", BASE "rproxy.pool 'p' { 'app1', balance = 'fastest' }\n",
      4, "pool 'p': 'balance': \"fastest\" is neither a built-in balancer nor an rproxy.balancer" },
    { "bad_balance_type", BASE "rproxy.pool 'p' { 'app1', balance = 42 }\n",
      4, "pool 'p': 'balance' must be one of \"rtt\", \"roundrobin\"" },
    { "balancer_not_function", BASE "rproxy.balancer 'b' (42)\n",
      4, "balancer 'b': expects a function(req, pool), got number" },
    { "balancer_builtin_name", BASE "rproxy.balancer 'rtt' (function() end)\n",
      4, "balancer 'rtt': the name is already taken" },
    { "route_hook_not_function", BASE "rproxy.vhost 'h' { routes = { { to = 'app1', on_request = 1 } } }\n",
      4, "'routes[1].on_request' must be a function(req)" },
    { "shared_dict_no_size", BASE "rproxy.shared_dict 'd' { }\n",
      4, "shared_dict 'd': 'size' is required" },
    { "shared_dict_twice", BASE "rproxy.shared_dict 'd' { size = '1m' }\nrproxy.shared_dict 'd' { size = '1m' }\n",
      5, "shared_dict 'd': declared twice" },
    { "shared_dict_small", BASE "rproxy.shared_dict 'd' { size = '1k' }\n",
      4, "shared_dict 'd': 'size' must be at least 128k" },
    { "lua_unknown_key", BASE "rproxy.settings { lua = { budget = 1 } }\n",
      4, "unknown key 'lua.budget'" },
    /* what the start would refuse, the check refuses, with file:line */
    { "access_log_unknown_token",
      BASE "rproxy.settings { log = { access = { output = 'stdout', format = '{SRC} {FOO}' } } }\n",
      4, "settings: log.access: unknown access log token {FOO}" },
    { "access_log_lowercase_tokens",
      BASE "rproxy.settings { log = { access = { output = 'stdout', format = '{src}' } } }\n",
      4, "log.access: unknown access log format \"{src}\"" },
    { "access_log_unopenable",
      BASE "rproxy.vhost 'b' { log = { access = { output = '/nonexistent-dir/a.log' } } }\n",
      4, "vhost 'b': log.access: could not open access log \"/nonexistent-dir/a.log\"" },
    { "error_log_unopenable", BASE "rproxy.settings { log = { error = '/nonexistent-dir/e.log' } }\n",
      4, "settings: log.error: could not open error log \"/nonexistent-dir/e.log\"" },
    { "retry_max_under_retry",
      BASE "rproxy.backend 'b2' { address = '127.0.0.1:9002', retry = 2, retry_max = 1 }\n",
      4, "backend 'b2': 'retry_max' (1) must be at least 'retry' (2)" },
    /* the count hook charges 1,000 at a time: a smaller budget is not one */
    { "lua_instructions_under_a_step", BASE "rproxy.settings { lua = { instructions = 999 } }\n",
      4, "settings: 'lua.instructions' must be at least 1000" },
    { "bad_listen_address", BASE "rproxy.listen { address = 'localhost:80' }\n",
      4, "listen: bad address 'localhost:80'" },
    { "listen_no_port", BASE "rproxy.listen { address = '127.0.0.1' }\n",
      4, "listen: bad address '127.0.0.1'" },
    { "listen_big_port", BASE "rproxy.listen { address = '*:70000' }\n",
      4, "listen: bad address '*:70000'" },
    { "listen_twice", BASE "rproxy.listen { address = '127.0.0.1:8080' }\n",
      4, "listen: address '127.0.0.1:8080' is already declared at" },
    { "listen_no_address", BASE "rproxy.listen { backlog = 10 }\n",
      4, "listen: 'address' is required" },
    { "unknown_x_header", BASE "rproxy.listen { address = '127.0.0.1:8081', x_headers = { 'X-Bogus' } }\n",
      4, "listen: unknown x_header 'X-Bogus'" },
    { "duplicate_backend", BASE "rproxy.backend 'app1' { address = '127.0.0.1:9009' }\n",
      4, "duplicate backend 'app1' (first declared at" },
    { "duplicate_pool", BASE "rproxy.pool 'p' { 'app1' }\nrproxy.pool 'p' { 'app1' }\n",
      5, "duplicate pool 'p'" },
    { "pool_named_like_backend", BASE "rproxy.pool 'app1' { 'app1' }\n",
      4, "pool 'app1': the name is already taken by backend 'app1'" },
    { "backend_named_like_pool", BASE "rproxy.pool 'p' { 'app1' }\nrproxy.backend 'p' { address = '127.0.0.1:1' }\n",
      5, "backend 'p': the name is already taken by pool 'p'" },
    { "duplicate_vhost", BASE "rproxy.vhost 'a' { }\n",
      4, "duplicate vhost 'a'" },
    /* host names are case-insensitive: the second could never be chosen */
    { "duplicate_vhost_other_case", BASE "rproxy.vhost 'A' { }\n",
      4, "duplicate vhost 'A' (first declared at" },
    { "two_defaults", BASE "rproxy.vhost 'b' { default = true }\nrproxy.vhost 'c' { default = true }\n",
      5, "is already the default; only one vhost may be the default" },
    { "syntax_error", BASE "rproxy.backend 'x' { address = = 1 }\n",
      4, "unexpected symbol near '='" },
    { "runtime_error", BASE "local t = nil\nt.x = 1\n",
      5, "attempt to index a nil value" },
    { "error_call", BASE "error('boom')\n",
      4, "boom" },
    { "error_level_0", BASE "\nerror('boom', 0)\n",
      5, "boom" },
    { "error_object", BASE "error({})\n",
      4, "(error object is a table value)" },
    { "caught_declaration_error", BASE "local ok = pcall(rproxy.backend 'b', { connections = 0 })\n",
      4, "backend 'b': 'connections' must be a positive integer" },
    { "missing_listener",
      "rproxy.backend 'app1' { address = '127.0.0.1:9001' }\n"
      "rproxy.vhost 'a' { routes = { { to = 'app1' } } }\n"
      "-- the end\n",
      3, "no rproxy.listen declared" },
    { "missing_vhost",
      "rproxy.backend 'app1' { address = '127.0.0.1:9001' }\n"
      "rproxy.listen { address = '127.0.0.1:8080' }",
      2, "no rproxy.vhost declared" },
    { "settings_twice", BASE "rproxy.settings { }\nrproxy.settings { }\n",
      5, "rproxy.settings may be called only once (first at" },
    { "two_path_keys", BASE "rproxy.vhost 'b' { routes = { { path = '/a', prefix = '/b', to = 'app1' } } }\n",
      4, "vhost 'b': 'routes[1]' has both 'path' and 'prefix'" },
    { "route_without_to", BASE "rproxy.vhost 'b' { routes = { { path = '/a' } } }\n",
      4, "vhost 'b': 'routes[1].to' is required" },
    { "route_not_table", BASE "rproxy.vhost 'b' { routes = { '/a' } }\n",
      4, "vhost 'b': 'routes[1]' must be a table" },
    { "route_unknown_key", BASE "rproxy.vhost 'b' { routes = { { to = 'app1', pth = '/' } } }\n",
      4, "unknown key 'routes[1].pth' in vhost 'b'" },
    { "bad_regex", BASE "rproxy.vhost 'b' { routes = { { regex = '(', to = 'app1' } } }\n",
      4, "vhost 'b': 'routes[1].regex': bad regular expression '('" },
    { "bad_rewrite_regex", BASE "rproxy.vhost 'b' { routes = { { to = 'app1', rewrite = { '[', '/' } } } }\n",
      4, "vhost 'b': 'routes[1].rewrite': bad regular expression '['" },
    { "bad_replacement", BASE "rproxy.vhost 'b' { routes = { { to = 'app1', rewrite = { '^/(a)$', '/%2' } } } }\n",
      4, "vhost 'b': 'routes[1].rewrite': bad replacement '/%2'" },
    { "rewrite_not_pair", BASE "rproxy.vhost 'b' { routes = { { to = 'app1', rewrite = '/x' } } }\n",
      4, "vhost 'b': 'routes[1].rewrite' must be a pair" },
    { "bad_aliases", BASE "rproxy.vhost 'b' { aliases = 'x.org' }\n",
      4, "vhost 'b': 'aliases' must be an array of non-empty strings" },
    { "bad_log_level", BASE "rproxy.settings { log = { level = 'loud' } }\n",
      4, "settings: 'log.level' must be one of \"err\", \"error\", \"warn\", \"notice\", \"info\", "
      "\"debug\"" },
    { "bad_access_format", BASE "rproxy.settings { log = { access = { output = 'stdout', format = 'plain' } } }\n",
      4, "settings: 'log.access.format' must be \"combined\", \"json\" or a template" },
    { "access_without_output", BASE "rproxy.vhost 'b' { log = { access = { format = 'json' } } }\n",
      4, "vhost 'b': 'log.access.output' is required" },
};

static void
test_error(void **state)
{
    const error_case_t  *c = *state;
    char                 path[64], err[512], prefix[96];
    rp_config_t         *conf;

    conf = load_text(c->text, path, sizeof(path), err, sizeof(err));
    if (conf != NULL) {
        rp_config_unref(conf);
        fail_msg("%s: loaded, expected \"%s\"", c->name, c->what);
    }
    snprintf(prefix, sizeof(prefix), "%s:%d: ", path, c->line);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, c->what) == NULL) {
        fail_msg("%s: got \"%s\", expected \"%s...%s...\"", c->name, err, prefix, c->what);
    }
}

int
main(void)
{
    static const struct CMUnitTest  fixed[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_settings_forms),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_require),
        cmocka_unit_test(test_require_error),
        cmocka_unit_test(test_missing_file),
    };
    enum { NFIXED = sizeof(fixed) / sizeof(fixed[0]),
           NERRORS = sizeof(error_cases) / sizeof(error_cases[0]) };
    struct CMUnitTest  tests[NFIXED + NERRORS];
    size_t             i;

    memcpy(tests, fixed, sizeof(fixed));
    for (i = 0; i < NERRORS; i++) {
        tests[NFIXED + i] = (struct CMUnitTest) {
            .name = error_cases[i].name,
            .test_func = test_error,
            .initial_state = (void *) &error_cases[i],
        };
    }
    return _cmocka_run_group_tests("config", tests, NFIXED + NERRORS, NULL, NULL);
}
