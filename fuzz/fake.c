/*
 * fake.c - a request without a server, and recorders for http/reply.h, api/db.h and
 * api/cache.h (see fake.h for why).
 *
 * The recorders keep the real layer's rules where a handler could break them: the
 * real http_reply_* abort on a second reply, so a second reply or statement traps
 * here; the real api_db_call copies its parameters before returning (handlers free
 * theirs right after), so they are copied here too, which also lets ASan see a
 * parameter that points at freed memory.
 */
#include "fake.h"

#include "api/cache.h"
#include "api/db.h"
#include "api/input.h"
#include "http/reply.h"

#include <sanitizer/asan_interface.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The request and what the handler did with it; r comes first so the recorders find the rest. */
typedef struct fake_request {
    http_request_t r;
    h2o_req_t req;
    fuzz_outcome_t out;
    char *path;
    char *body;
    char *param_values[HTTP_MAX_PARAMS];
} fake_request_t;

void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "fuzz check failed at %s:%d: %s\n", file, line, what);
    __builtin_trap();
}

/* ---- the request ---- */

/* A copy in a heap block of exactly n bytes (at least one, so that an empty copy is still a block). */
static char *fake_exact_copy(const void *p, size_t n)
{
    char *c = malloc(n != 0 ? n : 1);
    FUZZ_CHECK(c != NULL);
    if (n != 0)
        memcpy(c, p, n);
    return c;
}

/*
 * Released requests, kept for the next ones. A target may make several per input, and
 * a fresh 2.4 KiB calloc each time is work for ASan's allocator (pages that left its
 * quarantine, faulted in again and filled), nothing the code under test does. A kept
 * request is poisoned until it is handed out again, so a use after fuzz_request_free
 * still traps as a use after free would; it comes back zeroed, as from calloc. Path and
 * body copies stay heap blocks of their exact size.
 */
#define FAKE_KEPT 8
static fake_request_t *fake_kept[FAKE_KEPT];
static size_t fake_nkept;

static fake_request_t *fake_request_alloc(void)
{
    fake_request_t *f;
    if (fake_nkept != 0) {
        f = fake_kept[--fake_nkept];
        ASAN_UNPOISON_MEMORY_REGION(f, sizeof(*f));
        memset(f, 0, sizeof(*f));
        return f;
    }
    f = calloc(1, sizeof(*f));
    FUZZ_CHECK(f != NULL);
    return f;
}

static void fake_request_release(fake_request_t *f)
{
    if (fake_nkept == FAKE_KEPT) {
        free(f);
        return;
    }
    ASAN_POISON_MEMORY_REGION(f, sizeof(*f));
    fake_kept[fake_nkept++] = f;
}

http_request_t *fuzz_request_new(const char *method, const void *path, size_t path_len, const void *body,
                                 size_t body_len)
{
    fake_request_t *f = fake_request_alloc();
    h2o_mem_init_pool(&f->req.pool);
    f->path = fake_exact_copy(path, path_len);
    f->req.method = f->req.input.method = h2o_iovec_init(method, strlen(method));
    f->req.path = f->req.input.path = h2o_iovec_init(f->path, path_len);
    const char *q = path_len != 0 ? memchr(f->path, '?', path_len) : NULL;
    f->req.query_at = f->req.input.query_at = q != NULL ? (size_t)(q - f->path) : SIZE_MAX;
    if (body_len != 0) {
        f->body = fake_exact_copy(body, body_len);
        f->req.entity = h2o_iovec_init(f->body, body_len);
    }
    http_request_t *r = &f->r;
    r->req = &f->req;
    r->route = -1;
    h2o_linklist_init_anchor(&r->waiters);
    r->auth.company_id = 1;
    r->auth.user_id = 2;
    r->auth.admin = 1;
    snprintf(r->id, sizeof(r->id), "fuzz");
    r->client_known = 1;
    snprintf(r->client_ip, sizeof(r->client_ip), "127.0.0.1");
    return r;
}

void fuzz_request_free(http_request_t *r)
{
    fake_request_t *f = (fake_request_t *)r;
    h2o_mem_clear_pool(&f->req.pool);
    for (size_t i = 0; i != HTTP_MAX_PARAMS; ++i)
        free(f->param_values[i]);
    free(f->path);
    free(f->body);
    fake_request_release(f);
}

void fuzz_request_param(http_request_t *r, const char *name, const char *value, size_t len)
{
    fake_request_t *f = (fake_request_t *)r;
    size_t i = r->params.count;
    FUZZ_CHECK(i < HTTP_MAX_PARAMS);
    f->param_values[i] = fake_exact_copy(value, len);
    r->params.items[i].name = name;
    r->params.items[i].name_len = strlen(name);
    r->params.items[i].value = h2o_iovec_init(f->param_values[i], len);
    r->params.count = i + 1;
}

