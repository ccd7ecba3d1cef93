/*
 * Integration tests of authentication and /api/v1/conversations: the real binary, the
 * real database, a second company made here ("acme-<pid>") with enough rows to page
 * through, and the demo company as the neighbour whose data must never show.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static char slug[64];
static hs_server_t srv;
static char *acme_admin, *acme_agent, *demo_admin;
static char acme_admin_hdr[128], acme_agent_hdr[128], demo_admin_hdr[128];

#define ACME_CONVERSATIONS 130
#define ACME_MESSAGES      250

static void acme_create(void)
{
    snprintf(slug, sizeof(slug), "acme-%d", (int)getpid());
    char out[4096];
    hs_company(slug, "Acme");
    int rc =
        hs_sql(out, sizeof(out),
               "INSERT INTO contacts (company_id, phone_number, name)"
               " SELECT c.id, (4930000000 + g)::text, 'Acme Contact ' || g FROM companies c, generate_series(1, %d) g"
               " WHERE c.slug = '%s';"
               "INSERT INTO conversations (company_id, contact_id, status, assignee_id, updated_at, last_message_at)"
               " SELECT ct.company_id, ct.id, (ARRAY['open','pending','resolved'])[1 + ct.id %% 3],"
               " CASE WHEN ct.id %% 4 = 0 THEN NULL ELSE (SELECT id FROM users u WHERE u.company_id = ct.company_id"
               " AND u.role = CASE WHEN ct.id %% 2 = 0 THEN 'admin' ELSE 'agent' END) END,"
               " now() - (ct.id %% 7) * interval '1 hour', now()"
               " FROM contacts ct JOIN companies c ON c.id = ct.company_id WHERE c.slug = '%s';"
               "INSERT INTO messages (company_id, conversation_id, direction, body, status, wamid)"
               " SELECT cv.company_id, cv.id, 'inbound', 'message ' || g, 'received', 'wamid.ACME' || g"
               " FROM (SELECT cv.* FROM conversations cv JOIN companies c ON c.id = cv.company_id WHERE c.slug = '%s'"
               " ORDER BY cv.id LIMIT 1) cv, generate_series(1, %d) g;",
               ACME_CONVERSATIONS, slug, slug, slug, ACME_MESSAGES);
    cr_assert_eq(rc, 0, "%s", out);
    hs_server_start(&srv, NULL);
    char email[128];
    snprintf(email, sizeof(email), "admin@%s.test", slug);
    acme_admin = hs_login(srv.port, email);
    snprintf(email, sizeof(email), "agent@%s.test", slug);
    acme_agent = hs_login(srv.port, email);
    demo_admin = hs_login(srv.port, "admin@demo.conversa.dev");
    hs_bearer(acme_admin_hdr, sizeof(acme_admin_hdr), acme_admin);
    hs_bearer(acme_agent_hdr, sizeof(acme_agent_hdr), acme_agent);
    hs_bearer(demo_admin_hdr, sizeof(demo_admin_hdr), demo_admin);
}

static void acme_drop(void)
{
    if (srv.pid > 0)
        hs_server_stop(&srv);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = '%s'", slug);
    free(acme_admin);
    free(acme_agent);
    free(demo_admin);
}

TestSuite(conversations, .init = acme_create, .fini = acme_drop, .timeout = 120);

static hs_response_t get_as(const char *hdr, const char *path)
{
    const char *headers[] = {hdr, NULL};
    return hs_request(srv.port, "GET", path, NULL, 0, headers);
}

static hs_response_t send_as(const char *hdr, const char *method, const char *path, const char *body)
{
    const char *headers[] = {hdr, "Content-Type: application/json", NULL};
    return hs_request(srv.port, method, path, body, body != NULL ? strlen(body) : 0, headers);
}

static json_t *get_json_as(const char *hdr, const char *path, long want)
{
    hs_response_t r = get_as(hdr, path);
    cr_assert_eq(r.status, want, "GET %s: %ld %s", path, r.status, r.body);
    json_t *j = hs_json(&r);
    cr_assert_not_null(j, "%s", r.body);
    hs_response_free(&r);
    return j;
}

static void expect_invalid(const char *hdr, const char *method, const char *path, const char *body, const char *field)
{
    hs_response_t r = send_as(hdr, method, path, body);
    cr_assert_eq(r.status, 400, "%s %s %s: %ld %s", method, path, body ? body : "", r.status, r.body);
    json_t *j = hs_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "field")), field, "%s", r.body);
    json_decref(j);
    hs_response_free(&r);
}

static long acme_sql_long(const char *fmt_tail)
{
    char out[256];
    cr_assert_eq(hs_sql(out, sizeof(out),
                        "SELECT count(*) FROM conversations c JOIN companies k ON k.id = c.company_id"
                        " WHERE k.slug = '%s' %s",
                        slug, fmt_tail),
                 0, "%s", out);
    return atol(out);
}

Test(conversations, auth_is_required_and_checked)
{
    static const char *const bad[] = {"Authorization: Bearer cv_nope", "Authorization: Basic abc",
                                      "Authorization: Bearer", "Authorization: bearer  ", NULL};
    hs_response_t r = hs_get(srv.port, "/api/v1/conversations");
    cr_assert_eq(r.status, 401);
    char *www = hs_header(&r, "www-authenticate");
    cr_assert_str_eq(www, "Bearer");
    free(www);
    hs_response_free(&r);
    for (size_t i = 0; bad[i] != NULL; ++i) {
        r = get_as(bad[i], "/api/v1/conversations/status");
        cr_assert_eq(r.status, 401, "%s: %ld", bad[i], r.status);
        hs_response_free(&r);
    }
    /* the scheme name is case-insensitive */
    char lower[128];
    snprintf(lower, sizeof(lower), "Authorization: bearer %s", acme_admin);
    r = get_as(lower, "/api/v1/conversations/status");
    cr_assert_eq(r.status, 200);
    hs_response_free(&r);
}

