/*
 * /api/v1/contacts: a company's customers.
 *
 *   GET   /api/v1/contacts                 list: page, limit, q (name prefix or phone digits prefix)
 *   GET   /api/v1/contacts/lookup?phone=   one contact by phone number, in any human format
 *   GET   /api/v1/contacts/:id             one contact
 *   POST  /api/v1/contacts                 create: phone_number (required), name, labels
 *   PATCH /api/v1/contacts/:id             change name, labels and/or phone_number
 *
 * Phone numbers are stored as E.164 digits without '+' (core/phone.h); everything a
 * client sends is normalised first, so one number is one contact whatever its format,
 * and UNIQUE (company_id, phone_number) turns a second one into 409.
 *
 * Search: a q made of digits (once + space - ( ) . are removed) is a prefix of
 * phone_number, ordered by phone_number; any other q is a case-insensitive prefix of
 * the name, ordered by lower(name); both then by id. Each is written as a byte range
 * (~>=~ / ~<~, the text_pattern_ops operators) on its index of migration 0002 plus the
 * LIKE that defines the match (metacharacters of q escaped). The range is an index
 * condition even in a generic plan, which LIKE on a parameter never is, so a prepared
 * statement keeps using the index whatever plan the cache settles on. The range's end
 * is q with its last character incremented, computed in SQL on lower(q) so it follows
 * the database's own lower(); a q ending in U+10FFFF has no such successor and uses an
 * open-ended range (the LIKE still decides).
 *
 * Totals: without q, exact from contact_counts (kept by triggers); with q, a count of
 * the matching rows capped at CT_COUNT_CAP, with "total_is_estimate" true when capped.
 * Another company's contact is 404, exactly like an unknown id.
 */
#include "api/cache.h"
#include "api/db.h"
#include "api/input.h"
#include "api/routes.h"
#include "core/phone.h"
#include "http/reply.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CT_LIMIT_DEFAULT 20
#define CT_LIMIT_MAX     50
#define CT_PAGE_MAX      1000000
#define CT_Q_MAX_CHARS   100
#define CT_NAME_MAX      200
#define CT_LABELS_MAX    20
#define CT_LABEL_MAX     50
#define CT_COUNT_CAP     10000
#define CT_STR(x)        CT_XSTR(x)
#define CT_XSTR(x)       #x

/* The item shape, shared by every route. */
#define CT_ITEM                                                                                                        \
    "json_build_object('id', c.id, 'name', c.name, 'phone_number', c.phone_number, 'wa_id', c.wa_id, 'labels', "       \
    "to_json(c.labels), 'created_at', c.created_at, 'updated_at', c.updated_at)"

/* The smallest string greater than every string that starts with x (x non-empty, not ending in U+10FFFF). */
#define CT_NEXT(x)                                                                                                     \
    "(left(" x ", -1) || chr(CASE ascii(right(" x ", 1)) WHEN 55295 THEN 57344 ELSE ascii(right(" x ", 1)) + 1 END))"

/* A JSON array of strings ($n::json, NULL for none) as text[], in its order. */
#define CT_LABELS(p) "ARRAY(SELECT l.v FROM json_array_elements_text(" p ") WITH ORDINALITY AS l (v, i) ORDER BY l.i)"

enum { CT_ALL, CT_PHONE, CT_NAME, CT_NAME_OPEN, CT_MODE_N };

static pg_stmt_t ct_list_stmts[CT_MODE_N];
static char ct_list_sql[CT_MODE_N][2048];
static pthread_once_t ct_list_once = PTHREAD_ONCE_INIT;

/*
 * Parameters: $1 company, $2 limit, $3 page; with q, $4 the LIKE pattern (escaped,
 * without the trailing %) and $5 q itself (for the range).
 */
