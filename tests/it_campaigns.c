/*
 * Integration tests of sending: campaigns and agents' replies through the real
 * binary, to `conversa fake-meta` (the stand-in Cloud API) over real HTTP, with the
 * stand-in's signed status webhooks coming back, real PostgreSQL and Redis.
 *
 * Each test owns a company ("it-cp-<pid>"), a connection whose phone_number_id is
 * its own, a conversa and a stand-in; what Meta saw is read from the stand-in's
 * /_fake/stats (requests, accepted, errors, duplicate callbacks, distinct recipients
 * and the most requests in any second).
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define CP_SECRET "it-cp-app-secret"
#define CP_TOKEN  "it-cp-access-token"
#define CP_RATE   500

static char cp_slug[32], cp_company[24], cp_pnid[32], cp_conn[24];
static hs_server_t cp_srv, cp_fake;
static char *cp_admin;

static const char *cp_env[] = {"SEND_CONCURRENCY=2", "META_TIMEOUT_MS=2000", "QUEUE_LEASE_MS=7000",
                               NULL, /* META_GRAPH_URL, set in setup */
                               NULL};
static char cp_graph_env[96];

/* ---- helpers ---- */

static void cp_sqlf(char *out, size_t cap, const char *sql)
{
    int rc = hs_sql(out, cap, "%s", sql);
    cr_assert_eq(rc, 0, "%s: %s", sql, out != NULL ? out : "");
}

static long cp_count(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static long cp_count(const char *fmt, ...)
{
    char sql[1024], out[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    cp_sqlf(out, sizeof(out), sql);
    return atol(out);
}

static long cp_wait_count(long want, int ms, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Polls the count a query (fmt, printf-style) gives until it is want or ms have passed; returns the last count. */
static long cp_wait_count(long want, int ms, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    double deadline = hs_now_ms() + ms;
    for (;;) {
        long n = cp_count("%s", sql);
        if (n == want || hs_now_ms() >= deadline)
            return n;
        hs_sleep_ms(20);
    }
}

/* n contacts of the company numbered prefix + 6 digits (1..n), with labels (SQL array text). */
static void cp_contacts(const char *prefix, int n, const char *labels)
{
    char sql[512], out[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO contacts (company_id, phone_number, wa_id, name, labels)"
             " SELECT %s, '%s' || lpad(g::text, 6, '0'), '%s' || lpad(g::text, 6, '0'), 'C' || g, '%s'"
             " FROM generate_series(1, %d) g",
             cp_company, prefix, prefix, labels, n);
    cp_sqlf(out, sizeof(out), sql);
}

static json_t *cp_fake_call(const char *method, const char *path, const char *body)
{
    hs_response_t r = hs_call(cp_fake.port, method, path, NULL, body);
    cr_assert_eq(r.status, method[0] == 'G' || strcmp(path, "/_fake/inbound") ? 200 : 202, "%s %s: %ld %s", method,
                 path, r.status, r.body);
    json_t *j = hs_json(&r);
    hs_response_free(&r);
    cr_assert_not_null(j);
    return j;
}

static long cp_stat(json_t *stats, const char *name)
{
    return (long)json_integer_value(json_object_get(stats, name));
}

static void cp_fake_start(void)
{
    char port[16], url[128];
    snprintf(port, sizeof(port), "%d", cp_fake.port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/webhooks/meta/%s", cp_srv.port, cp_slug);
    const char *argv[] = {"fake-meta", "--port", port, "--webhook-url", url, "--app-secret", CP_SECRET, NULL};
    hs_server_spawn(&cp_fake, argv, NULL);
    double deadline = hs_now_ms() + 10000;
    while (hs_now_ms() < deadline) {
        hs_response_t r = hs_get(cp_fake.port, "/_fake/stats");
        long st = r.status;
        hs_response_free(&r);
        if (st == 200)
            return;
        hs_sleep_ms(20);
    }
    cr_assert_fail("fake-meta did not answer within 10 s");
}

/* Points the stand-in's webhooks at the conversa now running. */
static void cp_fake_follow(void)
{
    char body[160];
    snprintf(body, sizeof(body), "{\"webhook_url\":\"http://127.0.0.1:%d/api/webhooks/meta/%s\"}", cp_srv.port,
             cp_slug);
    json_decref(cp_fake_call("POST", "/_fake/config", body));
}

static int64_t cp_create(const char *name, const char *audience)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"connection_id\":%s,\"template\":{\"name\":\"promo_%s\",\"language\":\"pt_BR\","
             "\"parameters\":[\"Ana\",\"30%%\"]},\"audience\":%s}",
             name, cp_conn, name, audience);
    json_t *j = hs_call_json(cp_srv.port, "POST", "/api/v1/campaigns", cp_admin, body, 201);
    int64_t id = json_integer_value(json_object_get(json_object_get(j, "data"), "id"));
    cr_assert(id > 0);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "data"), "status")), "draft");
    json_decref(j);
    return id;
}

static json_t *cp_trigger(int64_t id)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"campaign_id\":%" PRId64 "}", id);
    json_t *j = hs_call_json(cp_srv.port, "POST", "/api/v1/campaigns/trigger", cp_admin, body, 200);
    return j;
}

static json_t *cp_get(int64_t id)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/campaigns/%" PRId64, id);
    return hs_call_json(cp_srv.port, "GET", path, cp_admin, NULL, 200);
}

static long cp_progress(json_t *c, const char *what)
{
    return (long)json_integer_value(json_object_get(json_object_get(json_object_get(c, "data"), "progress"), what));
}

static const char *cp_status(json_t *c)
{
    return json_string_value(json_object_get(json_object_get(c, "data"), "status"));
}