Test(conversations, login_checks_password_and_throttles)
{
    static const char nobody[] = "{\"email\":\"nobody@nowhere.test\",\"password\":\"x\"}";
    hs_response_t r = hs_request(srv.port, "POST", "/api/v1/auth/login", nobody, sizeof(nobody) - 1, NULL);
    cr_assert_eq(r.status, 401, "%s", r.body);
    hs_response_free(&r);
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"email\":\"agent@%s.test\",\"password\":\"wrong\"}", slug);
    int saw_429 = 0;
    for (int i = 0; i != 12 && !saw_429; ++i) {
        r = hs_request(srv.port, "POST", "/api/v1/auth/login", body, (size_t)n, NULL);
        cr_assert(r.status == 401 || r.status == 429, "%ld %s", r.status, r.body);
        if (r.status == 429) {
            char *ra = hs_header(&r, "retry-after");
            cr_assert(ra != NULL && atoi(ra) > 0);
            free(ra);
            saw_429 = 1;
        }
        hs_response_free(&r);
    }
    cr_assert(saw_429, "no throttling after 12 wrong passwords");
    static const char *const bodies[][2] = {
        {"{}", "email"},
        {"{\"email\":\"a@b.c\"}", "password"},
        {"{\"email\":5,\"password\":\"x\"}", "email"},
        {"{\"email\":\"a@b.c\",\"password\":\"x\",\"admin\":true}", "admin"},
        {"not json", "body"},
        {"[1,2]", "body"},
        {"", "body"},
    };
    for (size_t i = 0; i != sizeof(bodies) / sizeof(bodies[0]); ++i)
        expect_invalid("X-None: 1", "POST", "/api/v1/auth/login", bodies[i][0], bodies[i][1]);
}

/*
 * After a revocation: polls with hdr every pause_ms, 4 requests a round (so both loop
 * threads are asked), until a round is refused whole; returns the milliseconds that
 * took, or -1 past deadline_ms. strict: every answer must be 200 or 401 meanwhile.
 */
static double ms_until_refused(const char *hdr, int deadline_ms, int pause_ms, int strict)
{
    double t0 = hs_now_ms();
    while (hs_now_ms() - t0 < deadline_ms) {
        int all_401 = 1;
        for (int i = 0; i != 4; ++i) {
            hs_response_t r = get_as(hdr, "/api/v1/conversations/status");
            if (strict)
                cr_assert(r.status == 200 || r.status == 401, "%ld %s", r.status, r.body);
            all_401 &= r.status == 401;
            hs_response_free(&r);
        }
        if (all_401)
            return hs_now_ms() - t0;
        hs_sleep_ms(pause_ms);
    }
    return -1;
}

Test(conversations, revoked_tokens_stop_within_five_seconds)
{
    char email[128], hdr[128];
    snprintf(email, sizeof(email), "admin@%s.test", slug);
    char *tok = hs_login(srv.port, email);
    hs_bearer(hdr, sizeof(hdr), tok);
    /* warm the token caches of both loop threads */
    for (int i = 0; i != 8; ++i) {
        hs_response_t r = get_as(hdr, "/api/v1/conversations/status");
        cr_assert_eq(r.status, 200);
        hs_response_free(&r);
    }
    hs_response_t r = send_as(hdr, "DELETE", "/api/v1/auth/token", NULL);
    cr_assert_eq(r.status, 204, "%ld %s", r.status, r.body);
    hs_response_free(&r);
    double stopped = ms_until_refused(hdr, 6000, 100, 0);
    cr_assert(stopped >= 0 && stopped <= 5000, "revoked token still worked after %.0f ms", stopped);
    free(tok);
}

/*
 * A revocation committed elsewhere (another process, here psql) reaches no thread's
 * memory of the token: each must stop trusting its answer within the same bound,
 * however often the token is used meanwhile (a cache that renewed its answers on use
 * would keep it alive for ever).
 */
