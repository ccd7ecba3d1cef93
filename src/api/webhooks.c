/*
 * /api/webhooks/meta/:slug: where Meta delivers a connection's webhooks.
 *
 *   GET  /api/webhooks/meta/:slug   the verification handshake: hub.mode=subscribe and
 *                                   hub.verify_token equal to the connection's verify
 *                                   token answer hub.challenge as text; anything else 403
 *   POST /api/webhooks/meta/:slug   a signed payload: 404 unknown slug, 413 over
 *                                   MAX_BODY_BYTES (3 MiB), 401 signature missing or
 *                                   wrong, 400 not a JSON object; else it is stored as
 *                                   jobs of the 'webhooks' queue and, once committed,
 *                                   answered 200 {"queued":true}
 *
 * Nothing is applied here: a webhook is acknowledged only when it is durable, and the
 * queue's workers apply it (src/queue/, src/meta/apply.c), so Meta's retry is the only
 * recovery needed for anything that was not acknowledged. The signature is checked
 * before the body is parsed, over the exact bytes received.
 *
 * A connection's secrets are looked up by slug and kept per loop thread for a few
 * seconds (WEBHOOK_CACHE_NS); a signature that fails with a copy older than
 * WEBHOOK_RECHECK_NS is checked once more against a fresh copy, so a rotated app
 * secret takes effect at once.
 */
#include "api/db.h"
#include "api/input.h"
#include "api/routes.h"
#include "auth/secrets.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "http/reply.h"
#include "meta/webhook.h"
#include "ops/metrics.h"
#include "queue/push.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define WEBHOOK_SLUG_MAX      64
#define WEBHOOK_SECRET_MAX    1024
#define WEBHOOK_CACHE_SLOTS   64
#define WEBHOOK_CACHE_NS      (4ull * 1000000000)
#define WEBHOOK_RECHECK_NS    (250ull * 1000000)
#define WEBHOOK_CHALLENGE_MAX 512
#define WEBHOOK_WARN_NS       (60ull * 1000000000)

/* What a POST needs to know about a connection, decrypted. */
typedef struct webhook_conn {
    char slug[WEBHOOK_SLUG_MAX + 1];
    uint64_t fetched_ns; /* 0: empty slot */
    int found;
    int64_t company, id;
    int has_secret;
    size_t secret_len;
    char secret[WEBHOOK_SECRET_MAX + 1];
} webhook_conn_t;

static __thread webhook_conn_t webhook_cache[WEBHOOK_CACHE_SLOTS];
static __thread uint64_t webhook_warned_ns; /* last "no app secret" warning */

static webhook_conn_t *webhook_slot(const char *slug, size_t len)
{
    return &webhook_cache[util_hash(slug, len) % WEBHOOK_CACHE_SLOTS];
}

static void webhook_forget(webhook_conn_t *c)
{
    sodium_memzero(c, sizeof(*c));
}

