/*
 * Integration tests of /api/v1/contacts: the real binary, real PostgreSQL, real HTTP.
 *
 * The demo company is shared with other tests, so it is only read, except for contacts
 * created here with phone numbers unique to this process (1 999 <pid> NN), which are
 * deleted afterwards. Everything else happens in a company of this test's own
 * ("it-ct-<pid>", with its own admin), created through psql and deleted at the end
 * (its contacts and counters go with it).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static char ct_slug[32];   /* the test's own company */
static char ct_email[96];  /* its admin */
static char ct_prefix[16]; /* phone numbers of demo contacts made here: 1999 + pid */
static hs_server_t ct_srv; /* each test's server; stopped by the teardown if a test failed first */

/* One SQL value (asserting success). */
static void ct_value(char *out, size_t cap, const char *sql)
{
    int rc = hs_sql(out, cap, "%s", sql);
    cr_assert_eq(rc, 0, "%s: %s", sql, out);
}

static void ct_setup(void)
{
    int pid = (int)getpid();
    snprintf(ct_slug, sizeof(ct_slug), "it-ct-%d", pid);
    snprintf(ct_email, sizeof(ct_email), "admin@%s.test", ct_slug);
    snprintf(ct_prefix, sizeof(ct_prefix), "1999%07d", pid % 10000000);
    char out[256];
    int rc = hs_sql(out, sizeof(out),
                    "INSERT INTO companies (slug, name) VALUES ('%s', 'Contacts test %d');"
                    "INSERT INTO users (company_id, email, name, role, password_hash)"
                    " SELECT c.id, '%s', 'Other Admin', 'admin', u.password_hash FROM companies c, users u"
                    " WHERE c.slug = '%s' AND lower(u.email) = 'admin@demo.conversa.dev';",
                    ct_slug, pid, ct_email, ct_slug);
    cr_assert_eq(rc, 0, "%s", out);
}

static void ct_teardown(void)
{
    if (ct_srv.pid > 0)
        hs_server_stop(&ct_srv);
    hs_sql(NULL, 0,
           "DELETE FROM companies WHERE slug = '%s';"
           "DELETE FROM contacts WHERE company_id = (SELECT id FROM companies WHERE slug = 'demo')"
           " AND phone_number LIKE '%s%%';",
           ct_slug, ct_prefix);
}

TestSuite(contacts, .init = ct_setup, .fini = ct_teardown, .timeout = 60);

/* The request must be 400 naming `field`, with the one error shape. */
static void ct_invalid(int port, const char *method, const char *path, const char *token, const char *body,
                       const char *field)
{
    json_t *j = hs_call_json(port, method, path, token, body, 400);
    json_t *err = json_object_get(j, "error");
    cr_assert_eq(json_integer_value(json_object_get(err, "status")), 400);
    cr_assert_str_eq(json_string_value(json_object_get(err, "code")), "invalid");
    const char *f = json_string_value(json_object_get(err, "field"));
    cr_assert(f != NULL && strcmp(f, field) == 0, "%s %s %s: field %s, expected %s", method, path, body ? body : "",
              f ? f : "(none)", field);
    cr_assert_null(json_object_get(j, "data"));
    json_decref(j);
}

/* The request must be 404 not_found without any data; returns the message (caller frees). */
static char *ct_not_found(int port, const char *method, const char *path, const char *token, const char *body)
{
    json_t *j = hs_call_json(port, method, path, token, body, 404);
    cr_assert_null(json_object_get(j, "data"), "404 must carry no data");
    json_t *err = json_object_get(j, "error");
    cr_assert_str_eq(json_string_value(json_object_get(err, "code")), "not_found");
    char *msg = strdup(json_string_value(json_object_get(err, "message")));
    json_decref(j);
    return msg;
}

static int64_t ct_int(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "%s is not an integer", key);
    return (int64_t)json_integer_value(v);
}

/* Walks every page of path (which has its own query, ending in '&' or '?') with `limit`; returns the ids as "a,b,c". */
static char *ct_all_pages(int port, const char *token, const char *path, int limit, int64_t *total)
{
    size_t cap = 65536, len = 0;
    char *ids = calloc(1, cap);
    for (int page = 1;; ++page) {
        char url[1024];
        snprintf(url, sizeof(url), "%spage=%d&limit=%d", path, page, limit);
        json_t *j = hs_call_json(port, "GET", url, token, NULL, 200);
        json_t *data = json_object_get(j, "data"), *pg = json_object_get(j, "pagination");
        cr_assert(json_is_array(data));
        cr_assert_eq(ct_int(pg, "page"), page);
        cr_assert_eq(ct_int(pg, "limit"), limit);
        cr_assert(json_is_false(json_object_get(j, "cached")));
        *total = ct_int(pg, "total");
        cr_assert(json_array_size(data) <= (size_t)limit);
        size_t i;
        json_t *c;
        json_array_foreach (data, i, c) {
            len += (size_t)snprintf(ids + len, cap - len, "%s%lld", len ? "," : "", (long long)ct_int(c, "id"));
            cr_assert(len < cap);
        }
        size_t n = json_array_size(data);
        json_decref(j);
        if (n < (size_t)limit)
            break;
        cr_assert(page < 1000);
    }
    return ids;
}

