/* sockread.c: own reads of plain sockets into a bufferevent's input (see
 * sockread.h for why). */
#include "sockread.h"

#include "rawio.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define SOCKREAD_CHUNK (256 * 1024)       /* bytes asked of one bulk readv()   */

static void reader_on_ready(evutil_socket_t fd, short what, void *arg);

void
rp_reader_init(rp_reader_t *r, struct bufferevent *bev, size_t limit, int plain)
{
    r->bev = bev;
    r->limit = limit;
    r->timeout = 0;
    r->pend_len = 0;
    r->own = r->on = r->added = r->bulk = r->filled = 0;
    if (!plain) {
        bufferevent_setwatermark(bev, EV_READ, 0, limit);
    }
}

static int
reader_full(const rp_reader_t *r)
{
    return r->limit > 0 && r->bev != NULL
           && evbuffer_get_length(bufferevent_get_input(r->bev)) >= r->limit;
}

/* Adds the read event unless the input is full; with the timeout, which an
 * EV_PERSIST event re-arms on each read (inactivity). */
static void
reader_add(rp_reader_t *r)
{
    struct timeval  tv;

    if (reader_full(r)) {
        return;                            /* rp_reader_drained() adds it */
    }
    tv = rp_timeval(r->timeout);
    event_add(&r->ev, r->timeout > 0 ? &tv : NULL);
    r->added = 1;
}

static void
reader_del(rp_reader_t *r)
{
    if (r->added) {
        event_del(&r->ev);
        r->added = 0;
    }
}

void
rp_reader_bind(rp_reader_t *r, struct bufferevent *bev, bufferevent_data_cb on_read,
               bufferevent_event_cb on_event, void *arg)
{
    r->bev = bev;
    r->on_read = on_read;
    r->on_event = on_event;
    r->arg = arg;
}

void
rp_reader_take_reads(struct bufferevent *bev)
{
    bufferevent_disable(bev, EV_READ);
    /* a socket bufferevent freezes the end of its input outside its own
     * reads; these are its reads now */
    evbuffer_unfreeze(bufferevent_get_input(bev), 0);
}

void
rp_reader_attach_fd(rp_reader_t *r, struct event_base *base, evutil_socket_t fd, char *scratch,
                    event_callback_fn cb, void *arg)
{
    event_assign(&r->ev, base, fd, EV_READ | EV_PERSIST, cb, arg);
    r->scratch = scratch;
    r->own = 1;
    if (r->on) {
        reader_add(r);
    }
}

void
rp_reader_attach(rp_reader_t *r, struct event_base *base, char *scratch)
{
    bufferevent_data_cb   on_read;
    bufferevent_event_cb  on_event;
    void                 *arg;

    bufferevent_getcb(r->bev, &on_read, NULL, &on_event, &arg);
    rp_reader_take_reads(r->bev);
    rp_reader_bind(r, r->bev, on_read, on_event, arg);
    rp_reader_attach_fd(r, base, bufferevent_getfd(r->bev), scratch, reader_on_ready, r);
}

void
rp_reader_detach(rp_reader_t *r)
{
    if (r->own) {
        reader_del(r);
        r->own = 0;
    }
    r->pend_len = 0;
}

void
rp_reader_on(rp_reader_t *r)
{
    if (!r->own) {
        /* asked of the bufferevent itself: libevent turns its reads off on
         * EOF, errors and timeouts; enabling them again re-adds the event */
        if (!(bufferevent_get_enabled(r->bev) & EV_READ)) {
            bufferevent_enable(r->bev, EV_READ);
        }
        r->on = 1;
        return;
    }
    if (r->on) {
        rp_reader_drained(r);              /* stopped by the limit: maybe not now */
        return;
    }
    r->on = 1;
    reader_add(r);
}

void
rp_reader_off(rp_reader_t *r)
{
    if (r->own) {
        reader_del(r);
    } else if (r->on || (bufferevent_get_enabled(r->bev) & EV_READ)) {
        bufferevent_disable(r->bev, EV_READ);
    }
    r->on = 0;
}

