/*
 * Integration tests of /api/v1/notifications: the real binary, real PostgreSQL, real
 * HTTP.
 *
 * Notifications are written to here only in a company of this test's own
 * ("it-nt-<pid>", an admin and an agent, created through psql and deleted at the end
 * with everything it owns). The demo company is shared with other tests: its
 * notifications are only read, and the tests check they are left exactly as found.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define NT_ADMIN_ROWS 37 /* the own admin's notifications: every third one read */
#define NT_ADMIN_READ 12
#define NT_AGENT_ROWS 5 /* the own agent's: all unread */
#define NT_DEMO_SNAPSHOT                                                                                               \
    "SELECT coalesce(string_agg(id || ':' || is_read || ':' || coalesce(read_at::text, '-'), ',' ORDER BY id), '')"    \
    " || '/' || coalesce((SELECT string_agg(total || ':' || unread, ',' ORDER BY user_id) FROM notification_counts"    \
    " WHERE company_id = (SELECT id FROM companies WHERE slug = 'demo')), '')"                                         \
    " FROM notifications WHERE company_id = (SELECT id FROM companies WHERE slug = 'demo')"

static char nt_slug[32];
static hs_server_t nt_srv;
static char *nt_admin, *nt_agent, *nt_demo;
static char nt_demo_before[8192];

static void nt_setup(void)
{
    snprintf(nt_slug, sizeof(nt_slug), "it-nt-%d", (int)getpid());
    char out[512];
    hs_company(nt_slug, "Notifications test");
    int rc = hs_sql(out, sizeof(out),
                    /* pairs share created_at, so the id decides between them */
                    "INSERT INTO notifications (company_id, user_id, type, title, body, data, is_read, created_at,"
                    " read_at)"
                    " SELECT u.company_id, u.id, 'message.received', 'Title ' || g,"
                    " CASE WHEN g %% 5 = 0 THEN NULL ELSE 'Body ' || g END, jsonb_build_object('n', g), g %% 3 = 0,"
                    " date_trunc('second', now()) - (g / 2) * interval '1 minute',"
                    " CASE WHEN g %% 3 = 0 THEN now() - interval '30 seconds' END"
                    " FROM users u, generate_series(1, %d) g WHERE u.email = 'admin@%s.test';"
                    "INSERT INTO notifications (company_id, user_id, type, title)"
                    " SELECT u.company_id, u.id, 'conversation.assigned', 'Agent ' || g"
                    " FROM users u, generate_series(1, %d) g WHERE u.email = 'agent@%s.test';",
                    NT_ADMIN_ROWS, nt_slug, NT_AGENT_ROWS, nt_slug);
    cr_assert_eq(rc, 0, "%s", out);
    rc = hs_sql(nt_demo_before, sizeof(nt_demo_before), "%s", NT_DEMO_SNAPSHOT);
    cr_assert_eq(rc, 0, "%s", nt_demo_before);
    /* These tests change notifications straight in the database, behind the cache's
     * back, to check the endpoints' SQL; the cache has its own tests (it_cache.c). */
    static const char *const env[] = {"CACHE_ENABLED=0", NULL};
    hs_server_start(&nt_srv, env);
    char email[96];
    snprintf(email, sizeof(email), "admin@%s.test", nt_slug);
    nt_admin = hs_login(nt_srv.port, email);
    snprintf(email, sizeof(email), "agent@%s.test", nt_slug);
    nt_agent = hs_login(nt_srv.port, email);
    nt_demo = hs_login(nt_srv.port, "admin@demo.conversa.dev");
}

static void nt_teardown(void)
{
    if (nt_srv.pid > 0)
        hs_server_stop(&nt_srv);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = '%s'", nt_slug);
    free(nt_admin);
    free(nt_agent);
    free(nt_demo);
}

TestSuite(notifications, .init = nt_setup, .fini = nt_teardown, .timeout = 60);

/* A request with a bearer token (NULL: none). */
static hs_response_t nt_call(const char *method, const char *path, const char *token)
{
    return hs_call(nt_srv.port, method, path, token, NULL);
}

/* The parsed body of a request that must answer `want`. */
static json_t *nt_json(const char *method, const char *path, const char *token, long want)
{
    return hs_call_json(nt_srv.port, method, path, token, NULL, want);
}

static int64_t nt_int(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_integer(v), "%s is not an integer", key);
    return (int64_t)json_integer_value(v);
}

