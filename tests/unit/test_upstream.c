/* test_upstream.c: backend connections and pending queues (core/upstream.c)
 * over real loopback sockets: an accept-only server runs in the same
 * event_base as the backends it serves. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upstream.h"
#include "worker.h"

#define MAX_ACCEPTED 32
#define MAX_LOG      16

/* The backend side: accepts and keeps every connection open, never writes
 * unless a test asks it to. */
typedef struct {
    struct evconnlistener  *l;                    /* owned                    */
    uint16_t                port;
    unsigned                accepts;
    evutil_socket_t         fd[MAX_ACCEPTED];     /* owned; -1 once closed    */
    uint16_t                peer_port[MAX_ACCEPTED];
} server_t;

/* One test's world. */
typedef struct {
    struct event_base      *base;                 /* owned                    */
    struct event           *deadline;             /* owned                    */
    int                     timed_out;
    rp_worker_t            *w;                    /* owned: zeroed, not started */
    server_t                srv;
    rp_backend_conf_t       conf[2];
    rp_backend_t           *b[2];
    int                     nb;
    uint64_t                seq;                  /* the worker's pending counter */
    double                  retry;                /* for the next backend; 0: 30 s */
    int                     disabled;             /* ... and whether it is off      */
    rp_target_t             t[2];
    int                     nt;
} fx_t;

/* A request waiting for a connection, as proxy.c embeds one in a client. */
typedef struct {
    rp_pending_t            p;
    int                     id;
    rp_upstream_conn_t     *uc;                   /* given by ready           */
    int                     state_at_ready;
    int                     failed;               /* status given by fail     */
} waiter_t;

static int   served[MAX_LOG], nserved;             /* waiter ids, in ready order */
static int   failed[MAX_LOG], nfailed;             /* waiter ids, in fail order  */

static void
user_on_read(rp_upstream_conn_t *uc, void *arg)
{
}

static void
user_on_drain(rp_upstream_conn_t *uc, void *arg)
{
}

static void
user_on_event(rp_upstream_conn_t *uc, void *arg, short what)
{
}

static const rp_upstream_user_t  user = { user_on_read, user_on_drain, user_on_event, 0 };

static void
waiter_ready(rp_pending_t *p, rp_upstream_conn_t *uc)
{
    waiter_t  *wt = (waiter_t *) p;

    assert_null(p->t);                             /* dequeued before being served */
    wt->uc = uc;
    wt->state_at_ready = uc->state;
    assert_true(nserved < MAX_LOG);
    served[nserved++] = wt->id;
    rp_upstream_bind(uc, &user, wt);
}

static void
waiter_fail(rp_pending_t *p, int status)
{
    waiter_t  *wt = (waiter_t *) p;

    assert_null(p->t);
    wt->failed = status;
    assert_true(nfailed < MAX_LOG);
    failed[nfailed++] = wt->id;
}

static void
waiter_init(waiter_t *wt, int id)
{
    memset(wt, 0, sizeof(*wt));
    wt->id = id;
    wt->p.ready = waiter_ready;
    wt->p.fail = waiter_fail;
}

static void
server_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                 void *arg)
{
    server_t  *s = arg;

    if (s->accepts == MAX_ACCEPTED) {
        evutil_closesocket(fd);
        return;
    }
    s->peer_port[s->accepts] = ntohs(((struct sockaddr_in *) sa)->sin_port);
    s->fd[s->accepts++] = fd;
}

/* The accepted socket whose peer is uc, or -1. */
static evutil_socket_t
server_fd_of(fx_t *fx, const rp_upstream_conn_t *uc)
{
    unsigned  i;

    for (i = 0; i < fx->srv.accepts; i++) {
        if (fx->srv.fd[i] >= 0 && fx->srv.peer_port[i] == uc->local_port) {
            return fx->srv.fd[i];
        }
    }
    return -1;
}

static void
server_close(fx_t *fx, const rp_upstream_conn_t *uc)
{
    unsigned  i;

    for (i = 0; i < fx->srv.accepts; i++) {
        if (fx->srv.fd[i] >= 0 && fx->srv.peer_port[i] == uc->local_port) {
            evutil_closesocket(fx->srv.fd[i]);
            fx->srv.fd[i] = -1;
            return;
        }
    }
    fail_msg("no accepted socket for local port %u", uc->local_port);
}

