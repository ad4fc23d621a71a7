/* test_match.c: vhost by Host, route by path, glob and rewrite (core/match.c),
 * over config structs built by hand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "match.h"

/* Host tests pass strlen(host): most cases are about the rules, not lengths. */
static int
host(const char *pattern, const char *h)
{
    return rp_match_host(pattern, h, strlen(h));
}

static int
glob(const char *pattern, const char *s)
{
    return rp_match_glob(pattern, s, strlen(s));
}

static void
test_host_exact_and_case(void **state)
{
    (void) state;
    assert_true(host("example.com", "example.com"));
    assert_true(host("example.com", "EXAMPLE.Com"));
    assert_true(host("Example.COM", "example.com"));
    assert_false(host("example.com", "example.org"));
    assert_false(host("example.com", "example.co"));
    assert_false(host("example.com", "www.example.com"));
    assert_false(host("example.com", ""));
    assert_false(rp_match_host(NULL, "example.com", 11));
    /* host is a (pointer, length), not a C string */
    assert_true(rp_match_host("example.com", "example.comXYZ", 11));
    assert_false(rp_match_host("example.com", "example.comXYZ", 10));
}

static void
test_host_port_and_trailing_dot(void **state)
{
    (void) state;
    assert_true(host("example.com", "example.com:8080"));
    assert_true(host("example.com", "EXAMPLE.COM:80"));
    assert_true(host("example.com", "example.com:"));
    assert_true(host("example.com", "example.com."));
    assert_true(host("example.com", "example.com.:443"));
    assert_false(host("example.com", "example.com.."));
    assert_false(host("example.com", "example.comx:80"));
    assert_true(host("127.0.0.1", "127.0.0.1:8080"));
}

static void
test_host_ipv6(void **state)
{
    (void) state;
    assert_true(host("[::1]", "[::1]"));
    assert_true(host("[::1]", "[::1]:8080"));
    assert_true(host("[2001:db8::1]", "[2001:DB8::1]:443"));
    assert_false(host("[::1]", "[::2]:8080"));
    assert_false(host("[::1]", "[::1"));
    /* a bare IPv6 address is not a name with a port */
    assert_true(host("::1", "::1"));
    assert_false(host("::", "::1"));
}

static void
test_host_wildcards(void **state)
{
    (void) state;
    assert_true(host("*.example.com", "a.example.com"));
    assert_true(host("*.example.com", "a.b.example.com"));
    assert_true(host("*.example.com", "A.Example.COM:8443"));
    assert_true(host("*.example.com", "a.example.com."));
    assert_false(host("*.example.com", "example.com"));
    assert_false(host("*.example.com", ".example.com"));
    assert_false(host("*.example.com", "aexample.com"));
    assert_false(host("*.example.com", "a.example.org"));

    assert_true(host("www.example.*", "www.example.org"));
    assert_true(host("www.example.*", "WWW.EXAMPLE.co.uk:80"));
    assert_false(host("www.example.*", "www.example"));
    assert_false(host("www.example.*", "www.example."));
    assert_false(host("www.example.*", "www.examplex.org"));
    assert_false(host("www.example.*", "a.www.example.org"));

    assert_true(host("*", "anything.at.all:1234"));
    assert_true(host("*", "[::1]"));
    assert_true(host("*", ""));

    /* a star elsewhere is a literal byte, not a pattern */
    assert_false(host("ex*.com", "example.com"));
    assert_true(host("ex*.com", "ex*.com"));
}

static void
test_vhost_selection(void **state)
{
    char             *wild_aliases[] = {"*.b.example.com"};
    char             *exact_aliases[] = {"A.example.com", "alias.org"};
    rp_vhost_conf_t   v[5];
    rp_config_t       conf;

    (void) state;
    memset(v, 0, sizeof(v));
    memset(&conf, 0, sizeof(conf));
    v[0].name = "*.example.com";        /* wildcard, declared first */
    v[1].name = "www.example.*";
    v[1].aliases = wild_aliases;        /* a later wildcard that also covers x.b.example.com */
    v[1].naliases = 1;
    v[2].name = "exact.org";            /* exact names, declared after the wildcards */
    v[2].aliases = exact_aliases;
    v[2].naliases = 2;
    v[3].name = "fallback.net";
    v[3].is_default = 1;
    v[4].name = "example.com";
    conf.vhosts = v;
    conf.nvhosts = 5;

#define VHOST(h) rp_match_vhost(&conf, (h), strlen(h))
    /* exact beats wildcard, whatever the order, aliases included */
    assert_ptr_equal(VHOST("a.example.com"), &v[2]);
    assert_ptr_equal(VHOST("a.EXAMPLE.com:8080"), &v[2]);
    assert_ptr_equal(VHOST("alias.org"), &v[2]);
    assert_ptr_equal(VHOST("exact.org."), &v[2]);
    assert_ptr_equal(VHOST("example.com"), &v[4]);
    /* among wildcards, the first declared */
    assert_ptr_equal(VHOST("b.example.com"), &v[0]);
    assert_ptr_equal(VHOST("x.b.example.com"), &v[0]);
    assert_ptr_equal(VHOST("www.example.org"), &v[1]);
    /* nothing matches: the default, whatever its position */
    assert_ptr_equal(VHOST("unknown.net"), &v[3]);
    assert_ptr_equal(VHOST(""), &v[3]);
    assert_ptr_equal(VHOST("fallback.net"), &v[3]);

    v[3].is_default = 0;
    assert_null(VHOST("unknown.net"));

    v[1].name = "*";
    assert_ptr_equal(VHOST("unknown.net"), &v[1]);
    assert_ptr_equal(VHOST("q.example.com"), &v[0]);

    conf.nvhosts = 0;
    assert_null(VHOST("example.com"));
#undef VHOST
}