static void ct_list_build(void)
{
    static const struct {
        const char *where, *key, *order;
        int nparams;
    } modes[CT_MODE_N] = {
        [CT_ALL] = {"", "c.id", "id DESC", 3},
        [CT_PHONE] = {" AND c.phone_number ~>=~ $5::text AND c.phone_number ~<~ " CT_NEXT(
                          "$5::text") " AND c.phone_number LIKE $4::text || '%'",
                      "c.phone_number", "key USING ~<~, id", 5},
        [CT_NAME] = {" AND lower(c.name) ~>=~ lower($5::text) AND lower(c.name) ~<~ " CT_NEXT(
                         "lower($5::text)") " AND lower(c.name) LIKE lower($4::text) || '%'",
                     "lower(c.name)", "key USING ~<~, id", 5},
        [CT_NAME_OPEN] = {" AND lower(c.name) ~>=~ lower($5::text) AND lower(c.name) LIKE lower($4::text) || '%'",
                          "lower(c.name)", "key USING ~<~, id", 5},
    };
    for (int m = 0; m != CT_MODE_N; ++m) {
        char cnt[512];
        const char *total;
        if (m == CT_ALL) {
            snprintf(cnt, sizeof(cnt), "SELECT coalesce((SELECT n FROM contact_counts WHERE company_id = $1), 0) AS n");
            total = "'total', cnt.n, 'total_is_estimate', false";
        } else {
            snprintf(cnt, sizeof(cnt),
                     "SELECT count(*) AS n FROM (SELECT 1 FROM contacts c WHERE c.company_id = $1%s"
                     " LIMIT " CT_STR(CT_COUNT_CAP) " + 1) x",
                     modes[m].where);
            total =
                "'total', least(cnt.n, " CT_STR(CT_COUNT_CAP) "), 'total_is_estimate', cnt.n > " CT_STR(CT_COUNT_CAP);
        }
        snprintf(ct_list_sql[m], sizeof(ct_list_sql[m]),
                 "WITH page AS (SELECT " CT_ITEM " AS item, %s AS key, c.id FROM contacts c"
                 " WHERE c.company_id = $1%s ORDER BY %s LIMIT $2 OFFSET ($3::bigint - 1) * $2), cnt AS (%s)"
                 " SELECT json_build_object('data', coalesce((SELECT json_agg(item ORDER BY %s) FROM page),"
                 " '[]'::json), 'pagination', json_build_object('page', $3::bigint, 'limit', $2::int, %s),"
                 " 'cached', false)::text FROM cnt",
                 modes[m].key, modes[m].where, modes[m].order, cnt, modes[m].order, total);
        ct_list_stmts[m] = (pg_stmt_t){ct_list_sql[m], modes[m].nparams, 0};
    }
}

/* q without the characters people put around phone digits, if only digits remain; else NULL. */
static const char *ct_phone_digits(http_request_t *r, const char *q, size_t n)
{
    char *d = h2o_mem_alloc_pool(&r->req->pool, n + 1);
    size_t k = 0;
    for (size_t i = 0; i != n; ++i) {
        char c = q[i];
        if (c >= '0' && c <= '9')
            d[k++] = c;
        else if (c != '+' && c != ' ' && c != '-' && c != '(' && c != ')' && c != '.')
            return NULL;
    }
    d[k] = '\0';
    return k != 0 ? d : NULL;
}

/* q with LIKE's metacharacters (% _ and the escape \) escaped. */
static const char *ct_like_escape(http_request_t *r, const char *q, size_t n)
{
    char *e = h2o_mem_alloc_pool(&r->req->pool, 2 * n + 1);
    size_t k = 0;
    for (size_t i = 0; i != n; ++i) {
        if (q[i] == '%' || q[i] == '_' || q[i] == '\\')
            e[k++] = '\\';
        e[k++] = q[i];
    }
    e[k] = '\0';
    return e;
}

/* Whether the UTF-8 string s of n bytes ends with U+10FFFF (F4 8F BF BF). */
static int ct_ends_with_max(const char *s, size_t n)
{
    return n >= 4 && memcmp(s + n - 4, "\xf4\x8f\xbf\xbf", 4) == 0;
}

void api_contacts_list(http_request_t *r)
{
    pthread_once(&ct_list_once, ct_list_build);
    const char *q;
    int64_t page, limit;
    if (api_query_int(r, "page", 1, 1, CT_PAGE_MAX, 0, &page) != 0 ||
        api_query_int(r, "limit", CT_LIMIT_DEFAULT, 1, CT_LIMIT_MAX, 1, &limit) != 0 ||
        api_query_string(r, "q", 4 * CT_Q_MAX_CHARS, &q) != 0)
        return;
    size_t n = 0, chars = 0;
    if (q != NULL) {
        while (*q == ' ')
            ++q;
        n = strlen(q);
        while (n > 0 && q[n - 1] == ' ')
            --n;
        if (!api_utf8_valid(q, n, &chars) || chars > CT_Q_MAX_CHARS) {
            http_reply_invalid(r, "q", "q must be at most %d characters", CT_Q_MAX_CHARS);
            return;
        }
        q = h2o_strdup(&r->req->pool, q, n).base;
    }
    pg_param_t p[5];
    p[0] = api_db_i64(r, r->auth.company_id);
    p[1] = api_db_i64(r, limit);
    p[2] = api_db_i64(r, page);
    int mode = CT_ALL;
    if (q != NULL && n != 0) {
        const char *digits = ct_phone_digits(r, q, n);
        if (digits != NULL) {
            mode = CT_PHONE;
            p[3] = PG_TEXT(digits);
            p[4] = PG_TEXT(digits);
        } else {
            mode = ct_ends_with_max(q, n) ? CT_NAME_OPEN : CT_NAME;
            p[3] = PG_TEXT(ct_like_escape(r, q, n));
            p[4] = PG_TEXT(q);
        }
    }
    api_db_reply(r, &ct_list_stmts[mode], p, (size_t)ct_list_stmts[mode].nparams, 200, "page");
}

