/* test_flush.c: the flusher's stage (core/flush.c) through a real socket
 * pair. Bytes added to an empty output are staged and sent by the release
 * that ends the read callback, in the order they were added, whether they
 * went to the stage or to the evbuffer; what the socket does not take moves
 * to the evbuffer and libevent finishes it; a detached output's staged bytes
 * go nowhere. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "flush.h"

typedef struct {
    struct event_base   *base;
    struct bufferevent  *bev;
    rp_flusher_t         f;
    rp_flush_t           s;
    int                  peer;             /* the other end: what was sent */
    int                  writes;           /* bufferevent write callbacks */
} flush_rig_t;

static void
on_write(struct bufferevent *bev, void *arg)
{
    ((flush_rig_t *) arg)->writes++;
}

static int
rig_setup(void **state)
{
    flush_rig_t  *r = calloc(1, sizeof(*r));
    int           sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    r->base = event_base_new();
    r->bev = bufferevent_socket_new(r->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(r->bev, NULL, on_write, NULL, r);
    r->peer = sv[1];
    rp_flusher_init(&r->f, r->base);
    rp_flush_attach(&r->f, &r->s, r->bev);
    *state = r;
    return 0;
}

static int
rig_teardown(void **state)
{
    flush_rig_t  *r = *state;

    rp_flush_detach(&r->s);
    rp_flusher_cleanup(&r->f);
    bufferevent_free(r->bev);
    close(r->peer);
    event_base_free(r->base);
    free(r);
    return 0;
}

static size_t
out_len(flush_rig_t *r)
{
    return evbuffer_get_length(bufferevent_get_output(r->bev));
}

/* Reads what the peer has (running the loop so that libevent writes what
 * waits) until want bytes came or 5 s passed; returns how many came. */
static size_t
peer_read(flush_rig_t *r, char *buf, size_t want)
{
    size_t   got = 0;
    ssize_t  n;
    time_t   until = time(NULL) + 5;

    while (got < want && time(NULL) < until) {
        n = read(r->peer, buf + got, want - got);
        if (n > 0) {
            got += (size_t) n;
        } else {
            assert_true(n < 0 && errno == EAGAIN);
            event_base_loop(r->base, EVLOOP_NONBLOCK);
        }
    }
    return got;
}

/* Nothing more is on its way to the peer. */
static void
assert_peer_empty(flush_rig_t *r)
{
    char  c;

    event_base_loop(r->base, EVLOOP_NONBLOCK);
    assert_int_equal(read(r->peer, &c, 1), -1);
    assert_int_equal(errno, EAGAIN);
}

/* The peer gets exactly want (n bytes) and nothing after it. */
static void
assert_peer_got(flush_rig_t *r, const char *want, size_t n)
{
    char  *got = malloc(n);

    assert_int_equal(peer_read(r, got, n), n);
    assert_memory_equal(got, want, n);
    free(got);
    assert_peer_empty(r);
}

/* A head and a body added in one callback go out at its release, as one
 * piece from the stage: the evbuffer never held them. */
static void
test_staged_pieces_sent_at_release(void **state)
{
    flush_rig_t  *r = *state;
    char          buf[64];

    rp_flusher_hold(&r->f);
    rp_flush_add(&r->s, r->bev, "HTTP/1.1 200 OK\r\n\r\n", 19);
    rp_flush_add(&r->s, r->bev, "body", 4);
    assert_int_equal(r->s.nseg, 1);                   /* contiguous: one piece */
    assert_int_equal(out_len(r), 0);
    assert_int_equal(rp_flush_out_len(&r->s, r->bev), 23);
    assert_int_equal(read(r->peer, buf, sizeof(buf)), -1);  /* nothing before the release */
    rp_flusher_release(&r->f);
    assert_int_equal(r->s.nseg, 0);
    assert_int_equal(r->f.stage_len, 0);
    assert_peer_got(r, "HTTP/1.1 200 OK\r\n\r\nbody", 23);
}

/* Another output's bytes between two of ours make a second piece; both
 * outputs get theirs, each in order. */
static void
test_interleaved_outputs_keep_their_order(void **state)
{
    flush_rig_t         *r = *state;
    struct bufferevent  *bev2;
    rp_flush_t           s2;
    int                  sv[2];
    char                 buf[64];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    bev2 = bufferevent_socket_new(r->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    rp_flush_attach(&r->f, &s2, bev2);
    rp_flusher_hold(&r->f);
    rp_flush_add(&r->s, r->bev, "one ", 4);
    rp_flush_add(&s2, bev2, "other", 5);
    rp_flush_add(&r->s, r->bev, "two ", 4);
    assert_int_equal(r->s.nseg, 2);
    rp_flush_add(&r->s, r->bev, "three", 5);            /* extends the second piece */
    assert_int_equal(r->s.nseg, 2);
    rp_flush_add(&s2, bev2, "!", 1);
    rp_flush_add(&r->s, r->bev, " four", 5);            /* no third piece: the evbuffer */
    assert_int_equal(out_len(r), 8 + 5 + 5);
    rp_flusher_release(&r->f);
    assert_int_equal(peer_read(r, buf, 18), 18);
    assert_memory_equal(buf, "one two three four", 18);
    assert_int_equal(read(sv[1], buf, sizeof(buf)), 6);
    assert_memory_equal(buf, "other!", 6);
    assert_peer_empty(r);
    rp_flush_detach(&s2);
    bufferevent_free(bev2);
    close(sv[1]);
}

/* Whoever takes the output by rp_flush_output() (an error answer) finds
 * the staged bytes there first, and later adds stay behind them. */
static void
test_output_taken_keeps_staged_bytes_first(void **state)
{
    flush_rig_t  *r = *state;

    rp_flusher_hold(&r->f);
    rp_flush_add(&r->s, r->bev, "staged,", 7);
    evbuffer_add(rp_flush_output(&r->s, r->bev), "direct,", 7);
    assert_int_equal(r->s.nseg, 0);
    rp_flush_add(&r->s, r->bev, "after", 5);           /* not staged: bytes wait before it */
    assert_int_equal(r->s.nseg, 0);
    assert_int_equal(out_len(r), 19);
    rp_flusher_release(&r->f);
    assert_peer_got(r, "staged,direct,after", 19);
}

/* A socket that takes part of the staged bytes: the rest moves to the
 * evbuffer, EV_WRITE goes on, and libevent sends it after; the peer gets
 * every byte in order, and the write callback runs once it drained. */
static void
test_partial_write_moves_the_rest_to_the_evbuffer(void **state)
{
    flush_rig_t  *r = *state;
    int           sndbuf = 4096;
    char         *body = malloc(16384);
    size_t        i, left;

    for (i = 0; i < 16384; i++) {
        body[i] = (char) ('a' + i % 23);
    }
    assert_int_equal(setsockopt(bufferevent_getfd(r->bev), SOL_SOCKET, SO_SNDBUF, &sndbuf,
                                sizeof(sndbuf)), 0);
    rp_flusher_hold(&r->f);
    rp_flush_add(&r->s, r->bev, body, 8192);
    rp_flush_add(&r->s, r->bev, body + 8192, 8192);
    assert_int_equal(r->s.nseg, 1);
    assert_int_equal(out_len(r), 0);
    rp_flusher_release(&r->f);
    left = out_len(r);
    assert_true(left > 0 && left < 16384);              /* part went, the rest waits */
    assert_int_equal(r->s.nseg, 0);
    assert_true(bufferevent_get_enabled(r->bev) & EV_WRITE);
    assert_peer_got(r, body, 16384);
    assert_int_equal(out_len(r), 0);
    free(body);
}

/* Pieces over the stage's size go to the evbuffer, and so does everything
 * after them. */
static void
test_large_piece_goes_to_the_evbuffer(void **state)
{
    flush_rig_t  *r = *state;
    size_t        big = 20000;
    char         *body = calloc(1, big + 4), *got = malloc(big + 4);

    memset(body, 'x', big);
    rp_flusher_hold(&r->f);
    rp_flush_add(&r->s, r->bev, body, big);
    rp_flush_add(&r->s, r->bev, "tail", 4);
    assert_int_equal(r->s.nseg, 0);
    assert_int_equal(out_len(r), big + 4);
    rp_flusher_release(&r->f);
    memcpy(body + big, "tail", 4);
    assert_int_equal(peer_read(r, got, big + 4), big + 4);
    assert_memory_equal(got, body, big + 4);
    free(body);
    free(got);
}

/* A detached output's staged bytes are dropped with it; the stage is empty
 * again after the release. */
static void
test_detach_drops_staged_bytes(void **state)
{
    flush_rig_t  *r = *state;

    rp_flusher_hold(&r->f);
    rp_flush_add(&r->s, r->bev, "never", 5);
    rp_flush_detach(&r->s);
    assert_int_equal(r->s.nseg, 0);
    assert_false(r->s.queued);
    rp_flusher_release(&r->f);
    assert_int_equal(r->f.stage_len, 0);
    assert_peer_empty(r);
    rp_flush_attach(&r->f, &r->s, r->bev);              /* for the teardown */
}

/* Staged without a hold (a timer's answer): the loop pass's flush event
 * sends it, and a close waiting for the drain gets the write callback. */
static void
test_unheld_add_sent_by_the_pass(void **state)
{
    flush_rig_t  *r = *state;
    char          buf[16];

    rp_flush_add(&r->s, r->bev, "late", 4);
    assert_int_equal(r->s.nseg, 1);
    assert_true(rp_flush_want_drain(&r->s));
    assert_int_equal(peer_read(r, buf, 4), 4);
    assert_memory_equal(buf, "late", 4);
    assert_int_equal(r->writes, 1);
    assert_int_equal(r->f.stage_len, 0);
}

int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_staged_pieces_sent_at_release, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_interleaved_outputs_keep_their_order, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_output_taken_keeps_staged_bytes_first, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_partial_write_moves_the_rest_to_the_evbuffer,
                                        rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_large_piece_goes_to_the_evbuffer, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_detach_drops_staged_bytes, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_unheld_add_sent_by_the_pass, rig_setup,
                                        rig_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
