/* balancer.c: the built-in balancers. Each is a pure choice over what a
 * worker knows of a pool's peers; only the roundrobin cursor and the random
 * state carry over from one pick to the next. */
#include "balancer.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

/* Weight of a new rtt sample: the average follows a change within a few
 * requests, yet one slow answer moves it by less than a third. */
#define BALANCER_RTT_ALPHA 0.3

/* The smallest rtt kept, s: a measured peer must never look unmeasured (0). */
#define BALANCER_RTT_MIN 1e-9

static const struct {
    const char    *name;
    rp_balance_e   method;
} balancer_names[] = {
    {"rtt", RP_BALANCE_RTT},
    {"roundrobin", RP_BALANCE_ROUNDROBIN},
    {"most_idle", RP_BALANCE_MOST_IDLE},
    {"random", RP_BALANCE_RANDOM},
    {"first", RP_BALANCE_FIRST},
};

#define BALANCER_NNAMES (sizeof(balancer_names) / sizeof(balancer_names[0]))

/* 1 when a is a better rtt choice than b: unmeasured first (so that every
 * backend gets a sample), then the lower rtt, then the fewer active. */
static int
balancer_rtt_better(const rp_balancer_peer_t *a, const rp_balancer_peer_t *b)
{
    if ((a->rtt == 0) != (b->rtt == 0)) {
        return a->rtt == 0;
    }
    if (a->rtt != b->rtt) {
        return a->rtt < b->rtt;
    }
    return a->active < b->active;
}

static int
balancer_rtt(const rp_balancer_peer_t *peers, unsigned n)
{
    unsigned  i;
    int       best = -1;

    for (i = 0; i < n; i++) {
        if (peers[i].idle > 0 && (best < 0 || balancer_rtt_better(&peers[i], &peers[best]))) {
            best = (int) i;
        }
    }
    return best;
}

/* The cursor moves past the peer chosen, not by one: a peer with no idle
 * connection is skipped without giving its turn to its neighbour twice. */
static int
balancer_roundrobin(const rp_balancer_peer_t *peers, unsigned n, rp_balancer_state_t *st)
{
    unsigned  k, i;

    for (k = 0; k < n; k++) {
        i = (unsigned) (((uint64_t) st->rr_next + k) % n);
        if (peers[i].idle > 0) {
            st->rr_next = (i + 1) % n;
            return (int) i;
        }
    }
    return -1;
}

static int
balancer_most_idle(const rp_balancer_peer_t *peers, unsigned n)
{
    unsigned  i;
    int       best = -1;

    for (i = 0; i < n; i++) {
        if (peers[i].idle > 0 && (best < 0 || peers[i].idle > peers[best].idle)) {
            best = (int) i;
        }
    }
    return best;
}

/* splitmix64's finaliser: spreads a weak seed over all 64 bits. */
static uint64_t
balancer_mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* xorshift64* (Vigna 2016): fast, good enough for spreading load, and its
 * state is one word per pool per worker, so no lock and no shared state.
 * The seed mixes the clock with the state's address so that workers, which
 * start at the same instant, still draw different sequences. */
static uint64_t
balancer_rng_next(rp_balancer_state_t *st)
{
    uint64_t  x = st->rng;

    if (x == 0) {
        x = balancer_mix64((uint64_t) (rp_now() * 1e9) ^ (uint64_t) (uintptr_t) st);
        x = x ? x : 0x9e3779b97f4a7c15ULL;   /* 0 is xorshift's fixed point */
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    st->rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static int
balancer_random(const rp_balancer_peer_t *peers, unsigned n, rp_balancer_state_t *st)
{
    unsigned  i, count, k;

    count = 0;
    for (i = 0; i < n; i++) {
        count += peers[i].idle > 0;
    }
    if (count == 0) {
        return -1;
    }
    /* the high bits are xorshift64*'s best; the modulo bias is < 2^-32 */
    k = (unsigned) ((balancer_rng_next(st) >> 32) % count);
    for (i = 0; i < n; i++) {
        if (peers[i].idle > 0 && k-- == 0) {
            return (int) i;
        }
    }
    return -1;   /* not reached */
}

static int
balancer_first(const rp_balancer_peer_t *peers, unsigned n)
{
    unsigned  i;

    for (i = 0; i < n; i++) {
        if (peers[i].idle > 0) {
            return (int) i;
        }
    }
    return -1;
}

int
rp_balancer_pick(rp_balance_e method, const rp_balancer_peer_t *peers, unsigned n,
                 rp_balancer_state_t *st)
{
    if (peers == NULL || n == 0 || n > INT_MAX) {
        return -1;
    }
    switch (method) {
    case RP_BALANCE_RTT:
        return balancer_rtt(peers, n);
    case RP_BALANCE_ROUNDROBIN:
        return balancer_roundrobin(peers, n, st);
    case RP_BALANCE_MOST_IDLE:
        return balancer_most_idle(peers, n);
    case RP_BALANCE_RANDOM:
        return balancer_random(peers, n, st);
    case RP_BALANCE_FIRST:
        return balancer_first(peers, n);
    }
    return -1;
}

int
rp_balancer_parse(const char *name, rp_balance_e *out)
{
    size_t  i;

    for (i = 0; name != NULL && i < BALANCER_NNAMES; i++) {
        if (strcmp(name, balancer_names[i].name) == 0) {
            *out = balancer_names[i].method;
            return RP_OK;
        }
    }
    return RP_ERROR;
}

/* Returns "unknown" for a value outside the enum, so that logs never get NULL. */
const char *
rp_balancer_name(rp_balance_e method)
{
    size_t  i;

    for (i = 0; i < BALANCER_NNAMES; i++) {
        if (balancer_names[i].method == method) {
            return balancer_names[i].name;
        }
    }
    return "unknown";
}

/* A sample of 0 or less (a clock step) is raised to BALANCER_RTT_MIN, so that
 * the result is 0 only while there has been no sample at all. */
double
rp_balancer_rtt_update(double ewma, double sample)
{
    if (!(sample > BALANCER_RTT_MIN)) {
        sample = BALANCER_RTT_MIN;
    }
    if (ewma == 0) {
        return sample;
    }
    return ewma + BALANCER_RTT_ALPHA * (sample - ewma);
}