/* ---- one contact ---- */

static pg_stmt_t ct_lookup_stmt = {"SELECT json_build_object('data', " CT_ITEM
                                   ")::text FROM contacts c WHERE c.company_id = $1 AND c.phone_number = $2",
                                   2};

void api_contacts_lookup(http_request_t *r)
{
    const char *phone;
    char e164[PHONE_E164_SIZE];
    if (api_query_string(r, "phone", PHONE_INPUT_MAX, &phone) != 0)
        return;
    if (phone == NULL || *phone == '\0') {
        http_reply_invalid(r, "phone", "phone is required");
        return;
    }
    if (phone_normalize(phone, strlen(phone), e164) != 0) {
        http_reply_invalid(r, "phone", "phone must be a phone number in international format, e.g. +55 11 98765-4321");
        return;
    }
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), PG_TEXT(e164)}; /* copied when sent */
    api_db_reply(r, &ct_lookup_stmt, p, 2, 200, "contact");
}

static pg_stmt_t ct_get_stmt = {
    "SELECT json_build_object('data', " CT_ITEM ")::text FROM contacts c WHERE c.company_id = $1 AND c.id = $2", 2};

void api_contacts_get(http_request_t *r)
{
    int64_t id;
    if (api_param_id(r, "id", &id) != 0)
        return;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, id)};
    api_db_reply(r, &ct_get_stmt, p, 2, 200, "contact");
}

/* ---- body fields shared by POST and PATCH ---- */

/* phone_number: a string that normalises; *out is the E.164 digits in the pool, or NULL when absent. */
static int ct_body_phone(http_request_t *r, json_t *body, int required, const char **out)
{
    const char *s;
    char e164[PHONE_E164_SIZE];
    *out = NULL;
    if (api_json_string(r, body, "phone_number", required, 1, PHONE_INPUT_MAX, &s) != 0)
        return -1;
    if (s == NULL)
        return 0;
    if (phone_normalize(s, strlen(s), e164) != 0) {
        http_reply_invalid(r, "phone_number",
                           "phone_number must be a phone number in international format, e.g. +55 11 98765-4321");
        return -1;
    }
    *out = h2o_strdup(&r->req->pool, e164, SIZE_MAX).base;
    return 0;
}

/* name: null or a string of at most CT_NAME_MAX characters. */
static int ct_body_name(http_request_t *r, json_t *body, const char **out, int *present)
{
    json_t *v = json_object_get(body, "name");
    *present = v != NULL;
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        http_reply_invalid(r, "name", "name must be a string or null");
        return -1;
    }
    return api_json_string(r, body, "name", 0, 0, CT_NAME_MAX, out);
}

/* labels: an array of distinct strings; *out is its compact JSON text in the pool, or NULL when absent. */
static int ct_body_labels(http_request_t *r, json_t *body, const char **out)
{
    *out = NULL;
    json_t *v = json_object_get(body, "labels");
    if (v == NULL)
        return 0;
    if (!json_is_array(v) || json_array_size(v) > CT_LABELS_MAX) {
        http_reply_invalid(r, "labels", "labels must be an array of at most %d strings", CT_LABELS_MAX);
        return -1;
    }
    size_t i;
    json_t *e;
    json_array_foreach (v, i, e) {
        size_t chars;
        if (!json_is_string(e) || !api_utf8_valid(json_string_value(e), json_string_length(e), &chars) || chars < 1 ||
            chars > CT_LABEL_MAX) {
            http_reply_invalid(r, "labels", "each label must be a UTF-8 string of 1 to %d characters", CT_LABEL_MAX);
            return -1;
        }
        for (size_t j = 0; j != i; ++j) {
            json_t *o = json_array_get(v, j);
            if (json_string_length(o) == json_string_length(e) &&
                memcmp(json_string_value(o), json_string_value(e), json_string_length(e)) == 0) {
                http_reply_invalid(r, "labels", "labels must not repeat a label");
                return -1;
            }
        }
    }
    char *text = json_dumps(v, JSON_COMPACT);
    if (text == NULL) {
        http_reply_error(r, 503, "unavailable", "out of memory; try again shortly");
        return -1;
    }
    *out = h2o_strdup(&r->req->pool, text, SIZE_MAX).base;
    free(text);
    return 0;
}

/* ---- POST /api/v1/contacts ---- */

