/* test_timer.c: lazy deadlines (core/timer.c): a later deadline leaves the
 * pending timer alone, an earlier one moves it, a timer that fires early
 * re-arms itself for the rest and reports expiry only when due. And the
 * held clock (core/rp.c): one reading per hold, fresh after it. And the park
 * queue (core/parkq.c): parked clients' deadlines expire in due order on its
 * one timer, whatever order they were queued in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "parkq.h"
#include "timer.h"

typedef struct {
    struct event       ev;
    struct event_base *base;
    double             at;
    double             due;
    int                fired;             /* callbacks */
    int                expired;           /* ... that found the deadline come */
    double             expired_at;        /* rp_now() then */
} timer_rig_t;

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    timer_rig_t  *t = arg;

    (void) fd;
    (void) what;
    t->fired++;
    if (rp_timer_expired(&t->ev, &t->at, t->due)) {
        t->expired++;
        t->expired_at = rp_now();
        event_base_loopbreak(t->base);
    }
}

static void
rig_setup(timer_rig_t *t)
{
    t->base = event_base_new();
    assert_non_null(t->base);
    evtimer_assign(&t->ev, t->base, on_timer, t);
    t->at = 0;
    t->fired = t->expired = 0;
}

/* Moving the deadline later does not touch the pending timer: it fires at
 * the first deadline, re-arms, and expires at the last one. */
static void
test_later_deadline_fires_early_then_rearms(void **state)
{
    timer_rig_t  t;
    double    t0 = rp_now(), first;

    (void) state;
    rig_setup(&t);
    t.due = t0 + 0.05;
    rp_timer_due(&t.ev, &t.at, t.due);
    first = t.at;
    t.due = t0 + 0.15;
    rp_timer_due(&t.ev, &t.at, t.due);
    assert_true(t.at == first);           /* lazy: not moved */
    event_base_dispatch(t.base);
    assert_int_equal(t.fired, 2);         /* early once, then due */
    assert_int_equal(t.expired, 1);
    assert_true(t.expired_at >= t.due - 0.001);
    assert_true(t.at == 0);
    event_base_free(t.base);
}

/* An earlier deadline moves the timer. */
static void
test_earlier_deadline_moves_timer(void **state)
{
    timer_rig_t  t;
    double    t0 = rp_now();

    (void) state;
    rig_setup(&t);
    rp_timer_due(&t.ev, &t.at, t0 + 10);
    t.due = t0 + 0.05;
    rp_timer_due(&t.ev, &t.at, t.due);
    assert_true(t.at == t.due);
    event_base_dispatch(t.base);
    assert_int_equal(t.fired, 1);
    assert_int_equal(t.expired, 1);
    event_base_free(t.base);
}

/* A stopped timer does not fire; the loop then has nothing to wait for. */
static void
test_stop(void **state)
{
    timer_rig_t  t;

    (void) state;
    rig_setup(&t);
    t.due = rp_now() + 0.01;
    rp_timer_due(&t.ev, &t.at, t.due);
    rp_timer_stop(&t.ev, &t.at);
    assert_true(t.at == 0);
    assert_int_equal(event_base_dispatch(t.base), 1);   /* no events */
    assert_int_equal(t.fired, 0);
    event_base_free(t.base);
}

/* A park queue whose expiries are recorded in order. */
typedef struct {
    rp_parkq_t          q;
    struct event_base  *base;
    rp_parkq_node_t     n[5];
    int                 order[5];         /* indexes of n, in expiry order */
    double              when[5];          /* rp_now() at each expiry       */
    int                 expired;
    int                 stop_after;       /* loopbreak after this many     */
} parkq_rig_t;

static void
on_park_expired(rp_parkq_node_t *n, void *arg)
{
    parkq_rig_t  *r = arg;

    assert_false(rp_parkq_queued(n));     /* out of the queue before the call */
    r->when[r->expired] = rp_now();
    r->order[r->expired++] = (int) (n - r->n);
    if (r->expired == r->stop_after) {
        event_base_loopbreak(r->base);
    }
}

static void
parkq_rig_setup(parkq_rig_t *r)
{
    memset(r, 0, sizeof(*r));
    r->base = event_base_new();
    assert_non_null(r->base);
    rp_parkq_init(&r->q, r->base, on_park_expired, r);
}

/* Nodes queued out of due order (a reload shortened the keep-alive time)
 * expire in due order, each no earlier than its due, and a removed node
 * never expires. */
static void
test_parkq_expires_in_due_order(void **state)
{
    parkq_rig_t  r;
    double       t0 = rp_now();
    static const double  after[5] = { 0.20, 0.25, 0.05, 0.10, 0.15 };
    int          i;

    (void) state;
    parkq_rig_setup(&r);
    for (i = 0; i < 5; i++) {
        r.n[i].due = t0 + after[i];
        rp_parkq_add(&r.q, &r.n[i]);
        assert_true(rp_parkq_queued(&r.n[i]));
    }
    rp_parkq_remove(&r.q, &r.n[4]);       /* due at 0.15: it goes before then */
    assert_false(rp_parkq_queued(&r.n[4]));
    rp_parkq_remove(&r.q, &r.n[4]);       /* twice: nothing */
    r.stop_after = 4;
    event_base_dispatch(r.base);
    assert_int_equal(r.expired, 4);
    assert_int_equal(r.order[0], 2);
    assert_int_equal(r.order[1], 3);
    assert_int_equal(r.order[2], 0);
    assert_int_equal(r.order[3], 1);
    for (i = 0; i < 4; i++) {
        assert_true(r.when[i] >= r.n[r.order[i]].due - 0.001);
    }
    assert_true(r.q.at == 0);             /* empty: the timer is not pending */
    assert_int_equal(event_base_dispatch(r.base), 1);   /* nothing left to wait for */
    rp_parkq_cleanup(&r.q);
    event_base_free(r.base);
}