Test(conversations, tokens_in_steady_use_still_stop_when_revoked_elsewhere)
{
    char email[128], hdr[128], out[64];
    snprintf(email, sizeof(email), "agent@%s.test", slug);
    char *tok = hs_login(srv.port, email);
    hs_bearer(hdr, sizeof(hdr), tok);
    /* 6 s of use every 20 ms: more than one answer's life on each thread */
    double t0 = hs_now_ms();
    int n = 0;
    while (hs_now_ms() - t0 < 6000) {
        hs_response_t r = get_as(hdr, "/api/v1/conversations/status");
        cr_assert_eq(r.status, 200, "request %d after %.0f ms: %ld %s", n, hs_now_ms() - t0, r.status, r.body);
        hs_response_free(&r);
        ++n;
        hs_sleep_ms(20);
    }
    cr_assert_eq(hs_sql(out, sizeof(out),
                        "UPDATE api_tokens SET revoked_at = now() WHERE token_hash = sha256(convert_to('%s', 'UTF8'))"
                        " RETURNING 1",
                        tok),
                 0);
    cr_assert_str_eq(out, "1");
    double stopped = ms_until_refused(hdr, 8000, 20, 1);
    cr_assert(stopped >= 0 && stopped <= 5000, "a token revoked in the database still worked after %.0f ms", stopped);
    free(tok);
}

Test(conversations, pages_are_bounded_and_concatenate)
{
    /* the plan's check: page 1 and 2 hold 20 different items each; limit=500 gives 50 */
    json_t *p1 = get_json_as(acme_admin_hdr, "/api/v1/conversations?page=1&limit=20", 200);
    json_t *p2 = get_json_as(acme_admin_hdr, "/api/v1/conversations?page=2&limit=20", 200);
    cr_assert_eq(json_array_size(json_object_get(p1, "data")), 20);
    cr_assert_eq(json_array_size(json_object_get(p2, "data")), 20);
    for (size_t i = 0; i != 20; ++i)
        for (size_t k = 0; k != 20; ++k)
            cr_assert_neq(json_integer_value(json_object_get(json_array_get(json_object_get(p1, "data"), i), "id")),
                          json_integer_value(json_object_get(json_array_get(json_object_get(p2, "data"), k), "id")));
    cr_assert(json_is_false(json_object_get(p1, "cached")));
    json_t *pag = json_object_get(p1, "pagination");
    cr_assert_eq(json_integer_value(json_object_get(pag, "page")), 1);
    cr_assert_eq(json_integer_value(json_object_get(pag, "limit")), 20);
    cr_assert_eq(json_integer_value(json_object_get(pag, "total")), ACME_CONVERSATIONS);
    json_t *item = json_array_get(json_object_get(p1, "data"), 0);
    cr_assert(json_is_string(json_object_get(json_object_get(item, "contact"), "phone_number")));
    cr_assert(json_is_string(json_object_get(json_object_get(item, "contact"), "name")));
    json_decref(p1);
    json_decref(p2);
    json_t *big = get_json_as(acme_admin_hdr, "/api/v1/conversations?limit=500", 200);
    cr_assert_eq(json_array_size(json_object_get(big, "data")), 50);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(big, "pagination"), "limit")), 50);
    json_decref(big);

    /* every page in turn: the full ordered set, each id once */
    long seen[ACME_CONVERSATIONS + 1] = {0};
    int count = 0;
    const char *prev_updated = NULL;
    long prev_id = 0;
    json_t *keep[8] = {0};
    for (int page = 1; page <= 7; ++page) {
        char path[128];
        snprintf(path, sizeof(path), "/api/v1/conversations?page=%d&limit=20", page);
        json_t *j = keep[page] = get_json_as(acme_admin_hdr, path, 200);
        json_t *data = json_object_get(j, "data");
        for (size_t i = 0; i != json_array_size(data); ++i) {
            json_t *it = json_array_get(data, i);
            long id = (long)json_integer_value(json_object_get(it, "id"));
            const char *updated = json_string_value(json_object_get(it, "updated_at"));
            for (int k = 0; k != count; ++k)
                cr_assert_neq(seen[k], id, "id %ld twice", id);
            seen[count++] = id;
            if (prev_updated != NULL) {
                int c = strcmp(updated, prev_updated);
                cr_assert(c < 0 || (c == 0 && id < prev_id), "out of order at id %ld", id);
            }
            prev_updated = updated;
            prev_id = id;
        }
    }
    cr_assert_eq(count, ACME_CONVERSATIONS);
    for (int page = 1; page <= 7; ++page)
        json_decref(keep[page]);
}