/* Loads the test company's contacts: names chosen for the prefix, case and LIKE-metacharacter cases. */
static void ct_load_own(void)
{
    char out[256];
    int rc = hs_sql(out, sizeof(out),
                    "INSERT INTO contacts (company_id, phone_number, name, labels)"
                    " SELECT c.id, v.phone, v.name, v.labels FROM companies c, (VALUES"
                    " ('5511900000001', 'Mariana A', '{vip}'::text[]), ('5511900000002', 'mariana b', '{}'),"
                    " ('5511900000003', 'MARCOS', '{}'), ('5511900000004', 'Marta', '{}'),"
                    " ('5511900000005', 'Mário', '{}'), ('5511800000006', '100%% Real', '{}'),"
                    " ('5511800000007', '%%Percent', '{}'), ('5521900000008', '_under', '{}'),"
                    " ('5521900000009', 'under_score', '{}'), ('5521900000010', E'back\\\\slash', '{}'),"
                    " ('5521900000011', E'\\\\lead', '{}'), ('5531900000012', NULL, '{}'),"
                    " ('4420790000013', 'Ana', '{}'), ('4420790000014', 'ana maria', '{}'),"
                    " ('4420790000015', 'Zoe', '{}'), ('4420790000016', 'Person 16', '{}'),"
                    " ('4420790000017', 'Person 17', '{}'), ('4420790000018', 'Person 18', '{}'),"
                    " ('14155550019', 'Person 19', '{}'), ('14155550020', 'Person 20', '{}'),"
                    " ('14155550021', 'Person 21', '{}'), ('14155550022', 'Mar', '{}'),"
                    " ('14155550023', 'mar', '{}')) AS v (phone, name, labels) WHERE c.slug = '%s';",
                    ct_slug);
    cr_assert_eq(rc, 0, "%s", out);
}

/* The expected ids of the test company's contacts matching `where`, in `order`. */
static char *ct_expected(const char *where, const char *order)
{
    char *out = calloc(1, 65536);
    int rc = hs_sql(out, 65536,
                    "SELECT coalesce(string_agg(id::text, ',' ORDER BY %s), '') FROM contacts"
                    " WHERE company_id = (SELECT id FROM companies WHERE slug = '%s') AND %s;",
                    order, ct_slug, where);
    cr_assert_eq(rc, 0, "%s", out);
    return out;
}

static void ct_expect_pages(int port, const char *token, const char *path, int limit, const char *where,
                            const char *order)
{
    int64_t total;
    char *got = ct_all_pages(port, token, path, limit, &total);
    char *want = ct_expected(where, order);
    cr_assert_str_eq(got, want, "%s (limit %d)", path, limit);
    size_t n = *want ? 1 : 0;
    for (const char *p = want; *p; ++p)
        n += *p == ',';
    cr_assert_eq(total, (int64_t)n, "%s: total %lld, %zu rows", path, (long long)total, n);
    free(got);
    free(want);
}

Test(contacts, every_route_needs_a_valid_token)
{
    hs_server_start(&ct_srv, NULL);
    static const char *const routes[][3] = {
        {"GET", "/api/v1/contacts", NULL},
        {"GET", "/api/v1/contacts/lookup?phone=5511987650001", NULL},
        {"GET", "/api/v1/contacts/1", NULL},
        {"POST", "/api/v1/contacts", "{\"phone_number\":\"+1 999 000 0000\"}"},
        {"PATCH", "/api/v1/contacts/1", "{\"name\":\"x\"}"},
    };
    static const char *const bad_auth[] = {NULL, "Authorization: Bearer cv_not-a-real-token",
                                           "Authorization: Basic YWRtaW46YWRtaW4=", "Authorization: Bearer"};
    for (size_t i = 0; i != sizeof(routes) / sizeof(routes[0]); ++i)
        for (size_t k = 0; k != sizeof(bad_auth) / sizeof(bad_auth[0]); ++k) {
            const char *headers[] = {bad_auth[k], NULL};
            const char *b = routes[i][2];
            hs_response_t r = hs_request(ct_srv.port, routes[i][0], routes[i][1], b, b ? strlen(b) : 0,
                                         bad_auth[k] != NULL ? headers : NULL);
            cr_assert_eq(r.status, 401, "%s %s with %s: %ld", routes[i][0], routes[i][1],
                         bad_auth[k] ? bad_auth[k] : "no header", r.status);
            cr_assert(strstr(r.body, "\"code\":\"unauthorized\"") != NULL, "%s", r.body);
            cr_assert(strstr(r.body, "\"data\"") == NULL);
            hs_response_free(&r);
        }
    char out[64];
    ct_value(out, sizeof(out), "SELECT count(*) FROM contacts WHERE phone_number = '19990000000'");
    cr_assert_str_eq(out, "0", "an unauthenticated POST created nothing");
    cr_assert_eq(hs_server_stop(&ct_srv), 0);
}