static void nt_invalid(const char *method, const char *path, const char *token, const char *field)
{
    json_t *j = nt_json(method, path, token, 400);
    json_t *err = json_object_get(j, "error");
    cr_assert_str_eq(json_string_value(json_object_get(err, "code")), "invalid");
    const char *f = json_string_value(json_object_get(err, "field"));
    cr_assert(f != NULL && strcmp(f, field) == 0, "%s %s: field %s, expected %s", method, path, f ? f : "(none)",
              field);
    json_decref(j);
}

/* Must be 404 not_found without data; returns the message (caller frees). */
static char *nt_not_found(const char *method, const char *path, const char *token)
{
    json_t *j = nt_json(method, path, token, 404);
    cr_assert_null(json_object_get(j, "data"));
    json_t *err = json_object_get(j, "error");
    cr_assert_str_eq(json_string_value(json_object_get(err, "code")), "not_found");
    char *msg = strdup(json_string_value(json_object_get(err, "message")));
    json_decref(j);
    return msg;
}

/* SQL about one of the own users ("admin" or "agent"): `expr` over its notifications. */
static void nt_user_sql(char *out, size_t cap, const char *who, const char *expr)
{
    int rc = hs_sql(out, cap,
                    "SELECT %s FROM notifications n WHERE n.user_id = (SELECT id FROM users WHERE email ="
                    " '%s@%s.test')",
                    expr, who, nt_slug);
    cr_assert_eq(rc, 0, "%s", out);
}

/* The unread count as the API reports it, checked against its list and against the rows. */
static int64_t nt_unread(const char *token, const char *who)
{
    json_t *j = nt_json("GET", "/api/v1/notifications/unread_count", token, 200);
    int64_t n = nt_int(json_object_get(j, "data"), "unread_count");
    cr_assert(json_is_false(json_object_get(j, "cached")));
    json_decref(j);
    j = nt_json("GET", "/api/v1/notifications?unread=true&limit=1", token, 200);
    cr_assert_eq(nt_int(j, "unread_count"), n);
    cr_assert_eq(nt_int(json_object_get(j, "pagination"), "total"), n);
    json_decref(j);
    if (who != NULL) {
        char out[64];
        nt_user_sql(out, sizeof(out), who, "count(*) FILTER (WHERE NOT n.is_read)");
        cr_assert_eq(n, strtoll(out, NULL, 10), "unread_count %lld, rows %s", (long long)n, out);
    }
    return n;
}

/* Every page of `query` (ending in '&' or '?'), as "id,id,…"; *total from the last page. */
static char *nt_all_pages(const char *token, const char *query, int limit, int64_t *total, int64_t *unread)
{
    size_t cap = 16384, len = 0;
    char *ids = calloc(1, cap);
    for (int page = 1;; ++page) {
        char url[256];
        snprintf(url, sizeof(url), "%spage=%d&limit=%d", query, page, limit);
        json_t *j = nt_json("GET", url, token, 200);
        json_t *data = json_object_get(j, "data"), *pg = json_object_get(j, "pagination");
        cr_assert(json_is_array(data));
        cr_assert_eq(nt_int(pg, "page"), page);
        cr_assert_eq(nt_int(pg, "limit"), limit);
        cr_assert(json_is_false(json_object_get(j, "cached")));
        *total = nt_int(pg, "total");
        *unread = nt_int(j, "unread_count");
        size_t i;
        json_t *n;
        json_array_foreach (data, i, n) {
            len += (size_t)snprintf(ids + len, cap - len, "%s%lld", len ? "," : "", (long long)nt_int(n, "id"));
            cr_assert(len < cap);
        }
        size_t got = json_array_size(data);
        json_decref(j);
        cr_assert(got <= (size_t)limit);
        if (got < (size_t)limit)
            break;
        cr_assert(page < 1000);
    }
    return ids;
}

static void nt_expect_pages(const char *token, const char *who, const char *query, int limit, const char *filter,
                            int64_t want_total, int64_t want_unread)
{
    int64_t total, unread;
    char *got = nt_all_pages(token, query, limit, &total, &unread);
    char want[16384], expr[256];
    snprintf(expr, sizeof(expr),
             "coalesce(string_agg(n.id::text, ',' ORDER BY n.created_at DESC, n.id DESC)"
             " FILTER (WHERE %s), '')",
             filter);
    nt_user_sql(want, sizeof(want), who, expr);
    cr_assert_str_eq(got, want, "%s limit %d", query, limit);
    cr_assert_eq(total, want_total);
    cr_assert_eq(unread, want_unread);
    free(got);
}