/* The slug of the path, or NULL when it cannot be one (then no connection has it). */
static const char *webhook_slug(http_request_t *r)
{
    h2o_iovec_t v = http_params_get(&r->params, "slug");
    if (v.len == 0 || v.len > WEBHOOK_SLUG_MAX)
        return NULL;
    for (size_t i = 0; i < v.len; ++i) {
        char ch = v.base[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_'))
            return NULL;
    }
    return h2o_strdup(&r->req->pool, v.base, v.len).base;
}

/* Opens a sealed secret (column `name`) into out; 0, or -1 when it is unset or does not open. */
static int webhook_open(PGresult *res, int col, const char *context, char *out, size_t cap, size_t *len)
{
    if (PQgetisnull(res, 0, col))
        return -1;
    int rc = secrets_decrypt_pg(context, PQgetvalue(res, 0, col), out, cap, len);
    if (rc != 0)
        log_warn("webhooks", "a %s does not open with the configured keys", context);
    return rc;
}

/* ---- GET: verification ---- */

static pg_stmt_t webhook_verify_stmt = {"SELECT verify_token_enc FROM connections WHERE slug = $1", 1};

typedef struct webhook_verify {
    const char *token;
    const char *challenge;
} webhook_verify_t;

static void webhook_forbid(http_request_t *r)
{
    http_reply_error(r, 403, "forbidden", "verification failed");
}

static void webhook_on_verify(http_request_t *r, PGresult *res)
{
    webhook_verify_t *v = r->state;
    char token[WEBHOOK_SECRET_MAX + 1];
    size_t len;
    if (PQntuples(res) != 1 || webhook_open(res, 0, "connections.verify_token", token, sizeof(token), &len) != 0) {
        webhook_forbid(r);
        return;
    }
    int ok = strlen(v->token) == len && sodium_memcmp(token, v->token, len) == 0;
    sodium_memzero(token, sizeof(token));
    if (!ok) {
        webhook_forbid(r);
        return;
    }
    http_reply_header(r, "x-content-type-options", "nosniff");
    http_reply_iovec(r, 200, "text/plain; charset=utf-8", h2o_iovec_init(v->challenge, strlen(v->challenge)));
}

void api_webhooks_verify(http_request_t *r)
{
    const char *slug = webhook_slug(r), *mode, *token, *challenge, *why;
    if (slug == NULL || api_query_lookup(r, "hub.mode", 32, &mode, &why) != 0 ||
        api_query_lookup(r, "hub.verify_token", WEBHOOK_SECRET_MAX, &token, &why) != 0 ||
        api_query_lookup(r, "hub.challenge", WEBHOOK_CHALLENGE_MAX, &challenge, &why) != 0 || mode == NULL ||
        strcmp(mode, "subscribe") != 0 || token == NULL || challenge == NULL || challenge[0] == '\0') {
        webhook_forbid(r);
        return;
    }
    webhook_verify_t *v = h2o_mem_alloc_pool(&r->req->pool, sizeof(*v));
    v->token = token;
    v->challenge = challenge;
    r->state = v;
    pg_param_t p[] = {PG_TEXT(slug)};
    api_db_call(r, &webhook_verify_stmt, p, 1, webhook_on_verify);
}

/* ---- POST: a payload ---- */

static pg_stmt_t webhook_conn_stmt = {"SELECT company_id, id, app_secret_enc FROM connections WHERE slug = $1", 1};

typedef struct webhook_post {
    const char *slug;
    size_t slug_len;
    const char *signature;
} webhook_post_t;

static void webhook_on_pushed(void *data, const char *error)
{
    http_request_t *r = data;
    if (error != NULL) {
        log_warn("webhooks", "[%s] a webhook could not be stored: %s", r->id, error);
        http_reply_error(r, 503, "unavailable", "the webhook could not be stored; retry later");
        return;
    }
    metrics_add(r->thread->metrics, METRICS_WEBHOOKS_QUEUED, 1);
    static const char ok[] = "{\"queued\":true}";
    http_reply_iovec(r, 200, "application/json", h2o_iovec_init(ok, sizeof(ok) - 1));
}

/* The signature is good: parse, split by contact, store. */
static void webhook_accept(http_request_t *r, const webhook_conn_t *c)
{
    h2o_iovec_t body = r->req->entity;
    if (body.base == NULL || body.len == 0) {
        http_reply_invalid(r, "body", "a JSON object is required");
        return;
    }
    if (!api_json_depth_ok(body.base, body.len)) {
        http_reply_invalid(r, "body", "JSON nested deeper than %d levels", API_JSON_MAX_DEPTH);
        return;
    }
    json_error_t err;
    json_t *root = json_loadb(body.base, body.len, 0, &err);
    if (root == NULL) {
        http_reply_invalid(r, "body", "malformed JSON at line %d column %d", err.line, err.column);
        return;
    }
    meta_part_t *parts;
    int n = meta_split(root, body.base, body.len, &parts);
    if (n < 0) {
        json_decref(root);
        if (n == -2)
            http_reply_invalid(r, "body", "more than %d messages and statuses in one payload", META_MAX_ITEMS);
        else
            http_reply_invalid(r, "body", "a JSON object is required");
        return;
    }
    char meta[64];
    snprintf(meta, sizeof(meta), "{\"connection_id\":%" PRId64 "}", c->id);
    queue_job_in_t *jobs = h2o_mem_alloc_pool(&r->req->pool, sizeof(*jobs) * (size_t)n);
    for (int i = 0; i < n; ++i) {
        char *key = NULL;
        if (parts[i].contact != NULL) {
            size_t cap = strlen(parts[i].contact) + 24;
            key = h2o_mem_alloc_pool(&r->req->pool, cap);
            snprintf(key, cap, "%" PRId64 ":%s", c->id, parts[i].contact);
        }
        jobs[i] = (queue_job_in_t){.company = c->company,
                                   .key = key,
                                   .key_len = key != NULL ? strlen(key) : 0,
                                   .payload = parts[i].bytes,
                                   .payload_len = parts[i].len,
                                   .meta_json = meta};
    }
    queue_push(r->thread->webhooks, jobs, (size_t)n, webhook_on_pushed, r, &r->waiters); /* copies */
    meta_parts_free(parts, (size_t)n);
    json_decref(root);
}

static void webhook_check(http_request_t *r, webhook_conn_t *c, int fresh);

static void webhook_on_conn(http_request_t *r, PGresult *res)
{
    webhook_post_t *w = r->state;
    webhook_conn_t *c = webhook_slot(w->slug, w->slug_len);
    webhook_forget(c);
    memcpy(c->slug, w->slug, w->slug_len);
    c->fetched_ns = util_now_ns();
    if (PQntuples(res) == 1) {
        c->found = 1;
        c->company = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        c->id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        c->has_secret =
            webhook_open(res, 2, "connections.app_secret", c->secret, sizeof(c->secret), &c->secret_len) == 0;
    }
    webhook_check(r, c, 1);
}

static void webhook_fetch(http_request_t *r)
{
    webhook_post_t *w = r->state;
    pg_param_t p[] = {PG_TEXT(w->slug)};
    api_db_call(r, &webhook_conn_stmt, p, 1, webhook_on_conn);
}

static void webhook_check(http_request_t *r, webhook_conn_t *c, int fresh)
{
    webhook_post_t *w = r->state;
    if (!c->found) {
        http_reply_error(r, 404, "not_found", "no connection has this webhook address");
        return;
    }
    if (!c->has_secret ||
        !meta_signature_ok(c->secret, c->secret_len, r->req->entity.base, r->req->entity.len, w->signature)) {
        if (!fresh && util_now_ns() - c->fetched_ns > WEBHOOK_RECHECK_NS) {
            webhook_fetch(r);
            return;
        }
        metrics_add(r->thread->metrics, METRICS_WEBHOOKS_REJECTED, 1);
        /* a sender retrying against a connection without a secret would fill the log: once a minute per thread */
        uint64_t now = util_now_ns();
        if (!c->has_secret && (webhook_warned_ns == 0 || now - webhook_warned_ns > WEBHOOK_WARN_NS)) {
            webhook_warned_ns = now;
            log_warn("webhooks", "[%s] connection %" PRId64 " has no app secret: its webhooks cannot be verified",
                     r->id, c->id);
        }
        http_reply_error(r, 401, "bad_signature",
                         w->signature == NULL ? "X-Hub-Signature-256 is missing"
                                              : "X-Hub-Signature-256 does not match");
        return;
    }
    webhook_accept(r, c);
}

void api_webhooks_receive(http_request_t *r)
{
    const char *slug = webhook_slug(r);
    if (slug == NULL) {
        http_reply_error(r, 404, "not_found", "no connection has this webhook address");
        return;
    }
    webhook_post_t *w = h2o_mem_alloc_pool(&r->req->pool, sizeof(*w));
    w->slug = slug;
    w->slug_len = strlen(slug);
    w->signature = NULL;
    ssize_t i = h2o_find_header_by_str(&r->req->headers, H2O_STRLIT("x-hub-signature-256"), -1);
    if (i != -1) {
        h2o_iovec_t v = r->req->headers.entries[i].value;
        w->signature = h2o_strdup(&r->req->pool, v.base, v.len).base;
    }
    r->state = w;
    webhook_conn_t *c = webhook_slot(slug, w->slug_len);
    if (c->fetched_ns != 0 && strcmp(c->slug, slug) == 0 && util_now_ns() - c->fetched_ns < WEBHOOK_CACHE_NS) {
        webhook_check(r, c, 0);
        return;
    }
    webhook_fetch(r);
}
