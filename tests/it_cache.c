/*
 * Integration tests of the response cache: real Redis, real PostgreSQL, the real
 * binary, three processes.
 *
 *   A, B    two `serve` processes sharing Redis, caching (the readers and writers)
 *   O       an oracle: CACHE_ENABLED=0, every answer straight from PostgreSQL
 *
 * After every write, wherever it was made, a read anywhere must equal the oracle's
 * answer (apart from the "cached" flag). Data lives in a company of this test's own
 * ("it-ca-<pid>"), deleted at the end; the demo company is only read.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static char ca_slug[32];
static hs_server_t ca_a, ca_b, ca_o;
static char *ca_admin, *ca_agent, *ca_demo;
static int64_t ca_conv[3], ca_contact, ca_agent_id;

static int64_t ca_sql_int(const char *fmt, const char *arg)
{
    char out[64], sql[1024];
    snprintf(sql, sizeof(sql), fmt, arg);
    cr_assert_eq(hs_sql(out, sizeof(out), "%s", sql), 0, "%s: %s", sql, out);
    return strtoll(out, NULL, 10);
}

static void ca_setup(void)
{
    snprintf(ca_slug, sizeof(ca_slug), "it-ca-%d", (int)getpid());
    char out[512];
    hs_company(ca_slug, "Cache test");
    int rc =
        hs_sql(out, sizeof(out),
               "INSERT INTO contacts (company_id, phone_number, name)"
               " SELECT c.id, '5511900000' || g, 'Contact ' || g FROM companies c, generate_series(1, 3) g"
               " WHERE c.slug = '%s';"
               "INSERT INTO connections (company_id, slug, name) SELECT id, slug || '-wa', 'Cache'"
               " FROM companies WHERE slug = '%s';"
               "INSERT INTO conversations (company_id, contact_id, connection_id, status, last_message_at,"
               " updated_at)"
               " SELECT k.company_id, k.id, n.id, 'open', now() - k.id * interval '1 minute',"
               " now() - k.id * interval '1 minute' FROM contacts k JOIN connections n ON n.company_id = k.company_id"
               " WHERE k.company_id = (SELECT id FROM companies WHERE slug = '%s');"
               "INSERT INTO messages (company_id, conversation_id, direction, body, status)"
               " SELECT company_id, id, 'inbound', 'Hello ' || g, 'received' FROM conversations,"
               " generate_series(1, 4) g WHERE company_id = (SELECT id FROM companies WHERE slug = '%s');"
               "INSERT INTO notifications (company_id, user_id, type, title)"
               " SELECT u.company_id, u.id, 'message.received', 'Note ' || g FROM users u, generate_series(1, 6) g"
               " WHERE u.email = 'admin@%s.test';",
               ca_slug, ca_slug, ca_slug, ca_slug, ca_slug);
    cr_assert_eq(rc, 0, "%s", out);
    for (int i = 0; i != 3; ++i) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT id FROM conversations WHERE company_id = (SELECT id FROM companies WHERE slug = '%%s')"
                 " ORDER BY id LIMIT 1 OFFSET %d",
                 i);
        ca_conv[i] = ca_sql_int(sql, ca_slug);
    }
    ca_contact = ca_sql_int("SELECT contact_id FROM conversations WHERE id = (SELECT min(id) FROM conversations"
                            " WHERE company_id = (SELECT id FROM companies WHERE slug = '%s'))",
                            ca_slug);
    char email[96];
    snprintf(email, sizeof(email), "agent@%s.test", ca_slug);
    ca_agent_id = ca_sql_int("SELECT id FROM users WHERE email = '%s'", email);

    /* no sending: a reply's send would change the message behind the oracle's back
     * between the two reads that are compared (sending has its own tests) */
    static const char *const env[] = {"SEND_CONCURRENCY=0", NULL};
    static const char *const oracle_env[] = {"CACHE_ENABLED=0", "SEND_CONCURRENCY=0", NULL};
    hs_server_start(&ca_a, env);
    hs_server_start(&ca_b, env);
    hs_server_start(&ca_o, oracle_env);
    snprintf(email, sizeof(email), "admin@%s.test", ca_slug);
    ca_admin = hs_login(ca_a.port, email);
    snprintf(email, sizeof(email), "agent@%s.test", ca_slug);
    ca_agent = hs_login(ca_a.port, email);
    ca_demo = hs_login(ca_a.port, "admin@demo.conversa.dev");
}

static void ca_teardown(void)
{
    hs_stack("redis-thaw");
    hs_stack("redis-start");
    hs_stack("pg-thaw");
    /* a clean exit: under the sanitizers, a leak or an error makes it non-zero */
    if (ca_a.pid > 0)
        cr_expect_eq(hs_server_stop(&ca_a), 0, "server A did not exit cleanly");
    if (ca_b.pid > 0)
        cr_expect_eq(hs_server_stop(&ca_b), 0, "server B did not exit cleanly");
    if (ca_o.pid > 0)
        cr_expect_eq(hs_server_stop(&ca_o), 0, "the oracle did not exit cleanly");
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = '%s'", ca_slug);
    free(ca_admin);
    free(ca_agent);
    free(ca_demo);
}