/* Ends a test: the demo company's notifications are as found, and the server stops cleanly (no leak). */
static void nt_finish(void)
{
    char now[8192];
    int rc = hs_sql(now, sizeof(now), "%s", NT_DEMO_SNAPSHOT);
    cr_assert_eq(rc, 0, "%s", now);
    cr_assert_str_eq(now, nt_demo_before, "the demo company's notifications changed");
    cr_assert_eq(hs_server_stop(&nt_srv), 0);
}

Test(notifications, every_route_needs_a_valid_token)
{
    static const char *const routes[][2] = {
        {"GET", "/api/v1/notifications"},
        {"GET", "/api/v1/notifications/unread_count"},
        {"POST", "/api/v1/notifications/1/read"},
        {"POST", "/api/v1/notifications/read_all"},
    };
    static const char *const bad[] = {NULL, "Authorization: Bearer cv_nope", "Authorization: Token abc",
                                      "Authorization: bearer"};
    for (size_t i = 0; i != sizeof(routes) / sizeof(routes[0]); ++i)
        for (size_t k = 0; k != sizeof(bad) / sizeof(bad[0]); ++k) {
            const char *headers[] = {bad[k], NULL};
            hs_response_t r = hs_request(nt_srv.port, routes[i][0], routes[i][1], NULL, 0, bad[k] ? headers : NULL);
            cr_assert_eq(r.status, 401, "%s %s with %s: %ld", routes[i][0], routes[i][1], bad[k] ? bad[k] : "nothing",
                         r.status);
            cr_assert(strstr(r.body, "\"code\":\"unauthorized\"") != NULL, "%s", r.body);
            cr_assert(strstr(r.body, "\"data\"") == NULL);
            hs_response_free(&r);
        }
    char out[64];
    nt_user_sql(out, sizeof(out), "admin", "count(*) FILTER (WHERE NOT n.is_read)");
    cr_assert_eq(strtoll(out, NULL, 10), NT_ADMIN_ROWS - NT_ADMIN_READ, "nothing was marked read");
    nt_finish();
}

