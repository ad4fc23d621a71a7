/* rawio.h: the worker's socket reads and writes, straight to the kernel.
 *
 * glibc makes recv(), readv(), send() and sendmsg() cancellation points. In a
 * process with more than one thread (rproxy's main thread, its workers,
 * the log writer) each call then switches asynchronous cancellation on
 * and off around the system call: two atomic read-modify-writes on the
 * thread's cancel word, 1.2 % of a keep-alive request's CPU under perf
 * (four such calls a request). rproxy never cancels a thread, so the hot
 * path calls syscall(2), which is not a cancellation point, and gets the
 * same result and errno. close() is one too: a Connection: close client
 * pays it once per request. */
#ifndef RP_RAWIO_H
#define RP_RAWIO_H

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static inline ssize_t
rp_recv(int fd, void *buf, size_t len)
{
    return (ssize_t) syscall(SYS_recvfrom, fd, buf, len, 0, NULL, NULL);
}

static inline ssize_t
rp_readv(int fd, const struct iovec *iov, int n)
{
    return (ssize_t) syscall(SYS_readv, fd, iov, n);
}

/* Writes to a socket. sendto()/sendmsg() rather than writev(): writev()
 * goes through the VFS (vfs_writev, fdget_pos), 2-3 % of a keep-alive
 * request's kernel samples, which a socket call skips. One piece (a
 * request head) needs no iovec at all. flags join MSG_NOSIGNAL (MSG_MORE). */
static inline ssize_t
rp_sendv(int fd, const struct iovec *iov, int n, int flags)
{
    struct msghdr  msg = { 0 };

    if (n == 1) {
        return (ssize_t) syscall(SYS_sendto, fd, iov[0].iov_base, iov[0].iov_len,
                                 MSG_NOSIGNAL | flags, NULL, 0);
    }
    msg.msg_iov = (struct iovec *) iov;
    msg.msg_iovlen = (size_t) n;
    return (ssize_t) syscall(SYS_sendmsg, fd, &msg, MSG_NOSIGNAL | flags);
}

static inline int
rp_close(int fd)
{
    return (int) syscall(SYS_close, fd);
}

#endif
