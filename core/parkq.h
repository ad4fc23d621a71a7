/* parkq.h: the deadlines of parked clients (http_conn.h), in due order, on
 * one lazy timer per queue. A parked client has no conn and so no timer:
 * a libevent timer is 128 bytes, more than a fifth of what an idle
 * connection costs. Its listener's queue holds a 24-byte node instead.
 * The clients of one listener park with the same keep-alive time, so a new
 * node goes to the tail in O(1); after a reload that shortened it, a node
 * walks back past the later ones to its place. */
#ifndef RP_PARKQ_H
#define RP_PARKQ_H

#include "rp.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <sys/queue.h>

typedef struct rp_parkq_node_s {
    TAILQ_ENTRY(rp_parkq_node_s)  link;    /* in the queue; tqe_prev NULL: not queued */
    double                        due;     /* rp_now() time; 0: none                   */
} rp_parkq_node_t;

/* A node's due has come: it left the queue before the call. The call may
 * free the queue when that node was its last; it must not add or remove
 * other nodes. */
typedef void (*rp_parkq_expire_fn)(rp_parkq_node_t *n, void *arg);

typedef struct rp_parkq_s {
    TAILQ_HEAD(rp_parkq_list_s, rp_parkq_node_s) nodes;   /* in due order, earliest first */
    struct event                   ev;     /* fires for the earliest; embedded         */
    double                         at;     /* when ev fires (timer.h); 0: not pending  */
    rp_parkq_expire_fn             expire;
    void                          *arg;
} rp_parkq_t;

void rp_parkq_init(rp_parkq_t *q, struct event_base *base, rp_parkq_expire_fn expire,
                   void *arg);

/* q is empty: its timer goes. */
void rp_parkq_cleanup(rp_parkq_t *q);

/* Queues n (n->due > 0) by its due; n must not be queued. */
void rp_parkq_add(rp_parkq_t *q, rp_parkq_node_t *n);

/* Takes n out of q if it is queued there; the timer stays (it re-arms or
 * stops when it fires). */
void rp_parkq_remove(rp_parkq_t *q, rp_parkq_node_t *n);

static inline int
rp_parkq_queued(const rp_parkq_node_t *n)
{
    return n->link.tqe_prev != NULL;
}

#endif
