/* timer.c: lazy deadlines on a libevent timer (see timer.h for why). */
#include "timer.h"

#include <event2/event.h>

#define TIMER_SLACK 0.001                 /* s: early by less counts as on time */

void
rp_timer_due(struct event *ev, double *at, double due)
{
    struct timeval  tv;

    if (*at > 0 && *at <= due) {
        return;                            /* fires first, then re-arms */
    }
    tv = rp_timeval(due - rp_now());
    evtimer_add(ev, &tv);
    *at = due;
}

void
rp_timer_stop(struct event *ev, double *at)
{
    if (*at > 0) {
        evtimer_del(ev);
        *at = 0;
    }
}

int
rp_timer_expired(struct event *ev, double *at, double due)
{
    *at = 0;
    if (due - rp_now() > TIMER_SLACK) {
        rp_timer_due(ev, at, due);
        return 0;
    }
    return 1;
}
