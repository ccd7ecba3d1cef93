#include "api/cache.h"
#include "core/log.h"
#include "core/util.h"
#include "http/reply.h"
#include "ops/metrics.h"

#include <stdlib.h>
#include <string.h>

/* A cacheable request's state, in its pool. */
typedef struct api_cache_req {
    http_request_t *r;
    cache_kind_t kind;
    pg_stmt_t *stmt;
    pg_param_t *params;
    size_t n;
    const char *what;
    int started; /* this request runs the fill */
} api_cache_req_t;

/* A fill: owned by its flight, not by any request, so a client that hangs up stops nothing. */
typedef struct api_cache_fill {
    flight_t *flight;
    cache_thread_t *cache;
    cache_kind_t kind;
    const char *what;
    size_t keylen;
    char key[];
} api_cache_fill_t;

/* The JSON every cacheable body ends with (PostgreSQL's json_build_object spacing). */
static const char api_cache_false[] = "\"cached\" : false}";
static const char api_cache_true[] = "\"cached\" : true}";

/* The body of a HIT: a copy of value in r's pool, its trailing "cached" : false turned true. */
static h2o_iovec_t api_cache_mark_cached(http_request_t *r, const char *value, size_t len)
{
    size_t fl = sizeof(api_cache_false) - 1, tl = sizeof(api_cache_true) - 1;
    if (len < fl || memcmp(value + len - fl, api_cache_false, fl) != 0)
        return h2o_strdup(&r->req->pool, value, len); /* not ours to rewrite */
    char *out = h2o_mem_alloc_pool(&r->req->pool, len - fl + tl);
    memcpy(out, value, len - fl);
    memcpy(out + len - fl, api_cache_true, tl);
    return h2o_iovec_init(out, len - fl + tl);
}

static void api_cache_count(http_request_t *r, cache_kind_t kind, metrics_cache_event_t e)
{
    metrics_cache_add(r->thread->metrics, (unsigned)kind, e);
}

static void api_cache_bypass(api_cache_req_t *c)
{
    api_cache_count(c->r, c->kind, METRICS_CACHE_BYPASS);
    http_reply_header(c->r, "X-Cache", "BYPASS");
    api_db_reply(c->r, c->stmt, c->params, c->n, 200, c->what);
}

static void api_cache_on_fill(void *data, const pg_reply_t *reply)
{
    api_cache_fill_t *f = data;
    flight_result_t *res;
    if (reply->error != NULL) {
        int status;
        const char *code, *message;
        api_db_describe(NULL, reply, &status, &code, &message);
        res = flight_result_new(status, code, message, strlen(message));
    } else if (PQntuples(reply->res) == 0 || PQgetisnull(reply->res, 0, 0)) {
        char msg[128];
        int n = snprintf(msg, sizeof(msg), "%s not found", f->what);
        res = flight_result_new(404, "not_found", msg, (size_t)n);
    } else {
        const char *body = PQgetvalue(reply->res, 0, 0);
        size_t len = (size_t)PQgetlength(reply->res, 0, 0);
        cache_put(f->cache, f->kind, f->key, f->keylen, body, len);
        res = flight_result_new(200, NULL, body, len);
    }
    flight_finish(f->flight, res);
    free(f);
}

static void api_cache_on_filled(void *data, const flight_result_t *res)
{
    api_cache_req_t *c = data;
    http_request_t *r = c->r;
    http_reply_header(r, "X-Cache", "MISS");
    if (res == NULL) {
        /* the fill took longer than CACHE_WAIT_MS: ask PostgreSQL directly */
        api_db_reply(r, c->stmt, c->params, c->n, 200, c->what);
        return;
    }
    if (!c->started)
        api_cache_count(r, c->kind, METRICS_CACHE_COALESCED);
    if (res->status == 200)
        http_reply_json(r, 200, res->body, res->len);
    else
        http_reply_error(r, res->status, res->code, "%s", res->body);
}

static void api_cache_on_lookup(void *data, cache_outcome_t outcome, const char *key, size_t keylen, const char *value,
                                size_t len)
{
    api_cache_req_t *c = data;
    http_request_t *r = c->r;
    if (outcome == CACHE_UNAVAILABLE) {
        api_cache_bypass(c);
        return;
    }
    if (outcome == CACHE_HIT) {
        api_cache_count(r, c->kind, METRICS_CACHE_HIT);
        log_debug("cache", "cache hit %.*s", (int)keylen, key);
        http_reply_header(r, "X-Cache", "HIT");
        http_reply_iovec(r, 200, "application/json", api_cache_mark_cached(r, value, len));
        return;
    }
    api_cache_count(r, c->kind, METRICS_CACHE_MISS);
    log_debug("cache", "cache miss %.*s", (int)keylen, key);
    flight_t *flight = flight_join(cache_flights(r->thread->cache), key, keylen, api_cache_on_filled, c, &r->waiters);
    if (flight == NULL)
        return; /* another request is filling this key */
    c->started = 1;
    api_cache_count(r, c->kind, METRICS_CACHE_FILL);
    api_cache_fill_t *f = util_malloc(sizeof(*f) + keylen);
    f->flight = flight;
    f->cache = r->thread->cache;
    f->kind = c->kind;
    f->what = c->what;
    f->keylen = keylen;
    memcpy(f->key, key, keylen);
    pg_exec(r->thread->pg, c->stmt, c->params, c->n, api_cache_on_fill, f, NULL);
}

void api_cache_reply(http_request_t *r, cache_kind_t kind, int64_t scope_id, const char *variant, pg_stmt_t *stmt,
                     const pg_param_t *params, size_t n, const char *what)
{
    api_cache_req_t *c = h2o_mem_alloc_pool(&r->req->pool, sizeof(*c));
    pg_param_t *p = h2o_mem_alloc_pool(&r->req->pool, sizeof(*p) * (n ? n : 1));
    memcpy(p, params, sizeof(*p) * n);
    *c = (api_cache_req_t){r, kind, stmt, p, n, what, 0};
    /* answers CACHE_UNAVAILABLE at once when the cache is off or Redis is away */
    cache_get(r->thread->cache, kind, r->auth.company_id, scope_id, variant, api_cache_on_lookup, c, &r->waiters);
}

/* ---- writes ---- */

typedef struct api_cache_write {
    http_request_t *r;
    int status;
    h2o_iovec_t body;
} api_cache_write_t;

static void api_cache_on_bumped(void *data, int ok)
{
    api_cache_write_t *w = data;
    (void)ok; /* a failed bump is queued for retry and logged by the cache; the write itself succeeded */
    http_reply_iovec(w->r, w->status, "application/json", w->body);
}

void api_cache_bump_reply(http_request_t *r, const cache_gen_t *gens, size_t n, int status, const char *body,
                          size_t len)
{
    api_cache_write_t *w = h2o_mem_alloc_pool(&r->req->pool, sizeof(*w));
    *w = (api_cache_write_t){r, status, h2o_strdup(&r->req->pool, body, len)};
    cache_bump(r->thread->cache, r->auth.company_id, gens, n, api_cache_on_bumped, w, &r->waiters);
}

void api_cache_bump_reply_if_changed(http_request_t *r, PGresult *res, const cache_gen_t *gen, const char *what)
{
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        http_reply_error(r, 404, "not_found", "%s not found", what);
        return;
    }
    const char *body = PQgetvalue(res, 0, 0);
    size_t len = (size_t)PQgetlength(res, 0, 0);
    if (PQgetvalue(res, 0, 1)[0] != 't')
        http_reply_json(r, 200, body, len);
    else
        api_cache_bump_reply(r, gen, 1, 200, body, len);
}
