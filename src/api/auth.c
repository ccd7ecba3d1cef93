/*
 * Authentication: the bearer-token check every /api/v1 route goes through, and
 * POST /api/v1/auth/login, DELETE /api/v1/auth/token.
 *
 * A token is looked up by its SHA-256. Each loop thread remembers answers (valid or
 * not) for API_AUTH_CACHE_MS, so a busy client costs the database one look-up per
 * token per thread per few seconds, and a revoked token stops working everywhere
 * within that time (at once on the thread that revoked it).
 *
 * Login is a small state machine: validate → throttle → fetch the user → verify the
 * Argon2id hash on the worker pool (it takes tens of milliseconds and a lot of memory,
 * so never on a loop) → issue a session token.
 */
#include "api/db.h"
#include "api/input.h"
#include "api/routes.h"
#include "auth/tokens.h"
#include "core/throttle.h"
#include "core/util.h"
#include "core/workq.h"
#include "http/reply.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_AUTH_CACHE_MS   4000
#define API_AUTH_CACHE_SETS 512
#define API_AUTH_CACHE_WAYS 4  /* a few tokens sharing a set do not evict each other in turn */
#define API_LOGIN_PER_EMAIL 10 /* attempts per window */
#define API_LOGIN_PER_IP    100
#define API_LOGIN_WINDOW_S  900

typedef struct api_auth_entry {
    uint8_t hash[TOKENS_HASH_BYTES];
    uint64_t expires_ns; /* 0: empty */
    int valid;
    http_auth_t auth;
} api_auth_entry_t;

static __thread api_auth_entry_t api_auth_cache[API_AUTH_CACHE_SETS][API_AUTH_CACHE_WAYS];

static api_auth_entry_t *api_auth_set(const uint8_t *hash)
{
    uint32_t h;
    memcpy(&h, hash, sizeof(h)); /* the hash is uniform: its first bytes are a fine index */
    return api_auth_cache[h % API_AUTH_CACHE_SETS];
}

/* The live entry for hash, or NULL. */
static api_auth_entry_t *api_auth_find(const uint8_t *hash)
{
    api_auth_entry_t *set = api_auth_set(hash);
    uint64_t now = util_now_ns();
    for (int i = 0; i != API_AUTH_CACHE_WAYS; ++i)
        if (set[i].expires_ns > now && sodium_memcmp(set[i].hash, hash, TOKENS_HASH_BYTES) == 0)
            return &set[i];
    return NULL;
}

static void api_auth_remember(const uint8_t *hash, const http_auth_t *auth)
{
    /* the same token's entry, else the one that expires first (an empty one, if any) */
    api_auth_entry_t *set = api_auth_set(hash), *e = &set[0];
    for (int i = 0; i != API_AUTH_CACHE_WAYS; ++i) {
        if (memcmp(set[i].hash, hash, TOKENS_HASH_BYTES) == 0) {
            e = &set[i];
            break;
        }
        if (set[i].expires_ns < e->expires_ns)
            e = &set[i];
    }
    memcpy(e->hash, hash, TOKENS_HASH_BYTES);
    e->expires_ns = util_now_ns() + (uint64_t)API_AUTH_CACHE_MS * 1000000u;
    e->valid = auth != NULL;
    if (auth != NULL)
        e->auth = *auth;
}

static void api_auth_reply_401(http_request_t *r)
{
    http_reply_header(r, "www-authenticate", "Bearer");
    http_reply_error(r, 401, "unauthorized", "%s", (const char *)r->state);
}

/* No valid token: the request counts as anonymous traffic (so guessing tokens is limited too), then 401. */
static void api_auth_unauthorized(http_request_t *r, const char *why)
{
    r->state = (void *)why;
    http_request_anonymous(r, api_auth_reply_401);
}

static pg_stmt_t api_auth_lookup = {
    "SELECT t.company_id, t.user_id, u.role = 'admin' FROM api_tokens t"
    " JOIN users u ON u.company_id = t.company_id AND u.id = t.user_id"
    " WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())",
    1};