static pg_stmt_t ct_create_stmt = {
    "WITH ins AS (INSERT INTO contacts (company_id, phone_number, name, labels)"
    " VALUES ($1, $2, $3, " CT_LABELS("$4::json") ")"
                                                  " ON CONFLICT (company_id, phone_number) DO NOTHING RETURNING *)"
                                                  " SELECT json_build_object('data', " CT_ITEM ")::text FROM ins c",
    4};

static void ct_on_created(http_request_t *r, PGresult *res)
{
    if (PQntuples(res) != 1) {
        http_reply_error(r, 409, "conflict", "a contact with this phone_number already exists");
        return;
    }
    http_reply_json(r, 201, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
}

/* The contact fields of a POST or PATCH body, read and checked in one place. */
typedef struct ct_body {
    const char *phone, *name, *labels;
    int has_name;
} ct_body_t;

static int ct_body_read(http_request_t *r, int phone_required, ct_body_t *b)
{
    static const char *const fields[] = {"phone_number", "name", "labels", NULL};
    json_t *body = api_body_object(r, fields);
    if (body == NULL)
        return -1;
    int rc = ct_body_phone(r, body, phone_required, &b->phone);
    if (rc == 0)
        rc = ct_body_name(r, body, &b->name, &b->has_name);
    if (rc == 0)
        rc = ct_body_labels(r, body, &b->labels);
    json_decref(body);
    return rc;
}

void api_contacts_create(http_request_t *r)
{
    ct_body_t b;
    if (ct_body_read(r, 1, &b) != 0)
        return;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), PG_TEXT(b.phone), PG_TEXT(b.name), PG_TEXT(b.labels)};
    api_db_call(r, &ct_create_stmt, p, 4, ct_on_created);
}

/* ---- PATCH /api/v1/contacts/:id ---- */

/*
 * $3 whether the name changes, $4 the new name (NULL clears it), $5 labels as JSON or
 * NULL (unchanged), $6 the new phone number or NULL (unchanged). A new number forgets
 * the wa_id Meta gave the old one. Columns: found, phone taken by another contact, item.
 */
static pg_stmt_t ct_patch_stmt = {
    "WITH chk AS (SELECT EXISTS (SELECT 1 FROM contacts WHERE company_id = $1 AND id = $2) AS found,"
    " EXISTS (SELECT 1 FROM contacts WHERE company_id = $1 AND phone_number = $6::text AND id <> $2) AS taken),"
    " upd AS (UPDATE contacts c SET name = CASE WHEN $3::bool THEN $4::text ELSE c.name END,"
    " labels = CASE WHEN $5::json IS NULL THEN c.labels ELSE " CT_LABELS(
        "$5::json") " END,"
                    " phone_number = coalesce($6::text, c.phone_number),"
                    " wa_id = CASE WHEN $6::text IS NULL OR $6::text = c.phone_number THEN c.wa_id END, updated_at = "
                    "now()"
                    " FROM chk WHERE chk.found AND NOT chk.taken AND c.company_id = $1 AND c.id = $2 RETURNING c.*)"
                    " SELECT chk.found, chk.taken, (SELECT json_build_object('data', " CT_ITEM
                    ")::text FROM upd c) FROM chk",
    6};

static void ct_on_patched(http_request_t *r, PGresult *res)
{
    if (PQntuples(res) != 1 || PQgetvalue(res, 0, 0)[0] != 't' ||
        (PQgetvalue(res, 0, 1)[0] != 't' && PQgetisnull(res, 0, 2))) {
        http_reply_error(r, 404, "not_found", "contact not found");
        return;
    }
    if (PQgetvalue(res, 0, 1)[0] == 't') {
        http_reply_error(r, 409, "conflict", "another contact already has this phone_number");
        return;
    }
    /* conversation lists show the contact's name and number */
    const cache_gen_t gen = {CACHE_SCOPE_CONVERSATIONS, 0};
    api_cache_bump_reply(r, &gen, 1, 200, PQgetvalue(res, 0, 2), (size_t)PQgetlength(res, 0, 2));
}

void api_contacts_patch(http_request_t *r)
{
    int64_t id;
    ct_body_t b;
    if (api_param_id(r, "id", &id) != 0 || ct_body_read(r, 0, &b) != 0)
        return;
    if (b.phone == NULL && !b.has_name && b.labels == NULL) {
        http_reply_invalid(r, "body", "nothing to change: give name, labels and/or phone_number");
        return;
    }
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id),
                      api_db_i64(r, id),
                      PG_TEXT(b.has_name ? "true" : "false"),
                      PG_TEXT(b.name),
                      PG_TEXT(b.labels),
                      PG_TEXT(b.phone)};
    api_db_call(r, &ct_patch_stmt, p, 6, ct_on_patched);
}
