/*
 * flight.h - one fill per cache key per process (the cure for a stampede).
 *
 * When a cached response is missing, the first request to notice starts a "flight"
 * for its key and runs the query; every other request of the process that misses the
 * same key meanwhile, on any loop thread, joins that flight and waits for its result
 * instead of querying PostgreSQL too. The result travels to each waiter's own loop
 * thread through its h2o message queue, so a waiter's callback always runs on the
 * thread that owns its request.
 *
 * Contract:
 *   - flight_join() always registers the caller as a waiter; it returns the flight when
 *     the caller started it, and the caller must then call flight_finish() exactly
 *     once (on any thread), whatever happens to its own request. The starter's wait
 *     has no deadline (its query has the statement timeout); a joiner's wait is bounded
 *     by wait_ms, after which its callback gets NULL and it queries by itself.
 *   - Each waiter's callback runs once, on its thread, with the result (or NULL), and
 *     never after its request was cancelled through `waiters`.
 *   - A result is shared and reference-counted; callbacks borrow it for their call.
 */
#ifndef CONVERSA_CACHE_FLIGHT_H
#define CONVERSA_CACHE_FLIGHT_H

#include <h2o.h>
#include <h2o/multithread.h>
#include <stddef.h>

typedef struct flight flight_t;
typedef struct flight_thread flight_thread_t;

/* What a fill produced: status 200 and the body, or an error status, code and message (in body). */
typedef struct flight_result {
    int refs; /* atomic */
    int status;
    const char *code; /* static */
    size_t len;
    char body[];
} flight_result_t;

/** The waiter's callback: res is NULL when the wait expired (the caller then queries itself). */
typedef void (*flight_cb)(void *data, const flight_result_t *res);

/** Sets up the calling loop thread (receives results on queue). */
flight_thread_t *flight_thread_new(h2o_loop_t *loop, h2o_multithread_queue_t *queue, unsigned wait_ms);

/**
 * Waits (running the loop, at most timeout_ms) for the results still travelling to
 * this thread, then frees it. Every request of the thread must be gone already.
 */
void flight_thread_free(flight_thread_t *t, unsigned timeout_ms);

/**
 * Joins the flight for key, or starts it. Returns the flight when the caller started it
 * (it must fill and call flight_finish()), NULL when it joined one already under way.
 */
flight_t *flight_join(flight_thread_t *t, const char *key, size_t keylen, flight_cb cb, void *data,
                      h2o_linklist_t *waiters);

/** Allocates a result with room for len bytes of body (refs = 1). */
flight_result_t *flight_result_new(int status, const char *code, const char *body, size_t len);

/** Drops a reference. */
void flight_result_release(flight_result_t *res);

/** Ends the flight: every waiter gets res (the caller's reference is taken over). */
void flight_finish(flight_t *f, flight_result_t *res);

/** Flights currently under way in the process (for tests and metrics). */
size_t flight_count(void);

#endif
