/* flush.c: one direct write per output per loop pass for plain sockets,
 * TLS ones written without arming EPOLLOUT (see flush.h for why). */
#include "flush.h"

#include "rawio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>   /* a TLS bufferevent's ev_write */
#include <event2/event.h>

#define FLUSH_IOV 64                       /* chains per send, libevent takes 128 */
#define STAGE_CAP (64 * 1024)              /* the worker's stage                */
#define STAGE_PIECE (16 * 1024)            /* larger pieces go to the evbuffer  */

/* evbuffer_write() through rp_sendv() (see rawio.h): the first FLUSH_IOV
 * chains in one send, what went drained. > 0 bytes written, else the
 * write's result with errno. (libevent's evbuffer_iovec is struct iovec
 * wherever sys/uio.h exists, so the peeked vector goes as it is.) */
static ssize_t
flush_write(struct evbuffer *out, int fd, int flags)
{
    struct evbuffer_iovec  vec[FLUSH_IOV];
    ssize_t                n;
    int                    nvec;

    nvec = evbuffer_peek(out, -1, NULL, vec, FLUSH_IOV);
    nvec = nvec < FLUSH_IOV ? nvec : FLUSH_IOV;
    n = rp_sendv(fd, vec, nvec, flags);
    if (n > 0) {
        evbuffer_drain(out, (size_t) n);
    }
    return n;
}

/* Moves what s staged into out, from the first unsent byte (sent: how many
 * of them went already). */
static void
flush_spill(rp_flush_t *s, struct evbuffer *out, size_t sent)
{
    unsigned  i;

    for (i = 0; i < s->nseg; i++) {
        if (sent >= s->seg_len[i]) {
            sent -= s->seg_len[i];
            continue;
        }
        evbuffer_add(out, s->f->stage + s->seg_off[i] + sent, s->seg_len[i] - sent);
        sent = 0;
    }
    s->nseg = 0;
}

/* Sends what s staged. Returns 1 when all went, else 0 with the rest in
 * out (EAGAIN, or an error libevent meets again and reports). */
static int
flush_send_staged(rp_flush_t *s, struct evbuffer *out, int flags)
{
    struct iovec  vec[RP_FLUSH_SEGS];
    size_t        total = 0;
    ssize_t       n;
    unsigned      i;

    for (i = 0; i < s->nseg; i++) {
        vec[i].iov_base = s->f->stage + s->seg_off[i];
        vec[i].iov_len = s->seg_len[i];
        total += s->seg_len[i];
    }
    n = rp_sendv(s->fd, vec, (int) s->nseg, flags);
    if (n == (ssize_t) total) {
        s->nseg = 0;
        return 1;
    }
    flush_spill(s, out, n > 0 ? (size_t) n : 0);
    return 0;
}

static void
flush_call_writecb(struct bufferevent *bev)
{
    bufferevent_data_cb  wcb;
    void                *arg;

    bufferevent_getcb(bev, NULL, &wcb, NULL, &arg);
    if (wcb != NULL) {
        wcb(bev, arg);
    }
}

/* A TLS bufferevent's output goes out as its write event would send it.
 * libevent added that event when the output stopped being empty; its
 * callback encrypts and writes what the socket takes, removes the event
 * once the output is empty (so the pending add is dropped before the loop
 * applies it) and calls the write callback. What the socket does not take
 * waits for EPOLLOUT, as it always did. */
static void
flush_run_tls(rp_flush_t *s)
{
    struct bufferevent  *bev = s->bev;
    struct event        *ev = &bev->ev_write;

    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        if (s->want_drain) {
            s->want_drain = 0;
            flush_call_writecb(bev);
        }
        return;
    }
    s->want_drain = 0;                     /* libevent calls it once the output is empty */
    if (event_pending(ev, EV_WRITE, NULL)) {
        event_get_callback(ev)(event_get_fd(ev), EV_WRITE, event_get_callback_arg(ev));
    }
}