TestSuite(cache, .init = ca_setup, .fini = ca_teardown, .timeout = 90);

/* ---- helpers ---- */

/* The X-Cache value of a response ("" when absent), in a static buffer. */
static const char *ca_xcache(const hs_response_t *r)
{
    static __thread char buf[16];
    char *v = hs_header(r, "x-cache");
    snprintf(buf, sizeof(buf), "%s", v != NULL ? v : "");
    free(v);
    return buf;
}

/* The body with its "cached" flag set to false, for comparing (caller frees). */
static char *ca_plain(const hs_response_t *r)
{
    json_t *j = hs_json(r);
    cr_assert_not_null(j, "not JSON: %s", r->body);
    json_t *flag = json_object_get(j, "cached");
    cr_assert(json_is_boolean(flag), "no \"cached\" flag: %s", r->body);
    const char *xc = ca_xcache(r);
    cr_assert_eq(json_is_true(flag), strcmp(xc, "HIT") == 0, "cached=%s with X-Cache %s",
                 json_is_true(flag) ? "true" : "false", xc);
    json_object_set_new(j, "cached", json_false());
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    return s;
}

/* GET path on port: 200, and equal to the oracle's answer at this moment. Returns X-Cache. */
static const char *ca_read_fresh(int port, const char *path, const char *token)
{
    hs_response_t r = hs_call(port, "GET", path, token, NULL);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
    hs_response_t o = hs_call(ca_o.port, "GET", path, token, NULL);
    cr_assert_eq(o.status, 200, "oracle GET %s: %ld %s", path, o.status, o.body);
    cr_assert_str_eq(ca_xcache(&o), "BYPASS");
    char *got = ca_plain(&r), *want = ca_plain(&o);
    cr_assert_str_eq(got, want, "GET %s on port %d (X-Cache %s) is stale", path, port, ca_xcache(&r));
    free(got);
    free(want);
    static __thread char xc[16];
    snprintf(xc, sizeof(xc), "%s", ca_xcache(&r));
    hs_response_free(&r);
    hs_response_free(&o);
    return xc;
}

/* Reads path until it is a HIT (at most twice: a MISS fills it). */
static void ca_warm(int port, const char *path, const char *token)
{
    const char *x = ca_read_fresh(port, path, token);
    if (strcmp(x, "HIT") != 0)
        x = ca_read_fresh(port, path, token);
    cr_assert_str_eq(x, "HIT", "GET %s did not become a HIT", path);
}

static json_t *ca_write(int port, const char *method, const char *path, const char *token, const char *body, long want)
{
    hs_response_t r = hs_call(port, method, path, token, body);
    cr_assert_eq(r.status, want, "%s %s: %ld %s", method, path, r.status, r.body);
    json_t *j = r.len != 0 ? hs_json(&r) : NULL;
    hs_response_free(&r);
    return j;
}

/* A counter from /api/metrics, summed over its labels (lines starting with name). */
static uint64_t ca_metric(int port, const char *name)
{
    hs_response_t r = hs_get(port, "/api/metrics");
    cr_assert_eq(r.status, 200);
    uint64_t sum = 0;
    size_t nl = strlen(name);
    for (const char *p = r.body; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, nl) == 0 && (p[nl] == '{' || p[nl] == ' ')) {
            const char *v = strchr(p, ' ');
            sum += strtoull(v + 1, NULL, 10);
        }
    }
    hs_response_free(&r);
    return sum;
}

/*
 * The heart of the contract: warm `reads` on A and B, make the write on `writer`,
 * then every read, on both, must equal the oracle at once (and not be a HIT of the
 * old generation).
 */
static void ca_write_then_read(int writer, const char *const *reads, const char *token, const char *method,
                               const char *path, const char *body, long want)
{
    for (const char *const *p = reads; *p; ++p) {
        ca_warm(ca_a.port, *p, token);
        ca_warm(ca_b.port, *p, token);
    }
    json_t *j = ca_write(writer, method, path, token, body, want);
    json_decref(j);
    for (const char *const *p = reads; *p; ++p) {
        const char *xa = ca_read_fresh(ca_a.port, *p, token);
        cr_assert_str_neq(xa, "HIT", "after %s %s, GET %s was a HIT on A", method, path, *p);
        ca_read_fresh(ca_b.port, *p, token);
    }
}

/* ---- a first request misses, the second hits with the same bytes ---- */