static void api_auth_on_lookup(http_request_t *r, PGresult *res)
{
    if (PQntuples(res) != 1) {
        api_auth_remember(r->auth.token_hash, NULL);
        api_auth_unauthorized(r, "the token is not valid (unknown, revoked or expired)");
        return;
    }
    r->auth.company_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    r->auth.user_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    r->auth.admin = PQgetvalue(res, 0, 2)[0] == 't';
    api_auth_remember(r->auth.token_hash, &r->auth);
    http_request_run(r);
}

void api_auth_authenticate(http_request_t *r)
{
    ssize_t i = h2o_find_header(&r->req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    const char *tok;
    size_t len;
    if (i < 0) {
        api_auth_unauthorized(r, "an Authorization: Bearer token is required");
        return;
    }
    h2o_iovec_t v = r->req->headers.entries[i].value;
    if (tokens_from_header(v.base, v.len, &tok, &len) != 0) {
        api_auth_unauthorized(r, "the Authorization header must be 'Bearer <token>'");
        return;
    }
    tokens_hash(tok, len, r->auth.token_hash);
    api_auth_entry_t *e = api_auth_find(r->auth.token_hash);
    if (e != NULL) {
        if (!e->valid) {
            api_auth_unauthorized(r, "the token is not valid (unknown, revoked or expired)");
            return;
        }
        memcpy(r->auth.token_hash, e->hash, TOKENS_HASH_BYTES);
        r->auth.company_id = e->auth.company_id;
        r->auth.user_id = e->auth.user_id;
        r->auth.admin = e->auth.admin;
        http_request_run(r);
        return;
    }
    pg_param_t p[] = {api_db_bytes(r->auth.token_hash, TOKENS_HASH_BYTES)};
    api_db_call(r, &api_auth_lookup, p, 1, api_auth_on_lookup);
}

/* ---- DELETE /api/v1/auth/token ---- */

static pg_stmt_t api_auth_revoke = {
    "UPDATE api_tokens SET revoked_at = now() WHERE company_id = $1 AND token_hash = $2 AND revoked_at IS NULL", 2};

static void api_auth_on_revoked(http_request_t *r, PGresult *res)
{
    (void)res;
    api_auth_remember(r->auth.token_hash, NULL);
    http_reply_iovec(r, 204, "application/json", h2o_iovec_init("", 0));
}

void api_auth_logout(http_request_t *r)
{
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_bytes(r->auth.token_hash, TOKENS_HASH_BYTES)};
    api_db_call(r, &api_auth_revoke, p, 2, api_auth_on_revoked);
}

/* ---- POST /api/v1/auth/login ---- */

typedef struct api_login {
    workq_job_t job;
    http_request_t *r; /* valid only while the job is not cancelled */
    char *password;
    size_t password_len;
    char *stored;
    int64_t company_id, user_id;
    int ok;
} api_login_t;

static pg_stmt_t api_auth_user = {"SELECT company_id, id, password_hash FROM users WHERE lower(email) = lower($1)", 1};

static pg_stmt_t api_auth_issue = {
    "WITH t AS (INSERT INTO api_tokens (company_id, user_id, token_hash, name, kind, expires_at)"
    " VALUES ($1, $2, $3, 'login', 'session', now() + interval '30 days') RETURNING expires_at)"
    " SELECT json_build_object('expires_at', t.expires_at, 'user', json_build_object('id', u.id, 'company_id',"
    " u.company_id, 'email', u.email, 'name', u.name, 'role', u.role))::text"
    " FROM t, users u WHERE u.company_id = $1 AND u.id = $2",
    3};

static void api_login_free(api_login_t *l)
{
    if (l->password != NULL) {
        sodium_memzero(l->password, l->password_len);
        free(l->password);
    }
    free(l->stored);
    free(l);
}

static void api_login_work(workq_job_t *job)
{
    api_login_t *l = util_container_of(job, api_login_t, job);
    l->ok = tokens_password_verify(l->stored, l->password, l->password_len);
}

/* What a login keeps between its steps, in the request's pool. */
typedef struct api_login_state {
    const char *password;
    size_t password_len;
    char token[TOKENS_TEXT_MAX];
} api_login_state_t;

static void api_login_on_issued(http_request_t *r, PGresult *res)
{
    api_login_state_t *st = r->state;
    if (PQntuples(res) != 1) {
        http_reply_error(r, 401, "invalid_credentials", "wrong email or password");
        return;
    }
    /* {"token":…,"token_type":"Bearer", then the database's object without its '{' */
    const char *rest = PQgetvalue(res, 0, 0);
    strbuf_t b;
    strbuf_init(&b);
    strbuf_printf(&b, "{\"token\":\"%s\",\"token_type\":\"Bearer\",%s", st->token, rest + 1);
    http_reply_json(r, 200, b.data, b.len);
    strbuf_free(&b);
}

