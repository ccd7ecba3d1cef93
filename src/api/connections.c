/*
 * /api/v1/connections: a company's WhatsApp Business numbers.
 *
 *   GET    /api/v1/connections         list, oldest first (any member of the company)
 *   POST   /api/v1/connections         create (admin)
 *   GET    /api/v1/connections/:id     one (any member)
 *   PATCH  /api/v1/connections/:id     change any subset of the fields (admin)
 *   DELETE /api/v1/connections/:id     delete (admin); 409 while campaigns use it
 *
 * Fields: name (1-100 characters), slug (^[a-z0-9][a-z0-9-]{2,62}$, unique across
 * companies: it names the webhook URL /api/webhooks/meta/<slug>), phone_number_id and
 * waba_id (Meta's ids: up to 32 digits; phone_number_id unique across companies),
 * display_phone_number (up to 32 of "+0123456789 ()-."), status ("active" or
 * "disabled"), and the secrets access_token (up to 1024), app_secret and verify_token
 * (up to 256 each): printable ASCII without spaces. Optional fields, secrets included,
 * are cleared with null.
 *
 * Secrets: sealed here with ENCRYPTION_KEY (src/auth/secrets.h, one context per
 * column) before any query is sent, and stored with their mask in the *_hint columns
 * (migration 0003 says why). Responses carry only the masks ("••••abcd", or eight
 * bullets for a short secret, null when unset), so the JSON is built by PostgreSQL
 * like every other endpoint's and reading needs no key. Every copy of a plaintext
 * this file is handed or makes (the request body, the parsed JSON, the pool copies) is
 * wiped before the handler returns; no secret reaches a log or a response, including
 * the error for malformed JSON, which names the position but not the text there.
 *
 * Tenancy: every statement is scoped by the caller's company; another company's id
 * is 404. Uniqueness is checked in the same statement as the write, so the 409 names
 * the field; a concurrent writer that wins the race still gets a plain 409.
 */
#include "api/cache.h"
#include "api/db.h"
#include "api/input.h"
#include "api/routes.h"
#include "auth/secrets.h"
#include "core/util.h"
#include "http/reply.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONN_NAME_MAX     100
#define CONN_DIGITS_MAX   32
#define CONN_DISPLAY_MAX  32
#define CONN_SLUG_MIN     3
#define CONN_SLUG_MAX     63
#define CONN_TOKEN_MAX    1024
#define CONN_SECRET_MAX   256
#define CONN_WEBHOOK_PATH "/api/webhooks/meta/"
#define CONN_MPS_MAX      1000 /* Meta's highest throughput tier */

/* A masked secret, or NULL when unset; a legacy plaintext verify_token (migration 0003) shows fully masked. */
#define CONN_MASK_ACCESS_TOKEN                                                                                         \
    "CASE WHEN c.access_token_enc IS NOT NULL THEN coalesce(c.access_token_hint, '" SECRETS_MASK_FULL "') END"
#define CONN_MASK_APP_SECRET                                                                                           \
    "CASE WHEN c.app_secret_enc IS NOT NULL THEN coalesce(c.app_secret_hint, '" SECRETS_MASK_FULL "') END"
#define CONN_MASK_VERIFY_TOKEN                                                                                         \
    "CASE WHEN c.verify_token_enc IS NOT NULL THEN coalesce(c.verify_token_hint, '" SECRETS_MASK_FULL "')"             \
    " WHEN c.verify_token IS NOT NULL THEN '" SECRETS_MASK_FULL "' END"

/* The item shape, shared by every route. */
#define CONN_ITEM                                                                                                      \
    "json_build_object('id', c.id, 'name', c.name, 'slug', c.slug, 'phone_number_id', c.phone_number_id, "             \
    "'waba_id', c.waba_id, 'display_phone_number', c.display_phone_number, 'status', c.status, "                       \
    "'webhook_url_path', '" CONN_WEBHOOK_PATH "' || c.slug, "                                                          \
    "'access_token', " CONN_MASK_ACCESS_TOKEN ", 'app_secret', " CONN_MASK_APP_SECRET ", "                             \
    "'verify_token', " CONN_MASK_VERIFY_TOKEN ", 'messages_per_second', c.messages_per_second, "                       \
    "'created_at', c.created_at, 'updated_at', c.updated_at)"