Test(notifications, pages_are_newest_first_with_exact_counts)
{
    const int64_t unread = NT_ADMIN_ROWS - NT_ADMIN_READ;
    for (int limit = 1; limit <= 7; limit += 2)
        nt_expect_pages(nt_admin, "admin", "/api/v1/notifications?", limit, "true", NT_ADMIN_ROWS, unread);
    nt_expect_pages(nt_admin, "admin", "/api/v1/notifications?unread=false&", 50, "true", NT_ADMIN_ROWS, unread);
    for (int limit = 2; limit <= 8; limit += 3)
        nt_expect_pages(nt_admin, "admin", "/api/v1/notifications?unread=true&", limit, "NOT n.is_read", unread,
                        unread);
    nt_expect_pages(nt_agent, "agent", "/api/v1/notifications?", 2, "true", NT_AGENT_ROWS, NT_AGENT_ROWS);

    /* defaults, the item shape, a clamped limit, a page past the end */
    json_t *j = nt_json("GET", "/api/v1/notifications", nt_admin, 200);
    json_t *pg = json_object_get(j, "pagination");
    cr_assert_eq(nt_int(pg, "page"), 1);
    cr_assert_eq(nt_int(pg, "limit"), 20);
    cr_assert_eq(nt_int(pg, "total"), NT_ADMIN_ROWS);
    cr_assert_eq(nt_int(j, "unread_count"), unread);
    json_t *data = json_object_get(j, "data");
    cr_assert_eq(json_array_size(data), 20);
    static const char *const keys[] = {"id", "type", "title", "body", "data", "is_read", "created_at", "read_at"};
    size_t i;
    json_t *n;
    json_array_foreach (data, i, n) {
        cr_assert_eq(json_object_size(n), sizeof(keys) / sizeof(keys[0]));
        for (size_t k = 0; k != sizeof(keys) / sizeof(keys[0]); ++k)
            cr_assert_not_null(json_object_get(n, keys[k]), "item lacks %s", keys[k]);
        int read = json_is_true(json_object_get(n, "is_read"));
        cr_assert(read == !json_is_null(json_object_get(n, "read_at")), "read_at is set exactly on read ones");
        cr_assert(json_is_object(json_object_get(n, "data")));
    }
    json_decref(j);
    j = nt_json("GET", "/api/v1/notifications?limit=500", nt_admin, 200);
    cr_assert_eq(nt_int(json_object_get(j, "pagination"), "limit"), 50);
    cr_assert_eq(json_array_size(json_object_get(j, "data")), NT_ADMIN_ROWS);
    json_decref(j);
    j = nt_json("GET", "/api/v1/notifications?page=9&limit=10", nt_admin, 200);
    cr_assert_eq(json_array_size(json_object_get(j, "data")), 0);
    cr_assert_eq(nt_int(json_object_get(j, "pagination"), "total"), NT_ADMIN_ROWS);
    json_decref(j);
    j = nt_json("GET", "/api/v1/notifications?unread=true&limit=50", nt_admin, 200);
    json_array_foreach (json_object_get(j, "data"), i, n) {
        cr_assert(json_is_false(json_object_get(n, "is_read")));
    }
    json_decref(j);

    /* bad parameters */
    nt_invalid("GET", "/api/v1/notifications?unread=yes", nt_admin, "unread");
    nt_invalid("GET", "/api/v1/notifications?unread=TRUE", nt_admin, "unread");
    nt_invalid("GET", "/api/v1/notifications?unread=%FF", nt_admin, "unread");
    nt_invalid("GET", "/api/v1/notifications?page=0", nt_admin, "page");
    nt_invalid("GET", "/api/v1/notifications?page=x", nt_admin, "page");
    nt_invalid("GET", "/api/v1/notifications?page=2000000", nt_admin, "page");
    nt_invalid("GET", "/api/v1/notifications?limit=0", nt_admin, "limit");
    nt_invalid("GET", "/api/v1/notifications?limit=-5", nt_admin, "limit");
    nt_invalid("GET", "/api/v1/notifications?limit=%ZZ", nt_admin, "limit");
    nt_invalid("POST", "/api/v1/notifications/abc/read", nt_admin, "id");
    nt_invalid("POST", "/api/v1/notifications/0/read", nt_admin, "id");
    nt_invalid("POST", "/api/v1/notifications/12345678901234567890/read", nt_admin, "id");

    /* the demo admin's view, read only: its counts are the counters' */
    char want[64];
    int rc = hs_sql(want, sizeof(want),
                    "SELECT coalesce((SELECT total || ',' || unread FROM notification_counts c JOIN users u"
                    " ON u.company_id = c.company_id AND u.id = c.user_id WHERE u.email = 'admin@demo.conversa.dev'),"
                    " '0,0')");
    cr_assert_eq(rc, 0, "%s", want);
    j = nt_json("GET", "/api/v1/notifications", nt_demo, 200);
    char got[64];
    snprintf(got, sizeof(got), "%lld,%lld", (long long)nt_int(json_object_get(j, "pagination"), "total"),
             (long long)nt_int(j, "unread_count"));
    cr_assert_str_eq(got, want);
    json_decref(j);
    nt_finish();
}