Test(conversations, cursors_survive_inserts_between_pages)
{
    long seen[ACME_CONVERSATIONS + 64];
    int count = 0, inserted = 0;
    char path[256] = "/api/v1/conversations?limit=25";
    for (int round = 0; round != 20; ++round) {
        json_t *j = get_json_as(acme_agent_hdr, path, 200);
        json_t *data = json_object_get(j, "data");
        for (size_t i = 0; i != json_array_size(data); ++i) {
            long id = (long)json_integer_value(json_object_get(json_array_get(data, i), "id"));
            for (int k = 0; k != count; ++k)
                cr_assert_neq(seen[k], id, "id %ld twice", id);
            seen[count++] = id;
        }
        const char *next = json_string_value(json_object_get(json_object_get(j, "pagination"), "next_cursor"));
        /* new conversations arrive (newest, so before the cursor) between page requests */
        cr_assert_eq(hs_sql(NULL, 0,
                            "INSERT INTO conversations (company_id, contact_id, status)"
                            " SELECT company_id, id, 'open' FROM contacts WHERE company_id = (SELECT id FROM companies"
                            " WHERE slug = '%s') ORDER BY id LIMIT 2",
                            slug),
                     0);
        inserted += 2;
        if (next == NULL) {
            json_decref(j);
            break;
        }
        snprintf(path, sizeof(path), "/api/v1/conversations?limit=25&cursor=%s", next);
        json_decref(j);
    }
    /* every conversation that existed before the walk was seen exactly once */
    cr_assert_eq(count, ACME_CONVERSATIONS, "saw %d", count);
    cr_assert_eq(hs_sql(NULL, 0,
                        "DELETE FROM conversations WHERE company_id = (SELECT id FROM companies WHERE slug = '%s')"
                        " AND id IN (SELECT id FROM conversations ORDER BY id DESC LIMIT %d)",
                        slug, inserted),
                 0);
}

Test(conversations, status_counts_are_exact_and_follow_changes)
{
    json_t *j = get_json_as(acme_admin_hdr, "/api/v1/conversations/status", 200);
    json_t *d = json_object_get(j, "data");
    cr_assert_eq(json_integer_value(json_object_get(d, "open")), acme_sql_long("AND status = 'open'"));
    cr_assert_eq(json_integer_value(json_object_get(d, "pending")), acme_sql_long("AND status = 'pending'"));
    cr_assert_eq(json_integer_value(json_object_get(d, "resolved")), acme_sql_long("AND status = 'resolved'"));
    cr_assert_eq(json_integer_value(json_object_get(d, "unassigned")),
                 acme_sql_long("AND assignee_id IS NULL AND status <> 'resolved'"));
    char mine[160];
    snprintf(mine, sizeof(mine),
             "AND status <> 'resolved' AND assignee_id = (SELECT id FROM users WHERE email = 'admin@%s.test')", slug);
    cr_assert_eq(json_integer_value(json_object_get(d, "mine")), acme_sql_long(mine));
    long open_before = (long)json_integer_value(json_object_get(d, "open"));
    json_decref(j);

    /* take an open conversation and resolve it */
    char id[32];
    hs_sql(id, sizeof(id),
           "SELECT min(c.id) FROM conversations c JOIN companies k ON k.id = c.company_id WHERE k.slug = '%s' AND"
           " c.status = 'open'",
           slug);
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/conversations/%s", id);
    json_t *before = get_json_as(acme_admin_hdr, path, 200);
    const char *updated_before = json_string_value(json_object_get(json_object_get(before, "data"), "updated_at"));
    hs_response_t r = send_as(acme_admin_hdr, "PATCH", path, "{\"status\":\"resolved\",\"assignee_id\":null}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *after = hs_json(&r);
    json_t *ad = json_object_get(after, "data");
    cr_assert_str_eq(json_string_value(json_object_get(ad, "status")), "resolved");
    cr_assert(json_is_null(json_object_get(ad, "assignee_id")));
    cr_assert(strcmp(json_string_value(json_object_get(ad, "updated_at")), updated_before) > 0);
    json_decref(after);
    json_decref(before);
    hs_response_free(&r);
    j = get_json_as(acme_admin_hdr, "/api/v1/conversations/status", 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "data"), "open")), open_before - 1);
    json_decref(j);
    /* the filtered lists agree with the counts */
    j = get_json_as(acme_admin_hdr, "/api/v1/conversations?status=resolved&assignee=unassigned&limit=50", 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "pagination"), "total")),
                 acme_sql_long("AND status = 'resolved' AND assignee_id IS NULL"));
    json_t *data = json_object_get(j, "data");
    for (size_t i = 0; i != json_array_size(data); ++i) {
        json_t *it = json_array_get(data, i);
        cr_assert_str_eq(json_string_value(json_object_get(it, "status")), "resolved");
        cr_assert(json_is_null(json_object_get(it, "assignee_id")));
    }
    json_decref(j);
    j = get_json_as(acme_agent_hdr, "/api/v1/conversations?assignee=me&limit=50", 200);
    char agent[160];
    snprintf(agent, sizeof(agent), "AND assignee_id = (SELECT id FROM users WHERE email = 'agent@%s.test')", slug);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "pagination"), "total")), acme_sql_long(agent));
    json_decref(j);
}