Test(contacts, pages_concatenate_in_order_with_exact_totals)
{
    ct_load_own();
    hs_server_start(&ct_srv, NULL);
    char *tok = hs_login(ct_srv.port, ct_email);

    /* no q: id DESC, total from the counters */
    for (int limit = 1; limit <= 7; limit += 3)
        ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?", limit, "true", "id DESC");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?", 50, "true", "id DESC");
    json_t *j = hs_call_json(ct_srv.port, "GET", "/api/v1/contacts", tok, NULL, 200);
    json_t *pg = json_object_get(j, "pagination");
    cr_assert_eq(ct_int(pg, "page"), 1);
    cr_assert_eq(ct_int(pg, "limit"), 20, "the default limit");
    cr_assert_eq(ct_int(pg, "total"), 23);
    cr_assert(json_is_false(json_object_get(pg, "total_is_estimate")));
    cr_assert_eq(json_array_size(json_object_get(j, "data")), 20);
    /* the item shape */
    json_t *first = json_array_get(json_object_get(j, "data"), 0);
    static const char *const keys[] = {"id", "name", "phone_number", "wa_id", "labels", "created_at", "updated_at"};
    for (size_t i = 0; i != sizeof(keys) / sizeof(keys[0]); ++i)
        cr_assert_not_null(json_object_get(first, keys[i]), "item lacks %s", keys[i]);
    cr_assert_eq(json_object_size(first), sizeof(keys) / sizeof(keys[0]));
    char newest[32];
    hs_sql(newest, sizeof(newest),
           "SELECT id FROM contacts WHERE company_id = (SELECT id FROM companies WHERE"
           " slug = '%s') ORDER BY id DESC LIMIT 1;",
           ct_slug);
    cr_assert_eq(ct_int(first, "id"), strtoll(newest, NULL, 10));
    cr_assert(json_is_array(json_object_get(first, "labels")));
    json_decref(j);

    /* a limit over the maximum is clamped, a page past the end is empty */
    j = hs_call_json(ct_srv.port, "GET", "/api/v1/contacts?limit=1000", tok, NULL, 200);
    cr_assert_eq(ct_int(json_object_get(j, "pagination"), "limit"), 50);
    cr_assert_eq(json_array_size(json_object_get(j, "data")), 23);
    json_decref(j);
    j = hs_call_json(ct_srv.port, "GET", "/api/v1/contacts?page=99&limit=10", tok, NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(j, "data")), 0);
    cr_assert_eq(ct_int(json_object_get(j, "pagination"), "total"), 23);
    json_decref(j);

    /* name prefix: case-insensitive, ordered by lower(name) bytewise, then id */
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=mar&", 2, "lower(name) LIKE 'mar%'",
                    "lower(name) COLLATE \"C\", id");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=MAR&", 50, "lower(name) LIKE 'mar%'",
                    "lower(name) COLLATE \"C\", id");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=%20Mari%20&", 1, "lower(name) LIKE 'mari%'",
                    "lower(name) COLLATE \"C\", id");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=ana%20m&", 3, "lower(name) LIKE 'ana m%'", "id");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=M%C3%A1r&", 3, "name = 'Mário'", "id");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=nobody&", 5, "false", "id");
    /* LIKE metacharacters are literal */
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=%25&", 5, "name = '%Percent'", "id");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=100%25&", 5, "name = '100% Real'", "id");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=_&", 5, "name = '_under'", "id");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=under_&", 5, "name = 'under_score'", "id");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=%5C&", 5, "name = E'\\\\lead'", "id");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=back%5C&", 5, "name = E'back\\\\slash'", "id");
    /* phone digits prefix, whatever the punctuation, ordered by phone_number */
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=%2B55%20(11)&", 3, "phone_number LIKE '5511%'",
                    "phone_number");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=55-21.9&", 2, "phone_number LIKE '55219%'", "phone_number");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=44&", 50, "phone_number LIKE '44%'", "phone_number");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=%2B1&", 4, "phone_number LIKE '1%'", "phone_number");
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=9&", 4, "false", "id");
    /* a q of spaces is no q */
    ct_expect_pages(ct_srv.port, tok, "/api/v1/contacts?q=%20%20&", 10, "true", "id DESC");
    /* q at its limit of 100 characters (counted as characters, not bytes) */
    char url[1024];
    int n = snprintf(url, sizeof(url), "/api/v1/contacts?q=");
    for (int i = 0; i != 100; ++i)
        n += snprintf(url + n, sizeof(url) - (size_t)n, "%%C3%%A9");
    j = hs_call_json(ct_srv.port, "GET", url, tok, NULL, 200);
    cr_assert_eq(ct_int(json_object_get(j, "pagination"), "total"), 0);
    json_decref(j);

    free(tok);
    cr_assert_eq(hs_server_stop(&ct_srv), 0);
}