/* The value of one sample of the server's /api/metrics (the sample's name and labels, printf-style), or -1. */
static double cp_metric(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static double cp_metric(const char *fmt, ...)
{
    char sample[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sample, sizeof(sample), fmt, ap);
    va_end(ap);
    hs_response_t r = hs_get(cp_srv.port, "/api/metrics");
    const char *p = r.body != NULL ? strstr(r.body, sample) : NULL;
    double v = p != NULL ? strtod(p + strlen(sample), NULL) : -1;
    hs_response_free(&r);
    return v;
}

/* Polls the campaign until done(c) or the deadline; returns the last read (caller decrefs). */
static json_t *cp_wait(int64_t id, int (*done)(json_t *c), int ms)
{
    double deadline = hs_now_ms() + ms;
    json_t *c = cp_get(id);
    while (!done(c) && hs_now_ms() < deadline) {
        json_decref(c);
        hs_sleep_ms(50);
        c = cp_get(id);
    }
    return c;
}

static int cp_completed(json_t *c)
{
    return strcmp(cp_status(c), "completed") == 0;
}

static int cp_all_read(json_t *c)
{
    return cp_completed(c) && cp_progress(c, "pending") == 0 && cp_progress(c, "sent") == 0 &&
           cp_progress(c, "delivered") == 0;
}

static void cp_move(int64_t id, const char *action, long want)
{
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/campaigns/%" PRId64 "/%s", id, action);
    hs_response_t r = hs_call(cp_srv.port, "POST", path, cp_admin, NULL);
    cr_assert_eq(r.status, want, "%s: %ld %s", path, r.status, r.body);
    hs_response_free(&r);
}

/*
 * Waits (deadline ms) until the stand-in has no status webhook left to send or retry
 * and the suite's company has no job queued or running: the statuses of what was sent
 * come back about 20 ms after each send, as webhooks that are jobs of their own.
 */
static void cp_settle(int ms)
{
    double deadline = hs_now_ms() + ms;
    for (;;) {
        json_t *s = cp_fake_call("GET", "/_fake/stats", NULL);
        json_t *w = json_object_get(s, "webhooks");
        long left = cp_stat(w, "pending") + cp_stat(w, "retrying");
        json_decref(s);
        if (left == 0)
            break;
        cr_assert(hs_now_ms() < deadline, "the stand-in still has %ld status webhooks to send", left);
        hs_sleep_ms(20);
    }
    long live = cp_wait_count(0, (int)(deadline - hs_now_ms()),
                              "SELECT count(*) FROM jobs WHERE company_id = %s AND status IN ('queued', 'running')",
                              cp_company);
    cr_assert_eq(live, 0, "%ld jobs still queued or running", live);
}

/* Waits until the stand-in accepted at least n messages (deadline ms). */
static void cp_wait_accepted(long n, int ms)
{
    double deadline = hs_now_ms() + ms;
    for (;;) {
        json_t *s = cp_fake_call("GET", "/_fake/stats", NULL);
        long got = cp_stat(s, "accepted");
        json_decref(s);
        if (got >= n)
            return;
        cr_assert(hs_now_ms() < deadline, "only %ld of %ld messages sent in %d ms", got, n, ms);
        hs_sleep_ms(20);
    }
}

/* The stand-in's accepted count once it stopped moving for quiet_ms (deadline ms). */
static long cp_accepted_settled(int quiet_ms, int ms)
{
    double deadline = hs_now_ms() + ms, since = hs_now_ms();
    json_t *s = cp_fake_call("GET", "/_fake/stats", NULL);
    long last = cp_stat(s, "accepted");
    json_decref(s);
    while (hs_now_ms() < deadline) {
        hs_sleep_ms(100);
        s = cp_fake_call("GET", "/_fake/stats", NULL);
        long now = cp_stat(s, "accepted");
        json_decref(s);
        if (now != last) {
            last = now;
            since = hs_now_ms();
        } else if (hs_now_ms() - since >= quiet_ms) {
            return last;
        }
    }
    cr_assert_fail("sending did not stop");
    return -1;
}

/* ---- suite ---- */

static void cp_setup(void)
{
    snprintf(cp_slug, sizeof(cp_slug), "it-cp-%d", (int)getpid());
    snprintf(cp_pnid, sizeof(cp_pnid), "77%010d", (int)getpid());
    hs_company(cp_slug, "Campaigns test");
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT id FROM companies WHERE slug = '%s'", cp_slug);
    cp_sqlf(cp_company, sizeof(cp_company), sql);
    cp_fake.port = hs_free_port();
    snprintf(cp_graph_env, sizeof(cp_graph_env), "META_GRAPH_URL=http://127.0.0.1:%d", cp_fake.port);
    cp_env[3] = cp_graph_env;
    hs_server_start(&cp_srv, cp_env);
    cp_fake_start();
    char email[96];
    snprintf(email, sizeof(email), "admin@%s.test", cp_slug);
    cp_admin = hs_login(cp_srv.port, email);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\":\"Sending\",\"slug\":\"%s\",\"phone_number_id\":\"%s\",\"access_token\":\"" CP_TOKEN
             "\",\"app_secret\":\"" CP_SECRET "\",\"verify_token\":\"v\",\"messages_per_second\":%d}",
             cp_slug, cp_pnid, CP_RATE);
    json_t *j = hs_call_json(cp_srv.port, "POST", "/api/v1/connections", cp_admin, body, 201);
    snprintf(cp_conn, sizeof(cp_conn), "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(json_object_get(j, "data"), "id")));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "data"), "messages_per_second")), CP_RATE);
    json_decref(j);
    /* the stand-in checks the bearer token, as Meta does */
    json_decref(cp_fake_call("POST", "/_fake/config", "{\"token\":\"" CP_TOKEN "\",\"status_delay_ms\":20}"));
}

static void cp_teardown(void)
{
    if (cp_srv.pid > 0)
        hs_server_stop(&cp_srv);
    if (cp_fake.pid > 0)
        hs_server_stop(&cp_fake);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = '%s'", cp_slug);
    free(cp_admin);
}

TestSuite(campaigns, .init = cp_setup, .fini = cp_teardown, .timeout = 240);

/* ---- campaigns ---- */

Test(campaigns, thousand_recipients_at_the_rate_each_once_and_statuses_follow)
{
    cp_contacts("552100", 1000, "{}");
    int64_t id = cp_create("thousand", "{\"phone_prefix\":\"552100\"}");
    json_t *t = cp_trigger(id);
    cr_assert_str_eq(cp_status(t), "running");
    json_decref(t);
    /* triggering again sends nobody twice */
    t = cp_trigger(id);
    cr_assert_str_eq(cp_status(t), "running");
    json_decref(t);

    json_t *c = cp_wait(id, cp_completed, 60000);
    cr_assert(cp_completed(c), "not completed: %s", json_dumps(c, 0));
    json_decref(c);
    /* counted per connection, with the rate of the last seconds */
    cr_assert_eq(cp_metric("outbound_messages_total{connection=\"%s\",result=\"sent\"}", cp_conn), 1000);
    cr_assert_eq(cp_metric("outbound_messages_total{connection=\"%s\",result=\"failed\"}", cp_conn), 0);
    cr_assert_gt(cp_metric("outbound_send_rate{connection=\"%s\"}", cp_conn), 0);
    /* the statuses Meta sends back move every recipient to read */
    c = cp_wait(id, cp_all_read, 30000);
    cr_assert_eq(cp_progress(c, "read"), 1000, "%s", json_dumps(c, 0));
    cr_assert_eq(cp_progress(c, "failed"), 0);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(c, "data"), "total")), 1000);
    json_decref(c);

    json_t *s = cp_fake_call("GET", "/_fake/stats?window_ms=2000", NULL);
    cr_assert_eq(cp_stat(s, "accepted"), 1000, "%s", json_dumps(s, 0));
    cr_assert_eq(cp_stat(s, "requests"), 1000, "%s", json_dumps(s, 0));
    cr_assert_eq(cp_stat(s, "recipients"), 1000);
    cr_assert_eq(cp_stat(s, "duplicates"), 0);
    /* at the rate in any two seconds: the bucket's burst (1/20 s) and 5 % for arrival jitter */
    cr_assert_leq(cp_stat(s, "max_in_window"), 2 * CP_RATE + CP_RATE / 20 + CP_RATE / 10, "%s", json_dumps(s, 0));
    json_decref(s);
    cr_assert_eq(
        cp_count("SELECT count(*) FROM campaign_recipients WHERE company_id = %s AND wamid IS NULL", cp_company), 0);
    t = cp_trigger(id);
    cr_assert_str_eq(cp_status(t), "completed");
    json_decref(t);
    s = cp_fake_call("GET", "/_fake/stats", NULL);
    cr_assert_eq(cp_stat(s, "requests"), 1000);
    json_decref(s);
}

