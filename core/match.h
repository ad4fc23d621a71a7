/* match.h: choosing a vhost by Host and a route by path, and URI rewriting.
 * Pure functions over the config snapshot: no I/O, no allocation but the
 * caller's buffer. */
#ifndef RP_MATCH_H
#define RP_MATCH_H

#include "rp.h"
#include "config.h"

#include <stddef.h>

/* Host matching: case-insensitive; a port suffix in host (":8080") is ignored;
 * a pattern "*.example.com" matches any name ending in ".example.com" (one or
 * more labels), "www.example.*" any name starting with "www.example.", "*"
 * everything. Returns 1 on match. */
int rp_match_host(const char *pattern, const char *host, size_t hlen);

/* Returns the vhost for host (exact names win over wildcards, then
 * declaration order); the default vhost when none matches; NULL if the config
 * has no vhost at all. */
const rp_vhost_conf_t *rp_match_vhost(const rp_config_t *conf, const char *host, size_t hlen);

/* Glob match of a path: '*' any run of bytes (including '/'), '?' one byte,
 * [abc] / [a-z] / [!a] classes, '\' escapes. Returns 1 on match. */
int rp_match_glob(const char *pattern, const char *s, size_t slen);

/* Returns the first route of v whose path test matches path (the query is
 * not part of path), or NULL. */
const rp_route_conf_t *rp_match_route(const rp_vhost_conf_t *v, const char *path, size_t plen);

/* Applies the route's rewrite to path: the first match of rewrite_re in path
 * is replaced by rewrite_to, where %0..%9 are the captures and %% is '%'.
 * The result goes into out (NUL-terminated). Returns its length; RP_DECLINED
 * when the route has no rewrite or the regex does not match (path unchanged);
 * RP_ERROR when out is too small. */
int rp_match_rewrite(const rp_route_conf_t *r, const char *path, size_t plen,
                     char *out, size_t outlen);

#endif
