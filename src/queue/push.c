#include "queue/push.h"
#include "queue/wake.h"
#include "core/timer.h"
#include "core/util.h"
#include "core/waiter.h"
#include "store/pgarray.h"

#include <stdio.h>
#include <string.h>

#define PUSH_BATCH_MAX_JOBS  1000
#define PUSH_BATCH_MAX_BYTES (8u << 20)
/* The least time between two notifications of one pusher (see push_announce). */
#define PUSH_NOTIFY_GAP_MS 10

/* One queue_push() call: its jobs go into one statement, whole. */
typedef struct push_req {
    waiter_t waiter;
    h2o_linklist_t link; /* in the pusher's pending list, then in its batch */
    queue_push_cb cb;    /* NULL once cancelled */
    void *data;
    size_t n;
    size_t bytes;
    pg_array_t company, key, payload, meta;
} push_req_t;

typedef struct push_batch {
    queue_pusher_t *pusher;
    h2o_linklist_t reqs;
} push_batch_t;

struct queue_pusher {
    pg_pool_t *pool;
    char *queue;
    char max_attempts[16];
    h2o_linklist_t pending;
    int inflight;              /* a statement is in flight */
    int waking;                /* a NOTIFY statement is in flight */
    int unannounced;           /* jobs committed that no NOTIFY sent since covers */
    uint64_t notified_at;      /* loop time (ms since the epoch) the last NOTIFY was sent, 0 before the first */
    loop_timer_t notify_timer; /* armed while a NOTIFY waits for its gap */
    int freeing;
};

/*
 * The locks are taken by an uncorrelated subquery, evaluated once before the first
 * row is produced, hence before any id is drawn. hashtextextended maps a key to the
 * lock space; two keys sharing a hash only wait for each other.
 *
 * The other subquery tells the table's trigger not to NOTIFY (migration 0008): a
 * notifying transaction holds a database-wide lock until its commit is flushed, which
 * would serialise every acknowledgement behind the previous one's flush. The pusher
 * wakes the workers itself once the jobs are committed (push_announce).
 */
static pg_stmt_t push_stmt = {
    "INSERT INTO jobs (company_id, queue, key, payload, meta, max_attempts)"
    " SELECT u.c, $1, u.k, u.p, u.m::jsonb, $6::int"
    " FROM unnest($2::bigint[], $3::text[], $4::bytea[], $5::text[]) WITH ORDINALITY AS u (c, k, p, m, o)"
    " WHERE (SELECT set_config('conversa.jobs_wake', 'caller', true)) = 'caller'"
    " AND (SELECT count(*) FROM (SELECT pg_advisory_xact_lock(hashtextextended(x, 0))"
    " FROM (SELECT DISTINCT x FROM unnest($3::text[]) x WHERE x IS NOT NULL ORDER BY x) d) l) >= 0"
    " ORDER BY u.o",
    6};

/*
 * The notification, in a transaction of its own that does not wait for its commit to
 * be flushed: it holds the notification lock for microseconds, and losing it in a
 * crash only leaves the jobs (already durable) to the workers' one-second poll.
 */
static pg_stmt_t push_wake_stmt = {
    "SELECT set_config('synchronous_commit', 'off', true), pg_notify('" QUEUE_WAKE_CHANNEL "', $1)", 1};

static void push_pusher_release(queue_pusher_t *p)
{
    if (p->freeing && p->inflight == 0 && !p->waking) {
        loop_timer_dispose(&p->notify_timer);
        free(p->queue);
        free(p);
    }
}

static void push_notify(queue_pusher_t *p);

static void push_on_notify(void *data, const pg_reply_t *reply)
{
    queue_pusher_t *p = data;
    (void)reply; /* a NOTIFY that failed is covered by the workers' poll */
    p->waking = 0;
    if (p->freeing)
        push_pusher_release(p);
    else
        push_notify(p);
}

static void push_on_notify_timer(loop_timer_t *t)
{
    push_notify(H2O_STRUCT_FROM_MEMBER(queue_pusher_t, notify_timer, t));
}

/*
 * Sends NOTIFY for the jobs committed since the last one, unless one is in flight (its
 * answer calls here again) or the last was sent less than PUSH_NOTIFY_GAP_MS ago (the
 * timer calls here at the end of the gap). So the first batch after a quiet spell is
 * announced at once, and a steady stream of batches by one NOTIFY per gap.
 */
static void push_notify(queue_pusher_t *p)
{
    if (!p->unannounced || p->waking || loop_timer_armed(&p->notify_timer))
        return;
    uint64_t now = h2o_now(pg_pool_loop(p->pool));
    if (now < p->notified_at + PUSH_NOTIFY_GAP_MS) {
        loop_timer_start(&p->notify_timer, p->notified_at + PUSH_NOTIFY_GAP_MS - now);
        return;
    }
    p->unannounced = 0;
    p->waking = 1;
    p->notified_at = now;
    pg_param_t param = PG_TEXT(p->queue);
    pg_exec(p->pool, &push_wake_stmt, &param, 1, push_on_notify, p, NULL);
}

/*
 * Committed jobs are announced twice. This process's workers are woken at once, in
 * memory. Workers of other processes are woken by NOTIFY, at most one per
 * PUSH_NOTIFY_GAP_MS: each NOTIFY is a transaction of its own, and PostgreSQL signals
 * every listening backend for each. Sent after every insert, they were a fifth of a
 * core for PostgreSQL at 5,000 webhooks/s (about a thousand inserts), and added most
 * of a millisecond to an acknowledgement's median; a worker that is busy does not
 * need them, as it claims again when its batch is done.
 */