static void api_login_done(workq_job_t *job, int cancelled)
{
    api_login_t *l = util_container_of(job, api_login_t, job);
    if (cancelled) {
        api_login_free(l);
        return;
    }
    http_request_t *r = l->r;
    api_login_state_t *st = r->state;
    int ok = l->ok;
    int64_t company_id = l->company_id, user_id = l->user_id;
    api_login_free(l);
    if (!ok) {
        http_reply_error(r, 401, "invalid_credentials", "wrong email or password");
        return;
    }
    uint8_t *hash = h2o_mem_alloc_pool(&r->req->pool, TOKENS_HASH_BYTES);
    tokens_new(st->token, hash);
    pg_param_t p[] = {api_db_i64(r, company_id), api_db_i64(r, user_id), api_db_bytes(hash, TOKENS_HASH_BYTES)};
    api_db_call(r, &api_auth_issue, p, 3, api_login_on_issued);
}

static void api_login_on_user(http_request_t *r, PGresult *res)
{
    api_login_state_t *st = r->state;
    api_login_t *l = util_calloc(1, sizeof(*l));
    l->r = r;
    l->password_len = st->password_len;
    l->password = util_malloc(l->password_len + 1);
    memcpy(l->password, st->password, l->password_len);
    l->password[l->password_len] = '\0';
    sodium_memzero((char *)st->password, st->password_len); /* the pool's copy is not needed any more */
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 2)) {
        l->company_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        l->user_id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        l->stored = util_strdup(PQgetvalue(res, 0, 2));
    }
    l->job.work = api_login_work;
    l->job.done = api_login_done;
    workq_submit(r->thread->workq, &l->job, &r->waiters);
}

static int api_login_throttled(http_request_t *r, const char *email)
{
    char key[160];
    size_t n = (size_t)snprintf(key, sizeof(key), "e:%s", email);
    for (size_t i = 2; i < n && i < sizeof(key); ++i)
        key[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] + 32 : key[i]);
    uint64_t ms_email, ms_ip, window_ms = API_LOGIN_WINDOW_S * 1000ull;
    unsigned over = throttle_hit(key, UTIL_MIN(n, sizeof(key) - 1), API_LOGIN_PER_EMAIL, window_ms, 0, &ms_email) >
                    API_LOGIN_PER_EMAIL;
    n = (size_t)snprintf(key, sizeof(key), "i:%s", http_request_client(r));
    unsigned over_ip = throttle_hit(key, n, API_LOGIN_PER_IP, window_ms, 0, &ms_ip) > API_LOGIN_PER_IP;
    if (!over && !over_ip)
        return 0;
    uint64_t ms = 0;
    if (over)
        ms = ms_email;
    if (over_ip && ms_ip > ms)
        ms = ms_ip;
    unsigned wait = (unsigned)((ms + 999) / 1000);
    char secs[16];
    snprintf(secs, sizeof(secs), "%u", wait);
    http_reply_header(r, "retry-after", secs);
    http_reply_error(r, 429, "rate_limited", "too many sign-in attempts; try again in %u seconds", wait);
    return 1;
}

void api_auth_login(http_request_t *r)
{
    static const char *const fields[] = {"email", "password", NULL};
    json_t *body = api_body_object(r, fields);
    if (body == NULL)
        return;
    const char *email, *password;
    int rc = api_json_string(r, body, "email", 1, 3, 254, &email);
    if (rc == 0)
        rc = api_json_string(r, body, "password", 1, 1, 1024, &password);
    json_decref(body);
    if (rc != 0 || api_login_throttled(r, email))
        return;
    api_login_state_t *st = h2o_mem_alloc_pool(&r->req->pool, sizeof(*st));
    memset(st, 0, sizeof(*st));
    st->password = password;
    st->password_len = strlen(password);
    r->state = st;
    pg_param_t p[] = {PG_TEXT(email)};
    api_db_call(r, &api_auth_user, p, 1, api_login_on_user);
}