void
rp_reader_set_timeouts(rp_reader_t *r, double read_s, const struct timeval *write)
{
    struct timeval  tv = rp_timeval(read_s);

    if (!r->own) {
        bufferevent_set_timeouts(r->bev, read_s > 0 ? &tv : NULL, write);
        return;
    }
    bufferevent_set_timeouts(r->bev, NULL, write);
    if (read_s == r->timeout) {
        return;
    }
    r->timeout = read_s > 0 ? read_s : 0;
    if (!r->added) {
        return;                            /* reader_add() arms it with r->timeout */
    }
    /* Only the timer changes: a request with a body turns its timeout on and
     * off around the body, and a del + add would cost an EPOLL_CTL_MOD each
     * time. event_add() on a pending event reschedules its timeout alone;
     * event_add(NULL) would keep the old one, event_remove_timer() drops it. */
    if (r->timeout > 0) {
        event_add(&r->ev, &tv);
    } else {
        event_remove_timer(&r->ev);
    }
}

void
rp_reader_set_limit(rp_reader_t *r, size_t limit)
{
    r->limit = limit;
    if (!r->own) {
        bufferevent_setwatermark(r->bev, EV_READ, 0, limit);
    } else {
        rp_reader_drained(r);
    }
}

void
rp_reader_spill(rp_reader_t *r)
{
    if (r->pend_len > 0) {
        evbuffer_add(bufferevent_get_input(r->bev), r->pend, r->pend_len);
        r->pend_len = 0;
    }
}

void
rp_reader_drained(rp_reader_t *r)
{
    rp_reader_spill(r);
    if (r->own && r->on && !r->added) {
        reader_add(r);
    } else if (r->filled) {
        r->filled = 0;
        if (r->added && reader_full(r)) {
            reader_del(r);                 /* the owner left the input full */
        }
    }
}

const char *
rp_reader_peek(rp_reader_t *r, size_t *n)
{
    struct evbuffer  *in;

    if (r->pend_len > 0) {
        *n = r->pend_len;
        return r->pend;
    }
    in = bufferevent_get_input(r->bev);
    *n = evbuffer_get_contiguous_space(in);
    return *n > 0 ? (const char *) evbuffer_pullup(in, (ev_ssize_t) *n) : "";
}

void
rp_reader_consume(rp_reader_t *r, size_t used)
{
    if (r->pend_len > 0) {
        r->pend += used;
        r->pend_len -= (uint32_t) used;    /* used <= pend_len */
        rp_reader_spill(r);
    } else if (used > 0) {
        evbuffer_drain(bufferevent_get_input(r->bev), used);
    }
}

size_t
rp_reader_buffered(const rp_reader_t *r)
{
    return evbuffer_get_length(bufferevent_get_input(r->bev)) + r->pend_len;
}

void
rp_reader_discard(rp_reader_t *r)
{
    struct evbuffer  *in = bufferevent_get_input(r->bev);

    r->pend_len = 0;
    evbuffer_drain(in, evbuffer_get_length(in));
    rp_reader_drained(r);
}

/* The scratch read came back full, so the kernel holds more: reads it
 * straight into the input in large readv()s, up to the limit. EOF and
 * errors are left for the next wakeup (the socket stays readable). */
static void
reader_read_bulk(rp_reader_t *r, struct evbuffer *in, int fd)
{
    struct evbuffer_iovec  vec[2];
    struct iovec           iov[2];
    size_t                 len, max, want, got, take;
    ssize_t                n;
    int                    nvec, i, used;

    len = evbuffer_get_length(in);
    max = r->limit > 0 ? r->limit : len + SOCKREAD_CHUNK;
    while ((len = evbuffer_get_length(in)) < max) {
        want = max - len < SOCKREAD_CHUNK ? max - len : SOCKREAD_CHUNK;
        nvec = evbuffer_reserve_space(in, (ev_ssize_t) want, vec, 2);
        if (nvec <= 0) {
            return;
        }
        for (i = 0, take = want; i < nvec; i++) {     /* the space may be larger */
            vec[i].iov_len = vec[i].iov_len < take ? vec[i].iov_len : take;
            take -= vec[i].iov_len;
            iov[i].iov_base = vec[i].iov_base;
            iov[i].iov_len = vec[i].iov_len;
        }
        do {
            n = rp_readv(fd, iov, nvec);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) {
            evbuffer_commit_space(in, vec, 0);
            r->bulk = 0;
            return;
        }
        got = (size_t) n;
        for (i = 0, used = 0; i < nvec && n > 0; i++, used++) {   /* what it filled */
            take = (size_t) n > vec[i].iov_len ? vec[i].iov_len : (size_t) n;
            vec[i].iov_len = take;
            n -= (ssize_t) take;
        }
        evbuffer_commit_space(in, vec, used);
        if (got < want) {
            r->bulk = 0;                   /* a short read: the kernel is empty */
            return;
        }
    }
    r->bulk = 1;                           /* stopped by the limit: more is coming */
}