enum { CONN_ACCESS_TOKEN, CONN_APP_SECRET, CONN_VERIFY_TOKEN, CONN_NSECRETS };

/* One secret field: its JSON name, its sealing context, its limit. */
static const struct {
    const char *field;
    const char *context;
    size_t max;
} conn_secret_spec[CONN_NSECRETS] = {
    {"access_token", "connections.access_token", CONN_TOKEN_MAX},
    {"app_secret", "connections.app_secret", CONN_SECRET_MAX},
    {"verify_token", "connections.verify_token", CONN_SECRET_MAX},
};

static const char *const conn_fields[] = {
    "name",       "slug",         "phone_number_id",     "waba_id", "display_phone_number", "status", "access_token",
    "app_secret", "verify_token", "messages_per_second", NULL};

static const char *const conn_statuses[] = {"active", "disabled", NULL};

/* A plain field as given: absent, null (clear it) or a value in the request's pool. */
typedef struct conn_field {
    int present;
    int is_null;
    const char *value;
} conn_field_t;

typedef struct conn_secret {
    int present;
    int is_null;
    const char *plain; /* the pool copy; wiped by conn_forget() */
    size_t plain_len;
    unsigned char *sealed; /* in the pool */
    size_t sealed_len;
    char hint[SECRETS_MASK_MAX];
} conn_secret_t;

typedef struct conn_input {
    conn_field_t name, slug, phone_number_id, waba_id, display_phone_number, status;
    conn_secret_t secret[CONN_NSECRETS];
    int64_t messages_per_second; /* 0: not given */
} conn_input_t;

/* ---- reading the body ---- */

/* Zeroes every string value in v (keys are field names, not secrets). */
static void conn_wipe_json(json_t *v, int depth)
{
    if (v == NULL || depth > API_JSON_MAX_DEPTH + 1)
        return;
    if (json_is_string(v)) {
        /* jansson's own buffer, allocated writable: only the accessor is const */
        sodium_memzero((char *)json_string_value(v), json_string_length(v));
    } else if (json_is_object(v)) {
        const char *key;
        json_t *item;
        json_object_foreach (v, key, item) {
            conn_wipe_json(item, depth + 1);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach (v, i, item) {
            conn_wipe_json(item, depth + 1);
        }
    }
}

/* Zeroes the raw request body. */
static void conn_wipe_body(http_request_t *r)
{
    if (r->req->entity.base != NULL && r->req->entity.len != 0)
        sodium_memzero(r->req->entity.base, r->req->entity.len);
}

/*
 * Like api_body_object(), except that a parse error does not quote the text near the
 * error (jansson's message does, and that text may be a secret). On failure the body
 * is wiped and NULL returned after replying 400.
 */
static json_t *conn_body(http_request_t *r)
{
    h2o_iovec_t body = r->req->entity;
    json_t *obj = NULL;
    if (body.base == NULL || body.len == 0) {
        http_reply_invalid(r, "body", "a JSON object is required");
        return NULL;
    }
    if (!api_json_depth_ok(body.base, body.len)) {
        http_reply_invalid(r, "body", "JSON nested deeper than %d levels", API_JSON_MAX_DEPTH);
        goto Fail;
    }
    json_error_t err;
    obj = json_loadb(body.base, body.len, JSON_REJECT_DUPLICATES, &err);
    if (obj == NULL) {
        http_reply_invalid(r, "body", "malformed JSON at line %d column %d", err.line, err.column);
        goto Fail;
    }
    if (!json_is_object(obj)) {
        http_reply_invalid(r, "body", "a JSON object is required");
        goto Fail;
    }
    const char *key;
    json_t *value;
    json_object_foreach (obj, key, value) {
        size_t i;
        for (i = 0; conn_fields[i] != NULL && strcmp(conn_fields[i], key) != 0; ++i)
            ;
        if (conn_fields[i] == NULL) {
            char field[64];
            snprintf(field, sizeof(field), "%.*s", (int)api_utf8_prefix(key, sizeof(field) - 1), key);
            http_reply_invalid(r, field, "unknown field %s", field);
            goto Fail;
        }
    }
    return obj;
Fail:
    conn_wipe_json(obj, 0);
    json_decref(obj);
    conn_wipe_body(r);
    return NULL;
}

/* Whether every byte of s is in `set` (and s is not empty). */
static int conn_only(const char *s, const char *set)
{
    return *s != '\0' && s[strspn(s, set)] == '\0';
}

static int conn_has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; ++p)
        if (*p < 0x20 || *p == 0x7f)
            return 1;
    return 0;
}