const unsigned char *fuzz_request_body(http_request_t *r, size_t *len)
{
    fake_request_t *f = (fake_request_t *)r;
    *len = f->req.entity.len;
    return (const unsigned char *)f->body;
}

fuzz_outcome_t *fuzz_outcome(http_request_t *r)
{
    return &((fake_request_t *)r)->out;
}

fuzz_outcome_t *fuzz_expect_done(http_request_t *r)
{
    static int trace = -1;
    fuzz_outcome_t *o = fuzz_outcome(r);
    if (trace < 0)
        trace = getenv("FUZZ_TRACE") != NULL;
    if (trace) {
        /* replaying an input: what the handler did, to read beside the checks */
        fprintf(stderr, "%.*s %.*s -> %d %s%s%s: %s\n", (int)r->req->method.len, r->req->method.base,
                (int)r->req->path.len, r->req->path.base, o->status, o->code != NULL ? o->code : "statement",
                o->field != NULL ? " field=" : "", o->field != NULL ? o->field : "", o->message);
        for (size_t i = 0; i != o->nparams; ++i)
            fprintf(stderr, "  $%zu = %s\n", i + 1,
                    o->params[i].value == NULL ? "NULL"
                    : o->params[i].binary      ? "(binary)"
                                               : o->params[i].value);
    }
    /* a handler that returns without replying or querying leaves its client waiting forever */
    FUZZ_CHECK(o->replies == 1);
    return o;
}

int fuzz_utf8_ok(const void *s, size_t n)
{
    /* the well-formed byte sequences of the Unicode standard (table 3-7) */
    const unsigned char *p = s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf)
            len = 2;
        else if (c == 0xe0)
            len = 3, lo = 0xa0;
        else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
            len = 3;
        else if (c == 0xed)
            len = 3, hi = 0x9f;
        else if (c == 0xf0)
            len = 4, lo = 0x90;
        else if (c >= 0xf1 && c <= 0xf3)
            len = 4;
        else if (c == 0xf4)
            len = 4, hi = 0x8f;
        else
            return 0;
        if (n - i < len || p[i + 1] < lo || p[i + 1] > hi)
            return 0;
        for (size_t k = 2; k < len; ++k)
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
        i += len;
    }
    return 1;
}

size_t fuzz_percent_encode(const void *in, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = in;
    for (size_t i = 0; i != n; ++i) {
        out[3 * i] = '%';
        out[3 * i + 1] = hex[p[i] >> 4];
        out[3 * i + 2] = hex[p[i] & 15];
    }
    out[3 * n] = '\0';
    return 3 * n;
}

/* ---- http/reply.h ---- */

/* Counts one reply; the real layer aborts on a second one. */
static fuzz_outcome_t *fake_reply(http_request_t *r, int status)
{
    fuzz_outcome_t *o = fuzz_outcome(r);
    FUZZ_CHECK(!r->replied);
    r->replied = 1;
    ++o->replies;
    o->status = status;
    return o;
}

/* The message as the real layer formats it (512 bytes); it goes into a JSON body, so it must be UTF-8. */
static void fake_message(fuzz_outcome_t *o, const char *fmt, va_list ap)
{
    FUZZ_CHECK(fmt != NULL);
    vsnprintf(o->message, sizeof(o->message), fmt, ap);
    FUZZ_CHECK(fuzz_utf8_ok(o->message, strlen(o->message)));
}

void http_reply_iovec(http_request_t *r, int status, const char *content_type, h2o_iovec_t body)
{
    FUZZ_CHECK(content_type != NULL && (body.base != NULL || body.len == 0));
    fake_reply(r, status);
}

void http_reply_copy(http_request_t *r, int status, const char *content_type, const char *body, size_t len)
{
    http_reply_iovec(r, status, content_type, h2o_strdup(&r->req->pool, body, len));
}

void http_reply_json(http_request_t *r, int status, const char *json, size_t len)
{
    http_reply_copy(r, status, "application/json", json, len);
}

void http_reply_error(http_request_t *r, int status, const char *code, const char *fmt, ...)
{
    FUZZ_CHECK(status >= 400 && status <= 599 && code != NULL && *code != '\0');
    fuzz_outcome_t *o = fake_reply(r, status);
    o->code = code;
    va_list ap;
    va_start(ap, fmt);
    fake_message(o, fmt, ap);
    va_end(ap);
}