static void
fx_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    ((fx_t *) arg)->timed_out = 1;
}

static void
fx_arm(fx_t *fx, double s)
{
    struct timeval  tv;

    tv.tv_sec = (time_t) s;
    tv.tv_usec = (suseconds_t) ((s - (double) tv.tv_sec) * 1e6);
    fx->timed_out = 0;
    evtimer_add(fx->deadline, &tv);
}

/* Runs the loop until cond holds or 5 s have passed; the caller asserts cond. */
#define RUN_UNTIL(fx, cond)                                                                        \
    do {                                                                                           \
        fx_arm(fx, 5.0);                                                                           \
        while (!(cond) && !(fx)->timed_out) {                                                      \
            event_base_loop((fx)->base, EVLOOP_ONCE);                                              \
        }                                                                                          \
        evtimer_del((fx)->deadline);                                                               \
    } while (0)

/* Runs the loop for s seconds, whatever happens. */
static void
run_for(fx_t *fx, double s)
{
    fx_arm(fx, s);
    while (!fx->timed_out) {
        event_base_loop(fx->base, EVLOOP_ONCE);
    }
}

/* A loopback port nobody listens on: bound once, then closed. */
static uint16_t
dead_port(void)
{
    struct sockaddr_in  sin;
    socklen_t           len = sizeof(sin);
    int                 fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *) &sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

