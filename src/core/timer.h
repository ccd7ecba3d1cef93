/*
 * timer.h - a one-shot timer of any duration on an h2o event loop.
 *
 * h2o 2.2.5 groups timeout entries by a fixed duration (h2o_timeout_t); a timer
 * whose duration varies (backoff, per-call deadlines) needs its own group, which this
 * wraps. The owner embeds a loop_timer_t, starts it as often as it likes (from its
 * own callback too), and must call loop_timer_dispose() before freeing it.
 *
 * Why two groups: h2o runs a group's due entries in a loop bounded by the group's
 * duration as it was when the run began; a timer re-armed from its callback with
 * another duration must therefore go into another group object, or it would be seen
 * as due again at once and spin. The group left behind is disposed on a later start,
 * never while h2o may be running it.
 *
 * Also here, as the other thing a loop's thread must do before it ends:
 * loop_thread_release().
 */
#ifndef CONVERSA_CORE_TIMER_H
#define CONVERSA_CORE_TIMER_H

#include <h2o.h>

typedef struct loop_timer loop_timer_t;
typedef void (*loop_timer_cb)(loop_timer_t *timer);

struct loop_timer {
    h2o_loop_t *loop;
    h2o_timeout_t group[2];
    uint64_t ms[2];
    int initialized[2];
    int cur; /* the group the entry goes into */
    h2o_timeout_entry_t entry;
    loop_timer_cb cb;
};

/** Prepares a timer; it does not run until loop_timer_start(). */
void loop_timer_init(loop_timer_t *t, h2o_loop_t *loop, loop_timer_cb cb);

/** (Re)arms the timer to fire once after ms milliseconds. */
void loop_timer_start(loop_timer_t *t, uint64_t ms);

/** Disarms the timer; harmless when it is not armed. */
void loop_timer_stop(loop_timer_t *t);

/** Whether the timer is armed. */
int loop_timer_armed(const loop_timer_t *t);

/** Disarms and releases the timer's resources. */
void loop_timer_dispose(loop_timer_t *t);

/*
 * A deferred call: runs once at the end of the current pass of the loop, after the
 * pass's socket callbacks, so that what the pass's handlers queued goes out together
 * (the rate limiter's checks in one script call, the Redis commands in one write).
 *
 * h2o runs its timeout groups in list order after the socket callbacks, and an entry
 * of a zero-duration group is due at once. Arming moves the call's group to the end of
 * that list, so a call armed from another deferred call (the limiter's batch, which
 * queues a Redis command) still runs in the same pass instead of the next. loop_timer_t
 * cannot do this: it rounds 0 ms up to 1 ms. A deferred call must not re-arm itself
 * from its callback (h2o would run it again in the same pass).
 */
typedef struct loop_defer loop_defer_t;
typedef void (*loop_defer_cb)(loop_defer_t *d);

struct loop_defer {
    h2o_loop_t *loop;
    h2o_timeout_t group; /* its own, zero-duration */
    h2o_timeout_entry_t entry;
    loop_defer_cb cb;
};

/** Prepares a deferred call; it does not run until loop_defer_arm(). */
void loop_defer_init(loop_defer_t *d, h2o_loop_t *loop, loop_defer_cb cb);

/** Arms it for the end of this pass; harmless when it is armed. */
void loop_defer_arm(loop_defer_t *d);

/** Disarms it; harmless when it is not armed. */
void loop_defer_cancel(loop_defer_t *d);

/** Disarms it and releases its group. */
void loop_defer_dispose(loop_defer_t *d);

/**
 * Frees the socket buffers h2o keeps for reuse on the calling thread (a per-thread list
 * with no call of its own to empty it). For a thread that ran a loop, once the loop is
 * destroyed or about to be: the buffers of sockets still open are not in the list.
 */
void loop_thread_release(void);

#endif