Test(contacts, list_rejects_bad_parameters)
{
    hs_server_start(&ct_srv, NULL);
    char *tok = hs_login(ct_srv.port, ct_email);
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts?page=0", tok, NULL, "page");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts?page=-1", tok, NULL, "page");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts?page=abc", tok, NULL, "page");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts?page=1000001", tok, NULL, "page");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts?page=99999999999999999999999", tok, NULL, "page");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts?limit=0", tok, NULL, "limit");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts?limit=1.5", tok, NULL, "limit");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts?limit=%00", tok, NULL, "limit");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts?q=%FF", tok, NULL, "q");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts?q=a%00b", tok, NULL, "q");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts?q=%ZZ", tok, NULL, "q");
    char url[1024];
    int n = snprintf(url, sizeof(url), "/api/v1/contacts?q=");
    for (int i = 0; i != 101; ++i)
        n += snprintf(url + n, sizeof(url) - (size_t)n, "a");
    ct_invalid(ct_srv.port, "GET", url, tok, NULL, "q");
    /* characters at the edges of the successor arithmetic are fine */
    static const char *const odd[] = {"%F4%8F%BF%BF", "a%F4%8F%BF%BF", "%ED%9F%BF", "%7F", "~", "%C2%80"};
    for (size_t i = 0; i != sizeof(odd) / sizeof(odd[0]); ++i) {
        snprintf(url, sizeof(url), "/api/v1/contacts?q=%s", odd[i]);
        json_t *j = hs_call_json(ct_srv.port, "GET", url, tok, NULL, 200);
        cr_assert_eq(ct_int(json_object_get(j, "pagination"), "total"), 0);
        json_decref(j);
    }
    free(tok);
    cr_assert_eq(hs_server_stop(&ct_srv), 0);
}

Test(contacts, lookup_accepts_human_formats)
{
    hs_server_start(&ct_srv, NULL);
    char *tok = hs_login(ct_srv.port, "admin@demo.conversa.dev");
    char want[64];
    ct_value(want, sizeof(want),
             "SELECT id FROM contacts WHERE company_id = (SELECT id FROM companies WHERE slug = 'demo')"
             " AND phone_number = '5511987650001'");
    static const char *const forms[] = {
        "5511987650001",
        "%2B5511987650001",
        "+5511987650001", /* '+' decodes to a space */
        "%2B55%20(11)%2098765-0001",
        "0055%2011%2098765%200001",
        "55-11-987650001",
        "55.11.98765.0001",
        "(55)%2011%20987650001",
        "00%2055%20(11)%2098765.0001",
    };
    for (size_t i = 0; i != sizeof(forms) / sizeof(forms[0]); ++i) {
        char url[256];
        snprintf(url, sizeof(url), "/api/v1/contacts/lookup?phone=%s", forms[i]);
        json_t *j = hs_call_json(ct_srv.port, "GET", url, tok, NULL, 200);
        json_t *d = json_object_get(j, "data");
        cr_assert_eq(ct_int(d, "id"), strtoll(want, NULL, 10), "%s", forms[i]);
        cr_assert_str_eq(json_string_value(json_object_get(d, "phone_number")), "5511987650001");
        cr_assert_eq(json_object_size(d), 7);
        json_decref(j);
    }
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts/lookup", tok, NULL, "phone");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts/lookup?phone=", tok, NULL, "phone");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts/lookup?phone=abc", tok, NULL, "phone");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts/lookup?phone=12345", tok, NULL, "phone");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts/lookup?phone=1234567890123456", tok, NULL, "phone");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts/lookup?phone=011%2098765%200001", tok, NULL, "phone");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts/lookup?phone=55--11987650001", tok, NULL, "phone");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts/lookup?phone=5511987650001%00", tok, NULL, "phone");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts/lookup?phone=%FF", tok, NULL, "phone");
    char url[512];
    int n = snprintf(url, sizeof(url), "/api/v1/contacts/lookup?phone=5511987650001");
    for (int i = 0; i != 80; ++i)
        n += snprintf(url + n, sizeof(url) - (size_t)n, "%%20");
    ct_invalid(ct_srv.port, "GET", url, tok, NULL, "phone");
    free(ct_not_found(ct_srv.port, "GET", "/api/v1/contacts/lookup?phone=%2B1%20999%20000%200000", tok, NULL));
    free(tok);
    cr_assert_eq(hs_server_stop(&ct_srv), 0);
}