/* Removing the earliest leaves the timer lazy: it fires for the removed
 * node's due, finds the next one later and re-arms for it. */
static void
test_parkq_remove_head_rearms(void **state)
{
    parkq_rig_t  r;
    double       t0 = rp_now();

    (void) state;
    parkq_rig_setup(&r);
    r.n[0].due = t0 + 0.03;
    r.n[1].due = t0 + 0.12;
    rp_parkq_add(&r.q, &r.n[0]);
    rp_parkq_add(&r.q, &r.n[1]);
    assert_true(r.q.at == r.n[0].due);
    rp_parkq_remove(&r.q, &r.n[0]);
    r.stop_after = 1;
    event_base_dispatch(r.base);
    assert_int_equal(r.expired, 1);
    assert_int_equal(r.order[0], 1);
    assert_true(r.when[0] >= r.n[1].due - 0.001);
    rp_parkq_cleanup(&r.q);
    event_base_free(r.base);
}

/* Cleanup of a queue whose timer is pending (its nodes gone) stops it. */
static void
test_parkq_cleanup_stops_timer(void **state)
{
    parkq_rig_t  r;

    (void) state;
    parkq_rig_setup(&r);
    r.n[0].due = rp_now() + 0.02;
    rp_parkq_add(&r.q, &r.n[0]);
    rp_parkq_remove(&r.q, &r.n[0]);
    rp_parkq_cleanup(&r.q);
    assert_true(r.q.at == 0);
    assert_int_equal(event_base_dispatch(r.base), 1);   /* no events */
    assert_int_equal(r.expired, 0);
    event_base_free(r.base);
}

/* The owner of the last node may free the queue in its expire call (a
 * listener that a reload removed goes with its last client); the queue's
 * timer callback must not touch it after that (ASan would tell). */
typedef struct {
    rp_parkq_t       *q;                  /* heap-allocated: freed by the last expiry */
    rp_parkq_node_t   n[2];
    int               expired;
} parkq_free_rig_t;

static void
on_expired_free_queue(rp_parkq_node_t *n, void *arg)
{
    parkq_free_rig_t  *r = arg;

    r->expired++;
    if (n == &r->n[1]) {                  /* the last: its owner lets the queue go */
        rp_parkq_cleanup(r->q);
        free(r->q);
        r->q = NULL;
    }
}

static void
test_parkq_last_expiry_may_free_queue(void **state)
{
    parkq_free_rig_t    r;
    struct event_base  *base = event_base_new();
    double              t0 = rp_now();

    (void) state;
    memset(&r, 0, sizeof(r));
    r.q = malloc(sizeof(*r.q));
    assert_non_null(r.q);
    rp_parkq_init(r.q, base, on_expired_free_queue, &r);
    r.n[0].due = t0 + 0.02;
    r.n[1].due = t0 + 0.02;               /* both due in the same callback */
    rp_parkq_add(r.q, &r.n[0]);
    rp_parkq_add(r.q, &r.n[1]);
    assert_int_equal(event_base_dispatch(base), 1);   /* returns: nothing left pending */
    assert_int_equal(r.expired, 2);
    assert_null(r.q);
    event_base_free(base);
}

/* Sleeps until the monotonic clock has moved past t. */
static void
wait_past(double t)
{
    struct timespec  ts = { 0, 200000 };   /* 0.2 ms */

    while (rp_clock() <= t) {
        nanosleep(&ts, NULL);
    }
}

static void
test_now_held(void **state)
{
    double  first, again, inner;

    (void) state;
    first = rp_now();
    wait_past(first);
    assert_true(rp_now() > first);         /* not held: every call reads */

    rp_now_hold();
    first = rp_now();
    wait_past(first);
    again = rp_now();
    assert_true(again == first);           /* held: the first reading */
    assert_true(rp_clock() > first);       /* the clock itself moved on */
    rp_now_hold();                         /* holds nest */
    inner = rp_now();
    rp_now_release();
    assert_true(inner == first);
    assert_true(rp_now() == first);        /* still held by the outer one */
    rp_now_release();
    assert_true(rp_now() > first);         /* released: fresh again */

    rp_now_hold();                         /* a new hold reads anew */
    again = rp_now();
    assert_true(again > first);
    rp_now_release();
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_later_deadline_fires_early_then_rearms),
        cmocka_unit_test(test_earlier_deadline_moves_timer),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_parkq_expires_in_due_order),
        cmocka_unit_test(test_parkq_remove_head_rearms),
        cmocka_unit_test(test_parkq_cleanup_stops_timer),
        cmocka_unit_test(test_parkq_last_expiry_may_free_queue),
        cmocka_unit_test(test_now_held),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