Test(conversations, bad_input_is_400_with_the_field)
{
    static const char *const gets[][2] = {
        {"/api/v1/conversations?limit=0", "limit"},
        {"/api/v1/conversations?limit=abc", "limit"},
        {"/api/v1/conversations?limit=-5", "limit"},
        {"/api/v1/conversations?page=0", "page"},
        {"/api/v1/conversations?page=99999999999999999999", "page"},
        {"/api/v1/conversations?status=archived", "status"},
        {"/api/v1/conversations?assignee=boss", "assignee"},
        {"/api/v1/conversations?cursor=xyz", "cursor"},
        {"/api/v1/conversations?cursor=1.0", "cursor"},
        {"/api/v1/conversations?cursor=%zz", "cursor"},
        {"/api/v1/conversations/abc", "id"},
        {"/api/v1/conversations/-1", "id"},
        {"/api/v1/conversations/0", "id"},
        {"/api/v1/conversations/1/messages?limit=x", "limit"},
        {"/api/v1/conversations/1/messages?before=0", "before"},
        {"/api/v1/conversations/1/messages?after=-1", "after"},
    };
    for (size_t i = 0; i != sizeof(gets) / sizeof(gets[0]); ++i)
        expect_invalid(acme_admin_hdr, "GET", gets[i][0], NULL, gets[i][1]);
    static const char *const patches[][2] = {
        {"{\"status\":\"archived\"}", "status"},
        {"{\"status\":7}", "status"},
        {"{\"assignee_id\":\"x\"}", "assignee_id"},
        {"{\"assignee_id\":-3}", "assignee_id"},
        {"{\"assignee_id\":1.5}", "assignee_id"},
        {"{\"colour\":\"red\"}", "colour"},
        {"{}", "body"},
        {"{\"status\":\"open\"", "body"},
        {"{\"status\":\"open\",\"status\":\"pending\"}", "body"},
    };
    for (size_t i = 0; i != sizeof(patches) / sizeof(patches[0]); ++i)
        expect_invalid(acme_admin_hdr, "PATCH", "/api/v1/conversations/1", patches[i][0], patches[i][1]);
    /* an assignee from another company is refused, not silently set */
    char demo_user[32], conv[32], body[128], path[96];
    hs_sql(demo_user, sizeof(demo_user), "SELECT id FROM users WHERE email = 'agent@demo.conversa.dev'");
    hs_sql(conv, sizeof(conv),
           "SELECT min(c.id) FROM conversations c JOIN companies k ON k.id = c.company_id WHERE k.slug = '%s'", slug);
    snprintf(body, sizeof(body), "{\"assignee_id\":%s}", demo_user);
    snprintf(path, sizeof(path), "/api/v1/conversations/%s", conv);
    expect_invalid(acme_admin_hdr, "PATCH", path, body, "assignee_id");
}

Test(conversations, messages_page_back_and_forth)
{
    char conv[32], path[160];
    hs_sql(conv, sizeof(conv),
           "SELECT min(c.id) FROM conversations c JOIN companies k ON k.id = c.company_id WHERE k.slug = '%s'", slug);
    long all[ACME_MESSAGES];
    int n = 0;
    long before = 0;
    for (;;) {
        if (before == 0)
            snprintf(path, sizeof(path), "/api/v1/conversations/%s/messages?limit=100", conv);
        else
            snprintf(path, sizeof(path), "/api/v1/conversations/%s/messages?limit=100&before=%ld", conv, before);
        json_t *j = get_json_as(acme_agent_hdr, path, 200);
        json_t *data = json_object_get(j, "data");
        size_t k = json_array_size(data);
        for (size_t i = 0; i != k; ++i) {
            long id = (long)json_integer_value(json_object_get(json_array_get(data, i), "id"));
            cr_assert(n == 0 || id < all[n - 1], "not newest first");
            all[n++] = id;
        }
        before = (long)json_integer_value(json_object_get(json_object_get(j, "pagination"), "next_before"));
        json_decref(j);
        if (k < 100)
            break;
    }
    cr_assert_eq(n, ACME_MESSAGES);
    /* after= gives what is newer than a given message, newest first */
    snprintf(path, sizeof(path), "/api/v1/conversations/%s/messages?limit=10&after=%ld", conv, all[20]);
    json_t *j = get_json_as(acme_agent_hdr, path, 200);
    json_t *data = json_object_get(j, "data");
    cr_assert_eq(json_array_size(data), 10);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(data, 9), "id")), all[19]);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(data, 0), "id")), all[10]);
    json_decref(j);
    /* limit is clamped to 100 */
    snprintf(path, sizeof(path), "/api/v1/conversations/%s/messages?limit=1000", conv);
    j = get_json_as(acme_agent_hdr, path, 200);
    cr_assert_eq(json_array_size(json_object_get(j, "data")), 100);
    json_decref(j);
}