Test(contacts, create_read_and_patch)
{
    hs_server_start(&ct_srv, NULL);
    char *tok = hs_login(ct_srv.port, "admin@demo.conversa.dev");
    char count0[32], count1[32], body[512], path[128], human[64], e164[32];
    snprintf(e164, sizeof(e164), "%s01", ct_prefix);
    snprintf(human, sizeof(human), "+1 (%.3s) %.4s-%s", ct_prefix + 1, ct_prefix + 4, ct_prefix + 8);
    strcat(human, "01");
    ct_value(count0, sizeof(count0),
             "SELECT n FROM contact_counts WHERE company_id = (SELECT id FROM companies WHERE"
             " slug = 'demo')");

    /* create, in a human format, with labels in order */
    snprintf(body, sizeof(body), "{\"phone_number\":\"%s\",\"name\":\"Zé da Silva\",\"labels\":[\"vip\",\"b\",\"a\"]}",
             human);
    json_t *j = hs_call_json(ct_srv.port, "POST", "/api/v1/contacts", tok, body, 201);
    json_t *d = json_object_get(j, "data");
    int64_t id = ct_int(d, "id");
    cr_assert_str_eq(json_string_value(json_object_get(d, "phone_number")), e164);
    cr_assert_str_eq(json_string_value(json_object_get(d, "name")), "Zé da Silva");
    cr_assert(json_is_null(json_object_get(d, "wa_id")));
    json_t *labels = json_object_get(d, "labels");
    cr_assert_eq(json_array_size(labels), 3);
    cr_assert_str_eq(json_string_value(json_array_get(labels, 0)), "vip");
    cr_assert_str_eq(json_string_value(json_array_get(labels, 2)), "a");
    char *created_at = strdup(json_string_value(json_object_get(d, "created_at")));
    char *updated_at = strdup(json_string_value(json_object_get(d, "updated_at")));
    json_decref(j);
    ct_value(count1, sizeof(count1),
             "SELECT n FROM contact_counts WHERE company_id = (SELECT id FROM companies WHERE"
             " slug = 'demo')");
    cr_assert_eq(strtoll(count1, NULL, 10), strtoll(count0, NULL, 10) + 1, "the counter follows");

    /* read it back, by id and by number; it is in the list and found by both searches */
    snprintf(path, sizeof(path), "/api/v1/contacts/%lld", (long long)id);
    j = hs_call_json(ct_srv.port, "GET", path, tok, NULL, 200);
    cr_assert_eq(ct_int(json_object_get(j, "data"), "id"), id);
    json_decref(j);
    char url[256];
    snprintf(url, sizeof(url), "/api/v1/contacts?q=%s", e164);
    j = hs_call_json(ct_srv.port, "GET", url, tok, NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(j, "data")), 1);
    cr_assert_eq(ct_int(json_array_get(json_object_get(j, "data"), 0), "id"), id);
    json_decref(j);
    j = hs_call_json(ct_srv.port, "GET", "/api/v1/contacts?q=z%C3%A9%20da", tok, NULL, 200);
    cr_assert_eq(ct_int(json_object_get(j, "pagination"), "total"), 1);
    json_decref(j);

    /* the same number in any other format is a duplicate: 409, nothing created */
    snprintf(body, sizeof(body), "{\"phone_number\":\"00%s\"}", e164);
    j = hs_call_json(ct_srv.port, "POST", "/api/v1/contacts", tok, body, 409);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "conflict");
    cr_assert_null(json_object_get(j, "data"));
    json_decref(j);
    ct_value(count0, sizeof(count0),
             "SELECT n FROM contact_counts WHERE company_id = (SELECT id FROM companies WHERE"
             " slug = 'demo')");
    cr_assert_str_eq(count0, count1);

    /* PATCH the name: updated_at moves, created_at does not */
    hs_sleep_ms(20);
    j = hs_call_json(ct_srv.port, "PATCH", path, tok, "{\"name\":\"Zé Silva\"}", 200);
    d = json_object_get(j, "data");
    cr_assert_str_eq(json_string_value(json_object_get(d, "name")), "Zé Silva");
    cr_assert_str_eq(json_string_value(json_object_get(d, "created_at")), created_at);
    cr_assert_str_neq(json_string_value(json_object_get(d, "updated_at")), updated_at);
    cr_assert_eq(json_array_size(json_object_get(d, "labels")), 3, "labels untouched");
    json_decref(j);

    /* labels replaced, then the name cleared */
    j = hs_call_json(ct_srv.port, "PATCH", path, tok, "{\"labels\":[\"new\"]}", 200);
    d = json_object_get(j, "data");
    cr_assert_eq(json_array_size(json_object_get(d, "labels")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(d, "name")), "Zé Silva");
    json_decref(j);
    j = hs_call_json(ct_srv.port, "PATCH", path, tok, "{\"name\":null,\"labels\":[]}", 200);
    d = json_object_get(j, "data");
    cr_assert(json_is_null(json_object_get(d, "name")));
    cr_assert_eq(json_array_size(json_object_get(d, "labels")), 0);
    json_decref(j);

    /* a number that another contact has: 409, and nothing changed */
    j = hs_call_json(ct_srv.port, "PATCH", path, tok, "{\"phone_number\":\"+55 11 98765-0001\",\"name\":\"x\"}", 409);
    cr_assert_null(json_object_get(j, "data"));
    json_decref(j);
    j = hs_call_json(ct_srv.port, "GET", path, tok, NULL, 200);
    d = json_object_get(j, "data");
    cr_assert_str_eq(json_string_value(json_object_get(d, "phone_number")), e164);
    cr_assert(json_is_null(json_object_get(d, "name")));
    json_decref(j);

    /* its own number again is fine; a new number is normalised and forgets wa_id */
    cr_assert_eq(hs_sql(NULL, 0, "UPDATE contacts SET wa_id = phone_number WHERE phone_number = '%s'", e164), 0);
    snprintf(body, sizeof(body), "{\"phone_number\":\"%s\"}", human);
    j = hs_call_json(ct_srv.port, "PATCH", path, tok, body, 200);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "data"), "wa_id")), e164);
    json_decref(j);
    snprintf(body, sizeof(body), "{\"phone_number\":\"+%.11s 02\"}", ct_prefix);
    j = hs_call_json(ct_srv.port, "PATCH", path, tok, body, 200);
    d = json_object_get(j, "data");
    char e164b[32];
    snprintf(e164b, sizeof(e164b), "%s02", ct_prefix);
    cr_assert_str_eq(json_string_value(json_object_get(d, "phone_number")), e164b);
    cr_assert(json_is_null(json_object_get(d, "wa_id")));
    json_decref(j);
    snprintf(url, sizeof(url), "/api/v1/contacts/lookup?phone=%s", e164);
    free(ct_not_found(ct_srv.port, "GET", url, tok, NULL));

    /* a second contact, then moving it onto the first one's number: 409 */
    snprintf(body, sizeof(body), "{\"phone_number\":\"%s\",\"name\":\"Second\"}", e164);
    j = hs_call_json(ct_srv.port, "POST", "/api/v1/contacts", tok, body, 201);
    int64_t id2 = ct_int(json_object_get(j, "data"), "id");
    cr_assert(json_is_null(json_object_get(json_object_get(j, "data"), "wa_id")));
    json_decref(j);
    char path2[128];
    snprintf(path2, sizeof(path2), "/api/v1/contacts/%lld", (long long)id2);
    snprintf(body, sizeof(body), "{\"phone_number\":\"%s\"}", e164b);
    json_decref(hs_call_json(ct_srv.port, "PATCH", path2, tok, body, 409));

    /* unknown ids */
    free(ct_not_found(ct_srv.port, "PATCH", "/api/v1/contacts/999999999", tok, "{\"name\":\"x\"}"));
    free(ct_not_found(ct_srv.port, "GET", "/api/v1/contacts/999999999", tok, NULL));
    free(ct_not_found(ct_srv.port, "PATCH", "/api/v1/contacts/999999999", tok,
                      "{\"phone_number\":\"+55 11 98765-0001\"}"));

    free(created_at);
    free(updated_at);
    free(tok);
    cr_assert_eq(hs_server_stop(&ct_srv), 0);
}