static void
test_glob_stars_and_questions(void **state)
{
    (void) state;
    assert_true(glob("/api/*", "/api/"));
    assert_true(glob("/api/*", "/api/v1/users"));
    assert_false(glob("/api/*", "/api"));
    assert_false(glob("/api/*", "/ap"));
    assert_true(glob("*.png", "/a/b/c.png"));
    assert_false(glob("*.png", "/a/b/c.png.txt"));
    assert_true(glob("/a/*/c/*", "/a/b/x/c/d"));
    assert_true(glob("*", ""));
    assert_true(glob("**", "/x"));
    assert_true(glob("", ""));
    assert_false(glob("", "/"));
    assert_true(glob("/exact", "/exact"));
    assert_false(glob("/exact", "/exact/"));

    assert_true(glob("/a?c", "/abc"));
    assert_true(glob("/a?c", "/a/c"));
    assert_false(glob("/a?c", "/ac"));
    assert_false(glob("/a?c", "/abbc"));
    assert_true(glob("*?", "x"));
    assert_false(glob("*?", ""));

    /* s is a (pointer, length): bytes past slen do not count, NUL is a byte */
    assert_true(rp_match_glob("/a*c", "/abcd", 4));
    assert_false(rp_match_glob("/a*c", "/abcd", 5));
    assert_true(rp_match_glob("a?b", "a\0b", 3));
    assert_true(rp_match_glob("*", NULL, 0));
}

static void
test_glob_classes(void **state)
{
    (void) state;
    assert_true(glob("/[abc]x", "/bx"));
    assert_false(glob("/[abc]x", "/dx"));
    assert_true(glob("/[a-c]x", "/cx"));
    assert_false(glob("/[a-c]x", "/Cx"));
    assert_true(glob("/v[0-9][0-9]", "/v42"));
    assert_false(glob("/v[0-9][0-9]", "/v4x"));
    assert_true(glob("[a-cx-z]", "y"));
    assert_false(glob("[a-cx-z]", "m"));

    assert_true(glob("/[!a]x", "/bx"));
    assert_false(glob("/[!a]x", "/ax"));
    assert_true(glob("/[^a-c]x", "/dx"));
    assert_false(glob("/[^a-c]x", "/bx"));

    /* ']' first is a member; '-' first or last is literal */
    assert_true(glob("[]]", "]"));
    assert_true(glob("[!]]", "a"));
    assert_false(glob("[!]]", "]"));
    assert_true(glob("[a-]", "-"));
    assert_true(glob("[-a]", "-"));
    /* an unclosed '[' is a literal byte */
    assert_true(glob("[ab", "[ab"));
    assert_false(glob("[ab", "a"));
    /* classes combine with stars */
    assert_true(glob("*.[jJ][pP][gG]", "/photos/x.JPG"));
    assert_false(glob("*.[jJ][pP][gG]", "/photos/x.png"));
}

static void
test_glob_escapes(void **state)
{
    (void) state;
    assert_true(glob("\\*", "*"));
    assert_false(glob("\\*", "a"));
    assert_true(glob("a\\?", "a?"));
    assert_false(glob("a\\?", "ab"));
    assert_true(glob("\\[x]", "[x]"));
    assert_false(glob("\\[x]", "x"));
    assert_true(glob("[\\]]", "]"));
    assert_true(glob("[\\!a]", "!"));
    assert_true(glob("\\\\", "\\"));
    assert_true(glob("a\\", "a\\"));      /* a trailing '\' stands for itself */
    assert_true(glob("*\\*", "/a/b*"));
    assert_false(glob("*\\*", "/a/b"));
}

/* Exponential backtracking would not finish this in our lifetime; the
 * two-pointer scan does about strlen(pattern) * n steps. */
