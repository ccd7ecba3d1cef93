/*
 * The cross-company matrix: every route of the API, called by another company's admin
 * with the demo company's ids, answers 404 exactly like an unknown id, and no answer
 * carries a byte of the demo company's data. The table below must name every route
 * of src/api/routes.c: a new route without a row here fails this test.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/routes.h"
#include "harness.h"

static char slug[64];
static hs_server_t srv;
static char hdr[160], hdr_spare[160];

/* Strings only the demo company's rows contain. */
static const char *const demo_markers[] = {"Mariana Souza",           "5511987650001",     "Ana Admin",
                                           "admin@demo.conversa.dev", "wamid.DEMO",        "Demo WhatsApp",
                                           "100000000000001",         "demo-verify-token", NULL};

static void mx_setup(void)
{
    snprintf(slug, sizeof(slug), "mx-%d", (int)getpid());
    char out[2048];
    cr_assert_eq(
        hs_sql(out, sizeof(out),
               "INSERT INTO companies (slug, name) VALUES ('%s', 'Matrix');"
               "INSERT INTO users (company_id, email, name, role, password_hash)"
               " SELECT c.id, 'admin@%s.test', 'Matrix Admin', 'admin', d.password_hash FROM companies c, users d"
               " WHERE c.slug = '%s' AND d.email = 'admin@demo.conversa.dev';",
               slug, slug, slug),
        0, "%s", out);
    hs_server_start(&srv, NULL);
    char email[128];
    snprintf(email, sizeof(email), "admin@%s.test", slug);
    char *a = hs_login(srv.port, email), *b = hs_login(srv.port, email);
    hs_bearer(hdr, sizeof(hdr), a);
    hs_bearer(hdr_spare, sizeof(hdr_spare), b);
    free(a);
    free(b);
}

static void mx_teardown(void)
{
    if (srv.pid > 0)
        hs_server_stop(&srv);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = '%s'", slug);
    hs_sql(NULL, 0,
           "DELETE FROM jobs WHERE last_error = 'matrix' AND company_id = (SELECT id FROM companies"
           " WHERE slug = 'demo')");
    hs_sql(
        NULL, 0,
        "DELETE FROM campaigns WHERE name = 'matrix' AND company_id = (SELECT id FROM companies WHERE slug = 'demo')");
}

TestSuite(matrix, .init = mx_setup, .fini = mx_teardown, .timeout = 120);

typedef struct mx_case {
    const char *method;
    const char *route;  /* the template, as in routes.c */
    const char *id_sql; /* the demo company's id to put in :id, or NULL */
    const char *path;   /* the path when there is no :id (may hold a query) */
    const char *body;
    long want;         /* expected status; 0: any 2xx/4xx that leaks nothing */
    const char *queue; /* the queue in :name; NULL: webhooks */
} mx_case_t;

/* a draft campaign of the demo company's, made for a case (removed at teardown) */
#define MX_DEMO_CAMPAIGN                                                                                               \
    "WITH c AS (INSERT INTO campaigns (company_id, connection_id, name, template_name, template_language, audience)"   \
    " SELECT k.id, n.id, 'matrix', 'matrix', 'en', '{\"all\": true}' FROM companies k JOIN connections n"              \
    " ON n.company_id = k.id WHERE k.slug = 'demo' ORDER BY n.id LIMIT 1 RETURNING id) SELECT id FROM c"

