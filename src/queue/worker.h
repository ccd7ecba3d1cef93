/*
 * worker.h - the workers of a PostgreSQL job queue.
 *
 * Jobs live in the jobs table (migration 0001), put there by queue/push.h. A worker
 * process runs QUEUE_CONCURRENCY slots on a thread of its own, with its own event
 * loop, PostgreSQL connections (one per slot), Redis connection and cache state.
 *
 * A slot claims the oldest due jobs of its queue (FOR UPDATE SKIP LOCKED, up to the
 * queue's batch) whose keys have no earlier job still queued or running, marks them
 * running with a lease (QUEUE_LEASE_MS) and an attempt more, and hands them to the
 * queue's run function, which must call queue_slot_done() exactly once. The run
 * function completes each job in the same transaction as the job's own writes (see
 * webhook_apply in migration 0006), so a job is done exactly when its effects are
 * committed. Running a batch in one transaction makes one commit for many jobs.
 *
 * A failed attempt is scheduled again after QUEUE_BACKOFF_MS x 2^(attempt-1), with
 * +/-20 % jitter, until max_attempts; then the job stays as failed with its last
 * error (the dead letter; the queue API retries it). A job whose lease expired (its
 * worker died or hung) is taken back by any worker, counting the attempt it used.
 * Jobs of one key wait for each other, so a failing job holds back its key's later
 * jobs until it succeeds or fails for good.
 *
 * Idle slots wake on NOTIFY conversa_jobs (sent once inserted jobs are committed:
 * by queue_push after its insert, by a trigger for the others, migrations 0006 and
 * 0008; heard by the process's one listening connection, queue/wake.h), when the
 * earliest scheduled retry is due, and once a second whatever happens (a missed
 * notification costs at most that): one slot claims, and a claim that fills its batch
 * wakes the next, so only as many slots claim as there is work for. The same thread
 * takes back expired leases, samples queue gauges for /api/metrics and prunes
 * completed jobs older than QUEUE_RETENTION_SECONDS.
 */
#ifndef CONVERSA_QUEUE_WORKER_H
#define CONVERSA_QUEUE_WORKER_H

#include <stdint.h>

#include "cache/cache.h"
#include <h2o.h>
#include "store/pg.h"

struct redis_client;
struct metrics_shard;

typedef struct queue_worker queue_worker_t;
typedef struct queue_slot queue_slot_t;

/** The job a slot holds. */
typedef struct queue_job {
    int64_t company;
    int64_t id;
    int attempt; /* this attempt, from 1 */
    int max_attempts;
} queue_job_t;

/**
 * Runs a batch of n jobs (n >= 1, at most one per key); marks the ones that failed
 * with queue_slot_fail() and then calls queue_slot_done() exactly once, now or later,
 * on the worker's loop. jobs stays valid until then.
 */
typedef void (*queue_run_fn)(queue_slot_t *slot, const queue_job_t *jobs, size_t n);

typedef struct queue_def {
    const char *name;
    unsigned batch; /* most jobs a slot claims and runs at once */
    queue_run_fn run;
    /** Optional: the worker thread's own state for run (queue_slot_context()), made before any job runs. */
    void *(*thread_start)(h2o_loop_t *loop, struct redis_client *redis, struct metrics_shard *metrics);
    /** Optional: frees that state once no batch is running any more (or the shutdown timeout passed). */
    void (*thread_stop)(void *context);
} queue_def_t;

/** Starts the workers of def (concurrency slots) on a new thread. */
queue_worker_t *queue_worker_start(const queue_def_t *def, unsigned concurrency);

/**
 * Stops claiming, waits up to SHUTDOWN_TIMEOUT_MS for running jobs, and frees. A job
 * still running then is left to its lease.
 */
void queue_worker_stop(queue_worker_t *w);

/** The slot's PostgreSQL pool (shared by the slots, one connection each). */
pg_pool_t *queue_slot_pg(queue_slot_t *s);

/** The worker thread's cache state, for invalidating what a job changed. */
cache_thread_t *queue_slot_cache(queue_slot_t *s);

/** The value of jobs.locked_by while this slot holds its job. */
const char *queue_slot_owner(queue_slot_t *s);

/**
 * Runs stmt on the slot's pool with the batch as parameters: $1 the jobs' companies
 * and $2 their ids (bigint arrays, in the batch's order) and $3 queue_slot_owner().
 */
void queue_slot_exec_batch(queue_slot_t *s, pg_stmt_t *stmt, pg_cb cb, void *data);

/** The worker thread's event loop. */
h2o_loop_t *queue_slot_loop(queue_slot_t *s);

/** What def.thread_start made on this worker's thread, or NULL. */
void *queue_slot_context(queue_slot_t *s);

/** The worker thread's metrics shard. */
struct metrics_shard *queue_slot_metrics(queue_slot_t *s);

/** Whether the worker is stopping: a run function should not start waiting for anything long. */
int queue_slot_stopping(queue_slot_t *s);

/** Marks job i of the slot's batch as failed (an attempt counted), with why (copied). */
void queue_slot_fail(queue_slot_t *s, size_t i, const char *error);

/**
 * Sends job i back to the queue without counting the attempt: due again after
 * delay_ms, or parked (delay_ms < 0: run_at infinity) until something sets its run_at.
 * For waits that say nothing about the job (rate limits, a paused campaign).
 */
void queue_slot_retry(queue_slot_t *s, size_t i, int64_t delay_ms, const char *error);

/** Ends the slot's batch: every job not marked failed completed (its run function marked it so). */
void queue_slot_done(queue_slot_t *s);

#endif