static int
fx_setup(void **state)
{
    fx_t                *fx = rp_xalloc(sizeof(fx_t));
    struct sockaddr_in   sin;
    socklen_t            len = sizeof(sin);
    unsigned             i;

    fx->base = event_base_new();
    assert_non_null(fx->base);
    fx->deadline = evtimer_new(fx->base, fx_on_deadline, fx);
    fx->w = rp_xalloc(sizeof(rp_worker_t));      /* stopping == 0 */
    fx->w->base = fx->base;
    for (i = 0; i < MAX_ACCEPTED; i++) {
        fx->srv.fd[i] = -1;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fx->srv.l = evconnlistener_new_bind(fx->base, server_on_accept, &fx->srv,
                                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 64,
                                        (struct sockaddr *) &sin, sizeof(sin));
    assert_non_null(fx->srv.l);
    assert_int_equal(getsockname(evconnlistener_get_fd(fx->srv.l), (struct sockaddr *) &sin,
                                 &len), 0);
    fx->srv.port = ntohs(sin.sin_port);
    nserved = nfailed = 0;
    *state = fx;
    return 0;
}

static int
fx_teardown(void **state)
{
    fx_t      *fx = *state;
    unsigned   i;
    int        k;

    for (k = 0; k < fx->nt; k++) {
        rp_target_cleanup(&fx->t[k]);
    }
    for (k = 0; k < fx->nb; k++) {
        rp_backend_unref(fx->b[k]);
        free(fx->conf[k].name);
        free(fx->conf[k].address);
    }
    for (i = 0; i < fx->srv.accepts; i++) {
        if (fx->srv.fd[i] >= 0) {
            evutil_closesocket(fx->srv.fd[i]);
        }
    }
    evconnlistener_free(fx->srv.l);
    event_free(fx->deadline);
    event_base_free(fx->base);
    free(fx->w);
    free(fx);
    return 0;
}

/* Starts the next backend with n connections to port; unless fx->retry says
 * otherwise, a DOWN connection stays DOWN for the whole test. */
static rp_backend_t *
fx_backend(fx_t *fx, unsigned n, uint16_t port)
{
    rp_backend_conf_t   *c = &fx->conf[fx->nb];
    struct sockaddr_in  *sin = (struct sockaddr_in *) &c->addr;
    char                 text[64];

    assert_true(fx->nb < 2);
    memset(c, 0, sizeof(*c));
    snprintf(text, sizeof(text), "127.0.0.1:%u", port);
    c->name = rp_xstrdup(fx->nb == 0 ? "b0" : "b1");
    c->address = rp_xstrdup(text);
    c->port = port;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->addrlen = sizeof(struct sockaddr_in);
    c->connections = n;
    c->retry = fx->retry > 0 ? fx->retry : 30;
    c->retry_max = fx->retry > 0 ? fx->retry : 60;
    c->connect_timeout = 5;
    c->read_timeout = 60;
    c->write_timeout = 60;
    c->high_watermark = 256 * 1024;
    c->enabled = !fx->disabled;
    c->index = (unsigned) fx->nb;
    fx->b[fx->nb] = rp_backend_new(fx->w, fx->base, c, NULL);
    return fx->b[fx->nb++];
}

/* A target over members (copied: the target owns its array). */
static rp_target_t *
fx_target(fx_t *fx, const char *name, rp_backend_t **members, unsigned n)
{
    rp_backend_t  **m = rp_xalloc(n * sizeof(rp_backend_t *));

    assert_true(fx->nt < 2);
    memcpy(m, members, n * sizeof(rp_backend_t *));
    rp_target_init(&fx->t[fx->nt], name, RP_BALANCE_FIRST, m, n, &fx->seq);
    return &fx->t[fx->nt++];
}

static unsigned
count_state(const rp_backend_t *b, rp_uc_state_e s)
{
    unsigned  i, n = 0;

    for (i = 0; i < b->nconns; i++) {
        n += b->conns[i].state == s;
    }
    return n;
}

/* The counters agree with the states, and b->idle holds exactly the IDLE ones. */
static void
check_counts(const rp_backend_t *b)
{
    const rp_upstream_conn_t  *uc;
    unsigned                   n = 0;

    assert_int_equal(b->nidle, count_state(b, RP_UC_IDLE));
    assert_int_equal(b->nactive, count_state(b, RP_UC_ACTIVE));
    assert_int_equal(b->ndown, count_state(b, RP_UC_DOWN));
    TAILQ_FOREACH(uc, &b->idle, link) {
        assert_int_equal(uc->state, RP_UC_IDLE);
        n++;
    }
    assert_int_equal(n, b->nidle);
}

static void
test_connect_to_idle(void **state)
{
    fx_t          *fx = *state;
    rp_backend_t  *b = fx_backend(fx, 3, fx->srv.port);
    unsigned       i;

    assert_int_equal(b->nconns, 3);
    assert_int_equal(count_state(b, RP_UC_CONNECTING), 3);
    assert_int_equal(b->ndown, 0);
    check_counts(b);

    RUN_UNTIL(fx, b->nidle == 3 && fx->srv.accepts == 3);
    assert_int_equal(b->nidle, 3);
    assert_int_equal(fx->srv.accepts, 3);
    check_counts(b);
    for (i = 0; i < 3; i++) {
        assert_int_equal(b->conns[i].state, RP_UC_IDLE);
        assert_non_null(b->conns[i].bev);
        assert_int_not_equal(b->conns[i].local_port, 0);
        assert_true(server_fd_of(fx, &b->conns[i]) >= 0);
    }
    assert_string_equal(rp_upstream_state_name(RP_UC_IDLE), "IDLE");
    assert_string_equal(rp_upstream_state_name(RP_UC_DOWN), "DOWN");
}

static void
test_acquire(void **state)
{
    fx_t                *fx = *state;
    rp_backend_t        *b = fx_backend(fx, 2, fx->srv.port);
    rp_target_t         *t;
    rp_upstream_conn_t  *uc[3] = { NULL, NULL, NULL };
    int                  arg1, arg2;

    t = fx_target(fx, "b0", &b, 1);
    /* connecting: none IDLE yet, but some will be */
    assert_int_equal(rp_target_acquire(t, &user, &arg1, &uc[0]), RP_AGAIN);
    assert_null(uc[0]);

    RUN_UNTIL(fx, b->nidle == 2);
    assert_int_equal(b->nidle, 2);
    assert_int_equal(rp_target_acquire(t, &user, &arg1, &uc[0]), RP_OK);
    assert_int_equal(rp_target_acquire(t, &user, &arg2, &uc[1]), RP_OK);
    assert_non_null(uc[0]);
    assert_non_null(uc[1]);
    assert_ptr_not_equal(uc[0], uc[1]);
    assert_int_equal(uc[0]->state, RP_UC_ACTIVE);
    assert_int_equal(uc[1]->state, RP_UC_ACTIVE);
    assert_ptr_equal(uc[0]->user, &user);
    assert_ptr_equal(uc[0]->arg, &arg1);
    assert_ptr_equal(uc[1]->arg, &arg2);
    assert_ptr_equal(uc[0]->b, b);
    assert_int_equal(rp_target_acquire(t, &user, &arg1, &uc[2]), RP_AGAIN);
    assert_null(uc[2]);
    assert_int_equal(b->nactive, 2);
    assert_int_equal(b->nidle, 0);
    check_counts(b);

    /* released reusable, with nobody waiting: IDLE again, user forgotten */
    rp_upstream_release(uc[0], 1);
    assert_int_equal(uc[0]->state, RP_UC_IDLE);
    assert_null(uc[0]->user);
    assert_null(uc[0]->arg);
    assert_int_equal(uc[0]->served, 1);
    assert_int_equal(rp_target_acquire(t, &user, &arg1, &uc[2]), RP_OK);
    assert_ptr_equal(uc[2], uc[0]);              /* the only IDLE one */
    rp_upstream_release(uc[1], 1);
    rp_upstream_release(uc[2], 1);
    assert_int_equal(b->nidle, 2);
    check_counts(b);

    /* nothing happened on the wire: the same two sockets */
    run_for(fx, 0.05);
    assert_int_equal(fx->srv.accepts, 2);
    assert_int_equal(b->nidle, 2);
}

static void
test_fifo(void **state)
{
    fx_t                *fx = *state;
    rp_backend_t        *b = fx_backend(fx, 2, fx->srv.port);
    rp_target_t         *t;
    rp_upstream_conn_t  *uc[2];
    waiter_t             wt[3];
    int                  i;

    t = fx_target(fx, "b0", &b, 1);
    RUN_UNTIL(fx, b->nidle == 2);
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc[0]), RP_OK);
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc[1]), RP_OK);
    for (i = 0; i < 3; i++) {
        waiter_init(&wt[i], i);
        rp_target_enqueue(t, &wt[i].p);
        assert_ptr_equal(wt[i].p.t, t);
        assert_int_equal(wt[i].p.seq, (uint64_t) i);
    }
    assert_int_equal(t->npending, 3);
    assert_int_equal(fx->seq, 3);

    rp_upstream_release(uc[1], 1);
    assert_int_equal(nserved, 1);
    assert_int_equal(served[0], 0);
    assert_ptr_equal(wt[0].uc, uc[1]);
    assert_int_equal(wt[0].state_at_ready, RP_UC_ACTIVE);
    assert_int_equal(uc[1]->state, RP_UC_ACTIVE);
    assert_int_equal(t->npending, 2);
    assert_int_equal(b->nidle, 0);
    check_counts(b);

    rp_upstream_release(uc[0], 1);
    assert_int_equal(nserved, 2);
    assert_int_equal(served[1], 1);
    assert_ptr_equal(wt[1].uc, uc[0]);
    assert_int_equal(wt[1].state_at_ready, RP_UC_ACTIVE);

    rp_upstream_release(wt[0].uc, 1);
    assert_int_equal(nserved, 3);
    assert_int_equal(served[2], 2);
    assert_ptr_equal(wt[2].uc, uc[1]);
    assert_int_equal(wt[2].state_at_ready, RP_UC_ACTIVE);
    assert_int_equal(t->npending, 0);
    assert_true(TAILQ_EMPTY(&t->pending));

    rp_upstream_release(wt[1].uc, 1);
    rp_upstream_release(wt[2].uc, 1);
    assert_int_equal(nserved, 3);
    assert_int_equal(nfailed, 0);
    assert_int_equal(b->nidle, 2);
    check_counts(b);
}