static const mx_case_t cases[] = {
    {"GET", "/api/health", NULL, "/api/health", NULL, 200},
    {"GET", "/api/health/live", NULL, "/api/health/live", NULL, 200},
    {"GET", "/api/metrics", NULL, "/api/metrics", NULL, 200},
    {"POST", "/api/v1/auth/login", NULL, "/api/v1/auth/login",
     "{\"email\":\"admin@demo.conversa.dev\",\"password\":\"wrong\"}", 401},
    {"GET", "/api/v1/connections", NULL, "/api/v1/connections", NULL, 200},
    {"POST", "/api/v1/connections", NULL, "/api/v1/connections",
     "{\"name\":\"Mx\",\"slug\":\"mx-made-here\",\"phone_number_id\":\"999000111\",\"waba_id\":\"999000222\","
     "\"display_phone_number\":\"+1 555 0100\",\"access_token\":\"tok-mx\",\"app_secret\":\"sec-mx\","
     "\"verify_token\":\"ver-mx\"}",
     0},
    {"GET", "/api/v1/connections/:id",
     "SELECT min(id) FROM connections WHERE company_id = (SELECT id FROM companies "
     "WHERE slug = 'demo')",
     NULL, NULL, 404},
    {"PATCH", "/api/v1/connections/:id",
     "SELECT min(id) FROM connections WHERE company_id = (SELECT id FROM companies "
     "WHERE slug = 'demo')",
     NULL, "{\"name\":\"taken over\"}", 404},
    {"DELETE", "/api/v1/connections/:id",
     "SELECT min(id) FROM connections WHERE company_id = (SELECT id FROM companies "
     "WHERE slug = 'demo')",
     NULL, NULL, 404},
    {"GET", "/api/v1/conversations", NULL, "/api/v1/conversations?limit=50", NULL, 200},
    {"GET", "/api/v1/conversations/status", NULL, "/api/v1/conversations/status", NULL, 200},
    {"GET", "/api/v1/conversations/:id",
     "SELECT min(id) FROM conversations WHERE company_id = (SELECT id FROM "
     "companies WHERE slug = 'demo')",
     NULL, NULL, 404},
    {"PATCH", "/api/v1/conversations/:id",
     "SELECT min(id) FROM conversations WHERE company_id = (SELECT id FROM "
     "companies WHERE slug = 'demo')",
     NULL, "{\"status\":\"resolved\"}", 404},
    {"POST", "/api/v1/conversations/:id/read",
     "SELECT min(id) FROM conversations WHERE company_id = (SELECT id FROM "
     "companies WHERE slug = 'demo')",
     NULL, NULL, 404},
    {"GET", "/api/v1/conversations/:id/messages",
     "SELECT min(id) FROM conversations WHERE company_id = (SELECT id "
     "FROM companies WHERE slug = 'demo')",
     NULL, NULL, 404},
    {"POST", "/api/v1/conversations/:id/messages",
     "SELECT min(id) FROM conversations WHERE company_id = (SELECT id "
     "FROM companies WHERE slug = 'demo')",
     NULL, "{\"text\":\"not yours\"}", 404},
    {"GET", "/api/v1/contacts", NULL, "/api/v1/contacts?limit=50", NULL, 200},
    {"GET", "/api/v1/contacts", NULL, "/api/v1/contacts?q=Mariana", NULL, 200},
    {"POST", "/api/v1/contacts", NULL, "/api/v1/contacts", "{\"phone_number\":\"+1 555 010 9999\",\"name\":\"Mx\"}", 0},
    {"GET", "/api/v1/contacts/lookup", NULL, "/api/v1/contacts/lookup?phone=%2B55%2011%2098765-0001", NULL, 404},
    {"GET", "/api/v1/contacts/:id",
     "SELECT min(id) FROM contacts WHERE company_id = (SELECT id FROM companies WHERE "
     "slug = 'demo')",
     NULL, NULL, 404},
    {"PATCH", "/api/v1/contacts/:id",
     "SELECT min(id) FROM contacts WHERE company_id = (SELECT id FROM companies WHERE "
     "slug = 'demo')",
     NULL, "{\"name\":\"taken over\"}", 404},
    {"GET", "/api/v1/notifications", NULL, "/api/v1/notifications", NULL, 200},
    {"GET", "/api/v1/notifications/unread_count", NULL, "/api/v1/notifications/unread_count", NULL, 200},
    {"POST", "/api/v1/notifications/read_all", NULL, "/api/v1/notifications/read_all", NULL, 0},
    {"POST", "/api/v1/notifications/:id/read",
     "SELECT min(id) FROM notifications WHERE company_id = (SELECT id FROM "
     "companies WHERE slug = 'demo')",
     NULL, NULL, 404},
    {"GET", "/api/v1/users", NULL, "/api/v1/users", NULL, 200},
    {"GET", "/api/v1/campaigns", NULL, "/api/v1/campaigns?limit=100", NULL, 200},
    /* the demo company's connection: refused as unknown */
    {"POST", "/api/v1/campaigns", NULL, "/api/v1/campaigns",
     "{\"name\":\"Mx\",\"connection_id\":1,\"template\":{\"name\":\"mx\",\"language\":\"en\"},"
     "\"audience\":{\"all\":true}}",
     404},
    {"GET", "/api/v1/campaigns/:id", MX_DEMO_CAMPAIGN, NULL, NULL, 404},
    {"POST", "/api/v1/campaigns/trigger", NULL, "/api/v1/campaigns/trigger", "{\"campaign_id\":1}", 404},
    {"POST", "/api/v1/campaigns/:id/pause", MX_DEMO_CAMPAIGN, NULL, NULL, 404},
    {"POST", "/api/v1/campaigns/:id/resume", MX_DEMO_CAMPAIGN, NULL, NULL, 404},
    {"POST", "/api/v1/campaigns/:id/cancel", MX_DEMO_CAMPAIGN, NULL, NULL, 404},
    /* process-wide figures: nothing of any company's in them */
    {"GET", "/api/v1/alerts", NULL, "/api/v1/alerts", NULL, 200},
    {"GET", "/api/v1/queues", NULL, "/api/v1/queues", NULL, 200},
    {"GET", "/api/v1/queues/:name/failed", NULL, "/api/v1/queues/webhooks/failed", NULL, 200},
    {"POST", "/api/v1/queues/:name/failed/retry_all", NULL, "/api/v1/queues/webhooks/failed/retry_all", NULL, 200},
    {"POST", "/api/v1/queues/:name/failed/:id/retry",
     /* a dead letter of the demo company's, made for this case (removed at teardown) */
     "WITH j AS (INSERT INTO jobs (company_id, queue, payload, status, last_error) SELECT id, 'webhooks',"
     " convert_to('{}', 'UTF8'), 'failed', 'matrix' FROM companies WHERE slug = 'demo' RETURNING id)"
     " SELECT id FROM j",
     NULL, NULL, 404},
    /* every queue conversa runs, the same */
    {"GET", "/api/v1/queues/:name/failed", NULL, "/api/v1/queues/outbound/failed", NULL, 200},
    {"GET", "/api/v1/queues/:name/failed", NULL, "/api/v1/queues/campaigns/failed", NULL, 200},
    {"POST", "/api/v1/queues/:name/failed/retry_all", NULL, "/api/v1/queues/outbound/failed/retry_all", NULL, 200},
    {"POST", "/api/v1/queues/:name/failed/retry_all", NULL, "/api/v1/queues/campaigns/failed/retry_all", NULL, 200},
    {"POST", "/api/v1/queues/:name/failed/:id/retry",
     "WITH j AS (INSERT INTO jobs (company_id, queue, payload, meta, status, last_error) SELECT id, 'outbound',"
     " ''::bytea, '{\"message\": 1}', 'failed', 'matrix' FROM companies WHERE slug = 'demo' RETURNING id)"
     " SELECT id FROM j",
     NULL, NULL, 404, "outbound"},
    {"POST", "/api/v1/queues/:name/failed/:id/retry",
     "WITH j AS (INSERT INTO jobs (company_id, queue, payload, meta, status, last_error) SELECT id, 'campaigns',"
     " ''::bytea, '{\"campaign\": 1, \"contact\": 1}', 'failed', 'matrix' FROM companies WHERE slug = 'demo'"
     " RETURNING id) SELECT id FROM j",
     NULL, NULL, 404, "campaigns"},
    /* public: Meta's calls, refused without the connection's secrets */
    {"GET", "/api/webhooks/meta/:slug", NULL, "/api/webhooks/meta/demo?hub.mode=subscribe&hub.challenge=x", NULL, 403},
    {"POST", "/api/webhooks/meta/:slug", NULL, "/api/webhooks/meta/demo", "{}", 401},
    /* last: it revokes the caller's own (spare) token, and only that */
    {"DELETE", "/api/v1/auth/token", NULL, "/api/v1/auth/token", NULL, 204},
};