static void push_announce(queue_pusher_t *p)
{
    queue_wake_local(p->queue);
    p->unannounced = 1;
    push_notify(p);
}

static void push_req_free(push_req_t *q)
{
    pg_array_free(&q->company);
    pg_array_free(&q->key);
    pg_array_free(&q->payload);
    pg_array_free(&q->meta);
    free(q);
}

static void push_req_cancel(waiter_t *w)
{
    push_req_t *q = util_container_of(w, push_req_t, waiter);
    q->cb = NULL; /* the jobs are still inserted: only the answer is dropped */
}

static void push_req_answer(push_req_t *q, const char *error)
{
    waiter_detach(&q->waiter);
    queue_push_cb cb = q->cb;
    q->cb = NULL;
    if (cb != NULL)
        cb(q->data, error);
}

static void push_send(queue_pusher_t *p);

static void push_on_result(void *data, const pg_reply_t *reply)
{
    push_batch_t *b = data;
    queue_pusher_t *p = b->pusher;
    if (reply->error == NULL && !p->freeing)
        push_announce(p);
    while (!h2o_linklist_is_empty(&b->reqs)) {
        push_req_t *q = H2O_STRUCT_FROM_MEMBER(push_req_t, link, b->reqs.next);
        h2o_linklist_unlink(&q->link);
        push_req_answer(q, reply->error);
        push_req_free(q);
    }
    free(b);
    p->inflight = 0;
    if (p->freeing) {
        push_pusher_release(p);
        return;
    }
    push_send(p);
}

/* Sends one statement with as many pending requests as fit, unless one is in flight. */
static void push_send(queue_pusher_t *p)
{
    if (!h2o_linklist_is_empty(&p->pending) && !p->inflight) {
        push_batch_t *b = util_calloc(1, sizeof(*b));
        b->pusher = p;
        h2o_linklist_init_anchor(&b->reqs);
        pg_array_t company, key, payload, meta;
        pg_array_init(&company, PG_OID_INT8);
        pg_array_init(&key, PG_OID_TEXT);
        pg_array_init(&payload, PG_OID_BYTEA);
        pg_array_init(&meta, PG_OID_TEXT);
        size_t jobs = 0, bytes = 0;
        while (!h2o_linklist_is_empty(&p->pending)) {
            push_req_t *q = H2O_STRUCT_FROM_MEMBER(push_req_t, link, p->pending.next);
            if (jobs > 0 && (jobs + q->n > PUSH_BATCH_MAX_JOBS || bytes + q->bytes > PUSH_BATCH_MAX_BYTES))
                break;
            h2o_linklist_unlink(&q->link);
            h2o_linklist_insert(&b->reqs, &q->link);
            pg_array_concat(&company, &q->company);
            pg_array_concat(&key, &q->key);
            pg_array_concat(&payload, &q->payload);
            pg_array_concat(&meta, &q->meta);
            jobs += q->n;
            bytes += q->bytes;
        }
        pg_param_t params[] = {PG_TEXT(p->queue),        pg_array_param(&company), pg_array_param(&key),
                               pg_array_param(&payload), pg_array_param(&meta),    PG_TEXT(p->max_attempts)};
        p->inflight = 1;
        pg_exec(p->pool, &push_stmt, params, 6, push_on_result, b, NULL); /* copies the parameters */
        pg_array_free(&company);
        pg_array_free(&key);
        pg_array_free(&payload);
        pg_array_free(&meta);
    }
}

queue_pusher_t *queue_pusher_new(pg_pool_t *pool, const char *queue, unsigned max_attempts)
{
    queue_pusher_t *p = util_calloc(1, sizeof(*p));
    p->pool = pool;
    loop_timer_init(&p->notify_timer, pg_pool_loop(pool), push_on_notify_timer);
    p->queue = util_strdup(queue);
    snprintf(p->max_attempts, sizeof(p->max_attempts), "%u", max_attempts);
    h2o_linklist_init_anchor(&p->pending);
    return p;
}

void queue_pusher_free(queue_pusher_t *p)
{
    while (!h2o_linklist_is_empty(&p->pending)) {
        push_req_t *q = H2O_STRUCT_FROM_MEMBER(push_req_t, link, p->pending.next);
        h2o_linklist_unlink(&q->link);
        push_req_answer(q, "shutting down");
        push_req_free(q);
    }
    p->freeing = 1;
    loop_timer_stop(&p->notify_timer); /* jobs it would announce wait for the workers' poll */
    push_pusher_release(p);
}

void queue_push(queue_pusher_t *p, const queue_job_in_t *jobs, size_t n, queue_push_cb cb, void *data,
                h2o_linklist_t *waiters)
{
    push_req_t *q = util_calloc(1, sizeof(*q));
    q->cb = cb;
    q->data = data;
    q->n = n;
    q->waiter.cancel = push_req_cancel;
    pg_array_init(&q->company, PG_OID_INT8);
    pg_array_init(&q->key, PG_OID_TEXT);
    pg_array_init(&q->payload, PG_OID_BYTEA);
    pg_array_init(&q->meta, PG_OID_TEXT);
    for (size_t i = 0; i < n; ++i) {
        pg_array_add_i64(&q->company, jobs[i].company);
        pg_array_add(&q->key, jobs[i].key, jobs[i].key_len);
        pg_array_add(&q->payload, jobs[i].payload, jobs[i].payload_len);
        pg_array_add(&q->meta, jobs[i].meta_json, jobs[i].meta_json != NULL ? strlen(jobs[i].meta_json) : 0);
        q->bytes += jobs[i].payload_len + jobs[i].key_len + 64;
    }
    waiter_attach(&q->waiter, waiters);
    h2o_linklist_insert(&p->pending, &q->link);
    push_send(p);
}