/* Waiters queued while the connections are still connecting are served by
 * the connect itself, in order. */
static void
test_served_on_connect(void **state)
{
    fx_t          *fx = *state;
    rp_backend_t        *b = fx_backend(fx, 2, fx->srv.port);
    rp_target_t         *t;
    rp_upstream_conn_t  *uc;
    waiter_t             wt[3];
    int                  i;

    t = fx_target(fx, "b0", &b, 1);
    for (i = 0; i < 3; i++) {
        assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_AGAIN);
        waiter_init(&wt[i], i);
        rp_target_enqueue(t, &wt[i].p);
    }
    RUN_UNTIL(fx, nserved == 2);
    assert_int_equal(nserved, 2);
    assert_int_equal(served[0], 0);
    assert_int_equal(served[1], 1);
    assert_int_equal(wt[0].state_at_ready, RP_UC_ACTIVE);
    assert_int_equal(t->npending, 1);
    assert_int_equal(b->nactive, 2);
    rp_upstream_release(wt[1].uc, 1);
    assert_int_equal(nserved, 3);
    assert_int_equal(served[2], 2);
    rp_upstream_release(wt[0].uc, 1);
    rp_upstream_release(wt[2].uc, 1);
    assert_int_equal(b->nidle, 2);
}

static void
test_two_targets_oldest_first(void **state)
{
    fx_t                *fx = *state;
    rp_backend_t        *b = fx_backend(fx, 1, fx->srv.port);
    rp_target_t         *pool, *single;
    rp_upstream_conn_t  *uc;
    waiter_t             wt[5];
    rp_target_t         *on[5];
    int                  i;

    pool = fx_target(fx, "pool", &b, 1);
    single = fx_target(fx, "b0", &b, 1);
    on[0] = single;
    on[1] = pool;
    on[2] = pool;
    on[3] = single;
    on[4] = pool;
    assert_int_equal(b->ntargets, 2);
    RUN_UNTIL(fx, b->nidle == 1);
    assert_int_equal(rp_target_acquire(pool, &user, NULL, &uc), RP_OK);
    for (i = 0; i < 5; i++) {
        waiter_init(&wt[i], i);
        rp_target_enqueue(on[i], &wt[i].p);
    }
    assert_int_equal(pool->npending, 3);
    assert_int_equal(single->npending, 2);

    /* the one connection goes round in arrival order, across both queues */
    for (i = 0; i < 5; i++) {
        rp_upstream_release(uc, 1);
        assert_int_equal(nserved, i + 1);
        assert_int_equal(served[i], i);
        assert_ptr_equal(wt[i].uc, uc);
        assert_int_equal(uc->state, RP_UC_ACTIVE);
    }
    assert_int_equal(pool->npending + single->npending, 0);
    rp_upstream_release(uc, 1);
    assert_int_equal(uc->state, RP_UC_IDLE);
    assert_int_equal(fx->srv.accepts, 1);
}