Test(cache, miss_then_hit_same_body)
{
    char paths[6][96];
    snprintf(paths[0], sizeof(paths[0]), "/api/v1/conversations/status");
    snprintf(paths[1], sizeof(paths[1]), "/api/v1/conversations?page=1&limit=7");
    snprintf(paths[2], sizeof(paths[2]), "/api/v1/conversations/%" PRId64 "/messages?limit=3", ca_conv[2]);
    snprintf(paths[3], sizeof(paths[3]), "/api/v1/notifications?limit=4&page=2");
    snprintf(paths[4], sizeof(paths[4]), "/api/v1/notifications/unread_count");
    snprintf(paths[5], sizeof(paths[5]), "/api/v1/connections");
    /* new generations for every scope read below, so each first read is cold */
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/conversations/%" PRId64, ca_conv[2]);
    json_decref(ca_write(ca_a.port, "PATCH", path, ca_agent, "{\"status\":\"open\"}", 200));
    snprintf(path, sizeof(path), "/api/v1/conversations/%" PRId64 "/messages", ca_conv[2]);
    json_decref(ca_write(ca_a.port, "POST", path, ca_agent, "{\"text\":\"cold\"}", 201));
    json_decref(ca_write(ca_a.port, "POST", "/api/v1/notifications/read_all", ca_agent, NULL, 200));
    char body[256];
    snprintf(body, sizeof(body), "{\"name\":\"Cold\",\"slug\":\"%s-cold\",\"phone_number_id\":\"%d\"}", ca_slug,
             800000 + (int)getpid());
    json_t *created = ca_write(ca_a.port, "POST", "/api/v1/connections", ca_admin, body, 201);
    json_decref(created);
    for (int i = 0; i != 6; ++i) {
        const char *tok = i == 5 ? ca_admin : ca_agent;
        hs_response_t m = hs_call(ca_a.port, "GET", paths[i], tok, NULL);
        hs_response_t h = hs_call(ca_a.port, "GET", paths[i], tok, NULL);
        cr_assert_eq(m.status, 200, "%s: %ld %s", paths[i], m.status, m.body);
        cr_assert_eq(h.status, 200, "%s: %ld %s", paths[i], h.status, h.body);
        cr_assert_str_eq(ca_xcache(&m), "MISS", "%s", paths[i]);
        cr_assert_str_eq(ca_xcache(&h), "HIT", "%s", paths[i]);
        /* the same bytes, but for the flag */
        static const char f[] = "\"cached\" : false}", t[] = "\"cached\" : true}";
        cr_assert(m.len >= sizeof(f) - 1 && strcmp(m.body + m.len - (sizeof(f) - 1), f) == 0, "%s", m.body);
        cr_assert(h.len >= sizeof(t) - 1 && strcmp(h.body + h.len - (sizeof(t) - 1), t) == 0, "%s", h.body);
        cr_assert_eq(h.len, m.len - 1);
        cr_assert(memcmp(m.body, h.body, m.len - (sizeof(f) - 1)) == 0, "%s\n%s", m.body, h.body);
        hs_response_free(&m);
        hs_response_free(&h);
    }
    /* the debug lines are off at the default level */
    char *log = hs_server_log(&ca_a);
    cr_assert(strstr(log, "cache hit") == NULL, "debug lines at the default level");
    free(log);
    char id[32];
    cr_assert_eq(hs_sql(id, sizeof(id), "SELECT id FROM connections WHERE slug = '%s-cold'", ca_slug), 0);
    snprintf(path, sizeof(path), "/api/v1/connections/%s", id);
    json_decref(ca_write(ca_a.port, "DELETE", path, ca_admin, NULL, 204));
}

Test(cache, debug_log_names_hits_and_misses)
{
    static const char *const env[] = {"LOG_LEVEL=debug", NULL};
    hs_server_t d;
    hs_server_start(&d, env);
    json_decref(ca_write(d.port, "POST", "/api/v1/notifications/read_all", ca_admin, NULL, 200));
    hs_response_t m = hs_call(d.port, "GET", "/api/v1/notifications/unread_count", ca_admin, NULL);
    hs_response_t h = hs_call(d.port, "GET", "/api/v1/notifications/unread_count", ca_admin, NULL);
    cr_assert_str_eq(ca_xcache(&m), "MISS");
    cr_assert_str_eq(ca_xcache(&h), "HIT");
    hs_response_free(&m);
    hs_response_free(&h);
    char *log = NULL;
    for (double end = hs_now_ms() + 5000; hs_now_ms() < end; hs_sleep_ms(50)) {
        free(log);
        log = hs_server_log(&d);
        if (strstr(log, "cache hit {c:") != NULL && strstr(log, "cache miss {c:") != NULL)
            break;
    }
    cr_assert(strstr(log, "cache miss {c:") != NULL && strstr(log, ":notifications_unread:") != NULL, "%s", log);
    cr_assert(strstr(log, "cache hit {c:") != NULL, "%s", log);
    free(log);
    cr_assert_eq(hs_server_stop(&d), 0, "conversa did not exit cleanly (see its log for sanitizer reports)");
}

/* ---- every write path, then a read: same process and the other one ---- */

Test(cache, conversation_status_change)
{
    char patch[64];
    snprintf(patch, sizeof(patch), "/api/v1/conversations/%" PRId64, ca_conv[0]);
    const char *reads[] = {"/api/v1/conversations/status", "/api/v1/conversations?page=1&limit=20",
                           "/api/v1/conversations?status=pending&limit=20", NULL};
    static const char *const st[] = {"{\"status\":\"pending\"}", "{\"status\":\"resolved\"}", "{\"status\":\"open\"}"};
    for (int i = 0; i != 6; ++i)
        ca_write_then_read(i % 2 ? ca_b.port : ca_a.port, reads, ca_admin, "PATCH", patch, st[i % 3], 200);
    /* and tightly: write on one process, read on the other at once, many times */
    for (int i = 0; i != 40; ++i) {
        json_decref(ca_write(i % 2 ? ca_a.port : ca_b.port, "PATCH", patch, ca_admin, st[i % 3], 200));
        ca_read_fresh(i % 2 ? ca_b.port : ca_a.port, "/api/v1/conversations/status", ca_admin);
    }
}

