/* rp.h: forward typedefs, return codes and the few helpers every rproxy file uses. */
#ifndef RP_H
#define RP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#define RP_OK        0
#define RP_ERROR    -1
#define RP_AGAIN    -2
#define RP_DECLINED -3
#define RP_DONE     -4

typedef struct rp_config_s        rp_config_t;
typedef struct rp_backend_conf_s  rp_backend_conf_t;
typedef struct rp_pool_conf_s     rp_pool_conf_t;
typedef struct rp_listen_conf_s   rp_listen_conf_t;
typedef struct rp_vhost_conf_s    rp_vhost_conf_t;
typedef struct rp_route_conf_s    rp_route_conf_t;
typedef struct rp_access_log_s    rp_access_log_t;
typedef struct rp_server_s        rp_server_t;
typedef struct rp_worker_s        rp_worker_t;
typedef struct rp_http_conn_s     rp_http_conn_t;
typedef struct rp_client_s        rp_client_t;
typedef struct rp_upstream_s      rp_upstream_t;
typedef struct rp_upstream_conn_s rp_upstream_conn_t;
typedef struct rp_backend_s       rp_backend_t;
typedef struct rp_target_s        rp_target_t;

#define RP_UNUSED(x) (void) (x)

/* Zeroed allocation for fixed-size structs; aborts on OOM (a budget guards
 * everything a client or script can grow, so OOM here is not recoverable). */
void *rp_xalloc(size_t size);
void *rp_xrealloc(void *p, size_t size);
char *rp_xstrdup(const char *s);
char *rp_xstrndup(const char *s, size_t n);

/* Monotonic clock in seconds, read now. */
double rp_clock(void);

/* The time of the event being handled: rp_clock(), except between
 * rp_now_hold() and rp_now_release(), where the first call reads the clock
 * and the others return that reading. A read callback holds it, so the
 * half-dozen timestamps one read takes (head parsed, proxying started,
 * request sent, ...) cost one clock read, not one each: the vDSO read was
 * 2 % of a keep-alive request's CPU. Like nginx's cached time, it does not
 * move during a callback, however long a hook runs; what a script can spin
 * on (shared dictionary expiry) reads rp_clock(). Per thread; holds nest. */
double rp_now(void);
void rp_now_hold(void);
void rp_now_release(void);

/* s seconds (none when s < 0: a deadline already past) as the struct timeval
 * libevent takes. */
struct timeval rp_timeval(double s);

#endif