static void
test_down_declined(void **state)
{
    fx_t                *fx = *state;
    rp_backend_t        *b = fx_backend(fx, 2, dead_port());
    rp_target_t         *t;
    rp_upstream_conn_t  *uc = NULL;
    waiter_t             wt[2];
    unsigned             i;

    t = fx_target(fx, "b0", &b, 1);
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_AGAIN);  /* still connecting */
    waiter_init(&wt[0], 0);
    waiter_init(&wt[1], 1);
    rp_target_enqueue(t, &wt[0].p);
    rp_target_enqueue(t, &wt[1].p);

    RUN_UNTIL(fx, b->ndown == 2);
    assert_int_equal(b->ndown, 2);
    check_counts(b);
    for (i = 0; i < 2; i++) {
        assert_int_equal(b->conns[i].state, RP_UC_DOWN);
        assert_null(b->conns[i].bev);
        assert_true(evtimer_pending(b->conns[i].retry, NULL));   /* reconnects later */
    }
    /* every connection is down: the waiters hear 502 at once, in order */
    assert_int_equal(nfailed, 2);
    assert_int_equal(failed[0], 0);
    assert_int_equal(failed[1], 1);
    assert_int_equal(wt[0].failed, 502);
    assert_int_equal(wt[1].failed, 502);
    assert_int_equal(nserved, 0);
    assert_int_equal(t->npending, 0);
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_DECLINED);
    assert_null(uc);
}