Test(cache, conversation_assignee_change)
{
    char patch[64], assign[64];
    snprintf(patch, sizeof(patch), "/api/v1/conversations/%" PRId64, ca_conv[1]);
    snprintf(assign, sizeof(assign), "{\"assignee_id\":%" PRId64 "}", ca_agent_id);
    const char *reads[] = {"/api/v1/conversations/status", "/api/v1/conversations?assignee=unassigned",
                           "/api/v1/conversations?assignee=me", NULL};
    ca_write_then_read(ca_a.port, reads, ca_agent, "PATCH", patch, assign, 200);
    ca_write_then_read(ca_b.port, reads, ca_agent, "PATCH", patch, "{\"assignee_id\":null}", 200);
    ca_write_then_read(ca_b.port, reads, ca_agent, "PATCH", patch, assign, 200);
    ca_write_then_read(ca_a.port, reads, ca_agent, "PATCH", patch, "{\"assignee_id\":null}", 200);
}

Test(cache, new_message)
{
    char post[96], msgs[96];
    snprintf(post, sizeof(post), "/api/v1/conversations/%" PRId64 "/messages", ca_conv[1]);
    snprintf(msgs, sizeof(msgs), "/api/v1/conversations/%" PRId64 "/messages?limit=2", ca_conv[1]);
    const char *reads[] = {msgs, "/api/v1/conversations?page=1&limit=20", NULL};
    for (int i = 0; i != 4; ++i) {
        char body[64];
        snprintf(body, sizeof(body), "{\"text\":\"reply %d from the cache test\"}", i);
        ca_write_then_read(i % 2 ? ca_b.port : ca_a.port, reads, ca_admin, "POST", post, body, 201);
    }
    hs_response_t r = hs_call(ca_a.port, "GET", msgs, ca_admin, NULL);
    cr_assert(strstr(r.body, "reply 3 from the cache test") != NULL, "%s", r.body);
    hs_response_free(&r);
}

/*
 * Makes every notification of the own admin unread again, straight in the database,
 * behind the cache's back; then marks the oldest read through the API, a real change
 * that bumps the generation, so the cache agrees with the database again. Returns
 * the ids, oldest first, space separated.
 */
static void ca_notifications_reset(char *ids, size_t cap)
{
    char email[96];
    snprintf(email, sizeof(email), "admin@%s.test", ca_slug);
    cr_assert_eq(hs_sql(ids, cap,
                        "UPDATE notifications SET is_read = false, read_at = NULL"
                        " WHERE user_id = (SELECT id FROM users WHERE email = '%s');"
                        "SELECT string_agg(id::text, ' ' ORDER BY id) FROM notifications"
                        " WHERE user_id = (SELECT id FROM users WHERE email = '%s')",
                        email, email),
                 0, "%s", ids);
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/notifications/%.*s/read", (int)strcspn(ids, " "), ids);
    json_decref(ca_write(ca_a.port, "POST", path, ca_admin, NULL, 200));
}

Test(cache, notification_read)
{
    const char *reads[] = {"/api/v1/notifications?limit=20", "/api/v1/notifications?unread=true",
                           "/api/v1/notifications/unread_count", NULL};
    char ids[256];
    ca_notifications_reset(ids, sizeof(ids));
    char *save, *tok = strtok_r(ids, " ", &save);
    tok = strtok_r(NULL, " ", &save); /* the first one is read already */
    for (int i = 0; tok != NULL && i != 4; ++i, tok = strtok_r(NULL, " ", &save)) {
        char path[96];
        snprintf(path, sizeof(path), "/api/v1/notifications/%s/read", tok);
        ca_write_then_read(i % 2 ? ca_b.port : ca_a.port, reads, ca_admin, "POST", path, NULL, 200);
    }
}

