/* test_balancer.c: the built-in balancers (core/balancer.c) over hand-made
 * peer tables. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "balancer.h"

#define NPICKS 10000

static const rp_balance_e all_methods[] = {
    RP_BALANCE_RTT, RP_BALANCE_ROUNDROBIN, RP_BALANCE_MOST_IDLE,
    RP_BALANCE_RANDOM, RP_BALANCE_FIRST,
};

#define NMETHODS (sizeof(all_methods) / sizeof(all_methods[0]))

static int
near(double a, double b)
{
    return a - b < 1e-12 && b - a < 1e-12;
}

/* Picks NPICKS times and counts the picks of each peer in counts[n]. */
static void
pick_many(rp_balance_e m, const rp_balancer_peer_t *peers, unsigned n, rp_balancer_state_t *st,
          unsigned *counts)
{
    unsigned  i;
    int       k;

    memset(counts, 0, n * sizeof(counts[0]));
    for (i = 0; i < NPICKS; i++) {
        k = rp_balancer_pick(m, peers, n, st);
        assert_in_range(k, 0, n - 1);
        counts[k]++;
    }
}

static void
test_none_idle(void **state)
{
    rp_balancer_peer_t   peers[3];
    rp_balancer_state_t  st;
    size_t               i;

    (void) state;
    memset(peers, 0, sizeof(peers));
    peers[1].active = 4;                  /* busy, up, measured: still no idle */
    peers[1].up = 4;
    peers[1].rtt = 0.01;
    for (i = 0; i < NMETHODS; i++) {
        memset(&st, 0, sizeof(st));
        assert_int_equal(rp_balancer_pick(all_methods[i], peers, 3, &st), -1);
        assert_int_equal(rp_balancer_pick(all_methods[i], peers, 0, &st), -1);
        assert_int_equal(rp_balancer_pick(all_methods[i], NULL, 0, &st), -1);
    }
    memset(&st, 0, sizeof(st));
    assert_int_equal(rp_balancer_pick((rp_balance_e) 99, peers, 3, &st), -1);
}

static void
test_first(void **state)
{
    rp_balancer_peer_t   peers[4] = {{.idle = 0}, {.idle = 2}, {.idle = 5}, {.idle = 1}};
    rp_balancer_state_t  st = {0};

    (void) state;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_FIRST, peers, 4, &st), 1);
    assert_int_equal(rp_balancer_pick(RP_BALANCE_FIRST, peers, 4, &st), 1);
    peers[1].idle = 0;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_FIRST, peers, 4, &st), 2);
    peers[0].idle = 1;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_FIRST, peers, 4, &st), 0);
}

static void
test_most_idle(void **state)
{
    rp_balancer_peer_t   peers[4] = {{.idle = 1}, {.idle = 3}, {.idle = 3}, {.idle = 0}};
    rp_balancer_state_t  st = {0};

    (void) state;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_MOST_IDLE, peers, 4, &st), 1);  /* tie: lower */
    peers[2].idle = 4;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_MOST_IDLE, peers, 4, &st), 2);
    peers[3].idle = 9;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_MOST_IDLE, peers, 4, &st), 3);
    memset(peers, 0, sizeof(peers));
    peers[3].idle = 1;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_MOST_IDLE, peers, 4, &st), 3);
}