/* One dead member of a pool strands nobody while another is up. */
static void
test_down_member_of_pool(void **state)
{
    fx_t                *fx = *state;
    rp_backend_t        *dead = fx_backend(fx, 1, dead_port());
    rp_backend_t        *live = fx_backend(fx, 1, fx->srv.port);
    rp_backend_t        *members[2] = { dead, live };
    rp_target_t         *t;
    rp_upstream_conn_t  *uc = NULL;
    waiter_t             wt;

    t = fx_target(fx, "pool", members, 2);
    waiter_init(&wt, 0);
    rp_target_enqueue(t, &wt.p);
    RUN_UNTIL(fx, dead->ndown == 1 && nserved == 1);
    assert_int_equal(dead->ndown, 1);
    assert_int_equal(nfailed, 0);
    assert_int_equal(nserved, 1);
    assert_ptr_equal(wt.uc->b, live);
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_AGAIN);
    rp_upstream_release(wt.uc, 1);
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_OK);
    assert_ptr_equal(uc->b, live);
    rp_upstream_release(uc, 1);
}

static void
test_disabled_backend(void **state)
{
    fx_t                *fx = *state;
    rp_backend_t        *b;
    rp_target_t         *t;
    rp_upstream_conn_t  *uc = NULL;

    fx->disabled = 1;
    b = fx_backend(fx, 4, fx->srv.port);
    assert_int_equal(b->nconns, 0);
    t = fx_target(fx, "off", &b, 1);
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_DECLINED);
    assert_null(uc);
    run_for(fx, 0.02);
    assert_int_equal(fx->srv.accepts, 0);
}

static void
test_release_not_reusable(void **state)
{
    fx_t                *fx = *state;
    rp_backend_t        *b = fx_backend(fx, 1, fx->srv.port);
    rp_target_t         *t;
    rp_upstream_conn_t  *uc;
    waiter_t             wt;
    uint16_t             port;

    t = fx_target(fx, "b0", &b, 1);
    RUN_UNTIL(fx, b->nidle == 1);
    assert_int_equal(fx->srv.accepts, 1);
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_OK);
    port = uc->local_port;

    rp_upstream_release(uc, 0);
    assert_int_equal(uc->state, RP_UC_CONNECTING);
    assert_null(uc->user);
    assert_int_equal(b->nactive, 0);
    check_counts(b);
    RUN_UNTIL(fx, uc->state == RP_UC_IDLE && fx->srv.accepts == 2);
    assert_int_equal(uc->state, RP_UC_IDLE);
    assert_int_equal(fx->srv.accepts, 2);
    assert_int_not_equal(uc->local_port, port);
    check_counts(b);

    /* a waiter queued behind a closed socket is served by its replacement */
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_OK);
    waiter_init(&wt, 7);
    rp_target_enqueue(t, &wt.p);
    rp_upstream_release(uc, 0);
    assert_int_equal(nserved, 0);
    RUN_UNTIL(fx, nserved == 1);
    assert_int_equal(nserved, 1);
    assert_ptr_equal(wt.uc, uc);
    assert_int_equal(wt.state_at_ready, RP_UC_ACTIVE);
    assert_int_equal(fx->srv.accepts, 3);
    rp_upstream_release(uc, 1);
    assert_int_equal(uc->state, RP_UC_IDLE);
}

/* Response bytes left unread make a socket unfit for the next request. */
static void
test_release_with_stray_bytes(void **state)
{
    fx_t                *fx = *state;
    rp_backend_t        *b = fx_backend(fx, 1, fx->srv.port);
    rp_target_t         *t;
    rp_upstream_conn_t  *uc;

    t = fx_target(fx, "b0", &b, 1);
    RUN_UNTIL(fx, b->nidle == 1);
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_OK);
    assert_int_equal(write(server_fd_of(fx, uc), "HTTP/1.1 200 OK\r\n", 17), 17);
    RUN_UNTIL(fx, evbuffer_get_length(bufferevent_get_input(uc->bev)) == 17);
    rp_upstream_release(uc, 1);
    assert_int_equal(uc->state, RP_UC_CONNECTING);
    RUN_UNTIL(fx, uc->state == RP_UC_IDLE);
    assert_int_equal(uc->state, RP_UC_IDLE);
    assert_int_equal(fx->srv.accepts, 2);
}