/* Reads a string member that may be absent, null (when nullable) or within [min, max] characters. */
static int conn_read_string(http_request_t *r, json_t *body, const char *name, int nullable, size_t min, size_t max,
                            conn_field_t *f)
{
    json_t *v = json_object_get(body, name);
    f->present = v != NULL;
    f->is_null = v != NULL && json_is_null(v);
    f->value = NULL;
    if (f->is_null && !nullable) {
        http_reply_invalid(r, name, "%s cannot be null", name);
        return -1;
    }
    if (v == NULL || f->is_null)
        return 0;
    return api_json_string(r, body, name, 0, min, max, &f->value);
}

static int conn_read_secret(http_request_t *r, json_t *body, int i, conn_secret_t *s)
{
    conn_field_t f;
    const char *name = conn_secret_spec[i].field;
    if (conn_read_string(r, body, name, 1, 1, conn_secret_spec[i].max, &f) != 0)
        return -1;
    s->present = f.present;
    s->is_null = f.is_null;
    s->plain = f.value;
    s->plain_len = f.value != NULL ? strlen(f.value) : 0;
    if (s->plain != NULL) {
        for (size_t k = 0; k != s->plain_len; ++k)
            if ((unsigned char)s->plain[k] < 0x21 || (unsigned char)s->plain[k] > 0x7e) {
                http_reply_invalid(r, name, "%s must be printable ASCII without spaces", name);
                return -1;
            }
    }
    return 0;
}

static int conn_valid_slug(const char *s)
{
    size_t n = strlen(s);
    if (n < CONN_SLUG_MIN || n > CONN_SLUG_MAX || s[0] == '-')
        return 0;
    return conn_only(s, "abcdefghijklmnopqrstuvwxyz0123456789-");
}

/* Validates every field in a fixed order, so the first bad one is the one reported. */
static int conn_read(http_request_t *r, json_t *body, conn_input_t *in, int creating)
{
    if (conn_read_string(r, body, "name", 0, 1, CONN_NAME_MAX, &in->name) != 0)
        return -1;
    if (creating && !in->name.present) {
        http_reply_invalid(r, "name", "name is required");
        return -1;
    }
    if (in->name.value != NULL && conn_has_control(in->name.value)) {
        http_reply_invalid(r, "name", "name must not contain control characters");
        return -1;
    }
    if (conn_read_string(r, body, "slug", 0, 0, SIZE_MAX, &in->slug) != 0)
        return -1;
    if (creating && !in->slug.present) {
        http_reply_invalid(r, "slug", "slug is required");
        return -1;
    }
    if (in->slug.value != NULL && !conn_valid_slug(in->slug.value)) {
        http_reply_invalid(r, "slug",
                           "slug must be 3 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit");
        return -1;
    }
    if (conn_read_string(r, body, "phone_number_id", 1, 0, SIZE_MAX, &in->phone_number_id) != 0)
        return -1;
    if (in->phone_number_id.value != NULL &&
        (strlen(in->phone_number_id.value) > CONN_DIGITS_MAX || !conn_only(in->phone_number_id.value, "0123456789"))) {
        http_reply_invalid(r, "phone_number_id", "phone_number_id must be 1 to %d digits", CONN_DIGITS_MAX);
        return -1;
    }
    if (conn_read_string(r, body, "waba_id", 1, 0, SIZE_MAX, &in->waba_id) != 0)
        return -1;
    if (in->waba_id.value != NULL &&
        (strlen(in->waba_id.value) > CONN_DIGITS_MAX || !conn_only(in->waba_id.value, "0123456789"))) {
        http_reply_invalid(r, "waba_id", "waba_id must be 1 to %d digits", CONN_DIGITS_MAX);
        return -1;
    }
    if (conn_read_string(r, body, "display_phone_number", 1, 0, SIZE_MAX, &in->display_phone_number) != 0)
        return -1;
    const char *d = in->display_phone_number.value;
    if (d != NULL &&
        (strlen(d) > CONN_DISPLAY_MAX || !conn_only(d, "+0123456789 ()-.") || strpbrk(d, "0123456789") == NULL)) {
        http_reply_invalid(r, "display_phone_number",
                           "display_phone_number must be 1 to %d characters of digits, spaces and +()-.",
                           CONN_DISPLAY_MAX);
        return -1;
    }
    if (json_object_get(body, "status") != NULL) {
        in->status.present = 1;
        if (api_json_enum(r, body, "status", 0, conn_statuses, &in->status.value) != 0)
            return -1;
    }
    json_t *mps = json_object_get(body, "messages_per_second");
    if (mps != NULL) {
        if (!json_is_integer(mps) || json_integer_value(mps) < 1 || json_integer_value(mps) > CONN_MPS_MAX) {
            http_reply_invalid(r, "messages_per_second", "messages_per_second must be an integer from 1 to %d",
                               CONN_MPS_MAX);
            return -1;
        }
        in->messages_per_second = json_integer_value(mps);
    }
    for (int i = 0; i != CONN_NSECRETS; ++i)
        if (conn_read_secret(r, body, i, &in->secret[i]) != 0)
            return -1;
    return 0;
}