static void
test_rtt(void **state)
{
    rp_balancer_peer_t   peers[3];
    rp_balancer_state_t  st = {0};

    (void) state;
    memset(peers, 0, sizeof(peers));
    peers[0] = (rp_balancer_peer_t) {.idle = 1, .rtt = 0.5};
    peers[1] = (rp_balancer_peer_t) {.idle = 1, .rtt = 0.1};
    peers[2] = (rp_balancer_peer_t) {.idle = 0, .rtt = 0.01};   /* fastest, but no idle */
    assert_int_equal(rp_balancer_pick(RP_BALANCE_RTT, peers, 3, &st), 1);

    /* an unmeasured peer goes first, however fast the others are */
    peers[2] = (rp_balancer_peer_t) {.idle = 1, .rtt = 0};
    assert_int_equal(rp_balancer_pick(RP_BALANCE_RTT, peers, 3, &st), 2);
    peers[0].rtt = 0.000001;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_RTT, peers, 3, &st), 2);
    /* ... unless it has no idle connection */
    peers[2].idle = 0;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_RTT, peers, 3, &st), 0);

    /* ties: fewer active, then the lower index */
    peers[0] = (rp_balancer_peer_t) {.idle = 1, .active = 3, .rtt = 0.2};
    peers[1] = (rp_balancer_peer_t) {.idle = 1, .active = 1, .rtt = 0.2};
    peers[2] = (rp_balancer_peer_t) {.idle = 1, .active = 1, .rtt = 0.2};
    assert_int_equal(rp_balancer_pick(RP_BALANCE_RTT, peers, 3, &st), 1);
    peers[1].active = 3;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_RTT, peers, 3, &st), 2);
    peers[2].active = 3;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_RTT, peers, 3, &st), 0);
    /* unmeasured ties too */
    peers[0].rtt = peers[1].rtt = peers[2].rtt = 0;
    peers[2].active = 0;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_RTT, peers, 3, &st), 2);
}

static void
test_roundrobin_order(void **state)
{
    rp_balancer_peer_t   peers[3] = {{.idle = 1}, {.idle = 1}, {.idle = 1}};
    rp_balancer_state_t  st = {0};
    static const int     all[] = {0, 1, 2, 0, 1, 2, 0};
    static const int     skip1[] = {0, 2, 0, 2};
    size_t               i;

    (void) state;
    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        assert_int_equal(rp_balancer_pick(RP_BALANCE_ROUNDROBIN, peers, 3, &st), all[i]);
    }
    st.rr_next = 0;
    peers[1].idle = 0;
    for (i = 0; i < sizeof(skip1) / sizeof(skip1[0]); i++) {
        assert_int_equal(rp_balancer_pick(RP_BALANCE_ROUNDROBIN, peers, 3, &st), skip1[i]);
    }
    assert_int_equal(st.rr_next, 0);

    /* a skipped peer does not hand its turn to its neighbour twice */
    st.rr_next = 1;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_ROUNDROBIN, peers, 3, &st), 2);
    assert_int_equal(st.rr_next, 0);
    assert_int_equal(rp_balancer_pick(RP_BALANCE_ROUNDROBIN, peers, 3, &st), 0);

    /* a cursor left past n by a smaller pool after a reload is still valid */
    peers[1].idle = 1;
    st.rr_next = 7;                       /* 7 % 3 == 1 */
    assert_int_equal(rp_balancer_pick(RP_BALANCE_ROUNDROBIN, peers, 3, &st), 1);

    /* none idle: -1 and the cursor stays */
    memset(peers, 0, sizeof(peers));
    st.rr_next = 2;
    assert_int_equal(rp_balancer_pick(RP_BALANCE_ROUNDROBIN, peers, 3, &st), -1);
    assert_int_equal(st.rr_next, 2);
}

static void
test_roundrobin_even(void **state)
{
    rp_balancer_peer_t   peers[4] = {{.idle = 1}, {.idle = 7}, {.idle = 2}, {.idle = 1}};
    rp_balancer_state_t  st = {0};
    unsigned             counts[4], i;

    (void) state;
    pick_many(RP_BALANCE_ROUNDROBIN, peers, 4, &st, counts);
    for (i = 0; i < 4; i++) {
        assert_int_equal(counts[i], NPICKS / 4);
    }
    pick_many(RP_BALANCE_ROUNDROBIN, peers, 3, &st, counts);
    for (i = 0; i < 3; i++) {
        assert_in_range(counts[i], NPICKS / 3, NPICKS / 3 + 1);
    }
}

/* Over NPICKS picks among k peers, each count is binomial: its standard
 * deviation is under 50, so +-10% (>= 5 sigma) fails only when broken. */