/* What the demo company looks like, to check that nothing changed. */
static void demo_fingerprint(char *out, size_t cap)
{
    cr_assert_eq(
        hs_sql(out, cap,
               "SELECT (SELECT string_agg(id || status || coalesce(assignee_id, 0) || updated_at || ':'"
               " || unread_count, ',' ORDER BY id) FROM conversations WHERE company_id = k.id),"
               " (SELECT string_agg(id || coalesce(name, '') || phone_number, ',' ORDER BY id) FROM contacts"
               " WHERE company_id = k.id),"
               " (SELECT string_agg(id || is_read::text, ',' ORDER BY id) FROM notifications WHERE company_id = k.id),"
               " (SELECT string_agg(id || name || slug, ',' ORDER BY id) FROM connections WHERE company_id = k.id),"
               " (SELECT string_agg(id || status, ',' ORDER BY id) FROM campaigns WHERE company_id = k.id"
               " AND name <> 'matrix')"
               " FROM companies k WHERE k.slug = 'demo'"),
        0, "%s", out);
}

/* The path of route with id for :id and queue (webhooks when NULL) for :name. */
static void mx_fill(const char *route, const char *id, const char *queue, char *out, size_t cap)
{
    char tmp[512];
    const char *name = strstr(route, ":name");
    if (name != NULL)
        snprintf(tmp, sizeof(tmp), "%.*s%s%s", (int)(name - route), route, queue != NULL ? queue : "webhooks",
                 name + 5);
    else
        snprintf(tmp, sizeof(tmp), "%s", route);
    const char *at = strstr(tmp, ":id");
    snprintf(out, cap, "%.*s%s%s", (int)(at - tmp), tmp, id, at + 3);
}