static void
flush_run(rp_flush_t *s, int flags)
{
    struct bufferevent  *bev = s->bev;
    struct evbuffer     *out = bufferevent_get_output(bev);
    size_t               low = 0, high = 0;

    if (s->tls) {
        flush_run_tls(s);
        return;
    }
    if (bufferevent_get_enabled(bev) & EV_WRITE) {
        flush_spill(s, out, 0);            /* behind what libevent is writing */
        return;
    }
    if (s->nseg > 0 && !flush_send_staged(s, out, flags)) {
        rp_flush_arm(s);
        return;
    }
    /* a socket bufferevent freezes the start of its output so that only
     * its write callback drains it; this is that callback's work, done early */
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0) {
        if (flush_write(out, s->fd, flags) <= 0) {
            /* EAGAIN, or an error libevent will meet and report as an event */
            evbuffer_freeze(out, 1);
            rp_flush_arm(s);
            return;
        }
    }
    evbuffer_freeze(out, 1);
    /* someone waits for the output to drain (back-pressure, a close): tell
     * them, as libevent's write callback would have */
    bufferevent_getwatermark(bev, EV_WRITE, &low, &high);
    if (low > 0 || s->want_drain) {
        s->want_drain = 0;
        flush_call_writecb(bev);
    }
}

static void
flusher_run(rp_flusher_t *f)
{
    rp_flush_t  *s;

    while ((s = TAILQ_FIRST(&f->queue)) != NULL) {
        TAILQ_REMOVE(&f->queue, s, link);
        s->queued = 0;
        flush_run(s, 0);                   /* may detach others: they leave the queue */
    }
    f->stage_len = 0;                      /* only queued flushes stage */
}

static void
flusher_on_pass(evutil_socket_t fd, short what, void *arg)
{
    flusher_run(arg);                      /* what no read callback flushed */
}

void
rp_flusher_hold(rp_flusher_t *f)
{
    f->holds++;
}

void
rp_flusher_release(rp_flusher_t *f)
{
    if (--f->holds == 0) {
        flusher_run(f);
    }
}

void
rp_flush_now(rp_flush_t *s, int more)
{
    if (!s->queued) {
        return;
    }
    TAILQ_REMOVE(&s->f->queue, s, link);
    s->queued = 0;
    flush_run(s, more ? MSG_MORE : 0);
}

void
rp_flush_queue(rp_flush_t *s)
{
    if (s->bev == NULL || s->queued) {
        return;
    }
    if (TAILQ_EMPTY(&s->f->queue) && s->f->holds == 0) {
        event_active(s->f->ev, EV_WRITE, 0);   /* no read callback will flush it */
    }
    TAILQ_INSERT_TAIL(&s->f->queue, s, link);
    s->queued = 1;
}

void
rp_flusher_init(rp_flusher_t *f, struct event_base *base)
{
    TAILQ_INIT(&f->queue);
    f->holds = 0;
    f->ev = event_new(base, -1, 0, flusher_on_pass, f);
    f->stage = rp_xalloc(STAGE_CAP);
    f->stage_len = 0;
}

void
rp_flusher_cleanup(rp_flusher_t *f)
{
    event_free(f->ev);
    free(f->stage);
    f->stage = NULL;
}

static void
flush_init(rp_flusher_t *f, rp_flush_t *s, struct bufferevent *bev, evutil_socket_t fd,
           int tls)
{
    s->bev = bev;
    s->fd = fd;
    s->f = f;
    s->queued = 0;
    s->want_drain = 0;
    s->tls = tls;
    s->nseg = 0;
}

void
rp_flush_uncap(struct bufferevent *bev)
{
    bufferevent_set_max_single_write(bev, EV_SSIZE_MAX);
}

void
rp_flush_attach(rp_flusher_t *f, rp_flush_t *s, struct bufferevent *bev)
{
    if (f->ev == NULL) {
        return;                            /* no flusher (unit tests): libevent writes */
    }
    flush_init(f, s, bev, bufferevent_getfd(bev), 0);
    bufferevent_disable(bev, EV_WRITE);
    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        bufferevent_enable(bev, EV_WRITE);
    }
}

