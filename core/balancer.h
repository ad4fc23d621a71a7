/* balancer.h: the built-in balancers, each a pure choice over a pool's peers. */
#ifndef RP_BALANCER_H
#define RP_BALANCER_H

#include "rp.h"
#include "config.h"

/* What a balancer sees of one backend of a pool, in this worker. */
typedef struct {
    unsigned   idle;     /* IDLE connections                            */
    unsigned   active;   /* ACTIVE connections                          */
    unsigned   up;       /* rp_backend_live(): serving or about to      */
    double     rtt;      /* EWMA of time to first response byte, s; 0: none yet */
} rp_balancer_peer_t;

/* Per-pool, per-worker state a balancer keeps between picks. */
typedef struct {
    unsigned   rr_next;  /* roundrobin: where the next scan starts */
    uint64_t   rng;      /* random: xorshift64* state, never 0      */
} rp_balancer_state_t;

/* Returns the index of the peer to use, among those with idle > 0, or -1 when
 * none has an IDLE connection. */
int rp_balancer_pick(rp_balance_e method, const rp_balancer_peer_t *peers, unsigned n,
                     rp_balancer_state_t *st);

/* Parses "rtt", "roundrobin", "most_idle", "random", "first". RP_ERROR if unknown. */
int rp_balancer_parse(const char *name, rp_balance_e *out);
const char *rp_balancer_name(rp_balance_e method);

/* EWMA update of an rtt sample (seconds). */
double rp_balancer_rtt_update(double ewma, double sample);

#endif