/* Seals every secret given and computes its mask. Returns 0, or -1 after replying. */
static int conn_seal(http_request_t *r, conn_input_t *in)
{
    for (int i = 0; i != CONN_NSECRETS; ++i) {
        conn_secret_t *s = &in->secret[i];
        if (s->plain == NULL)
            continue;
        size_t cap = secrets_sealed_len(s->plain_len);
        s->sealed = h2o_mem_alloc_pool(&r->req->pool, cap);
        if (secrets_encrypt(conn_secret_spec[i].context, s->plain, s->plain_len, s->sealed, cap, &s->sealed_len) != 0 ||
            secrets_mask(s->plain, s->plain_len, s->hint, sizeof(s->hint)) == 0) {
            http_reply_error(r, 500, "internal", "%s could not be encrypted", conn_secret_spec[i].field);
            return -1;
        }
    }
    return 0;
}

/* Wipes every plaintext copy: the pool copies, the parsed JSON (then frees it), the raw body. */
static void conn_forget(http_request_t *r, json_t *body, conn_input_t *in)
{
    for (int i = 0; i != CONN_NSECRETS; ++i)
        if (in->secret[i].plain != NULL) {
            sodium_memzero((char *)in->secret[i].plain, in->secret[i].plain_len); /* our pool copy */
            in->secret[i].plain = NULL;
        }
    conn_wipe_json(body, 0);
    json_decref(body);
    conn_wipe_body(r);
}

/* Reads, validates and seals the body. Returns 0 with *in filled, or -1 after replying. */
static int conn_input(http_request_t *r, conn_input_t *in, int creating)
{
    memset(in, 0, sizeof(*in));
    json_t *body = conn_body(r);
    if (body == NULL)
        return -1;
    int rc = conn_read(r, body, in, creating);
    if (rc == 0)
        rc = conn_seal(r, in);
    conn_forget(r, body, in);
    return rc;
}

static pg_param_t conn_text(const conn_field_t *f)
{
    return PG_TEXT(f->is_null ? NULL : f->value);
}

static pg_param_t conn_sealed(const conn_secret_t *s)
{
    return s->sealed != NULL ? api_db_bytes(s->sealed, s->sealed_len) : PG_TEXT(NULL);
}

static pg_param_t conn_hint(const conn_secret_t *s)
{
    return PG_TEXT(s->sealed != NULL ? s->hint : NULL);
}

static pg_param_t conn_flag(int set)
{
    return PG_TEXT(set ? "true" : "false");
}

/* Every write below changes what the company's cached connection responses say. */
static const cache_gen_t conn_gen = {CACHE_SCOPE_CONNECTIONS, 0};

/* ---- GET ---- */

static pg_stmt_t conn_list_stmt = {"SELECT json_build_object('data', coalesce(json_agg(" CONN_ITEM
                                   " ORDER BY c.id), '[]'::json), 'cached', false)::text"
                                   " FROM connections c WHERE c.company_id = $1",
                                   1};

