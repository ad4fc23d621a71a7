/* rawio.h: the worker's socket reads and writes, straight to the kernel.
 *
 * glibc makes recv(), readv() and writev() cancellation points. In a
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

static inline ssize_t
rp_writev(int fd, const struct iovec *iov, int n)
{
    return (ssize_t) syscall(SYS_writev, fd, iov, n);
}

static inline int
rp_close(int fd)
{
    return (int) syscall(SYS_close, fd);
}

#endif