static void
test_glob_pathological(void **state)
{
    size_t  n = 100000;
    char   *s;

    (void) state;
    s = malloc(n + 1);
    assert_non_null(s);
    memset(s, 'a', n);
    s[n] = 'b';
    assert_false(rp_match_glob("a*a*a*a*a*b", s, n));
    assert_true(rp_match_glob("a*a*a*a*a*b", s, n + 1));
    assert_false(rp_match_glob("*a*a*a*a*a*a*a*a*a*a*c", s, n + 1));
    assert_false(rp_match_glob("*?*?*?*?*?*?*c", s, n + 1));
    assert_true(rp_match_glob("*[a]*[!a]", s, n + 1));
    free(s);
}

static void
route_set(rp_route_conf_t *r, rp_match_e match, char *pattern)
{
    memset(r, 0, sizeof(*r));
    r->match = match;
    r->pattern = pattern;
    if (match == RP_MATCH_REGEX) {
        assert_int_equal(regcomp(&r->regex, pattern, REG_EXTENDED | REG_NOSUB), 0);
    }
}

static void
test_route_kinds_and_order(void **state)
{
    rp_route_conf_t   r[6];
    rp_vhost_conf_t   v;

    (void) state;
    memset(&v, 0, sizeof(v));
    route_set(&r[0], RP_MATCH_EXACT, "/health");
    route_set(&r[1], RP_MATCH_PREFIX, "/static/");
    route_set(&r[2], RP_MATCH_GLOB, "/img/*.png");
    route_set(&r[3], RP_MATCH_REGEX, "^/user/[0-9]+$");
    route_set(&r[4], RP_MATCH_PREFIX, "/health");   /* shadowed for "/health" only */
    route_set(&r[5], RP_MATCH_ANY, NULL);
    v.routes = r;
    v.nroutes = 6;

#define ROUTE(p) rp_match_route(&v, (p), strlen(p))
    assert_ptr_equal(ROUTE("/health"), &r[0]);
    assert_ptr_equal(ROUTE("/healthz"), &r[4]);
    assert_ptr_equal(ROUTE("/static/"), &r[1]);
    assert_ptr_equal(ROUTE("/static/css/a.css"), &r[1]);
    assert_ptr_equal(ROUTE("/static"), &r[5]);
    assert_ptr_equal(ROUTE("/img/a/b.png"), &r[2]);
    assert_ptr_equal(ROUTE("/img/a.gif"), &r[5]);
    assert_ptr_equal(ROUTE("/user/42"), &r[3]);
    assert_ptr_equal(ROUTE("/user/42x"), &r[5]);
    assert_ptr_equal(ROUTE("/"), &r[5]);
    assert_ptr_equal(ROUTE(""), &r[5]);
#undef ROUTE

    /* path is a (pointer, length): what follows it is not looked at */
    assert_ptr_equal(rp_match_route(&v, "/healthXYZ", 7), &r[0]);
    assert_ptr_equal(rp_match_route(&v, "/user/42abc", 8), &r[3]);
    assert_ptr_equal(rp_match_route(&v, "/img/x.pngx", 10), &r[2]);

    /* without the catch-all, no match is NULL */
    v.nroutes = 5;
    assert_null(rp_match_route(&v, "/other", 6));
    v.nroutes = 0;
    assert_null(rp_match_route(&v, "/health", 7));

    /* the first match wins, even when a later route is more specific */
    route_set(&r[0], RP_MATCH_PREFIX, "/a");
    route_set(&r[1], RP_MATCH_EXACT, "/a/b");
    v.nroutes = 2;
    assert_ptr_equal(rp_match_route(&v, "/a/b", 4), &r[0]);

    regfree(&r[3].regex);
}

/* A route with a rewrite, for the tests below; free with regfree(). */
static void
rewrite_set(rp_route_conf_t *r, const char *re, char *to)
{
    memset(r, 0, sizeof(*r));
    r->match = RP_MATCH_ANY;
    r->has_rewrite = 1;
    assert_int_equal(regcomp(&r->rewrite_re, re, REG_EXTENDED), 0);
    r->rewrite_to = to;
}

/* Rewrites path (a C string) into out; returns rp_match_rewrite()'s code. */
static int
rewrite(const rp_route_conf_t *r, const char *path, char *out, size_t outlen)
{
    return rp_match_rewrite(r, path, strlen(path), out, outlen);
}

