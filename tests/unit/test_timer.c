/* test_timer.c: lazy deadlines (core/timer.c): a later deadline leaves the
 * pending timer alone, an earlier one moves it, a timer that fires early
 * re-arms itself for the rest and reports expiry only when due. And the
 * held clock (core/rp.c): one reading per hold, fresh after it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/event_struct.h>

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
        cmocka_unit_test(test_now_held),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