Test(cache, repeated_read_changes_nothing)
{
    /* reading a notification that is read already changes no body: the cache stays warm */
    char ids[256];
    ca_notifications_reset(ids, sizeof(ids));
    const char *reads[] = {"/api/v1/notifications?limit=20", "/api/v1/notifications/unread_count", NULL};
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/notifications/%.*s/read", (int)strcspn(ids, " "), ids);
    uint64_t bumps = ca_metric(ca_b.port, "cache_generation_bumps_total");
    for (const char *const *p = reads; *p; ++p)
        ca_warm(ca_a.port, *p, ca_admin);
    json_t *j = ca_write(ca_b.port, "POST", path, ca_admin, NULL, 200);
    cr_assert(json_is_true(json_object_get(json_object_get(j, "data"), "is_read")));
    json_decref(j);
    cr_assert_eq(ca_metric(ca_b.port, "cache_generation_bumps_total"), bumps, "a no-op read bumped");
    for (const char *const *p = reads; *p; ++p)
        cr_assert_str_eq(ca_read_fresh(ca_a.port, *p, ca_admin), "HIT");
    /* and read_all with nothing unread is the same */
    hs_sql(NULL, 0,
           "UPDATE notifications SET is_read = true, read_at = coalesce(read_at, now())"
           " WHERE user_id = (SELECT id FROM users WHERE email = 'admin@%s.test')",
           ca_slug);
    ca_notifications_reset(ids, sizeof(ids));
    json_decref(ca_write(ca_a.port, "POST", "/api/v1/notifications/read_all", ca_admin, NULL, 200));
    for (const char *const *p = reads; *p; ++p)
        ca_warm(ca_a.port, *p, ca_admin);
    bumps = ca_metric(ca_a.port, "cache_generation_bumps_total");
    j = ca_write(ca_a.port, "POST", "/api/v1/notifications/read_all", ca_admin, NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "data"), "updated")), 0);
    json_decref(j);
    cr_assert_eq(ca_metric(ca_a.port, "cache_generation_bumps_total"), bumps, "an empty read_all bumped");
    for (const char *const *p = reads; *p; ++p)
        cr_assert_str_eq(ca_read_fresh(ca_a.port, *p, ca_admin), "HIT");
}

Test(cache, notification_read_all)
{
    const char *reads[] = {"/api/v1/notifications?limit=20", "/api/v1/notifications/unread_count", NULL};
    for (int i = 0; i != 2; ++i) {
        char ids[256];
        ca_notifications_reset(ids, sizeof(ids));
        ca_write_then_read(i ? ca_b.port : ca_a.port, reads, ca_admin, "POST", "/api/v1/notifications/read_all", NULL,
                           200);
    }
}

Test(cache, connection_changes)
{
    const char *reads[] = {"/api/v1/connections", NULL};
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\":\"Cache line\",\"slug\":\"%s-line\",\"phone_number_id\":\"%d\",\"waba_id\":\"77\","
             "\"display_phone_number\":\"+55 11 4000-0000\"}",
             ca_slug, 900000 + (int)getpid());
    ca_write_then_read(ca_a.port, reads, ca_admin, "POST", "/api/v1/connections", body, 201);
    char id[32];
    cr_assert_eq(hs_sql(id, sizeof(id), "SELECT id FROM connections WHERE slug = '%s-line'", ca_slug), 0);
    char path[64], one[64];
    snprintf(path, sizeof(path), "/api/v1/connections/%s", id);
    snprintf(one, sizeof(one), "/api/v1/connections/%s", id);
    const char *reads2[] = {"/api/v1/connections", one, NULL};
    ca_write_then_read(ca_b.port, reads2, ca_admin, "PATCH", path, "{\"name\":\"Renamed line\"}", 200);
    ca_write_then_read(ca_a.port, reads2, ca_admin, "PATCH", path, "{\"status\":\"disabled\"}", 200);
    ca_write_then_read(ca_b.port, reads, ca_admin, "DELETE", path, NULL, 204);
    hs_response_t r = hs_call(ca_a.port, "GET", one, ca_admin, NULL);
    cr_assert_eq(r.status, 404, "a deleted connection is still served: %s", r.body);
    hs_response_free(&r);
}

Test(cache, contact_rename)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/contacts/%" PRId64, ca_contact);
    const char *reads[] = {"/api/v1/conversations?page=1&limit=20", NULL};
    ca_write_then_read(ca_a.port, reads, ca_admin, "PATCH", path, "{\"name\":\"Renamed on A\"}", 200);
    ca_write_then_read(ca_b.port, reads, ca_admin, "PATCH", path, "{\"name\":\"Renamed on B\"}", 200);
}

/*
 * Gives conversation conv n unread messages straight in the database, behind the
 * cache's back; then a PATCH, a real change that bumps the lists, so the cache agrees
 * with the database again.
 */
static void ca_unread_set(int64_t conv, int n)
{
    cr_assert_eq(hs_sql(NULL, 0, "UPDATE conversations SET unread_count = %d WHERE id = %" PRId64, n, conv), 0);
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/conversations/%" PRId64, conv);
    json_decref(ca_write(ca_a.port, "PATCH", path, ca_admin, "{\"status\":\"open\"}", 200));
}

/* The unread_count of conversation conv in the list at path, as process port serves it now. */
static int64_t ca_list_unread(int port, const char *path, int64_t conv)
{
    hs_response_t r = hs_call(port, "GET", path, ca_admin, NULL);
    cr_assert_eq(r.status, 200, "GET %s: %ld %s", path, r.status, r.body);
    json_t *j = hs_json(&r);
    hs_response_free(&r);
    size_t i;
    json_t *c;
    int64_t n = -1;
    json_array_foreach (json_object_get(j, "data"), i, c) {
        if (json_integer_value(json_object_get(c, "id")) == conv)
            n = json_integer_value(json_object_get(c, "unread_count"));
    }
    json_decref(j);
    cr_assert_neq(n, -1, "conversation %" PRId64 " is not in %s", conv, path);
    return n;
}