Test(matrix, every_route_keeps_companies_apart)
{
    /* every route has at least one case */
    for (size_t i = 0; i != api_nroutes; ++i) {
        int found = 0;
        for (size_t k = 0; k != sizeof(cases) / sizeof(cases[0]); ++k)
            found |=
                strcmp(cases[k].method, api_routes[i].method) == 0 && strcmp(cases[k].route, api_routes[i].path) == 0;
        cr_assert(found, "no matrix case for %s %s", api_routes[i].method, api_routes[i].path);
    }
    char before[16384], after[16384];
    demo_fingerprint(before, sizeof(before));
    for (size_t k = 0; k != sizeof(cases) / sizeof(cases[0]); ++k) {
        const mx_case_t *c = &cases[k];
        char path[512];
        if (c->id_sql != NULL) {
            char id[32];
            cr_assert_eq(hs_sql(id, sizeof(id), "%s", c->id_sql), 0);
            cr_assert(atol(id) > 0, "no demo id for %s %s", c->method, c->route);
            mx_fill(c->route, id, c->queue, path, sizeof(path));
        } else {
            snprintf(path, sizeof(path), "%s", c->path);
        }
        const char *auth = strcmp(c->route, "/api/v1/auth/token") == 0 ? hdr_spare : hdr;
        const char *headers[] = {auth, "Content-Type: application/json", NULL};
        hs_response_t r = hs_request(srv.port, c->method, path, c->body, c->body ? strlen(c->body) : 0, headers);
        if (c->want != 0)
            cr_assert_eq(r.status, c->want, "%s %s: %ld %s", c->method, path, r.status, r.body);
        else
            cr_assert(r.status >= 200 && r.status < 500, "%s %s: %ld %s", c->method, path, r.status, r.body);
        if (c->want == 404 && c->id_sql != NULL) {
            /* the same answer as an id that does not exist */
            char missing[512];
            mx_fill(c->route, "987654321", c->queue, missing, sizeof(missing));
            hs_response_t none =
                hs_request(srv.port, c->method, missing, c->body, c->body ? strlen(c->body) : 0, headers);
            cr_assert_eq(none.status, 404, "%s %s: %ld", c->method, missing, none.status);
            json_t *a = hs_json(&r), *b = hs_json(&none);
            cr_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "error"), "message")),
                             json_string_value(json_object_get(json_object_get(b, "error"), "message")), "%s %s",
                             c->method, c->route);
            json_decref(a);
            json_decref(b);
            hs_response_free(&none);
        }
        for (size_t m = 0; demo_markers[m] != NULL; ++m)
            cr_assert(r.body == NULL || strstr(r.body, demo_markers[m]) == NULL, "%s %s leaked '%s': %s", c->method,
                      path, demo_markers[m], r.body);
        hs_response_free(&r);
    }
    demo_fingerprint(after, sizeof(after));
    cr_assert_str_eq(before, after, "the demo company's data changed");
    /* the spare token is revoked; the main one still works */
    const char *headers[] = {hdr, NULL};
    hs_response_t r = hs_request(srv.port, "GET", "/api/v1/conversations/status", NULL, 0, headers);
    cr_assert_eq(r.status, 200);
    hs_response_free(&r);
}