void http_reply_invalid(http_request_t *r, const char *field, const char *fmt, ...)
{
    /* the client's clue to what was wrong, in the JSON body (empty only for a member named "") */
    FUZZ_CHECK(field != NULL && fuzz_utf8_ok(field, strlen(field)));
    fuzz_outcome_t *o = fake_reply(r, 400);
    o->code = "invalid";
    o->field = h2o_strdup(&r->req->pool, field, SIZE_MAX).base;
    va_list ap;
    va_start(ap, fmt);
    fake_message(o, fmt, ap);
    va_end(ap);
}

void http_reply_header(http_request_t *r, const char *name, const char *value)
{
    FUZZ_CHECK(!r->replied && name != NULL && *name != '\0' && value != NULL);
    /* a CR or LF in a value would split the header */
    FUZZ_CHECK(strpbrk(value, "\r\n") == NULL);
}

const char *http_reply_code_for(int status)
{
    return status >= 500 ? "internal" : "error";
}

void http_reply_install_filter(h2o_pathconf_t *pathconf)
{
    (void)pathconf;
    fuzz_fail(__FILE__, __LINE__, "no server runs here");
}

/* ---- api/db.h and api/cache.h ---- */

/* Counts a statement handed over as the request's one outcome, and copies its parameters. */
static void fake_statement(http_request_t *r, pg_stmt_t *stmt, const pg_param_t *params, size_t n)
{
    fuzz_outcome_t *o = fake_reply(r, 0);
    FUZZ_CHECK(stmt != NULL && stmt->sql != NULL && stmt->nparams >= 0);
    FUZZ_CHECK((size_t)stmt->nparams == n && n <= FUZZ_PARAMS_MAX && (params != NULL || n == 0));
    o->stmt = stmt;
    o->nparams = n;
    for (size_t i = 0; i != n; ++i) {
        const pg_param_t *p = &params[i];
        fuzz_param_t *c = &o->params[i];
        c->binary = p->binary;
        if (p->value == NULL)
            continue;
        c->len = p->len == SIZE_MAX ? strlen(p->value) : p->len;
        char *v = h2o_mem_alloc_pool(&r->req->pool, c->len + 1);
        memcpy(v, p->value, c->len);
        v[c->len] = '\0';
        c->value = v;
        /* a text parameter reaches PostgreSQL as a C string in its UTF8 encoding */
        if (!p->binary)
            FUZZ_CHECK(memchr(v, '\0', c->len) == NULL && fuzz_utf8_ok(v, c->len));
    }
}

void api_db_call(http_request_t *r, pg_stmt_t *stmt, const pg_param_t *params, size_t n, api_db_next next)
{
    FUZZ_CHECK(next != NULL);
    fake_statement(r, stmt, params, n);
}

void api_db_reply(http_request_t *r, pg_stmt_t *stmt, const pg_param_t *params, size_t n, int ok_status,
                  const char *what)
{
    FUZZ_CHECK(ok_status >= 200 && ok_status <= 299 && what != NULL);
    fake_statement(r, stmt, params, n);
}

void api_db_describe(const http_request_t *r, const pg_reply_t *reply, int *status, const char **code,
                     const char **message)
{
    (void)r;
    (void)reply;
    *status = 503;
    *code = "unavailable";
    *message = "the database is unavailable";
}

void api_db_error(http_request_t *r, const pg_reply_t *reply)
{
    (void)reply;
    http_reply_error(r, 503, "unavailable", "the database is unavailable");
}

pg_param_t api_db_i64(http_request_t *r, int64_t v)
{
    return PG_TEXT(api_i64(r, v));
}

pg_param_t api_db_bytes(const void *p, size_t n)
{
    return (pg_param_t){p, n, 1};
}

void api_cache_reply(http_request_t *r, cache_kind_t kind, int64_t scope_id, const char *variant, pg_stmt_t *stmt,
                     const pg_param_t *params, size_t n, const char *what)
{
    (void)kind;
    (void)scope_id;
    FUZZ_CHECK(variant != NULL && what != NULL);
    fake_statement(r, stmt, params, n);
    /* the variant becomes part of a Redis key that is logged: UTF-8 */
    FUZZ_CHECK(fuzz_utf8_ok(variant, strlen(variant)));
    fuzz_outcome(r)->variant = h2o_strdup(&r->req->pool, variant, SIZE_MAX).base;
}

void api_cache_bump_reply(http_request_t *r, const cache_gen_t *gens, size_t n, int status, const char *body,
                          size_t len)
{
    FUZZ_CHECK((gens != NULL || n == 0) && status >= 200 && status <= 299 && (body != NULL || len == 0));
    fake_reply(r, status);
}

void api_cache_bump_reply_if_changed(http_request_t *r, PGresult *res, const cache_gen_t *gen, const char *what)
{
    FUZZ_CHECK(res != NULL && gen != NULL && what != NULL);
    fake_reply(r, 200);
}