Test(conversations, another_companys_ids_are_not_found)
{
    char demo_conv[32], path[128];
    hs_sql(demo_conv, sizeof(demo_conv),
           "SELECT min(c.id) FROM conversations c JOIN companies k ON k.id = c.company_id"
           " WHERE k.slug = 'demo'");
    static const char *const paths[] = {"/api/v1/conversations/%s", "/api/v1/conversations/%s/messages"};
    for (size_t i = 0; i != 2; ++i) {
        snprintf(path, sizeof(path), paths[i], demo_conv);
        hs_response_t theirs = get_as(acme_admin_hdr, path);
        cr_assert_eq(theirs.status, 404, "%s: %ld %s", path, theirs.status, theirs.body);
        /* exactly like an id that does not exist */
        char missing[128];
        snprintf(missing, sizeof(missing), paths[i], "987654321");
        hs_response_t none = get_as(acme_admin_hdr, missing);
        cr_assert_eq(none.status, 404);
        json_t *a = hs_json(&theirs), *b = hs_json(&none);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "error"), "message")),
                         json_string_value(json_object_get(json_object_get(b, "error"), "message")));
        cr_assert(strstr(theirs.body, "Mariana") == NULL && strstr(theirs.body, "5511") == NULL);
        json_decref(a);
        json_decref(b);
        hs_response_free(&theirs);
        hs_response_free(&none);
    }
    snprintf(path, sizeof(path), "/api/v1/conversations/%s", demo_conv);
    hs_response_t r = send_as(acme_admin_hdr, "PATCH", path, "{\"status\":\"resolved\"}");
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    hs_response_free(&r);
    /* and the demo company's own admin still sees it untouched */
    json_t *j = get_json_as(demo_admin_hdr, path, 200);
    json_decref(j);
    /* lists and counts never include the neighbour's rows */
    j = get_json_as(acme_admin_hdr, "/api/v1/conversations/status", 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "data"), "total")), acme_sql_long(""));
    json_decref(j);
}

/* ---- users ---- */

/* A page of users as "id:name:email:role,…", each item checked to hold exactly those four fields. */
static char *users_text(json_t *j)
{
    json_t *data = json_object_get(j, "data");
    cr_assert(json_is_array(data));
    size_t cap = 65536, len = 0, i;
    char *out = calloc(1, cap);
    json_t *u;
    json_array_foreach (data, i, u) {
        cr_assert_eq(json_object_size(u), 4, "a user with other fields than id, name, email, role");
        cr_assert(json_is_integer(json_object_get(u, "id")));
        len += (size_t)snprintf(
            out + len, cap - len, "%s%lld:%s:%s:%s", len ? "," : "",
            (long long)json_integer_value(json_object_get(u, "id")), json_string_value(json_object_get(u, "name")),
            json_string_value(json_object_get(u, "email")), json_string_value(json_object_get(u, "role")));
        cr_assert(len < cap);
    }
    return out;
}

/* The users of company `where` (SQL on k), as users_text() renders them, first `limit`. */
static void users_want(char *out, size_t cap, const char *where, int limit)
{
    cr_assert_eq(hs_sql(out, cap,
                        "SELECT coalesce(string_agg(id || ':' || name || ':' || email || ':' || role, ',' ORDER BY id),"
                        " '') FROM (SELECT u.* FROM users u JOIN companies k ON k.id = u.company_id WHERE %s"
                        " ORDER BY u.id LIMIT %d) u",
                        where, limit),
                 0, "%s", out);
}

Test(conversations, users_are_the_callers_company_only)
{
    /* a third colleague whose name needs escaping in JSON */
    cr_assert_eq(hs_sql(NULL, 0,
                        "INSERT INTO users (company_id, email, name, role) SELECT id, 'zoe@%s.test',"
                        " 'Zoë \"Z\" O''Neil \\ ☃', 'agent' FROM companies WHERE slug = '%s'",
                        slug, slug),
                 0);
    char where[128], want[4096];
    snprintf(where, sizeof(where), "k.slug = '%s'", slug);
    users_want(want, sizeof(want), where, 1000);
    cr_assert(strstr(want, "Zoë \"Z\" O'Neil \\ ☃") != NULL, "%s", want);
    /* an agent reads them as an admin does: assigning to a colleague needs their ids */
    const char *hdrs[] = {acme_admin_hdr, acme_agent_hdr};
    for (size_t i = 0; i != 2; ++i) {
        json_t *j = get_json_as(hdrs[i], "/api/v1/users", 200);
        cr_assert_eq(json_object_size(j), 1, "only data");
        char *got = users_text(j);
        cr_assert_str_eq(got, want);
        cr_assert(strstr(got, "demo.conversa.dev") == NULL);
        free(got);
        json_decref(j);
    }
    hs_response_t r = get_as(acme_admin_hdr, "/api/v1/users");
    cr_assert(strstr(r.body, "password") == NULL && strstr(r.body, "argon2") == NULL, "%s", r.body);
    hs_response_free(&r);
    /* the neighbour sees its own, none of these */
    json_t *j = get_json_as(demo_admin_hdr, "/api/v1/users", 200);
    char *got = users_text(j);
    users_want(want, sizeof(want), "k.slug = 'demo'", 1000);
    cr_assert_str_eq(got, want);
    cr_assert(strstr(got, slug) == NULL, "%s", got);
    free(got);
    json_decref(j);
    /* no token; the methods and paths that do not exist */
    r = hs_get(srv.port, "/api/v1/users");
    cr_assert_eq(r.status, 401);
    hs_response_free(&r);
    r = send_as(acme_admin_hdr, "POST", "/api/v1/users", "{\"name\":\"x\"}");
    cr_assert_eq(r.status, 405, "%ld %s", r.status, r.body);
    hs_response_free(&r);
    r = get_as(acme_admin_hdr, "/api/v1/users/1");
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    hs_response_free(&r);
}

