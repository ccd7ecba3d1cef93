/*
 * workq.h - a small pool of threads for CPU-heavy work (password hashing) that must
 * not run on an event loop.
 *
 * A loop owns an inbox (workq_inbox_t) registered on its h2o message queue. It submits
 * a job; a worker runs job->work(); the job then travels back to the inbox and
 * job->done() runs on the loop thread — always exactly once, with cancelled = 1 when
 * the job's waiter was cancelled (its request went away) or the loop is closing. The
 * job's memory belongs to its submitter, who frees it in done().
 */
#ifndef CONVERSA_CORE_WORKQ_H
#define CONVERSA_CORE_WORKQ_H

#include <h2o.h>
#include <h2o/multithread.h>

#include "core/waiter.h"

typedef struct workq_inbox workq_inbox_t;
typedef struct workq_job workq_job_t;

struct workq_job {
    void (*work)(workq_job_t *job);
    void (*done)(workq_job_t *job, int cancelled);
    /* private */
    h2o_multithread_message_t msg;
    h2o_linklist_t pending;
    waiter_t waiter;
    workq_inbox_t *inbox;
    int cancelled;
};

/** Starts n worker threads. */
void workq_start(unsigned n);

/** Stops and joins the workers; every inbox must have been closed before. */
void workq_stop(void);

/** Creates an inbox on a loop's message queue (call on that loop's thread). */
workq_inbox_t *workq_inbox_new(h2o_multithread_queue_t *queue);

/**
 * Waits (running the loop, at most timeout_ms) for this inbox's jobs to come back,
 * cancels those not started, and frees the inbox. On the loop thread.
 */
void workq_inbox_close(workq_inbox_t *inbox, h2o_loop_t *loop, unsigned timeout_ms);

/** Queues a job; links its waiter into waiters when given. */
void workq_submit(workq_inbox_t *inbox, workq_job_t *job, h2o_linklist_t *waiters);

#endif