static void
test_rewrite_captures(void **state)
{
    rp_route_conf_t  r;
    char             out[256];

    (void) state;
    rewrite_set(&r, "^/api/(.*)$", "/%1");
    assert_int_equal(rewrite(&r, "/api/users/7", out, sizeof(out)), 8);
    assert_string_equal(out, "/users/7");
    assert_int_equal(rewrite(&r, "/api/", out, sizeof(out)), 1);
    assert_string_equal(out, "/");
    /* path is not NUL-terminated: '$' is at plen */
    assert_int_equal(rp_match_rewrite(&r, "/api/usersXYZ", 10, out, sizeof(out)), 6);
    assert_string_equal(out, "/users");
    regfree(&r.rewrite_re);

    /* the text around the match is kept; %0 is the whole match */
    rewrite_set(&r, "([a-z]+)-([0-9]+)", "%2_%1_<%0>");
    assert_int_equal(rewrite(&r, "/p/abc-12/q", out, sizeof(out)), 20);
    assert_string_equal(out, "/p/12_abc_<abc-12>/q");
    /* only the first match is replaced */
    rewrite(&r, "/a-1/b-2", out, sizeof(out));
    assert_string_equal(out, "/1_a_<a-1>/b-2");
    regfree(&r.rewrite_re);

    /* unset groups, groups past re_nsub, %% and a '%' before a letter */
    rewrite_set(&r, "(a)|(b)", "[%1][%2][%9]%%%x%");
    assert_int_equal(rewrite(&r, "/b/", out, sizeof(out)), 13);
    assert_string_equal(out, "/[][b][]%%x%/");
    regfree(&r.rewrite_re);

    /* an empty replacement deletes the match */
    rewrite_set(&r, "/v[0-9]+", "");
    assert_int_equal(rewrite(&r, "/v2/x", out, sizeof(out)), 2);
    assert_string_equal(out, "/x");
    regfree(&r.rewrite_re);
}

static void
test_rewrite_declined(void **state)
{
    rp_route_conf_t  r;
    char             out[16];

    (void) state;
    rewrite_set(&r, "^/api/(.*)$", "/%1");
    memset(out, 'Z', sizeof(out));
    assert_int_equal(rewrite(&r, "/other", out, sizeof(out)), RP_DECLINED);
    assert_int_equal(out[0], 'Z');                   /* untouched */
    /* the match would need bytes past plen */
    assert_int_equal(rp_match_rewrite(&r, "/api/x", 4, out, sizeof(out)), RP_DECLINED);

    r.has_rewrite = 0;
    assert_int_equal(rewrite(&r, "/api/x", out, sizeof(out)), RP_DECLINED);
    regfree(&r.rewrite_re);
}

static void
test_rewrite_small_out(void **state)
{
    rp_route_conf_t  r;
    char             buf[16];
    char            *exact;
    size_t           i;

    (void) state;
    rewrite_set(&r, "^/api/(.*)$", "/%1");          /* "/api/users" -> "/users" */

    /* a heap buffer of exactly the size needed: ASan sees any overflow */
    exact = malloc(7);
    assert_non_null(exact);
    assert_int_equal(rewrite(&r, "/api/users", exact, 7), 6);
    assert_string_equal(exact, "/users");
    free(exact);

    /* one byte short, in every part of the output */
    memset(buf, 'Z', sizeof(buf));
    assert_int_equal(rewrite(&r, "/api/users", buf, 6), RP_ERROR);
    for (i = 6; i < sizeof(buf); i++) {
        assert_int_equal(buf[i], 'Z');
    }
    assert_int_equal(rewrite(&r, "/api/users", buf, 1), RP_ERROR);
    assert_int_equal(rewrite(&r, "/api/users", buf, 0), RP_ERROR);
    assert_int_equal(buf[0], '\0');
    regfree(&r.rewrite_re);

    rewrite_set(&r, "foo", "%0%0%0");                /* growth in the replacement */
    memset(buf, 'Z', sizeof(buf));
    assert_int_equal(rewrite(&r, "/foo/", buf, 12), 11);
    assert_string_equal(buf, "/foofoofoo/");
    assert_int_equal(rewrite(&r, "/foo/", buf, 11), RP_ERROR);   /* no room for the NUL */
    assert_int_equal(rewrite(&r, "/foo/", buf, 5), RP_ERROR);    /* inside the replacement */
    regfree(&r.rewrite_re);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_exact_and_case),
        cmocka_unit_test(test_host_port_and_trailing_dot),
        cmocka_unit_test(test_host_ipv6),
        cmocka_unit_test(test_host_wildcards),
        cmocka_unit_test(test_vhost_selection),
        cmocka_unit_test(test_glob_stars_and_questions),
        cmocka_unit_test(test_glob_classes),
        cmocka_unit_test(test_glob_escapes),
        cmocka_unit_test(test_glob_pathological),
        cmocka_unit_test(test_route_kinds_and_order),
        cmocka_unit_test(test_rewrite_captures),
        cmocka_unit_test(test_rewrite_declined),
        cmocka_unit_test(test_rewrite_small_out),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
