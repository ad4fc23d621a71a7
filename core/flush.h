/* flush.h: writing plain sockets from the worker's loop without arming
 * EPOLLOUT per response. libevent's bufferevents write only from a write
 * event, so every answer costs an epoll_ctl to arm it and another to disarm
 * it. A flushed bufferevent keeps EV_WRITE off: data added to its output
 * queues it, and one flush event per loop pass writes every queued output
 * directly; only what the kernel would not take arms EV_WRITE, and libevent
 * finishes it as usual. TLS bufferevents are left to libevent. */
#ifndef RP_FLUSH_H
#define RP_FLUSH_H

#include "rp.h"

#include <sys/queue.h>

struct bufferevent;
struct event;
struct event_base;

typedef struct rp_flush_s {
    struct bufferevent        *bev;       /* borrowed: the one it writes       */
    struct rp_flusher_s       *f;         /* back-pointer                      */
    TAILQ_ENTRY(rp_flush_s)    link;      /* in f->queue while queued          */
    int                        queued;
    int                        want_drain; /* call the write callback once empty */
} rp_flush_t;

typedef struct rp_flusher_s {
    struct event              *ev;        /* owned: one pass writes the queue  */
    TAILQ_HEAD(, rp_flush_s)   queue;
} rp_flusher_t;

void rp_flusher_init(rp_flusher_t *f, struct event_base *base);
void rp_flusher_cleanup(rp_flusher_t *f);

/* Makes bev (a connected plain socket) write through f; s lives as long as
 * bev, and rp_flush_detach() must run before either goes. */
void rp_flush_attach(rp_flusher_t *f, rp_flush_t *s, struct bufferevent *bev);
void rp_flush_detach(rp_flush_t *s);

/* Asks for the bufferevent's write callback once its queued output is
 * written (a closing connection), without arming EV_WRITE. Returns 0 when s
 * does not write bev (TLS, or nothing queued): enable EV_WRITE instead. */
int rp_flush_want_drain(rp_flush_t *s);

/* From a write callback: EV_WRITE goes off again once the output is empty. */
void rp_flush_drained(rp_flush_t *s);

#endif
