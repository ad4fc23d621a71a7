/* sockread.h: bigger reads of plain sockets than libevent 2.1 makes.
 * A socket bufferevent reads at most 4096 bytes per readiness event (its
 * EVBUFFER_MAX_READ), each after an ioctl(FIONREAD): a 100 MiB body then
 * costs 25,600 wakeups. When a read filled those 4096 bytes, the owner's
 * read callback calls rp_sock_read_more() to take what else the kernel
 * holds in large readv()s, up to the input's budget. */
#ifndef RP_SOCKREAD_H
#define RP_SOCKREAD_H

#include "rp.h"

#include <stddef.h>

struct bufferevent;

/* The size libevent's own reads stop at: an input this long or longer
 * after a read event probably left bytes in the kernel. */
#define RP_LIBEVENT_READ_MAX 4096

/* Reads from bev's socket into its input until the kernel has no more, a
 * read comes back short, or the input holds limit bytes. Returns the bytes
 * added; EOF and errors are left for libevent's next read to report. */
size_t rp_sock_read_more(struct bufferevent *bev, size_t limit);

#endif
