/*
 * push.h - durable enqueueing of jobs, batched into group commits.
 *
 * A pusher belongs to one loop thread and one queue. queue_push() copies the jobs;
 * they are inserted by one statement together with every other job pushed on this
 * thread while the previous statement was in flight, so under load one commit, and one
 * WAL flush, acknowledges many jobs. One statement at a time, not one per connection
 * of the pool: PostgreSQL flushes commits one after another anyway, and a second
 * statement in flight only splits the waiting jobs into two transactions, whose fixed
 * cost (a small insert's commit costs as much as a dozen rows) is most of the work.
 * Measured with 64 connections offering 5,100 webhooks/s: p50 3.5-5.3 ms against
 * 4.9-8.1 ms with a statement per connection (two). The callback runs once the
 * statement committed (ok) or failed (the jobs of that statement were not stored), on
 * the loop thread, unless it was cancelled through waiters; cancelling never withdraws
 * the jobs.
 *
 * Waking: once a statement has committed, the pusher wakes this process's workers of
 * the queue at once (queue_wake_local), and those of other processes by NOTIFY
 * conversa_jobs, sent in a transaction of its own (one in flight at a time, and at most
 * one per 10 ms: a steady stream of commits is announced by one NOTIFY per gap, the
 * first after a quiet spell at once), not from the insert: a notifying transaction
 * holds a database-wide lock until its commit is flushed, and would serialise every
 * group commit behind the previous one.
 *
 * Ordering per key: the statement takes a transaction-scoped advisory lock on each
 * key it inserts (in key order) before it draws ids, so two transactions inserting the
 * same key commit in the order of their ids, and a worker never sees a later job of a
 * key while an earlier one is still uncommitted.
 */
#ifndef CONVERSA_QUEUE_PUSH_H
#define CONVERSA_QUEUE_PUSH_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

#include "store/pg.h"

typedef struct queue_pusher queue_pusher_t;

/** One job to insert; every pointer is copied by queue_push(). */
typedef struct queue_job_in {
    int64_t company;
    const char *key; /* ordering key, or NULL */
    size_t key_len;
    const void *payload; /* opaque bytes, stored as given */
    size_t payload_len;
    const char *meta_json; /* a JSON object (text), or NULL */
} queue_job_in_t;

/** Whether the jobs were committed (error NULL), else why not. */
typedef void (*queue_push_cb)(void *data, const char *error);

/** A pusher for `queue` on pool's loop; max_attempts is stored with each job. */
queue_pusher_t *queue_pusher_new(pg_pool_t *pool, const char *queue, unsigned max_attempts);

/** Fails the jobs not yet sent ("shutting down") and frees; statements in flight finish on their own. */
void queue_pusher_free(queue_pusher_t *p);

/** Inserts n jobs atomically (all or none), as described above. */
void queue_push(queue_pusher_t *p, const queue_job_in_t *jobs, size_t n, queue_push_cb cb, void *data,
                h2o_linklist_t *waiters);

#endif