static void
check_random_even(rp_balancer_state_t *st)
{
    rp_balancer_peer_t   peers[5] = {{.idle = 1}, {.idle = 1}, {.idle = 1}, {.idle = 1}, {.idle = 1}};
    unsigned             counts[5], i;

    pick_many(RP_BALANCE_RANDOM, peers, 4, st, counts);
    for (i = 0; i < 4; i++) {
        assert_in_range(counts[i], NPICKS / 4 - NPICKS / 40, NPICKS / 4 + NPICKS / 40);
    }
    /* only peers with an idle connection, evenly among them */
    peers[0].idle = 0;
    peers[2].idle = 0;
    pick_many(RP_BALANCE_RANDOM, peers, 5, st, counts);
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[2], 0);
    assert_in_range(counts[1], NPICKS / 3 - NPICKS / 30, NPICKS / 3 + NPICKS / 30);
    assert_in_range(counts[3], NPICKS / 3 - NPICKS / 30, NPICKS / 3 + NPICKS / 30);
    assert_in_range(counts[4], NPICKS / 3 - NPICKS / 30, NPICKS / 3 + NPICKS / 30);
    assert_int_equal(counts[1] + counts[3] + counts[4], NPICKS);
}

static void
test_random(void **state)
{
    rp_balancer_state_t  st = {0};
    rp_balancer_state_t  a = {.rng = 42}, b = {.rng = 42};
    rp_balancer_peer_t   peers[8];
    unsigned             i;

    (void) state;
    check_random_even(&st);              /* seeded by the balancer */
    assert_true(st.rng != 0);
    st.rng = 0x123456789abcdefULL;       /* and from a given seed */
    check_random_even(&st);

    /* a given state gives a given sequence */
    memset(peers, 0, sizeof(peers));
    for (i = 0; i < 8; i++) {
        peers[i].idle = 1;
    }
    for (i = 0; i < 100; i++) {
        assert_int_equal(rp_balancer_pick(RP_BALANCE_RANDOM, peers, 8, &a),
                         rp_balancer_pick(RP_BALANCE_RANDOM, peers, 8, &b));
    }
    /* a single idle peer is always the one */
    memset(peers, 0, sizeof(peers));
    peers[6].idle = 1;
    for (i = 0; i < 100; i++) {
        assert_int_equal(rp_balancer_pick(RP_BALANCE_RANDOM, peers, 8, &st), 6);
    }
}

static void
test_parse_and_name(void **state)
{
    static const char *names[] = {"rtt", "roundrobin", "most_idle", "random", "first"};
    rp_balance_e       m;
    size_t             i;

    (void) state;
    for (i = 0; i < NMETHODS; i++) {
        m = (rp_balance_e) 99;
        assert_int_equal(rp_balancer_parse(names[i], &m), RP_OK);
        assert_int_equal(m, all_methods[i]);
        assert_string_equal(rp_balancer_name(all_methods[i]), names[i]);
    }
    m = RP_BALANCE_FIRST;
    assert_int_equal(rp_balancer_parse("RTT", &m), RP_ERROR);
    assert_int_equal(rp_balancer_parse("round_robin", &m), RP_ERROR);
    assert_int_equal(rp_balancer_parse("", &m), RP_ERROR);
    assert_int_equal(rp_balancer_parse(NULL, &m), RP_ERROR);
    assert_int_equal(m, RP_BALANCE_FIRST);           /* untouched on error */
    assert_string_equal(rp_balancer_name((rp_balance_e) 99), "unknown");
}

static void
test_rtt_update(void **state)
{
    double    e;
    unsigned  i;

    (void) state;
    assert_true(near(rp_balancer_rtt_update(0, 0.2), 0.2));
    assert_true(near(rp_balancer_rtt_update(0.2, 0.4), 0.26));
    assert_true(near(rp_balancer_rtt_update(0.4, 0.2), 0.34));
    assert_true(near(rp_balancer_rtt_update(0.3, 0.3), 0.3));
    /* converges to a steady sample */
    e = 0;
    for (i = 0; i < 200; i++) {
        e = rp_balancer_rtt_update(e, i < 100 ? 1.0 : 0.05);
    }
    assert_true(near(e, 0.05));
    /* a measured peer never reads as unmeasured */
    assert_true(rp_balancer_rtt_update(0, 0) > 0);
    assert_true(rp_balancer_rtt_update(0, -1) > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none_idle),
        cmocka_unit_test(test_first),
        cmocka_unit_test(test_most_idle),
        cmocka_unit_test(test_rtt),
        cmocka_unit_test(test_roundrobin_order),
        cmocka_unit_test(test_roundrobin_even),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_parse_and_name),
        cmocka_unit_test(test_rtt_update),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