Test(campaigns, pause_holds_and_resume_finishes)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"messages_per_second\":50}");
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/connections/%s", cp_conn);
    json_decref(hs_call_json(cp_srv.port, "PATCH", path, cp_admin, body, 200));
    cp_contacts("552200", 300, "{vip}");
    cp_contacts("552201", 50, "{}"); /* not in the audience: another label */
    int64_t id = cp_create("pause", "{\"labels\":[\"vip\"]}");
    json_decref(cp_trigger(id));
    cp_wait_accepted(30, 20000);
    cp_move(id, "pause", 200);
    cp_move(id, "pause", 409); /* already paused */
    /* what was in flight finishes; then nothing more goes out */
    long held = cp_accepted_settled(1500, 20000);
    cr_assert_lt(held, 300, "pause did not hold anything back");
    json_t *c = cp_get(id);
    cr_assert_str_eq(cp_status(c), "paused");
    cr_assert_eq(cp_progress(c, "pending"), 300 - held, "%s", json_dumps(c, 0));
    json_decref(c);

    cp_move(id, "resume", 200);
    c = cp_wait(id, cp_completed, 30000);
    cr_assert(cp_completed(c), "%s", json_dumps(c, 0));
    json_decref(c);
    json_t *s = cp_fake_call("GET", "/_fake/stats?window_ms=2000", NULL);
    cr_assert_eq(cp_stat(s, "accepted"), 300);
    cr_assert_eq(cp_stat(s, "recipients"), 300);
    cr_assert_eq(cp_stat(s, "duplicates"), 0);
    cr_assert_leq(cp_stat(s, "max_in_window"), 2 * 50 + 3 + 5, "%s", json_dumps(s, 0));
    json_decref(s);
    cp_move(id, "cancel", 409); /* completed */
}

Test(campaigns, cancel_stops_and_marks_the_rest)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/connections/%s", cp_conn);
    json_decref(hs_call_json(cp_srv.port, "PATCH", path, cp_admin, "{\"messages_per_second\":20}", 200));
    cp_contacts("552210", 100, "{}");
    int64_t id = cp_create("cancel", "{\"phone_prefix\":\"552210\"}");
    json_decref(cp_trigger(id));
    cp_wait_accepted(3, 20000);
    cp_move(id, "cancel", 200);
    long sent = cp_accepted_settled(1500, 20000);
    json_t *c = cp_get(id);
    cr_assert_str_eq(cp_status(c), "cancelled");
    cr_assert_eq(cp_progress(c, "cancelled"), 100 - sent, "%s", json_dumps(c, 0));
    cr_assert_eq(cp_progress(c, "pending"), 0);
    json_decref(c);
    /* jobs that were in flight come back, see the campaign cancelled and end */
    cr_assert_eq(cp_wait_count(0, 15000,
                               "SELECT count(*) FROM jobs WHERE company_id = %s AND status IN ('queued', 'running')",
                               cp_company),
                 0);
    c = cp_get(id);
    cr_assert_eq(cp_progress(c, "cancelled"), 100 - sent, "%s", json_dumps(c, 0));
    json_decref(c);
    cp_move(id, "resume", 409);
}

/* psql as the stack's superuser (tests/run.sh's servers), in the background when bg */
static void cp_su(char *out, size_t cap, int bg, const char *sql)
{
    char env[600];
    snprintf(env, sizeof(env), "%s/env", getenv("STACK_DIR"));
    int rc = hs_sh(out, cap, "%s. '%s' && psql -X -qtA -h 127.0.0.1 -p \"$PG_PORT\" -U postgres -d conversa %s%s",
                   bg ? "(" : "", env, sql, bg ? " >/dev/null 2>&1 &)" : " 2>&1");
    cr_assert_eq(rc, 0, "%s", out);
}

/*
 * Cancelling takes the campaign, then its queued jobs, then its pending recipients;
 * recording a send takes its recipients, then (near the end) the campaign. When the
 * two cross, PostgreSQL rolls back the one whose deadlock check comes first. Here a
 * session plays the sender, made patient (its check comes late), and a third holds
 * one of the campaign's jobs so that the cancel closes the cycle last: the cancel is
 * rolled back, and the API runs it again once the sender is through instead of
 * answering 503. Each session waits for the others' lock waits, never for time
 * (pg_stat_activity is read afresh each turn: a transaction keeps its first reading),
 * and gives up after 20 s whatever happens.
 */
Test(campaigns, a_cancel_caught_in_a_deadlock_is_run_again)
{
    char out[1024], sql[2048];
    cp_contacts("552216", 5, "{}");
    int64_t id = cp_create("deadlock", "{\"phone_prefix\":\"552216\"}");
    snprintf(sql, sizeof(sql),
             "INSERT INTO campaign_recipients (company_id, campaign_id, contact_id)"
             " SELECT %s, %" PRId64 ", id FROM contacts WHERE company_id = %s AND phone_number LIKE '552216%%';"
             "INSERT INTO jobs (company_id, queue, payload, meta, max_attempts, run_at)"
             " VALUES (%s, 'campaigns', ''::bytea, jsonb_build_object('campaign', %" PRId64 "), 3, 'infinity')"
             " RETURNING id",
             cp_company, id, cp_company, cp_company, id);
    cp_sqlf(out, sizeof(out), sql);
    long job = atol(out);
    cr_assert(job > 0, "%s", out);
#define CP_WAITING(q)                                                                                                  \
    "DO \\$\\$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"                  \
    " AND query LIKE '" q "%%') LOOP PERFORM pg_sleep(0.01); PERFORM pg_stat_clear_snapshot(); END LOOP; END \\$\\$"
    /* the job's holder lets go once the sender waits for the campaign */
    snprintf(sql, sizeof(sql),
             "-c \"SET statement_timeout = '20s'\" -c BEGIN -c \"SELECT 1 FROM jobs WHERE company_id = %s AND id = %ld "
             "FOR UPDATE\" -c \"" CP_WAITING("UPDATE campaigns") "\" -c COMMIT",
             cp_company, job);
    cp_su(out, sizeof(out), 1, sql);
    /* the sender takes the campaign once the cancel waits (for the job) */
    snprintf(sql, sizeof(sql),
             "-c \"SET deadlock_timeout = '30s'\" -c \"SET statement_timeout = '20s'\" -c BEGIN -c \"UPDATE "
             "campaign_recipients SET updated_at = now()"
             " WHERE company_id = %s AND campaign_id = %" PRId64 "\" -c \"" CP_WAITING(
                 "SELECT campaign_move(") "\" -c \"UPDATE campaigns SET updated_at = now() WHERE company_id = %s AND"
                                          " id = %" PRId64 "\" -c COMMIT",
             cp_company, id, cp_company, id);
    cp_su(out, sizeof(out), 1, sql);
    double deadline = hs_now_ms() + 10000;
    for (;;) {
        cp_su(out, sizeof(out), 0, "-c \"SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'DO %%'\"");
        if (atoi(out) == 2)
            break;
        cr_assert(hs_now_ms() < deadline, "the two sessions did not start: %s", out);
        hs_sleep_ms(20);
    }
    cp_move(id, "cancel", 200);
    json_t *c = cp_get(id);
    cr_assert_str_eq(cp_status(c), "cancelled");
    cr_assert_eq(cp_progress(c, "cancelled"), 5, "%s", json_dumps(c, 0));
    json_decref(c);
    char *log = hs_server_log(&cp_srv);
    cr_assert_not_null(strstr(log, "chosen as a deadlock's victim"), "the cancel was never a deadlock's victim");
    free(log);
#undef CP_WAITING
}

Test(campaigns, throttled_thirty_percent_still_all_delivered_once)
{
    cp_contacts("552300", 300, "{}");
    json_decref(cp_fake_call("POST", "/_fake/config", "{\"errors\":[{\"code\":130429,\"share\":0.3}]}"));
    int64_t id = cp_create("throttled", "{\"phone_prefix\":\"552300\"}");
    json_decref(cp_trigger(id));
    json_t *c = cp_wait(id, cp_completed, 90000);
    cr_assert(cp_completed(c), "%s", json_dumps(c, 0));
    cr_assert_eq(cp_progress(c, "failed"), 0, "%s", json_dumps(c, 0));
    json_decref(c);
    json_t *s = cp_fake_call("GET", "/_fake/stats", NULL);
    cr_assert_eq(cp_stat(s, "accepted"), 300, "%s", json_dumps(s, 0));
    cr_assert_eq(cp_stat(s, "duplicates"), 0);
    long throttled = (long)json_integer_value(json_object_get(json_object_get(s, "errors"), "130429"));
    cr_assert_gt(throttled, 30, "%s", json_dumps(s, 0));
    cr_assert_eq(cp_stat(s, "requests"), 300 + throttled);
    json_decref(s);
    hs_response_t m = hs_get(cp_srv.port, "/api/metrics");
    cr_assert(strstr(m.body, "graph_messages_throttled_total") != NULL);
    hs_response_free(&m);
}