Test(contacts, create_and_patch_validation_names_the_field)
{
    hs_server_start(&ct_srv, NULL);
    char *tok = hs_login(ct_srv.port, ct_email);
    char good[32], body[4096];
    snprintf(good, sizeof(good), "+%s09", ct_prefix);

    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{\"name\":\"No Number\"}", "phone_number"},
        {"{\"phone_number\":null}", "phone_number"},
        {"{\"phone_number\":5511987650001}", "phone_number"},
        {"{\"phone_number\":\"\"}", "phone_number"},
        {"{\"phone_number\":\"abc\"}", "phone_number"},
        {"{\"phone_number\":\"123\"}", "phone_number"},
        {"{\"phone_number\":\"011 98765 0001\"}", "phone_number"},
        {"{\"phone_number\":\"+55 11 98765-0001 ramal 2\"}", "phone_number"},
        {"{\"phone_number\":\"55\\u000011987650001\"}", "body"}, /* JSON text with NUL is refused whole */
        {"{\"phone_number\":[\"5511987650001\"]}", "phone_number"},
        {"{\"phone_number\":\"GOOD\",\"name\":5}", "name"},
        {"{\"phone_number\":\"GOOD\",\"name\":true}", "name"},
        {"{\"phone_number\":\"GOOD\",\"labels\":\"vip\"}", "labels"},
        {"{\"phone_number\":\"GOOD\",\"labels\":null}", "labels"},
        {"{\"phone_number\":\"GOOD\",\"labels\":{}}", "labels"},
        {"{\"phone_number\":\"GOOD\",\"labels\":[1]}", "labels"},
        {"{\"phone_number\":\"GOOD\",\"labels\":[\"\"]}", "labels"},
        {"{\"phone_number\":\"GOOD\",\"labels\":[null]}", "labels"},
        {"{\"phone_number\":\"GOOD\",\"labels\":[[\"a\"]]}", "labels"},
        {"{\"phone_number\":\"GOOD\",\"labels\":[\"a\",\"b\",\"a\"]}", "labels"},
        {"{\"phone_number\":\"GOOD\",\"color\":\"red\"}", "color"},
        {"{\"phone_number\":\"GOOD\",\"company_id\":1}", "company_id"},
        {"{\"phone_number\":\"GOOD\",\"phone_number\":\"GOOD\"}", "body"},
        {"", "body"},
        {"[]", "body"},
        {"\"x\"", "body"},
        {"{\"phone_number\":", "body"},
        {"{\"phone_number\":\"GOOD\"} trailing", "body"},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        /* GOOD stands for a valid number, so only the field under test is wrong */
        const char *src = cases[i].body;
        size_t n = 0;
        for (const char *p = src; *p && n < sizeof(body) - 32;) {
            if (strncmp(p, "GOOD", 4) == 0) {
                n += (size_t)snprintf(body + n, sizeof(body) - n, "%s", good);
                p += 4;
            } else {
                body[n++] = *p++;
            }
        }
        body[n] = '\0';
        ct_invalid(ct_srv.port, "POST", "/api/v1/contacts", tok, body, cases[i].field);
    }

    /* limits: name 200 characters (not bytes), 20 labels of 50 characters */
    char name[1024] = "";
    for (int i = 0; i != 200; ++i)
        strcat(name, "é");
    snprintf(body, sizeof(body), "{\"phone_number\":\"%s\",\"name\":\"%sé\"}", good, name);
    ct_invalid(ct_srv.port, "POST", "/api/v1/contacts", tok, body, "name");
    char labels[2048] = "[";
    for (int i = 0; i != 21; ++i)
        snprintf(labels + strlen(labels), sizeof(labels) - strlen(labels), "%s\"l%02d\"", i ? "," : "", i);
    snprintf(body, sizeof(body), "{\"phone_number\":\"%s\",\"labels\":%s]}", good, labels);
    ct_invalid(ct_srv.port, "POST", "/api/v1/contacts", tok, body, "labels");
    char long_label[64];
    memset(long_label, 'x', 51);
    long_label[51] = '\0';
    snprintf(body, sizeof(body), "{\"phone_number\":\"%s\",\"labels\":[\"%s\"]}", good, long_label);
    ct_invalid(ct_srv.port, "POST", "/api/v1/contacts", tok, body, "labels");

    char out[64];
    hs_sql(out, sizeof(out),
           "SELECT count(*) FROM contacts WHERE company_id = (SELECT id FROM companies WHERE"
           " slug = '%s');",
           ct_slug);
    cr_assert_str_eq(out, "0", "nothing was created by refused requests");

    /* exactly at the limits: accepted */
    long_label[50] = '\0';
    snprintf(labels, sizeof(labels), "[\"%s\"", long_label); /* 19 short ones after a 50-character one */
    for (int i = 1; i != 20; ++i)
        snprintf(labels + strlen(labels), sizeof(labels) - strlen(labels), ",\"l%02d\"", i);
    snprintf(body, sizeof(body), "{\"phone_number\":\"%s\",\"name\":\"%s\",\"labels\":%s]}", good, name, labels);
    json_t *j = hs_call_json(ct_srv.port, "POST", "/api/v1/contacts", tok, body, 201);
    int64_t id = ct_int(json_object_get(j, "data"), "id");
    cr_assert_eq(json_array_size(json_object_get(json_object_get(j, "data"), "labels")), 20);
    json_decref(j);

    /* PATCH: the same rules, plus something must change */
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/contacts/%lld", (long long)id);
    ct_invalid(ct_srv.port, "PATCH", path, tok, "{}", "body");
    ct_invalid(ct_srv.port, "PATCH", path, tok, "", "body");
    ct_invalid(ct_srv.port, "PATCH", path, tok, "null", "body");
    ct_invalid(ct_srv.port, "PATCH", path, tok, "{\"phone_number\":null}", "phone_number");
    ct_invalid(ct_srv.port, "PATCH", path, tok, "{\"phone_number\":\"+55 11\"}", "phone_number");
    ct_invalid(ct_srv.port, "PATCH", path, tok, "{\"name\":7}", "name");
    ct_invalid(ct_srv.port, "PATCH", path, tok, "{\"labels\":[\"a\",1]}", "labels");
    ct_invalid(ct_srv.port, "PATCH", path, tok, "{\"id\":5}", "id");
    snprintf(body, sizeof(body), "{\"name\":\"%sé\"}", name);
    ct_invalid(ct_srv.port, "PATCH", path, tok, body, "name");
    ct_invalid(ct_srv.port, "PATCH", "/api/v1/contacts/abc", tok, "{\"name\":\"x\"}", "id");
    ct_invalid(ct_srv.port, "PATCH", "/api/v1/contacts/0", tok, "{\"name\":\"x\"}", "id");
    ct_invalid(ct_srv.port, "PATCH", "/api/v1/contacts/-3", tok, "{\"name\":\"x\"}", "id");
    ct_invalid(ct_srv.port, "PATCH", "/api/v1/contacts/99999999999999999999", tok, "{\"name\":\"x\"}", "id");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts/1x", tok, NULL, "id");
    ct_invalid(ct_srv.port, "GET", "/api/v1/contacts/%20", tok, NULL, "id");
    j = hs_call_json(ct_srv.port, "GET", path, tok, NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(json_object_get(j, "data"), "labels")), 20, "unchanged");
    json_decref(j);

    free(tok);
    cr_assert_eq(hs_server_stop(&ct_srv), 0);
}

