/* parkq.c: parked clients' deadlines in due order on one lazy timer (see
 * parkq.h for why). */
#include "parkq.h"

#include "timer.h"

/* The owner of the last node may free q in its expire call (a listener a
 * reload removed goes with its last client): q is not touched after that
 * call. While other nodes remain, their owners keep q alive. */
static void
parkq_on_timer(evutil_socket_t fd, short what, void *arg)
{
    rp_parkq_t       *q = arg;
    rp_parkq_node_t  *n;
    int               last;

    q->at = 0;                             /* fired: not pending */
    while ((n = TAILQ_FIRST(&q->nodes)) != NULL) {
        if (!rp_timer_expired(&q->ev, &q->at, n->due)) {
            return;                        /* re-armed for the earliest left */
        }
        rp_parkq_remove(q, n);
        last = TAILQ_EMPTY(&q->nodes);
        q->expire(n, q->arg);
        if (last) {
            return;                        /* q may be gone; its timer is not pending */
        }
    }
}

void
rp_parkq_init(rp_parkq_t *q, struct event_base *base, rp_parkq_expire_fn expire, void *arg)
{
    TAILQ_INIT(&q->nodes);
    evtimer_assign(&q->ev, base, parkq_on_timer, q);
    q->at = 0;
    q->expire = expire;
    q->arg = arg;
}

void
rp_parkq_cleanup(rp_parkq_t *q)
{
    rp_timer_stop(&q->ev, &q->at);
}

void
rp_parkq_add(rp_parkq_t *q, rp_parkq_node_t *n)
{
    rp_parkq_node_t  *prev = TAILQ_LAST(&q->nodes, rp_parkq_list_s);

    while (prev != NULL && prev->due > n->due) {
        prev = TAILQ_PREV(prev, rp_parkq_list_s, link);
    }
    if (prev != NULL) {
        TAILQ_INSERT_AFTER(&q->nodes, prev, n, link);
    } else {
        TAILQ_INSERT_HEAD(&q->nodes, n, link);
        rp_timer_due(&q->ev, &q->at, n->due);   /* the earliest: fire no later */
    }
}

void
rp_parkq_remove(rp_parkq_t *q, rp_parkq_node_t *n)
{
    if (rp_parkq_queued(n)) {
        TAILQ_REMOVE(&q->nodes, n, link);
        n->link.tqe_prev = NULL;
    }
}