Test(campaigns, permanent_errors_recorded_with_code_and_title)
{
    cp_contacts("552400", 5, "{}");
    json_decref(cp_fake_call("POST", "/_fake/config", "{\"errors\":[{\"code\":100,\"share\":1}]}"));
    int64_t id = cp_create("permanent", "{\"phone_prefix\":\"552400\"}");
    json_decref(cp_trigger(id));
    json_t *c = cp_wait(id, cp_completed, 30000);
    cr_assert(cp_completed(c), "%s", json_dumps(c, 0));
    cr_assert_eq(cp_progress(c, "failed"), 5, "%s", json_dumps(c, 0));
    json_decref(c);
    cr_assert_eq(cp_count("SELECT count(*) FROM campaign_recipients WHERE company_id = %s AND error_code = 100"
                          " AND error_title = '(#100) Invalid parameter' AND attempts = 1",
                          cp_company),
                 5);
    cr_assert_eq(cp_metric("outbound_messages_total{connection=\"%s\",result=\"failed\"}", cp_conn), 5);
    json_t *s = cp_fake_call("GET", "/_fake/stats", NULL);
    cr_assert_eq(cp_stat(s, "requests"), 5, "permanent errors are not retried: %s", json_dumps(s, 0));
    json_decref(s);
}

Test(campaigns, kill_nine_mid_campaign_then_restart_sends_each_once)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/connections/%s", cp_conn);
    json_decref(hs_call_json(cp_srv.port, "PATCH", path, cp_admin, "{\"messages_per_second\":200}", 200));
    cp_contacts("552500", 1000, "{}");
    int64_t id = cp_create("killed", "{\"phone_prefix\":\"552500\"}");
    json_decref(cp_trigger(id));
    cp_wait_accepted(300, 20000);
    kill(cp_srv.pid, SIGKILL);
    waitpid(cp_srv.pid, NULL, 0);
    cp_srv.pid = 0;
    hs_server_start(&cp_srv, cp_env);
    cp_fake_follow(); /* the statuses of what was on the wire reach the new process */
    json_t *c = cp_wait(id, cp_completed, 90000);
    cr_assert(cp_completed(c), "%s", json_dumps(c, 0));
    cr_assert_eq(cp_progress(c, "failed"), 0, "%s", json_dumps(c, 0));
    json_decref(c);
    json_t *s = cp_fake_call("GET", "/_fake/stats", NULL);
    cr_assert_eq(cp_stat(s, "recipients"), 1000, "%s", json_dumps(s, 0));
    cr_assert_eq(cp_stat(s, "accepted"), 1000, "%s", json_dumps(s, 0));
    cr_assert_eq(cp_stat(s, "duplicates"), 0, "%s", json_dumps(s, 0));
    json_decref(s);
}

/* ---- agents' replies ---- */

/* A conversation with contact phone, through connection (SQL: the suite's or NULL); returns its id. */
static long cp_conversation_via(const char *phone, const char *connection)
{
    char sql[512], out[64];
    snprintf(sql, sizeof(sql),
             "WITH k AS (INSERT INTO contacts (company_id, phone_number, wa_id) VALUES (%s, '%s', '%s') RETURNING id)"
             " INSERT INTO conversations (company_id, contact_id, connection_id) SELECT %s, id, %s FROM k RETURNING id",
             cp_company, phone, phone, cp_company, connection);
    cp_sqlf(out, sizeof(out), sql);
    return atol(out);
}

static long cp_conversation(const char *phone)
{
    return cp_conversation_via(phone, cp_conn);
}

static int cp_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Posts a reply and waits until its status is one of `want` ("|"-separated); returns "status|code|title|wamid". */
static void cp_reply(long conv, const char *text, const char *want, char *out, size_t cap)
{
    char path[96], body[256], sql[512];
    snprintf(path, sizeof(path), "/api/v1/conversations/%ld/messages", conv);
    snprintf(body, sizeof(body), "{\"text\":\"%s\"}", text);
    json_t *j = hs_call_json(cp_srv.port, "POST", path, cp_admin, body, 201);
    long id = (long)json_integer_value(json_object_get(json_object_get(j, "data"), "id"));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "data"), "status")), "pending");
    json_decref(j);
    snprintf(sql, sizeof(sql),
             "SELECT status || '|' || coalesce(error_code::text, '-') || '|' || coalesce(error_title, '-') || '|'"
             " || coalesce(wamid, '-') FROM messages WHERE company_id = %s AND id = %ld",
             cp_company, id);
    double deadline = hs_now_ms() + 15000;
    for (;;) {
        cp_sqlf(out, cap, sql);
        char status[16];
        snprintf(status, sizeof(status), "%.*s", (int)strcspn(out, "|"), out);
        char pattern[64];
        snprintf(pattern, sizeof(pattern), "|%s|", want);
        char needle[24];
        snprintf(needle, sizeof(needle), "|%s|", status);
        if (strstr(pattern, needle) != NULL || hs_now_ms() > deadline)
            return;
        hs_sleep_ms(20);
    }
}

Test(campaigns, reply_outside_the_window_fails_with_131047)
{
    long conv = cp_conversation("5521990000001");
    char out[512];
    cp_reply(conv, "hello?", "failed", out, sizeof(out));
    cr_assert(strncmp(out, "failed|131047|(#131047) Re-engagement message|-", 48) == 0, "%s", out);
    /* the agent sees it in the thread, failed with the reason */
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/conversations/%ld/messages?limit=1", conv);
    json_t *j = hs_call_json(cp_srv.port, "GET", path, cp_admin, NULL, 200);
    json_t *m = json_array_get(json_object_get(j, "data"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(m, "status")), "failed");
    cr_assert_eq(json_integer_value(json_object_get(m, "error_code")), 131047);
    json_decref(j);
}

/*
 * PostgreSQL signals every listening backend at each notification, whatever it is
 * about. This server runs the three queues' workers (webhooks, replies, campaigns):
 * they share one listening connection, so a committed webhook wakes one backend and
 * one thread, not one per queue; and a reply, announced on that connection, is taken
 * by its worker at once, not at the worker's once-a-second poll.
 */
Test(campaigns, one_listening_connection_wakes_every_queue)
{
    /* opened by the listener's thread, soon after start */
    long n =
        cp_wait_count(1, 5000, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'conversa-listen:%ld'",
                      (long)cp_srv.pid);
    cr_assert_eq(n, 1, "%ld listening connections", n);

    enum { N = 7 };
    double took[N];
    for (int i = 0; i < N; ++i) {
        char phone[32], out[512];
        snprintf(phone, sizeof(phone), "55219911000%02d", i);
        long conv = cp_conversation(phone);
        double t0 = hs_now_ms();
        cp_reply(conv, "hello", "sent|delivered|read|failed", out, sizeof(out)); /* no window: 131047 */
        took[i] = hs_now_ms() - t0;
        cr_assert(strncmp(out, "pending", 7) != 0, "reply %d still pending: %s", i, out);
    }
    qsort(took, N, sizeof(took[0]), cp_cmp_double);
    cr_assert(took[N / 2] < 250, "median %.0f ms from a reply's POST to its answer", took[N / 2]);
}

