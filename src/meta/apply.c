#include "meta/apply.h"
#include "core/util.h"

#include <jansson.h>
#include <stdlib.h>

#define APPLY_GENS_MAX 256 /* more touched conversations or users than this: the lists are bumped anyway */

/* A batch in one transaction; each job in a subtransaction of its own, so one job's failure undoes only its own writes.
 */
static pg_stmt_t apply_stmt = {
    "SELECT b.job, b.result, b.error FROM webhook_apply_batch($1::bigint[], $2::bigint[], $3) b", 3};

/*
 * A batch's run ends (queue_slot_done) once its result is read and every bump it
 * caused has landed in Redis or been queued for retry by the cache: a worker that
 * stops never drops one.
 */
typedef struct apply_call {
    queue_slot_t *slot;
    const queue_job_t *jobs;
    size_t n;
    unsigned pending;    /* bumps in flight, plus one while the result is being read */
    h2o_linklist_t link; /* in the gate's running or waiting list; unlinked once it let the call go */
    int64_t companies[META_BATCH];
    size_t ncompanies;
} apply_call_t;

/*
 * The gate: this worker applies one batch per company at a time, and holds the
 * others here, on its own loop, instead of sending them to wait in PostgreSQL.
 *
 * webhook_apply_batch (migration 0006) takes a lock per company first, since every
 * message of a company updates the same counter rows. A batch waiting for that lock
 * waits inside a statement, holding a snapshot: with eight slots on one company, seven
 * snapshots at a time kept the horizon back, the counter rows' dead versions could not
 * be pruned, and each batch walked longer chains of them: concurrency 8 applied a
 * third of what concurrency 2 did. The lock stays, for batches of other processes; in
 * one process they no longer meet it. First come, first served: a waiting batch holds
 * its companies against later ones, so a batch of two companies is not passed forever.
 */
typedef struct apply_gate {
    h2o_linklist_t running; /* calls sent to PostgreSQL */
    h2o_linklist_t waiting; /* calls held, in arrival order */
} apply_gate_t;

static int apply_shares(const apply_call_t *a, const int64_t *companies, size_t n)
{
    for (size_t i = 0; i < a->ncompanies; ++i)
        for (size_t j = 0; j < n; ++j)
            if (a->companies[i] == companies[j])
                return 1;
    return 0;
}

/* Whether c shares a company with a call of list, up to (not including) stop. */
static int apply_conflicts(const apply_call_t *c, h2o_linklist_t *list, h2o_linklist_t *stop)
{
    for (h2o_linklist_t *l = list->next; l != list && l != stop; l = l->next)
        if (apply_shares(H2O_STRUCT_FROM_MEMBER(apply_call_t, link, l), c->companies, c->ncompanies))
            return 1;
    return 0;
}

static void apply_on_result(void *data, const pg_reply_t *reply);

static void apply_send(apply_gate_t *g, apply_call_t *c)
{
    h2o_linklist_insert(&g->running, &c->link);
    queue_slot_exec_batch(c->slot, &apply_stmt, apply_on_result, c);
}

/*
 * c's statement answered: its companies are free; start the held calls that may go.
 * The scan starts over after each start, since a start may answer at once (no
 * connection up) and re-enter here, changing both lists.
 */
static void apply_gate_leave(apply_call_t *c)
{
    if (!h2o_linklist_is_linked(&c->link))
        return; /* the gate was freed at shutdown */
    apply_gate_t *g = queue_slot_context(c->slot);
    h2o_linklist_unlink(&c->link);
    for (;;) {
        apply_call_t *next = NULL;
        for (h2o_linklist_t *l = g->waiting.next; l != &g->waiting && next == NULL; l = l->next) {
            apply_call_t *w = H2O_STRUCT_FROM_MEMBER(apply_call_t, link, l);
            if (!apply_conflicts(w, &g->running, NULL) && !apply_conflicts(w, &g->waiting, &w->link))
                next = w;
        }
        if (next == NULL)
            return;
        h2o_linklist_unlink(&next->link);
        apply_send(g, next);
    }
}

static void apply_release(apply_call_t *c)
{
    if (--c->pending > 0)
        return;
    queue_slot_t *s = c->slot;
    free(c);
    queue_slot_done(s);
}

static void apply_on_bumped(void *data, int ok)
{
    (void)ok; /* a failed bump is the cache's to retry */
    apply_release(data);
}