int
rp_reader_read_on(rp_reader_t *r)
{
    struct evbuffer  *in;

    if (!r->bulk || !r->own || !r->added || r->pend_len > 0) {
        return 0;
    }
    in = bufferevent_get_input(r->bev);
    if (evbuffer_get_length(in) > 0) {
        return 0;                          /* the owner left bytes: it waits */
    }
    reader_read_bulk(r, in, event_get_fd(&r->ev));
    if (evbuffer_get_length(in) == 0) {
        return 0;                          /* the next wakeup sees EOF or errors */
    }
    r->filled = reader_full(r);
    return 1;
}

/* EOF, an error or the read timeout: reads stop, as a bufferevent's do,
 * and the owner hears of it. Nothing touches r after the callback. */
static void
reader_fail(rp_reader_t *r, short what)
{
    int  err = errno;

    reader_del(r);
    r->on = 0;
    errno = err;                           /* for the owner's EVUTIL_SOCKET_ERROR() */
    r->on_event(r->bev, (short) (what | BEV_EVENT_READING), r->arg);
}

static void
reader_on_ready(evutil_socket_t fd, short what, void *arg)
{
    rp_reader_ready(fd, what, arg);
}

void
rp_reader_ready(evutil_socket_t fd, short what, rp_reader_t *r)
{
    struct evbuffer  *in = bufferevent_get_input(r->bev);
    size_t            len = evbuffer_get_length(in), room, ask;
    ssize_t           n;

    if (what & EV_TIMEOUT) {
        reader_fail(r, BEV_EVENT_TIMEOUT);
        return;
    }
    room = r->limit == 0 ? SIZE_MAX : r->limit > len ? r->limit - len : 0;
    if (room == 0) {
        reader_del(r);
        return;
    }
    if (r->bulk) {
        reader_read_bulk(r, in, fd);       /* a large body: no copy through scratch */
        n = (ssize_t) (evbuffer_get_length(in) - len);
        if (n == 0) {
            r->bulk = 0;                   /* EOF or an error: the scratch read says */
            return;
        }
    } else {
        ask = room < RP_READ_SCRATCH ? room : RP_READ_SCRATCH;
        do {
            n = rp_recv(fd, r->scratch, ask);
        } while (n < 0 && errno == EINTR);
        if (n == 0) {
            reader_fail(r, BEV_EVENT_EOF);
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                reader_fail(r, BEV_EVENT_ERROR);
            }
            return;
        }
        if ((size_t) n == ask && ask < room) {
            evbuffer_add(in, r->scratch, (size_t) n);   /* one chain of their size */
            reader_read_bulk(r, in, fd);
        } else if (len == 0) {
            r->pend = r->scratch;          /* parsed in place (rp_reader_peek) */
            r->pend_len = (uint32_t) n;        /* n <= RP_READ_SCRATCH */
        } else {
            evbuffer_add(in, r->scratch, (size_t) n);
        }
    }
    /* A read that filled the input keeps its event: the owner's callback
     * usually takes the bytes out, and ends with rp_reader_drained(), which
     * deletes the event only if the input is still full. A delete here and
     * the add after the drain cost an EPOLL_CTL_MOD per 64 KiB of a large
     * body (libevent's changelist turns the pair into a MOD, not nothing).
     * An owner that leaves it full without saying so gets one more wakeup,
     * and the room check above deletes the event then. */
    r->filled = reader_full(r);
    r->on_read(r->bev, r->arg);
}