Test(campaigns, reply_inside_the_window_is_sent_then_delivered_then_read)
{
    long conv = cp_conversation("5521990000002");
    char body[256];
    snprintf(body, sizeof(body), "{\"phone_number_id\":\"%s\",\"from\":\"5521990000002\",\"text\":\"oi\"}", cp_pnid);
    json_decref(cp_fake_call("POST", "/_fake/inbound", body));
    /* the customer's message arrives through the webhook first */
    cp_wait_count(1, 10000, "SELECT count(*) FROM messages WHERE company_id = %s AND direction = 'inbound'",
                  cp_company);
    char out[512];
    cp_reply(conv, "how can I help?", "read", out, sizeof(out));
    cr_assert(strncmp(out, "read|-|-|wamid.FAKE", 19) == 0, "%s", out);
    json_t *s = cp_fake_call("GET", "/_fake/stats", NULL);
    cr_assert_eq(cp_stat(s, "accepted"), 1);
    json_decref(s);
}

/*
 * Meta's pair limit (src/meta/pace.h): to one customer, a burst of META_PAIR_BURST (5)
 * messages, then one every META_PAIR_INTERVAL_MS (6 s), whatever the number's rate.
 */
Test(campaigns, replies_to_one_customer_keep_to_the_pair_limit)
{
    long conv = cp_conversation("5521990000005");
    json_decref(cp_fake_call("POST", "/_fake/config", "{\"window\":\"open\"}"));
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/conversations/%ld/messages", conv);
    double t0 = hs_now_ms();
    for (int i = 0; i < 6; ++i) {
        char body[64];
        snprintf(body, sizeof(body), "{\"text\":\"burst %d\"}", i);
        json_decref(hs_call_json(cp_srv.port, "POST", path, cp_admin, body, 201));
    }
    cp_wait_accepted(5, 5000);
    json_t *s = cp_fake_call("GET", "/_fake/stats", NULL);
    long burst = cp_stat(s, "accepted");
    json_decref(s);
    if (hs_now_ms() - t0 < 5000) /* else the sixth may be due already */
        cr_assert_eq(burst, 5, "%ld messages to one customer at once", burst);
    cp_wait_accepted(6, 15000);
    double sixth = hs_now_ms() - t0;
    cr_assert(sixth >= 5500, "the sixth message went out %.0f ms after the first", sixth);
    cr_assert_eq(
        cp_wait_count(6, 5000, "SELECT count(*) FROM messages WHERE company_id = %s AND wamid IS NOT NULL", cp_company),
        6);
}

Test(campaigns, reply_retried_after_a_server_error)
{
    long conv = cp_conversation("5521990000003");
    json_decref(
        cp_fake_call("POST", "/_fake/config", "{\"window\":\"open\",\"errors\":[{\"code\":131000,\"share\":1}]}"));
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/conversations/%ld/messages", conv);
    json_decref(hs_call_json(cp_srv.port, "POST", path, cp_admin, "{\"text\":\"retry me\"}", 201));
    double deadline = hs_now_ms() + 10000;
    json_t *s = NULL;
    do {
        json_decref(s);
        hs_sleep_ms(50);
        s = cp_fake_call("GET", "/_fake/stats", NULL);
    } while (cp_stat(s, "requests") < 1 && hs_now_ms() < deadline);
    json_decref(s);
    json_decref(cp_fake_call("POST", "/_fake/config", "{\"errors\":[]}"));
    /* the next attempt, after the queue's backoff, goes through */
    cr_assert_eq(cp_wait_count(1, 20000, "SELECT count(*) FROM messages WHERE company_id = %s AND wamid IS NOT NULL",
                               cp_company),
                 1);
}

Test(campaigns, reply_to_a_conversation_without_connection_is_409)
{
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/conversations/%ld/messages", cp_conversation_via("5521990000004", "NULL"));
    hs_response_t r = hs_call(cp_srv.port, "POST", path, cp_admin, "{\"text\":\"x\"}");
    cr_assert_eq(r.status, 409, "%s", r.body);
    cr_assert(strstr(r.body, "no_connection") != NULL, "%s", r.body);
    hs_response_free(&r);
}

/* ---- bad input ---- */

Test(campaigns, bad_input_is_a_clear_400)
{
    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{}", "name"},
        {"[]", "body"},
        {"{\"name\":\"x\",\"connection_id\":1,\"template\":{\"name\":\"a\",\"language\":\"en\"}}", "audience"},
        {"{\"name\":\"x\",\"template\":{\"name\":\"a\",\"language\":\"en\"},\"audience\":{\"all\":true}}",
         "connection_id"},
        {"{\"name\":\"x\",\"connection_id\":\"1\",\"template\":{\"name\":\"a\",\"language\":\"en\"},\"audience\":{"
         "\"all\":"
         "true}}",
         "connection_id"},
        {"{\"name\":\"x\",\"connection_id\":1,\"template\":{\"name\":\"Bad Name\",\"language\":\"en\"},\"audience\":{"
         "\"all\":true}}",
         "template.name"},
        {"{\"name\":\"x\",\"connection_id\":1,\"template\":{\"name\":\"a\",\"language\":\"english\"},\"audience\":{"
         "\"all\":true}}",
         "template.language"},
        {"{\"name\":\"x\",\"connection_id\":1,\"template\":{\"name\":\"a\",\"language\":\"en\",\"parameters\":[1]},"
         "\"audience\":{\"all\":true}}",
         "template.parameters"},
        {"{\"name\":\"x\",\"connection_id\":1,\"template\":{\"name\":\"a\",\"language\":\"en\",\"extra\":1},"
         "\"audience\":{\"all\":true}}",
         "template"},
        {"{\"name\":\"x\",\"connection_id\":1,\"template\":{\"name\":\"a\",\"language\":\"en\"},\"audience\":{\"all\":"
         "false}}",
         "audience.all"},
        {"{\"name\":\"x\",\"connection_id\":1,\"template\":{\"name\":\"a\",\"language\":\"en\"},\"audience\":{\"all\":"
         "true,\"labels\":[\"a\"]}}",
         "audience"},
        {"{\"name\":\"x\",\"connection_id\":1,\"template\":{\"name\":\"a\",\"language\":\"en\"},\"audience\":{"
         "\"contact_ids\":[]}}",
         "audience.contact_ids"},
        {"{\"name\":\"x\",\"connection_id\":1,\"template\":{\"name\":\"a\",\"language\":\"en\"},\"audience\":{"
         "\"contact_ids\":[0]}}",
         "audience.contact_ids"},
        {"{\"name\":\"x\",\"connection_id\":1,\"template\":{\"name\":\"a\",\"language\":\"en\"},\"audience\":{"
         "\"phone_prefix\":\"+55\"}}",
         "audience.phone_prefix"},
        {"{\"name\":\"x\",\"connection_id\":1,\"template\":{\"name\":\"a\",\"language\":\"en\"},\"audience\":{"
         "\"labels\":\"vip\"}}",
         "audience.labels"},
        {"{\"name\":\"x\",\"connection_id\":1,\"template\":{\"name\":\"a\",\"language\":\"en\"},\"audience\":{"
         "\"who\":1}}",
         "audience"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        hs_response_t r = hs_call(cp_srv.port, "POST", "/api/v1/campaigns", cp_admin, bad[i].body);
        cr_assert_eq(r.status, 400, "%s: %ld %s", bad[i].body, r.status, r.body);
        json_t *j = hs_json(&r);
        const char *field = json_string_value(json_object_get(json_object_get(j, "error"), "field"));
        cr_assert(field != NULL && strcmp(field, bad[i].field) == 0, "%s: %s", bad[i].body, r.body);
        json_decref(j);
        hs_response_free(&r);
    }
    const char *triggers[] = {"{}",
                              "{\"campaign_id\":\"1\"}",
                              "{\"campaign_id\":0}",
                              "{\"campaign_id\":null}",
                              "{\"campaign_id\":1,\"x\":2}",
                              "not json"};
    for (size_t i = 0; i < sizeof(triggers) / sizeof(triggers[0]); ++i) {
        hs_response_t r = hs_call(cp_srv.port, "POST", "/api/v1/campaigns/trigger", cp_admin, triggers[i]);
        cr_assert_eq(r.status, 400, "%s: %ld %s", triggers[i], r.status, r.body);
        hs_response_free(&r);
    }
    hs_response_t r =
        hs_call(cp_srv.port, "POST", "/api/v1/campaigns/trigger", cp_admin, "{\"campaign_id\":999999999}");
    cr_assert_eq(r.status, 404, "%s", r.body);
    hs_response_free(&r);
    r = hs_call(cp_srv.port, "POST", "/api/v1/campaigns/999999999/pause", cp_admin, NULL);
    cr_assert_eq(r.status, 404, "%s", r.body);
    hs_response_free(&r);
    r = hs_call(cp_srv.port, "GET", "/api/v1/campaigns/abc", cp_admin, NULL);
    cr_assert_eq(r.status, 400, "%s", r.body);
    hs_response_free(&r);
    /* a draft cannot be paused or resumed; it can be cancelled */
    int64_t id = cp_create("draft", "{\"all\":true}");
    cp_move(id, "pause", 409);
    cp_move(id, "resume", 409);
    cp_move(id, "cancel", 200);
    json_t *t = cp_trigger(id);
    cr_assert_str_eq(cp_status(t), "cancelled");
    json_decref(t);
    /* the connection's throughput: 1 to 1,000 */
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/connections/%s", cp_conn);
    const char *mps[] = {"{\"messages_per_second\":0}", "{\"messages_per_second\":1001}",
                         "{\"messages_per_second\":\"80\"}", "{\"messages_per_second\":1.5}"};
    for (size_t i = 0; i < sizeof(mps) / sizeof(mps[0]); ++i) {
        r = hs_call(cp_srv.port, "PATCH", path, cp_admin, mps[i]);
        cr_assert_eq(r.status, 400, "%s: %ld %s", mps[i], r.status, r.body);
        hs_response_free(&r);
    }
}

