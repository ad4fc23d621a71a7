/* sockread.c: large direct reads of plain sockets into a bufferevent's
 * input, and turning reads on only when off (see sockread.h for why). */
#include "sockread.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/uio.h>

#define SOCKREAD_CHUNK     (256 * 1024)   /* bytes asked of one readv()        */
#define SOCKREAD_LIBEVENT  4096           /* libevent 2.1's EVBUFFER_MAX_READ  */

size_t
rp_sock_read_more(struct bufferevent *bev, size_t limit)
{
    struct evbuffer        *in = bufferevent_get_input(bev);
    struct evbuffer_iovec   vec[2];
    struct iovec            iov[2];
    size_t                  added = 0, want, len, got, take;
    ssize_t                 n;
    int                     nvec, i, used;

    if (evbuffer_get_length(in) < SOCKREAD_LIBEVENT) {
        return 0;                          /* a small read: the kernel is empty */
    }
    /* a socket bufferevent freezes the end of its input outside its own
     * read: this is that read, done bigger */
    evbuffer_unfreeze(in, 0);
    while ((len = evbuffer_get_length(in)) < limit) {
        want = limit - len < SOCKREAD_CHUNK ? limit - len : SOCKREAD_CHUNK;
        nvec = evbuffer_reserve_space(in, (ev_ssize_t) want, vec, 2);
        if (nvec <= 0) {
            break;
        }
        for (i = 0, take = want; i < nvec; i++) {     /* the space may be larger */
            vec[i].iov_len = vec[i].iov_len < take ? vec[i].iov_len : take;
            take -= vec[i].iov_len;
            iov[i].iov_base = vec[i].iov_base;
            iov[i].iov_len = vec[i].iov_len;
        }
        do {
            n = readv(bufferevent_getfd(bev), iov, nvec);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) {
            evbuffer_commit_space(in, vec, 0);
            break;                         /* EAGAIN; EOF and errors: libevent's turn */
        }
        got = (size_t) n;
        for (i = 0, used = 0; i < nvec && n > 0; i++, used++) {   /* what it filled */
            take = (size_t) n > vec[i].iov_len ? vec[i].iov_len : (size_t) n;
            vec[i].iov_len = take;
            n -= (ssize_t) take;
        }
        evbuffer_commit_space(in, vec, used);
        added += got;
        if (got < want) {
            break;                         /* a short read: the kernel is empty */
        }
    }
    evbuffer_freeze(in, 0);
    return added;
}

void
rp_sock_reads_on(struct bufferevent *bev)
{
    if (!(bufferevent_get_enabled(bev) & EV_READ)) {
        bufferevent_enable(bev, EV_READ);
    }
}