Test(cache, conversation_read)
{
    const char *reads[] = {"/api/v1/conversations?page=1&limit=20", "/api/v1/conversations?status=open&limit=20", NULL};
    for (int i = 0; i != 4; ++i) {
        int64_t conv = ca_conv[i % 3];
        ca_unread_set(conv, 3 + i);
        for (const char *const *p = reads; *p; ++p)
            cr_assert_eq(ca_list_unread(ca_b.port, *p, conv), 3 + i);
        char path[96];
        snprintf(path, sizeof(path), "/api/v1/conversations/%" PRId64 "/read", conv);
        /* warm on both, read on one, then both lists at once: fresh (the oracle's), and 0 */
        ca_write_then_read(i % 2 ? ca_b.port : ca_a.port, reads, ca_agent, "POST", path, NULL, 200);
        for (const char *const *p = reads; *p; ++p) {
            cr_assert_eq(ca_list_unread(ca_a.port, *p, conv), 0, "A still shows it unread in %s", *p);
            cr_assert_eq(ca_list_unread(ca_b.port, *p, conv), 0, "B still shows it unread in %s", *p);
        }
    }
}

Test(cache, repeated_conversation_read_changes_nothing)
{
    /* a conversation read already changes no body: the caches stay warm */
    ca_unread_set(ca_conv[0], 2);
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/conversations/%" PRId64 "/read", ca_conv[0]);
    json_decref(ca_write(ca_a.port, "POST", path, ca_admin, NULL, 200));
    const char *reads[] = {"/api/v1/conversations?page=1&limit=20", "/api/v1/conversations/status", NULL};
    for (const char *const *p = reads; *p; ++p) {
        ca_warm(ca_a.port, *p, ca_admin);
        ca_warm(ca_b.port, *p, ca_admin);
    }
    uint64_t bumps = ca_metric(ca_b.port, "cache_generation_bumps_total");
    json_t *j = ca_write(ca_b.port, "POST", path, ca_admin, NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "data"), "unread_count")), 0);
    json_decref(j);
    cr_assert_eq(ca_metric(ca_b.port, "cache_generation_bumps_total"), bumps, "a no-op read bumped");
    for (const char *const *p = reads; *p; ++p) {
        cr_assert_str_eq(ca_read_fresh(ca_a.port, *p, ca_admin), "HIT");
        cr_assert_str_eq(ca_read_fresh(ca_b.port, *p, ca_admin), "HIT");
    }
    /* and a read that clears something bumps the lists, not the status counts */
    ca_unread_set(ca_conv[0], 1);
    for (const char *const *p = reads; *p; ++p)
        ca_warm(ca_a.port, *p, ca_admin);
    json_decref(ca_write(ca_b.port, "POST", path, ca_admin, NULL, 200));
    cr_assert_str_eq(ca_read_fresh(ca_a.port, "/api/v1/conversations/status", ca_admin), "HIT");
    cr_assert_str_neq(ca_read_fresh(ca_a.port, "/api/v1/conversations?page=1&limit=20", ca_admin), "HIT");
}

/* ---- TTL ---- */

Test(cache, ttl_expiry)
{
    static const char *const env[] = {"CACHE_TTL_STATUS=1", NULL};
    hs_server_t d;
    hs_server_start(&d, env);
    char patch[64];
    snprintf(patch, sizeof(patch), "/api/v1/conversations/%" PRId64, ca_conv[2]);
    json_decref(ca_write(d.port, "PATCH", patch, ca_agent, "{\"status\":\"open\"}", 200)); /* a new generation */
    hs_response_t m = hs_call(d.port, "GET", "/api/v1/conversations/status", ca_agent, NULL);
    cr_assert_str_eq(ca_xcache(&m), "MISS");
    hs_response_free(&m);
    double filled = hs_now_ms();
    hs_response_t h = hs_call(d.port, "GET", "/api/v1/conversations/status", ca_agent, NULL);
    cr_assert_str_eq(ca_xcache(&h), "HIT");
    hs_response_free(&h);
    /* a change the cache cannot know of (straight into the database) shows once the TTL ran out */
    hs_sql(NULL, 0, "UPDATE conversations SET status = 'pending' WHERE id = %" PRId64, ca_conv[2]);
    const char *xc = "HIT";
    double expired = 0;
    while (hs_now_ms() < filled + 5000) {
        hs_response_t r = hs_call(d.port, "GET", "/api/v1/conversations/status", ca_agent, NULL);
        xc = ca_xcache(&r);
        int hit = strcmp(xc, "HIT") == 0;
        hs_response_free(&r);
        if (!hit) {
            expired = hs_now_ms();
            break;
        }
        hs_sleep_ms(50);
    }
    cr_assert_str_eq(xc, "MISS", "still cached 5 s after a 1 s TTL");
    cr_assert(expired - filled >= 900, "expired after %.0f ms, before its TTL", expired - filled);
    ca_read_fresh(d.port, "/api/v1/conversations/status", ca_agent);
    hs_sql(NULL, 0, "UPDATE conversations SET status = 'open' WHERE id = %" PRId64, ca_conv[2]);
    json_decref(ca_write(d.port, "PATCH", patch, ca_agent, "{\"status\":\"open\"}", 200));
    cr_assert_eq(hs_server_stop(&d), 0, "conversa did not exit cleanly (see its log for sanitizer reports)");
}