void api_connections_list(http_request_t *r)
{
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id)};
    api_cache_reply(r, CACHE_CONNECTIONS, 0, "list", &conn_list_stmt, p, 1, "connections");
}

static pg_stmt_t conn_get_stmt = {"SELECT json_build_object('data', " CONN_ITEM
                                  ", 'cached', false)::text FROM connections c WHERE c.company_id = $1 AND c.id = $2",
                                  2};

void api_connections_get(http_request_t *r)
{
    int64_t id;
    if (api_param_id(r, "id", &id) != 0)
        return;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, id)};
    char variant[32];
    snprintf(variant, sizeof(variant), "id=%" PRId64, id);
    api_cache_reply(r, CACHE_CONNECTIONS, 0, variant, &conn_get_stmt, p, 2, "connection");
}

/* The throughput given, or NULL (the default on create, unchanged on PATCH). */
static pg_param_t conn_mps(http_request_t *r, const conn_input_t *in)
{
    return in->messages_per_second != 0 ? api_db_i64(r, in->messages_per_second) : (pg_param_t){NULL, 0, 0};
}

/* ---- POST ---- */

/*
 * $1 company, $2 slug, $3 name, $4 phone_number_id, $5 waba_id, $6 display_phone_number,
 * $7 status, then sealed value and mask of the access token ($8, $9), app secret ($10,
 * $11) and verify token ($12, $13). Returns whether the slug and the phone number id
 * were taken, then the new id and item (NULL when nothing was inserted).
 */
static pg_stmt_t conn_create_stmt = {
    "WITH taken AS (SELECT EXISTS (SELECT 1 FROM connections WHERE slug = $2::text) AS slug,"
    " $4::text IS NOT NULL AND EXISTS (SELECT 1 FROM connections WHERE phone_number_id = $4::text) AS phone),"
    " ins AS (INSERT INTO connections AS c (company_id, slug, name, phone_number_id, waba_id, display_phone_number,"
    " status, access_token_enc, access_token_hint, app_secret_enc, app_secret_hint, verify_token_enc,"
    " verify_token_hint, messages_per_second)"
    " SELECT $1::bigint, $2::text, $3::text, $4::text, $5::text, $6::text, coalesce($7::text, 'active'),"
    " $8::bytea, $9::text, $10::bytea, $11::text, $12::bytea, $13::text, coalesce($14::int, 80)"
    " FROM taken WHERE NOT taken.slug AND NOT taken.phone ON CONFLICT DO NOTHING RETURNING c.*)"
    " SELECT (SELECT slug FROM taken), (SELECT phone FROM taken), (SELECT id FROM ins),"
    " (SELECT json_build_object('data', " CONN_ITEM ")::text FROM ins c)",
    14};

/* Replies 409 when the statement reported a taken slug or phone number id; returns 1 then. */
static int conn_taken(http_request_t *r, PGresult *res, int slug_col)
{
    if (PQgetvalue(res, 0, slug_col)[0] == 't') {
        http_reply_error(r, 409, "conflict", "slug is already used by another connection");
        return 1;
    }
    if (PQgetvalue(res, 0, slug_col + 1)[0] == 't') {
        http_reply_error(r, 409, "conflict", "phone_number_id is already connected");
        return 1;
    }
    return 0;
}

static void conn_on_created(http_request_t *r, PGresult *res)
{
    if (conn_taken(r, res, 0))
        return;
    if (PQgetisnull(res, 0, 2) || PQgetisnull(res, 0, 3)) {
        http_reply_error(r, 409, "conflict", "slug or phone_number_id was taken meanwhile");
        return;
    }
    char location[64];
    snprintf(location, sizeof(location), "/api/v1/connections/%s", PQgetvalue(res, 0, 2));
    http_reply_header(r, "location", location);
    api_cache_bump_reply(r, &conn_gen, 1, 201, PQgetvalue(res, 0, 3), (size_t)PQgetlength(res, 0, 3));
}