/* Bumps what the result JSON says changed, CACHE_BUMP_MAX generations per call. */
static void apply_bump(apply_call_t *c, int64_t company, const char *result)
{
    json_t *r = json_loads(result, 0, NULL);
    if (r == NULL)
        return;
    cache_gen_t gens[APPLY_GENS_MAX];
    size_t n = 0, i;
    json_t *v;
    if (json_is_true(json_object_get(r, "counts")))
        gens[n++] = (cache_gen_t){CACHE_SCOPE_COUNTS, 0};
    if (json_is_true(json_object_get(r, "lists")))
        gens[n++] = (cache_gen_t){CACHE_SCOPE_CONVERSATIONS, 0};
    json_array_foreach (json_object_get(r, "conversations"), i, v) {
        if (n < APPLY_GENS_MAX && json_is_integer(v))
            gens[n++] = (cache_gen_t){CACHE_SCOPE_MESSAGES, json_integer_value(v)};
    }
    json_array_foreach (json_object_get(r, "users"), i, v) {
        if (n < APPLY_GENS_MAX && json_is_integer(v))
            gens[n++] = (cache_gen_t){CACHE_SCOPE_NOTIFICATIONS, json_integer_value(v)};
    }
    json_decref(r);
    for (size_t at = 0; at < n; at += CACHE_BUMP_MAX) {
        c->pending++;
        cache_bump(queue_slot_cache(c->slot), company, gens + at, n - at < CACHE_BUMP_MAX ? n - at : CACHE_BUMP_MAX,
                   apply_on_bumped, c, NULL);
    }
}

static void apply_on_result(void *data, const pg_reply_t *reply)
{
    apply_call_t *c = data;
    apply_gate_leave(c);
    queue_slot_t *s = c->slot;
    const queue_job_t *jobs = c->jobs;
    size_t n = c->n;
    if (reply->error != NULL) {
        for (size_t i = 0; i < n; ++i)
            queue_slot_fail(s, i, reply->error);
        apply_release(c);
        return;
    }
    PGresult *res = reply->res;
    /* one row per job, in the order given */
    for (size_t i = 0; i < n; ++i) {
        if ((int)i >= PQntuples(res) || strtoll(PQgetvalue(res, (int)i, 0), NULL, 10) != jobs[i].id) {
            queue_slot_fail(s, i, "webhook_apply_batch answered out of order");
            continue;
        }
        if (!PQgetisnull(res, (int)i, 2))
            queue_slot_fail(s, i, PQgetvalue(res, (int)i, 2));
        else if (!PQgetisnull(res, (int)i, 1))
            apply_bump(c, jobs[i].company, PQgetvalue(res, (int)i, 1));
    }
    apply_release(c);
}

static void apply_run(queue_slot_t *s, const queue_job_t *jobs, size_t n)
{
    apply_gate_t *g = queue_slot_context(s);
    apply_call_t *c = util_calloc(1, sizeof(*c));
    c->slot = s;
    c->jobs = jobs;
    c->n = n;
    c->pending = 1;
    for (size_t i = 0; i < n && c->ncompanies < META_BATCH; ++i)
        if (!apply_shares(c, &jobs[i].company, 1))
            c->companies[c->ncompanies++] = jobs[i].company;
    if (apply_conflicts(c, &g->running, NULL) || apply_conflicts(c, &g->waiting, NULL))
        h2o_linklist_insert(&g->waiting, &c->link);
    else
        apply_send(g, c);
}

static void *apply_thread_start(h2o_loop_t *loop, struct redis_client *redis, struct metrics_shard *metrics)
{
    (void)loop, (void)redis, (void)metrics;
    apply_gate_t *g = util_calloc(1, sizeof(*g));
    h2o_linklist_init_anchor(&g->running);
    h2o_linklist_init_anchor(&g->waiting);
    return g;
}

/*
 * At shutdown: held batches go back to the queue without counting the attempt;
 * those in flight end when the pool closes.
 */
static void apply_thread_stop(void *context)
{
    apply_gate_t *g = context;
    while (!h2o_linklist_is_empty(&g->running))
        h2o_linklist_unlink(g->running.next); /* their answers find them unlinked and leave the gate alone */
    while (!h2o_linklist_is_empty(&g->waiting)) {
        apply_call_t *c = H2O_STRUCT_FROM_MEMBER(apply_call_t, link, g->waiting.next);
        h2o_linklist_unlink(&c->link);
        for (size_t i = 0; i < c->n; ++i)
            queue_slot_retry(c->slot, i, 0, "shutting down");
        apply_release(c);
    }
    free(g);
}

const queue_def_t meta_webhooks_queue = {META_QUEUE, META_BATCH, apply_run, apply_thread_start, apply_thread_stop};
