/* flush.h: writing plain sockets from the worker's loop without arming
 * EPOLLOUT per response. libevent's bufferevents write only from a write
 * event, so every answer costs an epoll_ctl to arm it and another to disarm
 * it. A flushed bufferevent keeps EV_WRITE off: whoever adds to its output
 * queues it (rp_flush_queue), and the queue is written directly at the end
 * of the read callback that filled it (rp_flusher_hold / rp_flusher_release),
 * or else by one flush event at the end of the loop pass; only what the
 * kernel would not take arms EV_WRITE, and libevent finishes it as usual.
 * (An evbuffer callback could queue it instead, but it costs an allocation
 * per connection and a call on every add and drain.)
 * Bytes added to an empty plain output while nothing else waits for it are
 * staged: copied to the worker's stage instead of the evbuffer, and sent
 * from there by the flush; only what the kernel does not take goes into
 * the evbuffer. An evbuffer_add() to an empty output allocates a chain and
 * runs the bufferevent's callbacks, and the write's drain frees the chain
 * and runs them again: about 2,000 instructions of a keep-alive request's
 * 15,600 went there. Whoever reads or writes a flushed output otherwise gets
 * it from rp_flush_output(), which moves staged bytes into it first.
 * A TLS bufferevent encrypts in its own writes, so libevent writes it: it
 * arms EV_WRITE when its output stops being empty and writes on EPOLLOUT,
 * two epoll_ctl and a loop pass per answer. Queued here, the flusher runs
 * that write event's callback at the same points instead; when the output
 * empties, the event is removed before the loop applied its add, and the
 * epoll set never changes. */
#ifndef RP_FLUSH_H
#define RP_FLUSH_H

#include "rp.h"

#include <event2/util.h>
#include <stdint.h>
#include <sys/queue.h>

struct bufferevent;
struct event;
struct event_base;

/* A head and the body after it are one piece when nothing came between. */
#define RP_FLUSH_SEGS 2

typedef struct rp_flush_s {
    struct bufferevent        *bev;       /* borrowed: the one it writes       */
    evutil_socket_t            fd;        /* its socket (bev's may be stale)   */
    struct rp_flusher_s       *f;         /* back-pointer                      */
    TAILQ_ENTRY(rp_flush_s)    link;      /* in f->queue while queued          */
    int                        queued;
    int                        want_drain; /* call the write callback once empty */
    int                        tls;       /* bev is a TLS bufferevent          */
    unsigned                   nseg;      /* staged pieces, in order:          */
    uint32_t                   seg_off[RP_FLUSH_SEGS];   /* in f->stage        */
    uint32_t                   seg_len[RP_FLUSH_SEGS];
} rp_flush_t;

typedef struct rp_flusher_s {
    struct event              *ev;        /* owned: one pass writes the queue  */
    TAILQ_HEAD(, rp_flush_s)   queue;
    unsigned                   holds;     /* read callbacks that will flush it */
    char                      *stage;     /* owned: staged bytes of the queue  */
    uint32_t                   stage_len;
} rp_flusher_t;

void rp_flusher_init(rp_flusher_t *f, struct event_base *base);

/* A read callback holds the flusher while it works and releases it at its
 * end, which writes every queued output then: all it added to an output
 * still goes in one write, and the backend (or the client) gets its bytes
 * before the loop runs the other ready sockets' callbacks, as nginx writes
 * from each handler. Waiting for the pass's end held each request back by
 * the parsing and routing of every other ready socket (the latency this
 * cost: docs/DESIGN.md, "Writes without EPOLLOUT"). While held, a queued
 * output does not schedule the pass. Holds nest; after the release, the
 * caller must not use anything a write callback may free. */
void rp_flusher_hold(rp_flusher_t *f);
void rp_flusher_release(rp_flusher_t *f);
void rp_flusher_cleanup(rp_flusher_t *f);

/* libevent writes at most 16 KiB each time its write event fires (its
 * MAX_SINGLE_WRITE_DEFAULT), so an output the kernel did not take at once
 * went out 16 KiB a loop pass, an epoll_wait each; a large download fell
 * into that for good once its client lagged. Whoever creates a bufferevent
 * lifts the cap: the kernel takes what it can. */
void rp_flush_uncap(struct bufferevent *bev);

/* Makes bev (a connected plain socket) write through f; s lives as long as
 * bev, and rp_flush_detach() must run before either goes. */
void rp_flush_attach(rp_flusher_t *f, rp_flush_t *s, struct bufferevent *bev);
void rp_flush_detach(rp_flush_t *s);

/* Makes a TLS bufferevent (EV_WRITE on, as libevent leaves it) write
 * through f: its write event's work is done when the queue is run. */
void rp_flush_attach_tls(rp_flusher_t *f, rp_flush_t *s, struct bufferevent *bev);

/* The same for a bufferevent with EV_WRITE off and nothing to write (a
 * spare conn's, http_conn.c) that is to write fd: no libevent call now;
 * bev is pointed at fd when a write has to wait (rp_flush_arm). */
void rp_flush_bind(rp_flusher_t *f, rp_flush_t *s, struct bufferevent *bev, evutil_socket_t fd);

/* What is queued waits for the socket: EV_WRITE on, and libevent writes it. */
void rp_flush_arm(rp_flush_t *s);

/* Bytes were added to the output of s's bufferevent: they are written in
 * this loop pass. Every add to a flushed output must be followed by one;
 * for a bufferevent that is not flushed it does nothing. */
void rp_flush_queue(rp_flush_t *s);

/* Writes what s queued now, out of the queue's turn; more: the caller has
 * more bytes for it in hand and writes them before its callback ends
 * (MSG_MORE: the kernel sends whole segments and holds the rest). */
void rp_flush_now(rp_flush_t *s, int more);

/* Adds n bytes at p to the output of bev (s its flush) and queues it:
 * staged when the output is empty and flushed without EV_WRITE, else
 * appended to the evbuffer. */
void rp_flush_add(rp_flush_t *s, struct bufferevent *bev, const void *p, size_t n);

/* bev's output with what s staged moved into it, in order: for every other
 * read or write of an output that may be flushed. */
struct evbuffer *rp_flush_output(rp_flush_t *s, struct bufferevent *bev);

/* Bytes waiting in bev's output, staged ones included. */
size_t rp_flush_out_len(const rp_flush_t *s, struct bufferevent *bev);

/* Asks for the bufferevent's write callback once its queued output is
 * written (a closing connection), without arming EV_WRITE. Returns 0 when s
 * does not write bev (not flushed, or nothing queued): enable EV_WRITE
 * instead. (A TLS bufferevent calls it anyway once its output is empty.) */
int rp_flush_want_drain(rp_flush_t *s);

/* From a write callback: EV_WRITE goes off again once the output is empty
 * (a plain socket's; a TLS bufferevent writes only while it is on). */
void rp_flush_drained(rp_flush_t *s);

#endif