/* An IDLE socket the backend closes (one that has served), or writes to,
 * is replaced at once. */
static void
test_idle_closed_or_chatty(void **state)
{
    fx_t                *fx = *state;
    rp_backend_t        *b = fx_backend(fx, 1, fx->srv.port);
    rp_upstream_conn_t  *uc = &b->conns[0];

    RUN_UNTIL(fx, b->nidle == 1);
    uc->served = 1;                        /* a kept connection, not a fresh one */
    server_close(fx, uc);
    RUN_UNTIL(fx, fx->srv.accepts == 2 && uc->state == RP_UC_IDLE);
    assert_int_equal(fx->srv.accepts, 2);
    assert_int_equal(uc->state, RP_UC_IDLE);
    check_counts(b);

    assert_int_equal(write(server_fd_of(fx, uc), "x", 1), 1);
    RUN_UNTIL(fx, fx->srv.accepts == 3 && uc->state == RP_UC_IDLE);
    assert_int_equal(fx->srv.accepts, 3);
    assert_int_equal(uc->state, RP_UC_IDLE);
    check_counts(b);
}

/* A socket the backend closes as soon as it accepted it, having served
 * nothing, is a failed connect: DOWN, reconnected after the backoff, not at
 * once (a forwarder with no target drew tens of thousands a second). */
static void
test_idle_closed_at_once_is_a_failed_connect(void **state)
{
    fx_t                *fx = *state;
    rp_backend_t        *b = fx_backend(fx, 1, fx->srv.port);
    rp_upstream_conn_t  *uc = &b->conns[0];

    RUN_UNTIL(fx, b->nidle == 1);
    server_close(fx, uc);
    RUN_UNTIL(fx, uc->state == RP_UC_DOWN);
    assert_int_equal(uc->state, RP_UC_DOWN);
    assert_true(evtimer_pending(uc->retry, NULL));   /* reconnects after retry (30 s) */
    assert_int_equal(fx->srv.accepts, 1);
    assert_int_equal(b->failures, 1);
    check_counts(b);
}

static void
test_dequeue(void **state)
{
    fx_t                *fx = *state;
    rp_backend_t        *b = fx_backend(fx, 1, fx->srv.port);
    rp_target_t         *t;
    rp_upstream_conn_t  *uc;
    waiter_t             wt[3];
    int                  i;

    t = fx_target(fx, "b0", &b, 1);
    RUN_UNTIL(fx, b->nidle == 1);
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_OK);
    for (i = 0; i < 3; i++) {
        waiter_init(&wt[i], i);
        rp_target_enqueue(t, &wt[i].p);
    }
    rp_target_dequeue(&wt[1].p);
    assert_null(wt[1].p.t);
    assert_int_equal(t->npending, 2);
    rp_target_dequeue(&wt[1].p);                  /* twice: harmless */
    assert_int_equal(t->npending, 2);

    rp_upstream_release(uc, 1);
    rp_upstream_release(uc, 1);
    assert_int_equal(nserved, 2);
    assert_int_equal(served[0], 0);
    assert_int_equal(served[1], 2);
    rp_upstream_release(uc, 1);
    assert_int_equal(uc->state, RP_UC_IDLE);
    assert_int_equal(nserved, 2);
    assert_null(wt[1].uc);
    assert_int_equal(wt[1].failed, 0);

    /* the last waiter leaving empties the queue: a new request goes straight in */
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_OK);
    waiter_init(&wt[0], 9);
    rp_target_enqueue(t, &wt[0].p);
    rp_target_dequeue(&wt[0].p);
    assert_true(TAILQ_EMPTY(&t->pending));
    rp_upstream_release(uc, 1);
    assert_int_equal(nserved, 2);
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_OK);
    rp_upstream_release(uc, 1);
}