Test(conversations, users_are_capped_at_a_thousand)
{
    cr_assert_eq(hs_sql(NULL, 0,
                        "INSERT INTO users (company_id, email, name) SELECT k.id, 'u' || g || '@%s.test', 'User ' || g"
                        " FROM companies k, generate_series(1, 1000) g WHERE k.slug = '%s'",
                        slug, slug),
                 0);
    char where[128];
    snprintf(where, sizeof(where), "k.slug = '%s'", slug);
    char *want = calloc(1, 65536);
    users_want(want, 65536, where, 1000);
    json_t *j = get_json_as(acme_agent_hdr, "/api/v1/users", 200);
    cr_assert_eq(json_array_size(json_object_get(j, "data")), 1000);
    char *got = users_text(j);
    cr_assert_str_eq(got, want, "the first thousand by id");
    free(got);
    free(want);
    json_decref(j);
}

/* ---- marking a conversation read ---- */

/* The item of conversation id in a list page (NULL when absent). */
static json_t *list_item(json_t *page, long long id)
{
    size_t i;
    json_t *c;
    json_array_foreach (json_object_get(page, "data"), i, c) {
        if (json_integer_value(json_object_get(c, "id")) == id)
            return c;
    }
    return NULL;
}

static long acme_unread(const char *id)
{
    char out[32];
    cr_assert_eq(hs_sql(out, sizeof(out), "SELECT unread_count FROM conversations WHERE id = %s", id), 0, "%s", out);
    return atol(out);
}

Test(conversations, read_clears_the_unread_count_and_the_list_follows)
{
    char conv[32], path[96], read[96];
    cr_assert_eq(hs_sql(conv, sizeof(conv),
                        "SELECT min(c.id) FROM conversations c JOIN companies k ON k.id = c.company_id"
                        " WHERE k.slug = '%s' AND c.status = 'open'",
                        slug),
                 0);
    snprintf(path, sizeof(path), "/api/v1/conversations/%s", conv);
    snprintf(read, sizeof(read), "/api/v1/conversations/%s/read", conv);
    /* four messages nobody read, straight in the database; the PATCH is a real write, which
     * bumps the lists' generation (so the cache agrees) and puts it first in the open list */
    cr_assert_eq(hs_sql(NULL, 0, "UPDATE conversations SET unread_count = 4 WHERE id = %s", conv), 0);
    hs_response_t r = send_as(acme_admin_hdr, "PATCH", path, "{\"status\":\"open\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    hs_response_free(&r);
    const char *list = "/api/v1/conversations?status=open&limit=10";
    for (int i = 0; i != 2; ++i) { /* a miss, then (most likely) a hit: both show 4 */
        json_t *p = get_json_as(acme_agent_hdr, list, 200);
        json_t *item = json_array_get(json_object_get(p, "data"), 0);
        cr_assert_eq(json_integer_value(json_object_get(item, "id")), atoll(conv));
        cr_assert_eq(json_integer_value(json_object_get(item, "unread_count")), 4);
        json_decref(p);
    }
    json_t *before = get_json_as(acme_agent_hdr, path, 200);
    json_t *bd = json_object_get(before, "data");
    cr_assert_eq(json_integer_value(json_object_get(bd, "unread_count")), 4);

    /* the answer is the conversation as GET and PATCH give it, with nothing else changed:
     * reading is no news, so updated_at (the lists' order) stays */
    r = send_as(acme_agent_hdr, "POST", read, NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    json_t *after = hs_json(&r);
    char *first = strdup(r.body);
    hs_response_free(&r);
    json_t *ad = json_object_get(after, "data");
    cr_assert_eq(json_object_size(after), 1);
    cr_assert_eq(json_integer_value(json_object_get(ad, "unread_count")), 0);
    json_object_set_new(bd, "unread_count", json_integer(0));
    cr_assert(json_equal(ad, bd), "the read changed more than unread_count");
    json_decref(before);
    json_decref(after);
    cr_assert_eq(acme_unread(conv), 0);

    /* the list right after: 0, at once, in the same place */
    json_t *p = get_json_as(acme_admin_hdr, list, 200);
    json_t *item = json_array_get(json_object_get(p, "data"), 0);
    cr_assert_eq(json_integer_value(json_object_get(item, "id")), atoll(conv), "reading moved it in the list");
    cr_assert_eq(json_integer_value(json_object_get(item, "unread_count")), 0, "the list still shows it unread");
    json_decref(p);
    p = get_json_as(acme_admin_hdr, "/api/v1/conversations?limit=50", 200);
    item = list_item(p, atoll(conv));
    cr_assert_not_null(item);
    cr_assert_eq(json_integer_value(json_object_get(item, "unread_count")), 0);
    json_decref(p);

    /* idempotent: the same answer again, nothing changes */
    r = send_as(acme_admin_hdr, "POST", read, NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(r.body, first);
    hs_response_free(&r);
    free(first);
    cr_assert_eq(acme_unread(conv), 0);

    /* a message arriving afterwards counts again, and the next read clears it */
    cr_assert_eq(hs_sql(NULL, 0, "UPDATE conversations SET unread_count = unread_count + 1 WHERE id = %s", conv), 0);
    json_t *again = NULL;
    r = send_as(acme_agent_hdr, "POST", read, "");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    again = hs_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(again, "data"), "unread_count")), 0);
    json_decref(again);
    hs_response_free(&r);
    cr_assert_eq(acme_unread(conv), 0);
    /* the status counts are not moved by a read */
    json_t *s1 = get_json_as(acme_admin_hdr, "/api/v1/conversations/status", 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(s1, "data"), "open")),
                 acme_sql_long("AND status = 'open'"));
    json_decref(s1);
}