Test(campaigns, agents_read_but_do_not_run_campaigns_and_companies_stay_apart)
{
    int64_t id = cp_create("mine", "{\"all\":true}");
    char email[96];
    snprintf(email, sizeof(email), "agent@%s.test", cp_slug);
    char *agent = hs_login(cp_srv.port, email);
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/campaigns/%" PRId64, id);
    json_decref(hs_call_json(cp_srv.port, "GET", path, agent, NULL, 200));
    json_t *list = hs_call_json(cp_srv.port, "GET", "/api/v1/campaigns", agent, NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(list, "data")), 1);
    json_decref(list);
    hs_response_t r = hs_call(cp_srv.port, "POST", "/api/v1/campaigns/trigger", agent, "{\"campaign_id\":1}");
    cr_assert_eq(r.status, 403, "%s", r.body);
    hs_response_free(&r);
    free(agent);

    /* another company sees none of it and cannot run it, nor use this connection */
    char other[32];
    snprintf(other, sizeof(other), "it-cp2-%d", (int)getpid());
    hs_company(other, "Other company");
    snprintf(email, sizeof(email), "admin@%s.test", other);
    char *them = hs_login(cp_srv.port, email);
    r = hs_call(cp_srv.port, "GET", path, them, NULL);
    cr_assert_eq(r.status, 404, "%s", r.body);
    hs_response_free(&r);
    list = hs_call_json(cp_srv.port, "GET", "/api/v1/campaigns", them, NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(list, "data")), 0);
    json_decref(list);
    char body[128];
    snprintf(body, sizeof(body), "{\"campaign_id\":%" PRId64 "}", id);
    r = hs_call(cp_srv.port, "POST", "/api/v1/campaigns/trigger", them, body);
    cr_assert_eq(r.status, 404, "%s", r.body);
    hs_response_free(&r);
    snprintf(path, sizeof(path), "/api/v1/campaigns/%" PRId64 "/cancel", id);
    r = hs_call(cp_srv.port, "POST", path, them, NULL);
    cr_assert_eq(r.status, 404, "%s", r.body);
    hs_response_free(&r);
    snprintf(body, sizeof(body),
             "{\"name\":\"x\",\"connection_id\":%s,\"template\":{\"name\":\"a\",\"language\":\"en\"},\"audience\":{"
             "\"all\":true}}",
             cp_conn);
    r = hs_call(cp_srv.port, "POST", "/api/v1/campaigns", them, body);
    cr_assert_eq(r.status, 404, "%s", r.body);
    hs_response_free(&r);
    json_t *c = cp_get(id);
    cr_assert_str_eq(cp_status(c), "draft");
    json_decref(c);
    free(them);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = '%s'", other);
}

/* ---- the sending queues' dead letters ---- */

/* A dead letter of queue for the job's meta (JSON), as a worker that died on every attempt leaves it. */
static long cp_dead_letter(const char *company, const char *queue, const char *key, const char *meta)
{
    char sql[1024], out[64];
    snprintf(sql, sizeof(sql),
             "INSERT INTO jobs (company_id, queue, key, payload, meta, status, attempts, max_attempts, last_error,"
             " updated_at) VALUES (%s, '%s', '%s', ''::bytea, '%s', 'failed', 6, 6,"
             " 'its worker stopped answering (lease expired after attempt 6)', now()) RETURNING id",
             company, queue, key, meta);
    cp_sqlf(out, sizeof(out), sql);
    return atol(out);
}

/* The queues as GET /api/v1/queues lists them: "name:queued:running:failed,…". */
static void cp_queues(const char *token, char *out, size_t cap)
{
    json_t *j = hs_call_json(cp_srv.port, "GET", "/api/v1/queues", token, NULL, 200);
    size_t i, n = 0;
    json_t *q;
    out[0] = '\0';
    json_array_foreach (json_object_get(j, "data"), i, q) {
        n += (size_t)snprintf(out + n, cap - n, "%s%s:%lld:%lld:%lld", n ? "," : "",
                              json_string_value(json_object_get(q, "name")),
                              (long long)json_integer_value(json_object_get(q, "queued")),
                              (long long)json_integer_value(json_object_get(q, "running")),
                              (long long)json_integer_value(json_object_get(q, "failed")));
        cr_assert(n < cap);
    }
    json_decref(j);
}

/* The ids of queue's dead letters, newest first, as "id,id"; checks each item's shape. */
static void cp_failed_ids(const char *queue, char *out, size_t cap)
{
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/queues/%s/failed?limit=100", queue);
    json_t *j = hs_call_json(cp_srv.port, "GET", path, cp_admin, NULL, 200);
    size_t i, n = 0;
    json_t *f;
    out[0] = '\0';
    json_array_foreach (json_object_get(j, "data"), i, f) {
        cr_assert_eq(json_integer_value(json_object_get(f, "attempts")), 6);
        cr_assert_eq(json_integer_value(json_object_get(f, "max_attempts")), 6);
        cr_assert(strstr(json_string_value(json_object_get(f, "last_error")), "lease expired") != NULL);
        cr_assert_eq(json_integer_value(json_object_get(f, "payload_bytes")), 0);
        n += (size_t)snprintf(out + n, cap - n, "%s%lld", n ? "," : "",
                              (long long)json_integer_value(json_object_get(f, "id")));
    }
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "pagination"), "total")),
                 (json_int_t)json_array_size(json_object_get(j, "data")));
    json_decref(j);
}