void api_connections_create(http_request_t *r)
{
    conn_input_t in;
    if (conn_input(r, &in, 1) != 0)
        return;
    conn_secret_t *s = in.secret;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id),
                      conn_text(&in.slug),
                      conn_text(&in.name),
                      conn_text(&in.phone_number_id),
                      conn_text(&in.waba_id),
                      conn_text(&in.display_phone_number),
                      conn_text(&in.status),
                      conn_sealed(&s[CONN_ACCESS_TOKEN]),
                      conn_hint(&s[CONN_ACCESS_TOKEN]),
                      conn_sealed(&s[CONN_APP_SECRET]),
                      conn_hint(&s[CONN_APP_SECRET]),
                      conn_sealed(&s[CONN_VERIFY_TOKEN]),
                      conn_hint(&s[CONN_VERIFY_TOKEN]),
                      conn_mps(r, &in)};
    api_db_call(r, &conn_create_stmt, p, UTIL_ARRAY_SIZE(p), conn_on_created);
}

/* ---- PATCH ---- */

/*
 * $1 company, $2 id, $3 slug, $4 name, $5 status (NULL: unchanged), then pairs "is it
 * set" and value for phone_number_id ($6, $7), waba_id ($8, $9), display_phone_number
 * ($10, $11), and triples "set", sealed value, mask for the access token ($12-$14),
 * app secret ($15-$17) and verify token ($18-$20); setting the verify token clears
 * the legacy plaintext column. Returns whether the connection exists, whether the slug
 * and phone number id are taken by another, and the updated item.
 */
static pg_stmt_t conn_patch_stmt = {
    "WITH taken AS (SELECT $3::text IS NOT NULL AND EXISTS (SELECT 1 FROM connections WHERE slug = $3::text"
    " AND (company_id, id) <> ($1::bigint, $2::bigint)) AS slug,"
    " $6::bool AND $7::text IS NOT NULL AND EXISTS (SELECT 1 FROM connections WHERE phone_number_id = $7::text"
    " AND (company_id, id) <> ($1::bigint, $2::bigint)) AS phone),"
    " upd AS (UPDATE connections c SET slug = coalesce($3::text, c.slug), name = coalesce($4::text, c.name),"
    " status = coalesce($5::text, c.status),"
    " phone_number_id = CASE WHEN $6::bool THEN $7::text ELSE c.phone_number_id END,"
    " waba_id = CASE WHEN $8::bool THEN $9::text ELSE c.waba_id END,"
    " display_phone_number = CASE WHEN $10::bool THEN $11::text ELSE c.display_phone_number END,"
    " access_token_enc = CASE WHEN $12::bool THEN $13::bytea ELSE c.access_token_enc END,"
    " access_token_hint = CASE WHEN $12::bool THEN $14::text ELSE c.access_token_hint END,"
    " app_secret_enc = CASE WHEN $15::bool THEN $16::bytea ELSE c.app_secret_enc END,"
    " app_secret_hint = CASE WHEN $15::bool THEN $17::text ELSE c.app_secret_hint END,"
    " verify_token_enc = CASE WHEN $18::bool THEN $19::bytea ELSE c.verify_token_enc END,"
    " verify_token_hint = CASE WHEN $18::bool THEN $20::text ELSE c.verify_token_hint END,"
    " verify_token = CASE WHEN $18::bool THEN NULL ELSE c.verify_token END,"
    " messages_per_second = coalesce($21::int, c.messages_per_second), updated_at = now()"
    " FROM taken WHERE NOT taken.slug AND NOT taken.phone AND c.company_id = $1::bigint AND c.id = $2::bigint"
    " RETURNING c.*)"
    " SELECT EXISTS (SELECT 1 FROM connections WHERE company_id = $1::bigint AND id = $2::bigint),"
    " (SELECT slug FROM taken), (SELECT phone FROM taken),"
    " (SELECT json_build_object('data', " CONN_ITEM ")::text FROM upd c)",
    21};

static void conn_on_patched(http_request_t *r, PGresult *res)
{
    if (PQgetvalue(res, 0, 0)[0] != 't') {
        http_reply_error(r, 404, "not_found", "connection not found");
        return;
    }
    if (conn_taken(r, res, 1))
        return;
    if (PQgetisnull(res, 0, 3)) {
        http_reply_error(r, 409, "conflict", "the connection changed meanwhile; try again");
        return;
    }
    api_cache_bump_reply(r, &conn_gen, 1, 200, PQgetvalue(res, 0, 3), (size_t)PQgetlength(res, 0, 3));
}