Test(notifications, read_and_read_all_keep_unread_counts_exact)
{
    const int64_t unread0 = NT_ADMIN_ROWS - NT_ADMIN_READ;
    cr_assert_eq(nt_unread(nt_admin, "admin"), unread0);
    cr_assert_eq(nt_unread(nt_agent, "agent"), NT_AGENT_ROWS);

    /* one unread notification: marked read once, then the same answer every time */
    char id[32], path[96];
    nt_user_sql(id, sizeof(id), "admin", "min(n.id) FILTER (WHERE NOT n.is_read)");
    snprintf(path, sizeof(path), "/api/v1/notifications/%s/read", id);
    json_t *j = nt_json("POST", path, nt_admin, 200);
    json_t *d = json_object_get(j, "data");
    cr_assert_eq(nt_int(d, "id"), strtoll(id, NULL, 10));
    cr_assert(json_is_true(json_object_get(d, "is_read")));
    cr_assert(json_is_string(json_object_get(d, "read_at")));
    cr_assert_eq(json_object_size(d), 8);
    char *read_at = strdup(json_string_value(json_object_get(d, "read_at")));
    json_decref(j);
    cr_assert_eq(nt_unread(nt_admin, "admin"), unread0 - 1);
    hs_sleep_ms(10);
    for (int k = 0; k != 3; ++k) {
        j = nt_json("POST", path, nt_admin, 200);
        d = json_object_get(j, "data");
        cr_assert(json_is_true(json_object_get(d, "is_read")));
        cr_assert_str_eq(json_string_value(json_object_get(d, "read_at")), read_at, "read_at is set once");
        json_decref(j);
    }
    cr_assert_eq(nt_unread(nt_admin, "admin"), unread0 - 1);
    free(read_at);

    /* one that was already read keeps its read_at */
    char seeded[32], expr[128], same[8];
    snprintf(expr, sizeof(expr), "min(n.id) FILTER (WHERE n.is_read AND n.id <> %s)", id);
    nt_user_sql(seeded, sizeof(seeded), "admin", expr);
    snprintf(path, sizeof(path), "/api/v1/notifications/%s/read", seeded);
    j = nt_json("POST", path, nt_admin, 200);
    d = json_object_get(j, "data");
    cr_assert(json_is_true(json_object_get(d, "is_read")));
    int rc = hs_sql(same, sizeof(same),
                    "SELECT read_at = '%s'::timestamptz AND read_at < now() - interval '20 seconds'"
                    " FROM notifications WHERE id = %s",
                    json_string_value(json_object_get(d, "read_at")), seeded);
    cr_assert_eq(rc, 0, "%s", same);
    cr_assert_str_eq(same, "t", "the first read_at is kept");
    json_decref(j);
    cr_assert_eq(nt_unread(nt_admin, "admin"), unread0 - 1);

    /* read_all: the rest, once; the agent's are not touched */
    j = nt_json("POST", "/api/v1/notifications/read_all", nt_admin, 200);
    cr_assert_eq(nt_int(json_object_get(j, "data"), "updated"), unread0 - 1);
    json_decref(j);
    cr_assert_eq(nt_unread(nt_admin, "admin"), 0);
    j = nt_json("POST", "/api/v1/notifications/read_all", nt_admin, 200);
    cr_assert_eq(nt_int(json_object_get(j, "data"), "updated"), 0);
    json_decref(j);
    cr_assert_eq(nt_unread(nt_agent, "agent"), NT_AGENT_ROWS);
    j = nt_json("GET", "/api/v1/notifications?unread=true", nt_admin, 200);
    cr_assert_eq(json_array_size(json_object_get(j, "data")), 0);
    cr_assert_eq(nt_int(json_object_get(j, "pagination"), "total"), 0);
    json_decref(j);
    j = nt_json("GET", "/api/v1/notifications", nt_admin, 200);
    cr_assert_eq(nt_int(json_object_get(j, "pagination"), "total"), NT_ADMIN_ROWS, "reading deletes nothing");
    json_decref(j);
    char out[64];
    nt_user_sql(out, sizeof(out), "admin", "count(*) FILTER (WHERE n.read_at IS NULL)");
    cr_assert_str_eq(out, "0", "every read one has read_at");

    /* a new notification counts at once */
    rc = hs_sql(out, sizeof(out),
                "INSERT INTO notifications (company_id, user_id, type, title) SELECT company_id, id, 'x', 'new'"
                " FROM users WHERE email = 'admin@%s.test'",
                nt_slug);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_eq(nt_unread(nt_admin, "admin"), 1);
    nt_finish();
}