static long cp_post_status(const char *path, const char *token)
{
    hs_response_t r = hs_call(cp_srv.port, "POST", path, token, NULL);
    long st = r.status;
    hs_response_free(&r);
    return st;
}

/*
 * Both sending queues' dead letters, as a worker that died on every attempt leaves them
 * (the lease expired after the last): per queue, one whose send had gone out (Meta's
 * status named its wamid through the callback data) and one that never reached Meta.
 * The queue API counts and lists them like the webhooks' ones; retried, each runs
 * again and only the one that never went out is sent, once.
 */
Test(campaigns, failed_sending_jobs_are_listed_and_retried_without_sending_twice)
{
    json_decref(cp_fake_call("POST", "/_fake/config", "{\"window\":\"open\"}"));
    char sql[2048], out[256];
    /* replies: one never sent, one sent before its worker died */
    long unsent_conv = cp_conversation("5521970000001"), sent_conv = cp_conversation("5521970000002");
    snprintf(sql, sizeof(sql),
             "INSERT INTO messages (company_id, conversation_id, direction, body, status, wamid) VALUES"
             " (%s, %ld, 'outbound', 'never went out', 'pending', NULL),"
             " (%s, %ld, 'outbound', 'went out before the crash', 'sent', 'wamid.SENTBEFORE.1')"
             " RETURNING id",
             cp_company, unsent_conv, cp_company, sent_conv);
    cp_sqlf(out, sizeof(out), sql);
    long unsent_msg = atol(out), sent_msg = atol(strchr(out, '\n') + 1);
    char meta[128], key[64];
    snprintf(meta, sizeof(meta), "{\"message\": %ld}", unsent_msg);
    snprintf(key, sizeof(key), "%s:5521970000001", cp_conn);
    long r_unsent = cp_dead_letter(cp_company, "outbound", key, meta);
    snprintf(meta, sizeof(meta), "{\"message\": %ld}", sent_msg);
    snprintf(key, sizeof(key), "%s:5521970000002", cp_conn);
    long r_sent = cp_dead_letter(cp_company, "outbound", key, meta);
    /* a running campaign of two recipients: one never sent, one sent before */
    cp_contacts("552198", 2, "{}");
    snprintf(sql, sizeof(sql),
             "WITH c AS (INSERT INTO campaigns (company_id, connection_id, name, template_name, template_language,"
             " audience, status, started_at, total, expanded_to, expanding)"
             " SELECT %s, %s, 'dead letters', 'promo_dead', 'pt_BR', jsonb_build_object('phone_prefix', '552198'),"
             " 'running', now(), 2, max(id), false FROM contacts WHERE company_id = %s AND phone_number LIKE '552198%%'"
             " RETURNING id)"
             " INSERT INTO campaign_recipients (company_id, campaign_id, contact_id, status, wamid, attempts)"
             " SELECT %s, c.id, k.id, CASE WHEN k.phone_number LIKE '%%2' THEN 'sent' ELSE 'pending' END,"
             " CASE WHEN k.phone_number LIKE '%%2' THEN 'wamid.SENTBEFORE.2' END, 1"
             " FROM c, contacts k WHERE k.company_id = %s AND k.phone_number LIKE '552198%%'"
             " RETURNING campaign_id || ':' || contact_id || ':' || status",
             cp_company, cp_conn, cp_company, cp_company, cp_company);
    cp_sqlf(out, sizeof(out), sql);
    long campaign = 0, c_unsent = 0, c_sent = 0;
    for (char *save, *line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        long cid = 0, contact = 0;
        char status[16];
        cr_assert_eq(sscanf(line, "%ld:%ld:%15s", &cid, &contact, status), 3, "%s", line);
        campaign = cid;
        *(strcmp(status, "sent") == 0 ? &c_sent : &c_unsent) = contact;
    }
    cr_assert(campaign > 0 && c_sent > 0 && c_unsent > 0);
    snprintf(meta, sizeof(meta), "{\"campaign\": %ld, \"contact\": %ld}", campaign, c_unsent);
    snprintf(key, sizeof(key), "%s:552198000001", cp_conn);
    long c_job_unsent = cp_dead_letter(cp_company, "campaigns", key, meta);
    snprintf(meta, sizeof(meta), "{\"campaign\": %ld, \"contact\": %ld}", campaign, c_sent);
    snprintf(key, sizeof(key), "%s:552198000002", cp_conn);
    long c_job_sent = cp_dead_letter(cp_company, "campaigns", key, meta);

    /* every queue, in order, with its counts */
    char queues[256];
    cp_queues(cp_admin, queues, sizeof(queues));
    cr_assert_str_eq(queues, "webhooks:0:0:0,outbound:0:0:2,campaigns:0:0:2");
    char ids[128], want[128];
    cp_failed_ids("outbound", ids, sizeof(ids));
    snprintf(want, sizeof(want), "%ld,%ld", r_sent, r_unsent);
    cr_assert_str_eq(ids, want, "newest first");
    cp_failed_ids("campaigns", ids, sizeof(ids));
    snprintf(want, sizeof(want), "%ld,%ld", c_job_sent, c_job_unsent);
    cr_assert_str_eq(ids, want);
    cp_failed_ids("webhooks", ids, sizeof(ids));
    cr_assert_str_eq(ids, "");

    /* a job is retried through its own queue only; names are exact; ids are ids */
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/queues/campaigns/failed/%ld/retry", r_unsent);
    cr_assert_eq(cp_post_status(path, cp_admin), 404);
    snprintf(path, sizeof(path), "/api/v1/queues/webhooks/failed/%ld/retry", c_job_unsent);
    cr_assert_eq(cp_post_status(path, cp_admin), 404);
    cr_assert_eq(cp_post_status("/api/v1/queues/outbound/failed/987654321/retry", cp_admin), 404);
    static const char *const unknown[] = {"/api/v1/queues/sms/failed", "/api/v1/queues/Outbound/failed",
                                          "/api/v1/queues/outbound%20/failed", "/api/v1/queues/outbounds/failed"};
    for (size_t i = 0; i != sizeof(unknown) / sizeof(unknown[0]); ++i) {
        hs_response_t r = hs_call(cp_srv.port, "GET", unknown[i], cp_admin, NULL);
        cr_assert_eq(r.status, 404, "%s: %ld %s", unknown[i], r.status, r.body);
        hs_response_free(&r);
    }
    cr_assert_eq(cp_post_status("/api/v1/queues/sms/failed/retry_all", cp_admin), 404);
    static const char *const bad_ids[] = {"abc", "0", "-2", "1.5", "99999999999999999999"};
    for (size_t i = 0; i != sizeof(bad_ids) / sizeof(bad_ids[0]); ++i) {
        snprintf(path, sizeof(path), "/api/v1/queues/outbound/failed/%s/retry", bad_ids[i]);
        hs_response_t r = hs_call(cp_srv.port, "POST", path, cp_admin, NULL);
        cr_assert_eq(r.status, 400, "%s: %ld %s", path, r.status, r.body);
        cr_assert(strstr(r.body, "\"field\":\"id\"") != NULL, "%s", r.body);
        hs_response_free(&r);
    }
    hs_response_t r = hs_call(cp_srv.port, "GET", "/api/v1/queues/campaigns/failed?limit=0", cp_admin, NULL);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    hs_response_free(&r);
    cp_queues(cp_admin, queues, sizeof(queues));
    cr_assert_str_eq(queues, "webhooks:0:0:0,outbound:0:0:2,campaigns:0:0:2", "a refused retry changed something");

    /* one retried alone: queued again with its attempts starting over */
    snprintf(path, sizeof(path), "/api/v1/queues/outbound/failed/%ld/retry", r_unsent);
    json_t *j = hs_call_json(cp_srv.port, "POST", path, cp_admin, NULL, 200);
    json_t *d = json_object_get(j, "data");
    cr_assert_eq(json_integer_value(json_object_get(d, "id")), r_unsent);
    cr_assert_str_eq(json_string_value(json_object_get(d, "status")), "queued");
    cr_assert_eq(json_integer_value(json_object_get(d, "attempts")), 0);
    json_decref(j);
    /* the rest at once, queue by queue */
    j = hs_call_json(cp_srv.port, "POST", "/api/v1/queues/outbound/failed/retry_all", cp_admin, NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "data"), "retried")), 1);
    json_decref(j);
    j = hs_call_json(cp_srv.port, "POST", "/api/v1/queues/campaigns/failed/retry_all", cp_admin, NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "data"), "retried")), 2);
    json_decref(j);

    /* the workers take them at once (NOTIFY) and finish them, and the statuses of the
     * sends come back and are applied */
    cr_assert_eq(cp_wait_count(0, 20000, "SELECT count(*) FROM jobs WHERE company_id = %s AND status <> 'completed'",
                               cp_company),
                 0);
    cp_settle(20000);
    cp_queues(cp_admin, queues, sizeof(queues));
    cr_assert_str_eq(queues, "webhooks:0:0:0,outbound:0:0:0,campaigns:0:0:0");
    snprintf(path, sizeof(path), "/api/v1/queues/outbound/failed/%ld/retry", r_unsent);
    cr_assert_eq(cp_post_status(path, cp_admin), 404, "retried twice");

    /* Meta saw each send that had not gone out, once, and nothing else */
    json_t *s = cp_fake_call("GET", "/_fake/stats", NULL);
    cr_assert_eq(cp_stat(s, "requests"), 2, "%s", json_dumps(s, 0));
    cr_assert_eq(cp_stat(s, "accepted"), 2, "%s", json_dumps(s, 0));
    cr_assert_eq(cp_stat(s, "recipients"), 2, "%s", json_dumps(s, 0));
    cr_assert_eq(cp_stat(s, "duplicates"), 0);
    json_decref(s);
    cr_assert_eq(
        cp_count("SELECT count(*) FROM messages WHERE company_id = %s AND id = %ld AND wamid LIKE 'wamid.FAKE%%'",
                 cp_company, unsent_msg),
        1, "the reply that never went out was not sent");
    cr_assert_eq(cp_count("SELECT count(*) FROM messages WHERE company_id = %s AND id = %ld"
                          " AND wamid = 'wamid.SENTBEFORE.1'",
                          cp_company, sent_msg),
                 1);
    cr_assert_eq(cp_count("SELECT count(*) FROM campaign_recipients WHERE company_id = %s AND contact_id = %ld"
                          " AND wamid LIKE 'wamid.FAKE%%'",
                          cp_company, c_unsent),
                 1);
    cr_assert_eq(cp_count("SELECT count(*) FROM campaign_recipients WHERE company_id = %s AND contact_id = %ld"
                          " AND wamid = 'wamid.SENTBEFORE.2'",
                          cp_company, c_sent),
                 1);
    /* with its last recipient sent, the campaign is done */
    json_t *c = cp_wait(campaign, cp_completed, 10000);
    cr_assert(cp_completed(c), "%s", json_dumps(c, 0));
    cr_assert_eq(cp_progress(c, "pending"), 0);
    json_decref(c);
}