/* ---- Redis down, Redis slow ---- */

Test(cache, redis_down_bypass_then_resume)
{
    const char *path = "/api/v1/conversations?page=1&limit=20";
    ca_warm(ca_a.port, path, ca_admin);
    uint64_t bypass0 = ca_metric(ca_a.port, "cache_bypass_total");
    cr_assert_eq(hs_stack("redis-stop"), 0);
    /* served from PostgreSQL, fresh, marked BYPASS */
    cr_assert_str_eq(ca_read_fresh(ca_a.port, path, ca_admin), "BYPASS");
    hs_response_t h = hs_get(ca_a.port, "/api/health");
    cr_assert(strstr(h.body, "\"redis\":{\"status\":\"down\"") != NULL, "%s", h.body);
    hs_response_free(&h);
    /* a write while Redis is away succeeds, and reads stay right */
    char patch[64];
    snprintf(patch, sizeof(patch), "/api/v1/conversations/%" PRId64, ca_conv[0]);
    json_decref(ca_write(ca_a.port, "PATCH", patch, ca_admin, "{\"status\":\"pending\"}", 200));
    cr_assert_str_eq(ca_read_fresh(ca_a.port, path, ca_admin), "BYPASS");
    cr_assert_gt(ca_metric(ca_a.port, "cache_bypass_total"), bypass0 + 1);
    cr_assert_gt(ca_metric(ca_a.port, "cache_generation_bump_failures_total"), 0);
    cr_assert_eq(hs_stack("redis-start"), 0);
    /* caching resumes by itself */
    const char *xc = "";
    for (double end = hs_now_ms() + 10000; hs_now_ms() < end; hs_sleep_ms(100)) {
        xc = ca_read_fresh(ca_a.port, path, ca_admin);
        if (strcmp(xc, "HIT") == 0)
            break;
    }
    cr_assert_str_eq(xc, "HIT", "caching did not resume after Redis came back");
    json_decref(ca_write(ca_b.port, "PATCH", patch, ca_admin, "{\"status\":\"open\"}", 200));
    cr_assert_str_neq(ca_read_fresh(ca_a.port, path, ca_admin), "HIT");
}

Test(cache, redis_slow_is_a_bypass)
{
    static const char *const env[] = {"REDIS_TIMEOUT_MS=100", NULL};
    hs_server_t d;
    hs_server_start(&d, env);
    const char *path = "/api/v1/conversations/status";
    ca_warm(d.port, path, ca_admin);
    cr_assert_eq(hs_stack("redis-freeze"), 0);
    hs_response_t r = hs_call(d.port, "GET", path, ca_admin, NULL);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(ca_xcache(&r), "BYPASS");
    cr_assert_lt(r.seconds, 2.0, "a frozen Redis held the request %.3f s", r.seconds);
    hs_response_free(&r);
    /* a write whose bump cannot land answers anyway, and the bump is retried */
    char patch[64];
    snprintf(patch, sizeof(patch), "/api/v1/conversations/%" PRId64, ca_conv[0]);
    hs_response_t w = hs_call(d.port, "PATCH", patch, ca_admin, "{\"status\":\"resolved\"}");
    cr_assert_eq(w.status, 200, "%ld %s", w.status, w.body);
    cr_assert_lt(w.seconds, 2.0);
    hs_response_free(&w);
    cr_assert_eq(hs_stack("redis-thaw"), 0);
    /* once Redis answers again, the bump lands and every reader sees the write */
    uint64_t bumps = 0;
    for (double end = hs_now_ms() + 10000; hs_now_ms() < end; hs_sleep_ms(100))
        if ((bumps = ca_metric(d.port, "cache_generation_bumps_total")) > 0)
            break;
    cr_assert_gt(bumps, 0, "the queued bump never landed");
    ca_read_fresh(d.port, path, ca_admin);
    ca_read_fresh(ca_a.port, path, ca_admin);
    json_decref(ca_write(d.port, "PATCH", patch, ca_admin, "{\"status\":\"open\"}", 200));
    cr_assert_eq(hs_server_stop(&d), 0, "conversa did not exit cleanly (see its log for sanitizer reports)");
}

/* ---- no stampede ---- */

typedef struct ca_worker {
    int port;
    const char *token;
    long status;
    char *body;
    char xcache[16];
} ca_worker_t;

static void *ca_work(void *arg)
{
    ca_worker_t *w = arg;
    hs_response_t r = hs_call(w->port, "GET", "/api/v1/conversations/status", w->token, NULL);
    w->status = r.status;
    w->body = strdup(r.body != NULL ? r.body : "");
    snprintf(w->xcache, sizeof(w->xcache), "%s", ca_xcache(&r));
    hs_response_free(&r);
    return NULL;
}