void api_connections_patch(http_request_t *r)
{
    int64_t id;
    if (api_param_id(r, "id", &id) != 0) {
        conn_wipe_body(r);
        return;
    }
    conn_input_t in;
    if (conn_input(r, &in, 0) != 0)
        return;
    int any = in.name.present || in.slug.present || in.status.present || in.phone_number_id.present ||
              in.waba_id.present || in.display_phone_number.present || in.messages_per_second != 0;
    for (int i = 0; i != CONN_NSECRETS; ++i)
        any |= in.secret[i].present;
    if (!any) {
        http_reply_invalid(r, "body", "nothing to change: give at least one of the connection's fields");
        return;
    }
    conn_secret_t *s = in.secret;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id),
                      api_db_i64(r, id),
                      conn_text(&in.slug),
                      conn_text(&in.name),
                      conn_text(&in.status),
                      conn_flag(in.phone_number_id.present),
                      conn_text(&in.phone_number_id),
                      conn_flag(in.waba_id.present),
                      conn_text(&in.waba_id),
                      conn_flag(in.display_phone_number.present),
                      conn_text(&in.display_phone_number),
                      conn_flag(s[CONN_ACCESS_TOKEN].present),
                      conn_sealed(&s[CONN_ACCESS_TOKEN]),
                      conn_hint(&s[CONN_ACCESS_TOKEN]),
                      conn_flag(s[CONN_APP_SECRET].present),
                      conn_sealed(&s[CONN_APP_SECRET]),
                      conn_hint(&s[CONN_APP_SECRET]),
                      conn_flag(s[CONN_VERIFY_TOKEN].present),
                      conn_sealed(&s[CONN_VERIFY_TOKEN]),
                      conn_hint(&s[CONN_VERIFY_TOKEN]),
                      conn_mps(r, &in)};
    api_db_call(r, &conn_patch_stmt, p, UTIL_ARRAY_SIZE(p), conn_on_patched);
}

/* ---- DELETE ---- */

/*
 * Deletes unless campaigns use the connection (their foreign key has no ON DELETE:
 * a campaign's history needs its number). Conversations keep their history with
 * connection_id set to NULL. Returns whether it existed, how many campaigns use it,
 * whether it was deleted.
 */
static pg_stmt_t conn_delete_stmt = {
    "WITH used AS (SELECT count(*) AS n FROM campaigns WHERE company_id = $1::bigint AND connection_id = $2::bigint),"
    " del AS (DELETE FROM connections c USING used WHERE used.n = 0 AND c.company_id = $1::bigint"
    " AND c.id = $2::bigint RETURNING c.id)"
    " SELECT EXISTS (SELECT 1 FROM connections WHERE company_id = $1::bigint AND id = $2::bigint),"
    " (SELECT n FROM used), EXISTS (SELECT 1 FROM del)",
    2};

static void conn_in_use(http_request_t *r, const char *campaigns)
{
    http_reply_error(r, 409, "conflict",
                     "this connection is used by %s campaign(s) and cannot be deleted; disable it instead with "
                     "PATCH {\"status\":\"disabled\"}",
                     campaigns);
}

static void conn_on_deleted(void *data, const pg_reply_t *reply)
{
    http_request_t *r = data;
    if (reply->error != NULL) {
        /* a campaign created between the check and the delete: the foreign key refuses */
        if (reply->sqlstate != NULL && strcmp(reply->sqlstate, "23503") == 0)
            conn_in_use(r, "new");
        else
            api_db_error(r, reply);
        return;
    }
    PGresult *res = reply->res;
    if (PQntuples(res) != 1 || PQgetvalue(res, 0, 0)[0] != 't') {
        http_reply_error(r, 404, "not_found", "connection not found");
        return;
    }
    if (PQgetvalue(res, 0, 2)[0] != 't') {
        conn_in_use(r, PQgetvalue(res, 0, 1));
        return;
    }
    api_cache_bump_reply(r, &conn_gen, 1, 204, "", 0);
}

void api_connections_delete(http_request_t *r)
{
    int64_t id;
    if (api_param_id(r, "id", &id) != 0)
        return;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, id)};
    pg_exec(r->thread->pg, &conn_delete_stmt, p, 2, conn_on_deleted, r, &r->waiters);
}
