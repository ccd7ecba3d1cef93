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
    unsigned pending; /* bumps in flight, plus one while the result is being read */
} apply_call_t;

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
    apply_call_t *c = util_malloc(sizeof(*c));
    *c = (apply_call_t){s, jobs, n, 1};
    queue_slot_exec_batch(s, &apply_stmt, apply_on_result, c);
}

const queue_def_t meta_webhooks_queue = {META_QUEUE, META_BATCH, apply_run};
