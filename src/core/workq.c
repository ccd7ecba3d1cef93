#include "core/workq.h"
#include "core/util.h"

#include <pthread.h>
#include <stdlib.h>

struct workq_inbox {
    h2o_multithread_receiver_t receiver;
    h2o_multithread_queue_t *queue;
    size_t outstanding; /* submitted and not yet back; loop thread only */
};

static pthread_mutex_t workq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t workq_cond = PTHREAD_COND_INITIALIZER;
static h2o_linklist_t workq_pending = {&workq_pending, &workq_pending};
static pthread_t *workq_threads;
static unsigned workq_nthreads;
static int workq_stopping;

static void *workq_main(void *arg)
{
    (void)arg;
    util_thread_name("workq");
    pthread_mutex_lock(&workq_lock);
    for (;;) {
        while (!workq_stopping && h2o_linklist_is_empty(&workq_pending))
            pthread_cond_wait(&workq_cond, &workq_lock);
        if (workq_stopping)
            break;
        workq_job_t *job = H2O_STRUCT_FROM_MEMBER(workq_job_t, pending, workq_pending.next);
        h2o_linklist_unlink(&job->pending);
        pthread_mutex_unlock(&workq_lock);
        job->work(job);
        h2o_multithread_send_message(&job->inbox->receiver, &job->msg);
        pthread_mutex_lock(&workq_lock);
    }
    pthread_mutex_unlock(&workq_lock);
    return NULL;
}

void workq_start(unsigned n)
{
    workq_stopping = 0;
    workq_nthreads = n;
    workq_threads = util_calloc(n, sizeof(*workq_threads));
    for (unsigned i = 0; i != n; ++i)
        if (pthread_create(&workq_threads[i], NULL, workq_main, NULL) != 0)
            util_fatal("cannot start a worker thread");
}

void workq_stop(void)
{
    pthread_mutex_lock(&workq_lock);
    workq_stopping = 1;
    pthread_cond_broadcast(&workq_cond);
    pthread_mutex_unlock(&workq_lock);
    for (unsigned i = 0; i != workq_nthreads; ++i)
        pthread_join(workq_threads[i], NULL);
    free(workq_threads);
    workq_threads = NULL;
    workq_nthreads = 0;
}

static void workq_finish(workq_inbox_t *inbox, workq_job_t *job)
{
    --inbox->outstanding;
    waiter_detach(&job->waiter);
    job->done(job, job->cancelled);
}

static void workq_on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    workq_inbox_t *inbox = H2O_STRUCT_FROM_MEMBER(workq_inbox_t, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        workq_job_t *job = H2O_STRUCT_FROM_MEMBER(workq_job_t, msg.link, messages->next);
        h2o_linklist_unlink(&job->msg.link);
        workq_finish(inbox, job);
    }
}

static void workq_job_cancel(waiter_t *w)
{
    workq_job_t *job = H2O_STRUCT_FROM_MEMBER(workq_job_t, waiter, w);
    job->cancelled = 1; /* done() still comes, once the worker is through with it */
}

workq_inbox_t *workq_inbox_new(h2o_multithread_queue_t *queue)
{
    workq_inbox_t *inbox = util_calloc(1, sizeof(*inbox));
    inbox->queue = queue;
    h2o_multithread_register_receiver(queue, &inbox->receiver, workq_on_messages);
    return inbox;
}

void workq_submit(workq_inbox_t *inbox, workq_job_t *job, h2o_linklist_t *waiters)
{
    job->inbox = inbox;
    job->cancelled = 0;
    job->msg.link.next = job->msg.link.prev = NULL;
    job->waiter.link.next = job->waiter.link.prev = NULL;
    job->waiter.cancel = workq_job_cancel;
    waiter_attach(&job->waiter, waiters);
    ++inbox->outstanding;
    pthread_mutex_lock(&workq_lock);
    h2o_linklist_insert(&workq_pending, &job->pending);
    pthread_cond_signal(&workq_cond);
    pthread_mutex_unlock(&workq_lock);
}

void workq_inbox_close(workq_inbox_t *inbox, h2o_loop_t *loop, unsigned timeout_ms)
{
    /* Jobs no worker has taken yet come back cancelled at once. */
    h2o_linklist_t mine;
    h2o_linklist_init_anchor(&mine);
    pthread_mutex_lock(&workq_lock);
    for (h2o_linklist_t *l = workq_pending.next, *next; l != &workq_pending; l = next) {
        next = l->next;
        workq_job_t *job = H2O_STRUCT_FROM_MEMBER(workq_job_t, pending, l);
        if (job->inbox == inbox) {
            h2o_linklist_unlink(&job->pending);
            h2o_linklist_insert(&mine, &job->pending);
        }
    }
    pthread_mutex_unlock(&workq_lock);
    while (!h2o_linklist_is_empty(&mine)) {
        workq_job_t *job = H2O_STRUCT_FROM_MEMBER(workq_job_t, pending, mine.next);
        h2o_linklist_unlink(&job->pending);
        job->cancelled = 1;
        workq_finish(inbox, job);
    }
    /* Jobs being worked on: wait for their messages. */
    uint64_t deadline = util_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (inbox->outstanding != 0 && util_now_ns() < deadline)
        h2o_evloop_run(loop, 10);
    if (inbox->outstanding != 0)
        util_fatal("worker jobs did not finish within %u ms", timeout_ms);
    h2o_multithread_unregister_receiver(inbox->queue, &inbox->receiver);
    free(inbox);
}