void
rp_flush_attach_tls(rp_flusher_t *f, rp_flush_t *s, struct bufferevent *bev)
{
    if (f->ev == NULL) {
        return;                            /* no flusher (unit tests): libevent writes */
    }
    flush_init(f, s, bev, bufferevent_getfd(bev), 1);
}

void
rp_flush_bind(rp_flusher_t *f, rp_flush_t *s, struct bufferevent *bev, evutil_socket_t fd)
{
    if (f->ev == NULL) {
        bufferevent_setfd(bev, fd);        /* no flusher (unit tests): libevent writes */
        bufferevent_enable(bev, EV_WRITE);
        return;
    }
    flush_init(f, s, bev, fd, 0);
}

void
rp_flush_arm(rp_flush_t *s)
{
    if (!s->tls && bufferevent_getfd(s->bev) != s->fd) {
        bufferevent_setfd(s->bev, s->fd);
    }
    bufferevent_enable(s->bev, EV_WRITE);
}

void
rp_flush_detach(rp_flush_t *s)
{
    if (s->bev == NULL) {
        return;
    }
    if (s->queued) {
        TAILQ_REMOVE(&s->f->queue, s, link);
        s->queued = 0;
    }
    s->nseg = 0;                           /* gone with the output they were for */
    s->bev = NULL;
}

/* Reserves room in f's stage for n bytes of s's, as a new piece or at the
 * end of its last one: the offset to copy them to, or -1 when they must go
 * to the evbuffer. */
static int64_t
flush_stage_reserve(rp_flush_t *s, struct bufferevent *bev, size_t n)
{
    rp_flusher_t  *f = s->f;
    unsigned       last;

    if (s->bev != bev || s->tls || n > STAGE_PIECE || n > STAGE_CAP - f->stage_len) {
        return -1;
    }
    if (s->nseg == 0) {
        if ((bufferevent_get_enabled(bev) & EV_WRITE)
            || evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
            return -1;                     /* bytes before them wait there */
        }
        s->seg_off[0] = f->stage_len;
        s->seg_len[0] = 0;
        s->nseg = 1;
        return f->stage_len;
    }
    last = s->nseg - 1;
    if (s->seg_off[last] + s->seg_len[last] != f->stage_len) {
        if (s->nseg == RP_FLUSH_SEGS) {
            return -1;
        }
        last = s->nseg++;
        s->seg_off[last] = f->stage_len;
        s->seg_len[last] = 0;
    }
    return f->stage_len;
}

void
rp_flush_add(rp_flush_t *s, struct bufferevent *bev, const void *p, size_t n)
{
    int64_t  at = flush_stage_reserve(s, bev, n);   /* -1 for an unattached s too */

    if (at < 0) {
        evbuffer_add(rp_flush_output(s, bev), p, n);
    } else {
        memcpy(s->f->stage + at, p, n);
        s->f->stage_len += (uint32_t) n;
        s->seg_len[s->nseg - 1] += (uint32_t) n;
    }
    rp_flush_queue(s);
}

struct evbuffer *
rp_flush_output(rp_flush_t *s, struct bufferevent *bev)
{
    struct evbuffer  *out = bufferevent_get_output(bev);

    if (s->nseg > 0) {
        flush_spill(s, out, 0);
    }
    return out;
}

size_t
rp_flush_out_len(const rp_flush_t *s, struct bufferevent *bev)
{
    size_t    n = evbuffer_get_length(bufferevent_get_output(bev));
    unsigned  i;

    for (i = 0; i < s->nseg; i++) {
        n += s->seg_len[i];
    }
    return n;
}

int
rp_flush_want_drain(rp_flush_t *s)
{
    if (s->bev == NULL || !s->queued) {
        return 0;
    }
    s->want_drain = 1;
    return 1;
}

void
rp_flush_drained(rp_flush_t *s)
{
    if (s->bev != NULL && !s->tls && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0
        && (bufferevent_get_enabled(s->bev) & EV_WRITE)) {
        bufferevent_disable(s->bev, EV_WRITE);
    }
}