static uint64_t ca_status_calls(void)
{
    char out[64];
    cr_assert_eq(hs_sql(out, sizeof(out),
                        "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements"
                        /* constants are $n in pg_stat_statements; this clause is the status query's own */
                        " WHERE query LIKE '%%FILTER (WHERE assignee_id = $2 AND status <>%%'"
                        " AND query LIKE '%%FROM conversation_counts WHERE company_id = $1'"),
                 0, "%s", out);
    return strtoull(out, NULL, 10);
}

Test(cache, concurrent_misses_make_one_query)
{
    enum { N = 24 };
    static const char *const env[] = {"THREADS=2", "CACHE_WAIT_MS=30000", NULL};
    hs_server_t d;
    hs_server_start(&d, env);
    char patch[64];
    snprintf(patch, sizeof(patch), "/api/v1/conversations/%" PRId64, ca_conv[2]);
    /* a new generation, so the key is cold; the token is then known to both threads */
    json_decref(ca_write(d.port, "PATCH", patch, ca_admin, "{\"status\":\"open\"}", 200));
    for (int i = 0; i != 16; ++i) {
        hs_response_t r = hs_call(d.port, "GET", "/api/v1/conversations/999999999999", ca_admin, NULL);
        cr_assert_eq(r.status, 404);
        hs_response_free(&r);
    }
    uint64_t misses0 = ca_metric(d.port, "cache_misses_total");
    uint64_t fills0 = ca_metric(d.port, "cache_fills_total");
    uint64_t coalesced0 = ca_metric(d.port, "cache_coalesced_total");
    uint64_t calls0 = ca_status_calls();

    /* PostgreSQL hangs: every request misses in Redis and must wait for the one fill */
    cr_assert_eq(hs_stack("pg-freeze"), 0);
    ca_worker_t w[N];
    pthread_t th[N];
    for (int i = 0; i != N; ++i) {
        w[i] = (ca_worker_t){.port = d.port, .token = ca_admin};
        cr_assert_eq(pthread_create(&th[i], NULL, ca_work, &w[i]), 0);
    }
    uint64_t misses = 0;
    for (double end = hs_now_ms() + 5000; hs_now_ms() < end; hs_sleep_ms(20))
        if ((misses = ca_metric(d.port, "cache_misses_total") - misses0) >= N)
            break;
    cr_assert_eq(hs_stack("pg-thaw"), 0);
    for (int i = 0; i != N; ++i)
        pthread_join(th[i], NULL);
    cr_assert_eq(misses, N, "%" PRIu64 " of %d requests reached the miss while PostgreSQL hung", misses, N);
    for (int i = 0; i != N; ++i) {
        cr_assert_eq(w[i].status, 200, "%ld %s", w[i].status, w[i].body);
        cr_assert_str_eq(w[i].xcache, "MISS");
        cr_assert(strcmp(w[i].body, w[0].body) == 0, "request %d: %s\nrequest 0: %s", i, w[i].body, w[0].body);
    }
    for (int i = 0; i != N; ++i)
        free(w[i].body);
    cr_assert_eq(ca_metric(d.port, "cache_fills_total") - fills0, 1);
    cr_assert_eq(ca_metric(d.port, "cache_coalesced_total") - coalesced0, N - 1);
    cr_assert_eq(ca_status_calls() - calls0, 1, "PostgreSQL ran the status query %" PRIu64 " times",
                 ca_status_calls() - calls0);
    cr_assert_eq(hs_server_stop(&d), 0, "conversa did not exit cleanly (see its log for sanitizer reports)");
}

/* ---- tenants ---- */

Test(cache, companies_never_share_a_body)
{
    static const char *const paths[] = {"/api/v1/conversations?page=1&limit=20", "/api/v1/conversations/status",
                                        "/api/v1/notifications/unread_count", "/api/v1/connections"};
    for (size_t i = 0; i != sizeof(paths) / sizeof(paths[0]); ++i) {
        ca_warm(ca_a.port, paths[i], ca_demo);
        ca_read_fresh(ca_a.port, paths[i], ca_admin);
        ca_read_fresh(ca_a.port, paths[i], ca_admin);
        ca_read_fresh(ca_b.port, paths[i], ca_demo);
    }
    /* another company's conversation is 404, even while that company's page is cached */
    char demo_conv[32], path[96];
    cr_assert_eq(hs_sql(demo_conv, sizeof(demo_conv),
                        "SELECT min(id) FROM conversations WHERE company_id = (SELECT id FROM companies WHERE slug ="
                        " 'demo')"),
                 0);
    snprintf(path, sizeof(path), "/api/v1/conversations/%s/messages", demo_conv);
    ca_warm(ca_a.port, path, ca_demo);
    hs_response_t r = hs_call(ca_a.port, "GET", path, ca_admin, NULL);
    cr_assert_eq(r.status, 404, "%s", r.body);
    hs_response_free(&r);
    r = hs_call(ca_a.port, "GET", path, ca_admin, NULL);
    cr_assert_eq(r.status, 404, "a 404 became cached: %s", r.body);
    hs_response_free(&r);
}