/* A dequeued waiter is not failed when the backend goes down. */
static void
test_dequeue_then_down(void **state)
{
    fx_t          *fx = *state;
    rp_backend_t  *b = fx_backend(fx, 1, dead_port());
    rp_target_t   *t;
    waiter_t       wt[2];

    t = fx_target(fx, "b0", &b, 1);
    waiter_init(&wt[0], 0);
    waiter_init(&wt[1], 1);
    rp_target_enqueue(t, &wt[0].p);
    rp_target_enqueue(t, &wt[1].p);
    rp_target_dequeue(&wt[0].p);
    RUN_UNTIL(fx, b->ndown == 1);
    assert_int_equal(nfailed, 1);
    assert_int_equal(failed[0], 1);
    assert_int_equal(wt[0].failed, 0);
}

/* A DOWN connection retries after its backoff and, once the backend is back,
 * turns IDLE and serves the queue; its backoff starts over. */
static void
test_down_then_back(void **state)
{
    fx_t                *fx = *state;
    uint16_t             port = dead_port();
    rp_backend_t        *b;
    rp_upstream_conn_t  *uc;
    rp_target_t         *t;
    server_t             late;
    struct sockaddr_in   sin;
    waiter_t             wt;
    unsigned             i;

    fx->retry = 0.05;
    b = fx_backend(fx, 1, port);
    uc = &b->conns[0];
    t = fx_target(fx, "b0", &b, 1);
    RUN_UNTIL(fx, b->ndown == 1);
    assert_int_equal(uc->state, RP_UC_DOWN);
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_DECLINED);
    uc = &b->conns[0];

    /* the backend comes up: the next retry finds it */
    memset(&late, 0, sizeof(late));
    for (i = 0; i < MAX_ACCEPTED; i++) {
        late.fd[i] = -1;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    late.l = evconnlistener_new_bind(fx->base, server_on_accept, &late,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                     (struct sockaddr *) &sin, sizeof(sin));
    assert_non_null(late.l);
    RUN_UNTIL(fx, uc->state == RP_UC_IDLE);
    assert_int_equal(uc->state, RP_UC_IDLE);
    assert_int_equal(late.accepts, 1);
    assert_true(uc->backoff == 0.05);
    check_counts(b);

    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_OK);
    waiter_init(&wt, 0);
    rp_target_enqueue(t, &wt.p);
    rp_upstream_release(uc, 1);
    assert_int_equal(nserved, 1);
    rp_upstream_release(uc, 1);

    for (i = 0; i < late.accepts; i++) {
        evutil_closesocket(late.fd[i]);
    }
    evconnlistener_free(late.l);
}

/* During a graceful stop a released socket is closed, not reused. Once that
 * leaves every connection DOWN, a request still queued must hear about it
 * (served or 502, DESIGN.md "Targets"), not wait for pending_timeout. */
static void
test_stopping_strands_nobody(void **state)
{
    fx_t                *fx = *state;
    rp_backend_t        *b = fx_backend(fx, 1, fx->srv.port);
    rp_target_t         *t;
    rp_upstream_conn_t  *uc;
    waiter_t             wt;

    t = fx_target(fx, "b0", &b, 1);
    RUN_UNTIL(fx, b->nidle == 1);
    assert_int_equal(rp_target_acquire(t, &user, NULL, &uc), RP_OK);
    waiter_init(&wt, 0);
    rp_target_enqueue(t, &wt.p);

    fx->w->stopping = 1;
    rp_upstream_release(uc, 1);
    run_for(fx, 0.05);
    check_counts(b);
    if (nserved == 0) {
        assert_int_equal(uc->state, RP_UC_DOWN);
        assert_int_equal(b->ndown, b->nconns);
        assert_int_equal(nfailed, 1);              /* neither served nor failed */
        assert_int_equal(wt.failed, 502);
        assert_int_equal(t->npending, 0);
    }
    rp_target_dequeue(&wt.p);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_to_idle, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_acquire, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_fifo, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_served_on_connect, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_two_targets_oldest_first, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_down_declined, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_down_member_of_pool, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_disabled_backend, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_release_not_reusable, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_release_with_stray_bytes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_idle_closed_or_chatty, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_idle_closed_at_once_is_a_failed_connect, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_dequeue, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dequeue_then_down, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_down_then_back, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stopping_strands_nobody, fx_setup, fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
