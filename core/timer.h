/* timer.h: lazy deadlines on a libevent timer. Moving a pending timer is a
 * heap update; a deadline that moves on every request (a client's
 * keep-alive wait, a backend's response deadline) would pay it each time.
 * A lazy timer moves only when it would fire after the new deadline. One
 * that fires early re-arms itself for the rest (rp_timer_expired), so a
 * keep-alive request changes no timer at all. */
#ifndef RP_TIMER_H
#define RP_TIMER_H

#include "rp.h"

struct event;

/* Makes ev (a timer) fire no later than due (rp_now() time); *at is when
 * it fires, 0 when it is not pending, and only these functions set it. */
void rp_timer_due(struct event *ev, double *at, double due);

/* ev will not fire. */
void rp_timer_stop(struct event *ev, double *at);

/* From ev's callback: 1 when due has come, else 0 with ev re-armed for
 * the rest (it fired for an earlier deadline). */
int rp_timer_expired(struct event *ev, double *at, double due);

#endif