Test(notifications, someone_elses_notification_is_not_found)
{
    char admin_id[32], agent_id[32], demo_id[32], path[96];
    nt_user_sql(admin_id, sizeof(admin_id), "admin", "min(n.id) FILTER (WHERE NOT n.is_read)");
    nt_user_sql(agent_id, sizeof(agent_id), "agent", "min(n.id)");
    int rc = hs_sql(demo_id, sizeof(demo_id),
                    "SELECT coalesce(min(id), 1) FROM notifications WHERE company_id = (SELECT id FROM companies"
                    " WHERE slug = 'demo')");
    cr_assert_eq(rc, 0, "%s", demo_id);

    char *unknown = nt_not_found("POST", "/api/v1/notifications/999999999/read", nt_admin);
    /* another agent of the same company */
    snprintf(path, sizeof(path), "/api/v1/notifications/%s/read", admin_id);
    char *msg = nt_not_found("POST", path, nt_agent);
    cr_assert_str_eq(msg, unknown);
    free(msg);
    /* another company, both ways */
    msg = nt_not_found("POST", path, nt_demo);
    cr_assert_str_eq(msg, unknown);
    free(msg);
    snprintf(path, sizeof(path), "/api/v1/notifications/%s/read", demo_id);
    msg = nt_not_found("POST", path, nt_admin);
    cr_assert_str_eq(msg, unknown);
    free(msg);
    free(nt_not_found("POST", path, nt_agent));
    snprintf(path, sizeof(path), "/api/v1/notifications/%s/read", agent_id);
    free(nt_not_found("POST", path, nt_admin));
    free(unknown);

    /* nothing changed: the admin's is still unread, the counts too */
    char out[64];
    rc = hs_sql(out, sizeof(out), "SELECT is_read FROM notifications WHERE id = %s", admin_id);
    cr_assert_str_eq(out, "f");
    cr_assert_eq(nt_unread(nt_admin, "admin"), NT_ADMIN_ROWS - NT_ADMIN_READ);
    cr_assert_eq(nt_unread(nt_agent, "agent"), NT_AGENT_ROWS);

    /* lists show only the caller's own */
    int64_t total, unread;
    char *ids = nt_all_pages(nt_agent, "/api/v1/notifications?", 50, &total, &unread);
    cr_assert_eq(total, NT_AGENT_ROWS);
    char want[1024];
    nt_user_sql(want, sizeof(want), "agent", "string_agg(n.id::text, ',' ORDER BY n.created_at DESC, n.id DESC)");
    cr_assert_str_eq(ids, want);
    free(ids);

    /* the agent's read_all touches only the agent's */
    json_t *j = nt_json("POST", "/api/v1/notifications/read_all", nt_agent, 200);
    cr_assert_eq(nt_int(json_object_get(j, "data"), "updated"), NT_AGENT_ROWS);
    json_decref(j);
    cr_assert_eq(nt_unread(nt_agent, "agent"), 0);
    cr_assert_eq(nt_unread(nt_admin, "admin"), NT_ADMIN_ROWS - NT_ADMIN_READ);
    nt_finish();
}

typedef struct nt_worker {
    const char *token;
    char path[96];
    long status;
} nt_worker_t;

static void *nt_work(void *arg)
{
    nt_worker_t *w = arg;
    hs_response_t r = nt_call("POST", w->path, w->token);
    w->status = r.status;
    hs_response_free(&r);
    return NULL;
}

Test(notifications, concurrent_reads_count_each_notification_once)
{
    /* every unread one of the admin read by two requests at once, with two read_all among them */
    char ids[1024];
    nt_user_sql(ids, sizeof(ids), "admin", "string_agg(n.id::text, ' ' ORDER BY n.id) FILTER (WHERE NOT n.is_read)");
    nt_worker_t w[2 * NT_ADMIN_ROWS + 2];
    size_t n = 0;
    for (char *save, *tok = strtok_r(ids, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save))
        for (int k = 0; k != 2; ++k) {
            w[n].token = nt_admin;
            snprintf(w[n].path, sizeof(w[n].path), "/api/v1/notifications/%s/read", tok);
            ++n;
            if (n == 10 || n == 30) {
                w[n].token = nt_admin;
                snprintf(w[n].path, sizeof(w[n].path), "/api/v1/notifications/read_all");
                ++n;
            }
        }
    cr_assert(n > 30);
    pthread_t th[sizeof(w) / sizeof(w[0])];
    for (size_t i = 0; i != n; ++i)
        cr_assert_eq(pthread_create(&th[i], NULL, nt_work, &w[i]), 0);
    for (size_t i = 0; i != n; ++i)
        pthread_join(th[i], NULL);
    for (size_t i = 0; i != n; ++i)
        cr_assert_eq(w[i].status, 200, "%s: %ld", w[i].path, w[i].status);
    cr_assert_eq(nt_unread(nt_admin, "admin"), 0);
    char out[64];
    int rc = hs_sql(out, sizeof(out),
                    "SELECT c.total || ',' || c.unread FROM notification_counts c JOIN users u ON u.company_id ="
                    " c.company_id AND u.id = c.user_id WHERE u.email = 'admin@%s.test'",
                    nt_slug);
    cr_assert_eq(rc, 0, "%s", out);
    char want[32];
    snprintf(want, sizeof(want), "%d,0", NT_ADMIN_ROWS);
    cr_assert_str_eq(out, want);
    nt_finish();
}