Test(contacts, another_company_is_invisible)
{
    ct_load_own();
    hs_server_start(&ct_srv, NULL);
    char *demo = hs_login(ct_srv.port, "admin@demo.conversa.dev");
    char *own = hs_login(ct_srv.port, ct_email);
    char own_id[32], demo_id[32], path[128];
    hs_sql(own_id, sizeof(own_id),
           "SELECT c.id FROM contacts c JOIN companies co ON co.id = c.company_id"
           " WHERE co.slug = '%s' AND c.phone_number = '5511900000001';",
           ct_slug);
    ct_value(demo_id, sizeof(demo_id),
             "SELECT id FROM contacts WHERE phone_number = '5511987650001' AND company_id ="
             " (SELECT id FROM companies WHERE slug = 'demo')");

    /* the other company's id answers exactly like an id that does not exist */
    char *unknown = ct_not_found(ct_srv.port, "GET", "/api/v1/contacts/999999999", demo, NULL);
    snprintf(path, sizeof(path), "/api/v1/contacts/%s", own_id);
    char *msg = ct_not_found(ct_srv.port, "GET", path, demo, NULL);
    cr_assert_str_eq(msg, unknown);
    free(msg);
    msg = ct_not_found(ct_srv.port, "PATCH", path, demo, "{\"name\":\"stolen\",\"labels\":[\"x\"]}");
    cr_assert_str_eq(msg, unknown);
    free(msg);
    /* even when the new number would collide in the caller's company */
    free(ct_not_found(ct_srv.port, "PATCH", path, demo, "{\"phone_number\":\"5511987650001\"}"));
    char out[256];
    hs_sql(out, sizeof(out),
           "SELECT name || '|' || array_length(labels, 1) || '|' || (updated_at = created_at)"
           " FROM contacts WHERE phone_number = '5511900000001' AND company_id = (SELECT id FROM"
           " companies WHERE slug = '%s');",
           ct_slug);
    cr_assert_str_eq(out, "Mariana A|1|true", "the other company's contact is unchanged");
    /* and the other way round */
    snprintf(path, sizeof(path), "/api/v1/contacts/%s", demo_id);
    free(ct_not_found(ct_srv.port, "GET", path, own, NULL));
    free(ct_not_found(ct_srv.port, "PATCH", path, own, "{\"name\":\"x\"}"));

    /* lookups and lists see only the caller's company */
    free(ct_not_found(ct_srv.port, "GET", "/api/v1/contacts/lookup?phone=5511900000001", demo, NULL));
    free(ct_not_found(ct_srv.port, "GET", "/api/v1/contacts/lookup?phone=5511987650001", own, NULL));
    json_t *j = hs_call_json(ct_srv.port, "GET", "/api/v1/contacts?q=55119000", demo, NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);
    j = hs_call_json(ct_srv.port, "GET", "/api/v1/contacts?q=Mariana&limit=50", demo, NULL, 200);
    size_t i;
    json_t *c;
    json_array_foreach (json_object_get(j, "data"), i, c) {
        cr_assert_str_neq(json_string_value(json_object_get(c, "phone_number")), "5511900000001");
    }
    json_decref(j);
    j = hs_call_json(ct_srv.port, "GET", "/api/v1/contacts?limit=50", own, NULL, 200);
    cr_assert_eq(ct_int(json_object_get(j, "pagination"), "total"), 23);
    json_array_foreach (json_object_get(j, "data"), i, c) {
        cr_assert_str_neq(json_string_value(json_object_get(c, "phone_number")), "5511987650001");
    }
    json_decref(j);

    /* the same number may exist once per company: creating the demo's number here is fine */
    j = hs_call_json(ct_srv.port, "POST", "/api/v1/contacts", own, "{\"phone_number\":\"+55 11 98765-0001\"}", 201);
    json_decref(j);
    j = hs_call_json(ct_srv.port, "GET", "/api/v1/contacts/lookup?phone=5511987650001", demo, NULL, 200);
    cr_assert_eq(ct_int(json_object_get(j, "data"), "id"), strtoll(demo_id, NULL, 10));
    json_decref(j);

    free(unknown);
    free(demo);
    free(own);
    cr_assert_eq(hs_server_stop(&ct_srv), 0);
}

