#include "meta/apply.h"
#include "core/log.h"
#include "core/util.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>

#define APPLY_GENS_MAX 256 /* more touched conversations or users than this: the lists are bumped anyway */

static pg_stmt_t apply_stmt = {"SELECT webhook_apply($1, $2, $3)", 3};

/* Bumps what the result JSON says changed; fire and forget (the cache retries failed bumps). */
static void apply_bump(queue_slot_t *s, int64_t company, const char *result)
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
    json_array_foreach(json_object_get(r, "conversations"), i, v)
    {
        if (n < APPLY_GENS_MAX && json_is_integer(v))
            gens[n++] = (cache_gen_t){CACHE_SCOPE_MESSAGES, json_integer_value(v)};
    }
    json_array_foreach(json_object_get(r, "users"), i, v)
    {
        if (n < APPLY_GENS_MAX && json_is_integer(v))
            gens[n++] = (cache_gen_t){CACHE_SCOPE_NOTIFICATIONS, json_integer_value(v)};
    }
    if (n > 0)
        cache_bump(queue_slot_cache(s), company, gens, n, NULL, NULL, NULL);
    json_decref(r);
}

typedef struct apply_call {
    queue_slot_t *slot;
    int64_t company;
} apply_call_t;

static void apply_on_result(void *data, const pg_reply_t *reply)
{
    apply_call_t *c = data;
    queue_slot_t *s = c->slot;
    int64_t company = c->company;
    free(c);
    if (reply->error != NULL) {
        queue_slot_done(s, reply->error);
        return;
    }
    if (PQntuples(reply->res) == 1 && !PQgetisnull(reply->res, 0, 0))
        apply_bump(s, company, PQgetvalue(reply->res, 0, 0));
    queue_slot_done(s, NULL);
}

static void apply_run(queue_slot_t *s, const queue_job_t *job)
{
    char company[24], id[24];
    snprintf(company, sizeof(company), "%" PRId64, job->company);
    snprintf(id, sizeof(id), "%" PRId64, job->id);
    apply_call_t *c = util_malloc(sizeof(*c));
    *c = (apply_call_t){s, job->company};
    pg_param_t p[] = {PG_TEXT(company), PG_TEXT(id), PG_TEXT(queue_slot_owner(s))};
    pg_exec(queue_slot_pg(s), &apply_stmt, p, 3, apply_on_result, c, NULL);
}

const queue_def_t meta_webhooks_queue = {META_QUEUE, apply_run};