/* Builds a path for a route, with 1 for any :id. */
static void route_path(const char *tmpl, char *out, size_t cap)
{
    const char *id = strstr(tmpl, ":id");
    if (id == NULL)
        snprintf(out, cap, "%s", tmpl);
    else
        snprintf(out, cap, "%.*s1%s", (int)(id - tmpl), tmpl, id + 3);
}

Test(matrix, every_protected_route_refuses_missing_wrong_and_revoked_tokens)
{
    /* revoke the spare token first, then wait for every loop thread to have forgotten it */
    const char *spare[] = {hdr_spare, NULL};
    hs_response_t r = hs_request(srv.port, "DELETE", "/api/v1/auth/token", NULL, 0, spare);
    cr_assert_eq(r.status, 204);
    hs_response_free(&r);
    /* within 5 s no loop thread accepts it any more */
    double t0 = hs_now_ms();
    int refused = 0;
    while (!refused && hs_now_ms() - t0 < 5000) {
        refused = 1;
        for (int k = 0; k != 8; ++k) {
            r = hs_request(srv.port, "GET", "/api/v1/conversations/status", NULL, 0, spare);
            refused &= r.status == 401;
            hs_response_free(&r);
        }
        if (!refused)
            hs_sleep_ms(100);
    }
    cr_assert(refused, "a revoked token still worked after 5 s");
    static const char *const wrong[] = {"Authorization: Bearer cv_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL};
    for (size_t i = 0; i != api_nroutes; ++i) {
        if (api_routes[i].access == HTTP_PUBLIC)
            continue;
        char path[256];
        route_path(api_routes[i].path, path, sizeof(path));
        const char *const *variants[] = {NULL, wrong, spare};
        for (size_t v = 0; v != 3; ++v) {
            r = hs_request(srv.port, api_routes[i].method, path, "{}", 2, variants[v]);
            cr_assert_eq(r.status, 401, "%s %s (variant %zu): %ld %s", api_routes[i].method, path, v, r.status, r.body);
            hs_response_free(&r);
        }
    }
}
