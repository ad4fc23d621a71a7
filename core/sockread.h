/* sockread.h: reading sockets through bufferevents, cheaper than libevent
 * 2.1 alone: bigger reads of plain sockets, and no event re-arm to turn on
 * reads that are on already.
 * A socket bufferevent reads at most 4096 bytes per readiness event (its
 * EVBUFFER_MAX_READ), each after an ioctl(FIONREAD): a 100 MiB body then
 * costs 25,600 wakeups. The owner's read callback calls rp_sock_read_more()
 * on plain sockets: when libevent's read filled its 4096 bytes, it takes
 * what else the kernel holds in large readv()s, up to the input's budget. */
#ifndef RP_SOCKREAD_H
#define RP_SOCKREAD_H

#include "rp.h"

#include <stddef.h>

struct bufferevent;

/* When bev's input holds at least the 4096 bytes libevent's reads stop at
 * (a read probably left bytes in the kernel), reads from its socket into
 * the input until the kernel has no more, a read comes back short, or the
 * input holds limit bytes. Returns the bytes added; EOF and errors are left
 * for libevent's next read to report. */
size_t rp_sock_read_more(struct bufferevent *bev, size_t limit);

/* Turns bev's reads on unless they are: bufferevent_enable() re-adds the
 * read event (its timeout, an epoll change) even when nothing changes. */
void rp_sock_reads_on(struct bufferevent *bev);

#endif
