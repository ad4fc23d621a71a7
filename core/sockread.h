/* sockread.h: rproxy's own reads of plain sockets, for a bufferevent.
 * libevent 2.1's socket bufferevent asks ioctl(FIONREAD) before every read
 * (two system calls where one does: a keep-alive request through the proxy
 * paid 2 ioctls besides its 2 reads), reads at most 4096 bytes per wakeup (a
 * 100 MiB body costs 25,600 of them) and runs evbuffer callbacks to keep
 * its watermark. A reader keeps the bufferevent's own reads off and reads
 * itself with one recv() into the worker's scratch buffer; the owner parses
 * the bytes there when the input was empty (rp_reader_peek, below), else
 * they are added to the input in one chain of their size, as libevent would
 * after FIONREAD. When that read fills the scratch, the kernel holds more,
 * and it reads on straight into the input in large readv()s. It calls
 * the owner's bufferevent read and event callbacks as the bufferevent would
 * (BEV_EVENT_EOF, _ERROR or _TIMEOUT, with BEV_EVENT_READING).
 * A TLS bufferevent decrypts in its own reads: its reader is never attached
 * and passes every call on to the bufferevent, so the owner's code is the
 * same for both. */
#ifndef RP_SOCKREAD_H
#define RP_SOCKREAD_H

#include "rp.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stddef.h>
#include <stdint.h>

#define RP_READ_SCRATCH (16 * 1024)       /* a worker's scratch buffer, bytes */

typedef struct rp_reader_s {
    struct bufferevent    *bev;        /* borrowed: whose input it fills        */
    struct event           ev;         /* EV_READ | EV_PERSIST, while attached  */
    bufferevent_data_cb    on_read;    /* the bufferevent's, read at attach     */
    bufferevent_event_cb   on_event;
    void                  *arg;
    char                  *scratch;    /* borrowed: RP_READ_SCRATCH bytes       */
    const char            *pend;       /* a read's bytes still in scratch, for
                                          the owner's read callback only       */
    size_t                 limit;      /* no reading while the input holds this
                                          much (0: no limit)                    */
    double                 timeout;    /* s without a byte (0: none)            */
    uint32_t               pend_len;   /* <= RP_READ_SCRATCH; beside the flags: a
                                          parked client's struct stays in a
                                          smaller malloc size                   */
    unsigned               own : 1;    /* attached: it reads, not libevent      */
    unsigned               on : 1;     /* the owner wants reads                 */
    unsigned               added : 1;  /* ev is pending                         */
    unsigned               bulk : 1;   /* the last read stopped at the limit with
                                          more to come: read straight in       */
    unsigned               filled : 1; /* the last read filled the input: the
                                          drain after it checks it still is    */
} rp_reader_t;

/* Sets r up for bev (its callbacks already set), detached: every call goes
 * to the bufferevent. limit is the input's high watermark (0: none). plain:
 * bev is a socket bufferevent that rp_reader_attach() will take over, so
 * its own watermark (an evbuffer callback, 48 bytes) is not set. */
void rp_reader_init(rp_reader_t *r, struct bufferevent *bev, size_t limit, int plain);

/* bev's plain socket is connected: r reads it from now on, through
 * scratch (the worker's); reads stay on if they were. */
void rp_reader_attach(rp_reader_t *r, struct event_base *base, char *scratch);

/* The same for a socket whose owner outlives its bufferevents (a parked
 * client, http_conn.h): r reads fd, and its event calls cb(fd, what, arg),
 * which passes it on to rp_reader_ready() once a bufferevent is bound. */
void rp_reader_attach_fd(rp_reader_t *r, struct event_base *base, evutil_socket_t fd,
                         char *scratch, event_callback_fn cb, void *arg);

/* Makes a socket bufferevent's reads ours: its own read event off for good
 * and its input open at the end (once per bufferevent). */
void rp_reader_take_reads(struct bufferevent *bev);

/* r fills bev's input (whose reads are taken) from now on and calls
 * on_read / on_event(arg) as bev would; bev NULL: none (r keeps watching the
 * socket, and rp_reader_ready() must not run). */
void rp_reader_bind(rp_reader_t *r, struct bufferevent *bev, bufferevent_data_cb on_read,
                    bufferevent_event_cb on_event, void *arg);

/* Reads what fd has for the bound bufferevent (an attach_fd callback). */
void rp_reader_ready(evutil_socket_t fd, short what, rp_reader_t *r);

/* After the owner took every byte of a read that stopped at the limit:
 * reads on at once, as the wakeup the kernel still has bytes for would;
 * 1 if bytes came (the owner's callback is not called: the owner goes on
 * with them). EOF and errors are left for the next wakeup. */
int rp_reader_read_on(rp_reader_t *r);

/* Before bev is freed. */
void rp_reader_detach(rp_reader_t *r);

void rp_reader_on(rp_reader_t *r);
void rp_reader_off(rp_reader_t *r);

/* Read inactivity timeout (read_s <= 0: none) and bev's write timeout
 * (NULL: none). */
void rp_reader_set_timeouts(rp_reader_t *r, double read_s, const struct timeval *write);

/* The input's high watermark (0: none). */
void rp_reader_set_limit(rp_reader_t *r, size_t limit);

/* The owner took bytes out of the input: reading resumes if the limit had
 * stopped it. Cheap; call after every drain. Bytes the owner left in scratch
 * go to the input first: every read callback ends with it. */
void rp_reader_drained(rp_reader_t *r);

/* Parsing in place. A read into an empty input leaves its bytes in the
 * worker's scratch buffer (r->pend) instead of copying them into a new
 * chain of the input, and the owner's read callback parses them there:
 * rp_reader_peek() gives them (or, once none are left there, the input's
 * first contiguous bytes), rp_reader_consume(r, used) takes the used ones
 * and moves the rest into the input at once, so that whatever runs after
 * the parser sees them in the input as before. The callback must end with
 * rp_reader_drained() (or rp_reader_discard()): scratch is the next read's.
 * An owner that reads the input itself calls rp_reader_spill() first. */
const char *rp_reader_peek(rp_reader_t *r, size_t *n);
void rp_reader_consume(rp_reader_t *r, size_t used);

/* Moves the bytes left in scratch into the input (for an owner that does
 * not parse in place). */
void rp_reader_spill(rp_reader_t *r);

/* Bytes waiting in the input and in scratch. */
size_t rp_reader_buffered(const rp_reader_t *r);

/* Drops every byte read and not used (a closing connection). */
void rp_reader_discard(rp_reader_t *r);

#endif