Test(contacts, search_totals_are_capped_beyond_ten_thousand)
{
    char out[256];
    int rc = hs_sql(out, sizeof(out),
                    "INSERT INTO contacts (company_id, phone_number, name)"
                    " SELECT c.id, (3300000000000 + g)::text, 'Cap ' || lpad(g::text, 5, '0')"
                    " FROM companies c, generate_series(1, 10050) g WHERE c.slug = '%s';",
                    ct_slug);
    cr_assert_eq(rc, 0, "%s", out);
    hs_server_start(&ct_srv, NULL);
    char *tok = hs_login(ct_srv.port, ct_email);
    json_t *j = hs_call_json(ct_srv.port, "GET", "/api/v1/contacts", tok, NULL, 200);
    cr_assert_eq(ct_int(json_object_get(j, "pagination"), "total"), 10050, "exact without q");
    json_decref(j);
    j = hs_call_json(ct_srv.port, "GET", "/api/v1/contacts?q=cap&limit=3", tok, NULL, 200);
    json_t *pg = json_object_get(j, "pagination");
    cr_assert_eq(ct_int(pg, "total"), 10000);
    cr_assert(json_is_true(json_object_get(pg, "total_is_estimate")));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "name")),
                     "Cap 00001");
    json_decref(j);
    j = hs_call_json(ct_srv.port, "GET", "/api/v1/contacts?q=33&page=2513&limit=4", tok, NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(j, "data")), 2, "pages past the cap still work");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 1), "phone_number")),
                     "3300000010050");
    json_decref(j);
    j = hs_call_json(ct_srv.port, "GET", "/api/v1/contacts?q=cap%201&limit=3", tok, NULL, 200);
    pg = json_object_get(j, "pagination");
    cr_assert_eq(ct_int(pg, "total"), 51, "Cap 10000 .. Cap 10050");
    cr_assert(json_is_false(json_object_get(pg, "total_is_estimate")));
    json_decref(j);
    free(tok);
    cr_assert_eq(hs_server_stop(&ct_srv), 0);
}