Test(campaigns, dead_letters_stay_within_their_company)
{
    char other[32], sql[256], their_company[24], email[96];
    snprintf(other, sizeof(other), "it-cp3-%d", (int)getpid());
    hs_company(other, "Other company");
    snprintf(sql, sizeof(sql), "SELECT id FROM companies WHERE slug = '%s'", other);
    cp_sqlf(their_company, sizeof(their_company), sql);
    long theirs = cp_dead_letter(their_company, "outbound", "1:5521960000001", "{\"message\": 1}");
    long ours = cp_dead_letter(cp_company, "campaigns", "1:5521960000002", "{\"campaign\": 1, \"contact\": 1}");
    snprintf(email, sizeof(email), "admin@%s.test", other);
    char *them = hs_login(cp_srv.port, email);

    /* each admin counts and lists only the company's own */
    char queues[256], ids[128], want[64];
    cp_settle(20000); /* statuses of earlier tests' sends */
    cp_queues(cp_admin, queues, sizeof(queues));
    cr_assert_str_eq(queues, "webhooks:0:0:0,outbound:0:0:0,campaigns:0:0:1");
    cp_queues(them, queues, sizeof(queues));
    cr_assert_str_eq(queues, "webhooks:0:0:0,outbound:0:0:1,campaigns:0:0:0");
    cp_failed_ids("outbound", ids, sizeof(ids));
    cr_assert_str_eq(ids, "");
    snprintf(want, sizeof(want), "%ld", ours);
    cp_failed_ids("campaigns", ids, sizeof(ids));
    cr_assert_str_eq(ids, want);

    /* another company's job is not found, exactly like an unknown one; retry_all leaves it */
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/queues/outbound/failed/%ld/retry", theirs);
    hs_response_t a = hs_call(cp_srv.port, "POST", path, cp_admin, NULL);
    hs_response_t b = hs_call(cp_srv.port, "POST", "/api/v1/queues/outbound/failed/987654321/retry", cp_admin, NULL);
    cr_assert_eq(a.status, 404, "%ld %s", a.status, a.body);
    cr_assert_eq(b.status, 404);
    json_t *ja = hs_json(&a), *jb = hs_json(&b);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(ja, "error"), "message")),
                     json_string_value(json_object_get(json_object_get(jb, "error"), "message")));
    json_decref(ja);
    json_decref(jb);
    hs_response_free(&a);
    hs_response_free(&b);
    snprintf(path, sizeof(path), "/api/v1/queues/campaigns/failed/%ld/retry", ours);
    cr_assert_eq(cp_post_status(path, them), 404);
    json_t *j = hs_call_json(cp_srv.port, "POST", "/api/v1/queues/outbound/failed/retry_all", cp_admin, NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "data"), "retried")), 0);
    json_decref(j);
    j = hs_call_json(cp_srv.port, "POST", "/api/v1/queues/campaigns/failed/retry_all", them, NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "data"), "retried")), 0);
    json_decref(j);
    cr_assert_eq(cp_count("SELECT count(*) FROM jobs WHERE id IN (%ld, %ld) AND status = 'failed'", theirs, ours), 2);

    /* the queues are an admin's: an agent is refused */
    snprintf(email, sizeof(email), "agent@%s.test", cp_slug);
    char *agent = hs_login(cp_srv.port, email);
    hs_response_t r = hs_call(cp_srv.port, "GET", "/api/v1/queues", agent, NULL);
    cr_assert_eq(r.status, 403, "%ld %s", r.status, r.body);
    hs_response_free(&r);
    cr_assert_eq(cp_post_status("/api/v1/queues/campaigns/failed/retry_all", agent), 403);
    free(agent);
    free(them);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = '%s'", other);
}
