/*
 * wake.h - the process's one LISTEN connection, shared by its queue workers.
 *
 * Jobs are announced by NOTIFY conversa_jobs with the queue's name as payload
 * (queue/push.h, and the jobs table's trigger). PostgreSQL signals every backend that
 * listens in the database at each notification, whatever its channel or payload, and
 * that backend wakes its client: with a listening connection per queue worker, each
 * committed batch of webhooks woke the three workers' backends and threads, two of
 * them for nothing, on the cores the acknowledgements need. The process therefore
 * listens once, on a thread of its own, and passes each notification on to the
 * subscribers of the queue it names.
 *
 * The connection is opened (blocking, connect_timeout 2 s) when the first subscriber
 * comes and closed when the last one goes. While it is down it is opened again every
 * second; each time it is (re)opened every subscriber is called, for what was inserted
 * while nobody listened. The last unsubscription waits for a connection attempt in
 * progress (at most its 2 s).
 */
#ifndef CONVERSA_QUEUE_WAKE_H
#define CONVERSA_QUEUE_WAKE_H

#define QUEUE_WAKE_CHANNEL "conversa_jobs"

/**
 * Called on the listening thread, not the subscriber's: it must only hand the news
 * over (an atomic flag and a message to its own loop), never block.
 */
typedef void (*queue_wake_fn)(void *data);

typedef struct queue_wake_sub {
    const char *queue; /* not copied: must outlive the subscription */
    queue_wake_fn fn;
    void *data;
    struct queue_wake_sub *next; /* the module's */
} queue_wake_sub_t;

/** Calls sub->fn for each notification naming sub->queue, until unsubscribed. */
void queue_wake_subscribe(queue_wake_sub_t *sub);

/** Once this returns, sub->fn is not running and will not be called again. */
void queue_wake_unsubscribe(queue_wake_sub_t *sub);

/**
 * Calls this process's subscribers of queue now, on the calling thread, as a
 * notification naming it would: for jobs this process committed, whose NOTIFY may
 * come later (queue/push.h). Any thread; it never blocks for long.
 */
void queue_wake_local(const char *queue);

#endif