Test(conversations, read_of_unknown_or_another_companys_conversation_is_not_found)
{
    char demo_conv[32], demo_before[32], demo_after[32], acme_conv[32], path[128];
    cr_assert_eq(hs_sql(demo_conv, sizeof(demo_conv),
                        "SELECT min(c.id) FROM conversations c JOIN companies k ON k.id = c.company_id"
                        " WHERE k.slug = 'demo'"),
                 0);
    cr_assert_eq(hs_sql(demo_before, sizeof(demo_before),
                        "SELECT unread_count || ':' || updated_at FROM conversations WHERE id = %s", demo_conv),
                 0);
    snprintf(path, sizeof(path), "/api/v1/conversations/%s/read", demo_conv);
    hs_response_t theirs = send_as(acme_admin_hdr, "POST", path, NULL);
    cr_assert_eq(theirs.status, 404, "%ld %s", theirs.status, theirs.body);
    hs_response_t none = send_as(acme_admin_hdr, "POST", "/api/v1/conversations/987654321/read", NULL);
    cr_assert_eq(none.status, 404, "%ld %s", none.status, none.body);
    /* exactly like an id that does not exist, and nothing of theirs in it */
    json_t *a = hs_json(&theirs), *b = hs_json(&none);
    cr_assert_null(json_object_get(a, "data"));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "error"), "code")), "not_found");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "error"), "message")),
                     json_string_value(json_object_get(json_object_get(b, "error"), "message")));
    cr_assert(strstr(theirs.body, "Mariana") == NULL && strstr(theirs.body, "5511") == NULL, "%s", theirs.body);
    json_decref(a);
    json_decref(b);
    hs_response_free(&theirs);
    hs_response_free(&none);
    cr_assert_eq(hs_sql(demo_after, sizeof(demo_after),
                        "SELECT unread_count || ':' || updated_at FROM conversations WHERE id = %s", demo_conv),
                 0);
    cr_assert_str_eq(demo_after, demo_before, "another company's conversation changed");
    /* and the other way round: the neighbour cannot clear ours */
    cr_assert_eq(hs_sql(acme_conv, sizeof(acme_conv),
                        "UPDATE conversations SET unread_count = 2 WHERE id = (SELECT min(c.id) FROM conversations c"
                        " JOIN companies k ON k.id = c.company_id WHERE k.slug = '%s') RETURNING id",
                        slug),
                 0);
    snprintf(path, sizeof(path), "/api/v1/conversations/%s/read", acme_conv);
    hs_response_t r = send_as(demo_admin_hdr, "POST", path, NULL);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    hs_response_free(&r);
    cr_assert_eq(acme_unread(acme_conv), 2);

    /* ids that are not ids: 400 naming the field, before any query */
    static const char *const bad[] = {"abc", "0", "-1", "1.5", "99999999999999999999", "1e3", "%20"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        snprintf(path, sizeof(path), "/api/v1/conversations/%s/read", bad[i]);
        expect_invalid(acme_admin_hdr, "POST", path, NULL, "id");
    }
    /* other methods, no token */
    snprintf(path, sizeof(path), "/api/v1/conversations/%s/read", acme_conv);
    r = get_as(acme_admin_hdr, path);
    cr_assert_eq(r.status, 405, "%ld %s", r.status, r.body);
    char *allow = hs_header(&r, "allow");
    cr_assert(allow != NULL && strstr(allow, "POST") != NULL, "%s", allow ? allow : "(no Allow)");
    free(allow);
    hs_response_free(&r);
    r = hs_request(srv.port, "POST", path, NULL, 0, NULL);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    hs_response_free(&r);
    cr_assert_eq(acme_unread(acme_conv), 2, "a refused read changed the count");
}
