/*
 * Unit tests of the single-flight module (src/cache/flight.c) on real h2o loops: a
 * result reaches waiters on another loop thread, a wait expires, a cancelled wait is
 * never called back. Run under the sanitizers by `make test SANITIZE=1`, which also
 * checks that every wait and result is freed.
 */
#include <criterion/criterion.h>
#include <h2o.h>
#include <h2o/multithread.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/flight.h"
#include "core/waiter.h"

/* A loop thread of the test: its loop, message queue and flight state. */
typedef struct fl_loop {
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    flight_thread_t *ft;
} fl_loop_t;

/* What one waiter saw. */
typedef struct fl_seen {
    int calls;
    int status;
    char body[32];
    pthread_t thread;
    int expired;
} fl_seen_t;

static void fl_loop_init(fl_loop_t *l, unsigned wait_ms)
{
    l->loop = h2o_evloop_create();
    l->queue = h2o_multithread_create_queue(l->loop);
    l->ft = flight_thread_new(l->loop, l->queue, wait_ms);
}

static void fl_loop_free(fl_loop_t *l)
{
    flight_thread_free(l->ft, 1000);
    h2o_multithread_destroy_queue(l->queue);
    free(l->queue); /* h2o 2.2.5's destroy closes the queue but does not free it */
    h2o_evloop_destroy(l->loop);
}

static void fl_cb(void *data, const flight_result_t *res)
{
    fl_seen_t *s = data;
    ++s->calls;
    s->thread = pthread_self();
    if (res == NULL) {
        s->expired = 1;
        return;
    }
    s->status = res->status;
    snprintf(s->body, sizeof(s->body), "%s", res->body);
}

/* Runs l's loop until *flag is set or ms pass. */
static void fl_run_until(fl_loop_t *l, const int *flag, int ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (__atomic_load_n(flag, __ATOMIC_ACQUIRE))
            return;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms)
            return;
        h2o_evloop_run(l->loop, 5);
    }
}

/* The other thread: joins the flight for "k" (which the main thread started) and waits. */
typedef struct fl_joiner {
    fl_loop_t l;
    fl_seen_t seen;
    int joined;
    int started_here;
} fl_joiner_t;

static void *fl_join_main(void *arg)
{
    fl_joiner_t *j = arg;
    fl_loop_init(&j->l, 5000);
    h2o_linklist_t waiters;
    h2o_linklist_init_anchor(&waiters);
    j->started_here = flight_join(j->l.ft, "k", 1, fl_cb, &j->seen, &waiters) != NULL;
    __atomic_store_n(&j->joined, 1, __ATOMIC_RELEASE);
    fl_run_until(&j->l, &j->seen.calls, 5000);
    fl_loop_free(&j->l);
    return NULL;
}

Test(flight, one_fill_reaches_a_waiter_on_another_thread)
{
    fl_loop_t l;
    fl_loop_init(&l, 5000);
    h2o_linklist_t waiters;
    h2o_linklist_init_anchor(&waiters);
    fl_seen_t mine = {0};
    flight_t *f = flight_join(l.ft, "k", 1, fl_cb, &mine, &waiters);
    cr_assert_not_null(f, "the first to join starts the flight");
    cr_assert_eq(flight_count(), 1);

    fl_joiner_t j = {0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fl_join_main, &j), 0);
    while (!__atomic_load_n(&j.joined, __ATOMIC_ACQUIRE))
        sched_yield();
    cr_assert_eq(j.started_here, 0, "the second joins the flight under way");

    flight_finish(f, flight_result_new(200, NULL, "{\"n\":1}", 7));
    cr_assert_eq(flight_count(), 0);
    fl_run_until(&l, &mine.calls, 2000);
    pthread_join(th, NULL);

    cr_assert_eq(mine.calls, 1);
    cr_assert_eq(mine.status, 200);
    cr_assert_str_eq(mine.body, "{\"n\":1}");
    cr_assert(pthread_equal(mine.thread, pthread_self()));
    cr_assert_eq(j.seen.calls, 1);
    cr_assert_eq(j.seen.status, 200);
    cr_assert_str_eq(j.seen.body, "{\"n\":1}");
    cr_assert(pthread_equal(j.seen.thread, th), "a waiter is called back on its own thread");
    fl_loop_free(&l);
}

Test(flight, a_wait_expires_and_the_late_result_is_dropped)
{
    fl_loop_t l;
    fl_loop_init(&l, 50);
    h2o_linklist_t waiters;
    h2o_linklist_init_anchor(&waiters);
    fl_seen_t starter = {0}, joiner = {0};
    flight_t *f = flight_join(l.ft, "slow", 4, fl_cb, &starter, &waiters);
    cr_assert_not_null(f);
    cr_assert_null(flight_join(l.ft, "slow", 4, fl_cb, &joiner, &waiters));
    fl_run_until(&l, &joiner.calls, 2000);
    cr_assert_eq(joiner.calls, 1);
    cr_assert_eq(joiner.expired, 1, "the joiner gave up after wait_ms");
    cr_assert_eq(starter.calls, 0, "the starter waits for its own fill");
    flight_finish(f, flight_result_new(503, "unavailable", "x", 1));
    fl_run_until(&l, &starter.calls, 2000);
    cr_assert_eq(starter.calls, 1);
    cr_assert_eq(starter.status, 503);
    cr_assert_eq(joiner.calls, 1, "an expired wait is not called again");
    fl_loop_free(&l);
}

Test(flight, a_cancelled_wait_is_never_called)
{
    fl_loop_t l;
    fl_loop_init(&l, 5000);
    h2o_linklist_t req1, req2;
    h2o_linklist_init_anchor(&req1);
    h2o_linklist_init_anchor(&req2);
    fl_seen_t a = {0}, b = {0};
    flight_t *f = flight_join(l.ft, "c", 1, fl_cb, &a, &req1);
    cr_assert_null(flight_join(l.ft, "c", 1, fl_cb, &b, &req2));
    waiter_cancel_all(&req2); /* b's request went away before the result */
    flight_finish(f, flight_result_new(200, NULL, "ok", 2));
    waiter_cancel_all(&req1); /* a's went away after the result was posted */
    int never = 0;
    fl_run_until(&l, &never, 100);
    cr_assert_eq(a.calls, 0);
    cr_assert_eq(b.calls, 0);
    fl_loop_free(&l);
}
