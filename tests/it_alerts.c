/*
 * Alerts (src/ops/alerts.c): each rule's condition is made to happen for real against
 * the real binary (slow responses behind a lock, 5xx while PostgreSQL is stopped, a
 * cache missed on purpose, a small MEMORY_LIMIT_MB, a job stuck behind another, Redis
 * stopped); each must fire within 30 s of its condition with the default evaluation
 * period and hold time, resolve when the condition clears, be logged as
 * "[ALERT][LEVEL] …", and reach a Slack-compatible receiver run by the test.
 *
 * The window is shortened (ALERT_WINDOW_SECONDS=15) only so resolutions come sooner.
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define ALERT_DEADLINE_MS 30000

static void restore_stack(void)
{
    hs_stack("pg-start");
    hs_stack("redis-start");
}

TestSuite(alerts, .init = restore_stack, .fini = restore_stack, .timeout = 240);

/* ---- a webhook receiver: keeps every body, answers 500 to the first `fail` posts ---- */

typedef struct receiver {
    int fd, port, fail, stop;
    pthread_t tid;
    pthread_mutex_t lock;
    json_t *bodies; /* array */
    int posts;
} receiver_t;

static void *receiver_main(void *arg)
{
    receiver_t *rc = arg;
    while (!rc->stop) {
        int c = accept(rc->fd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[65536];
        size_t n = 0;
        long want = -1;
        for (;;) {
            ssize_t k = read(c, buf + n, sizeof(buf) - 1 - n);
            if (k <= 0)
                break;
            n += (size_t)k;
            buf[n] = '\0';
            char *end = strstr(buf, "\r\n\r\n");
            if (end == NULL)
                continue;
            char *cl = strcasestr(buf, "content-length:");
            long len = cl != NULL ? strtol(cl + 15, NULL, 10) : 0;
            want = (long)(end + 4 - buf) + len;
            if ((long)n >= want)
                break;
        }
        pthread_mutex_lock(&rc->lock);
        int status = rc->posts++ < rc->fail ? 500 : 200;
        if (status == 200 && want > 0) {
            json_t *j = json_loads(strstr(buf, "\r\n\r\n") + 4, 0, NULL);
            if (j != NULL)
                json_array_append_new(rc->bodies, j);
        }
        pthread_mutex_unlock(&rc->lock);
        char out[128];
        int m = snprintf(out, sizeof(out), "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
        if (write(c, out, (size_t)m) < 0) {
        }
        close(c);
    }
    return NULL;
}

static void receiver_start(receiver_t *rc, int fail)
{
    memset(rc, 0, sizeof(*rc));
    pthread_mutex_init(&rc->lock, NULL);
    rc->bodies = json_array();
    rc->fail = fail;
    rc->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert(bind(rc->fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(rc->fd, 16) == 0);
    getsockname(rc->fd, (struct sockaddr *)&a, &len);
    rc->port = ntohs(a.sin_port);
    struct timeval tv = {0, 200000};
    setsockopt(rc->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    pthread_create(&rc->tid, NULL, receiver_main, rc);
}

static void receiver_stop(receiver_t *rc)
{
    rc->stop = 1;
    pthread_join(rc->tid, NULL);
    close(rc->fd);
    json_decref(rc->bodies);
}

/* The notice for rule in state ("firing"/"resolved") if received: a new reference, or NULL. */
static json_t *receiver_find(receiver_t *rc, const char *rule, const char *state)
{
    json_t *found = NULL, *b;
    size_t i;
    pthread_mutex_lock(&rc->lock);
    json_array_foreach (rc->bodies, i, b) {
        json_t *c = json_object_get(b, "conversa");
        if (strcmp(json_string_value(json_object_get(c, "rule")) ?: "", rule) == 0 &&
            strcmp(json_string_value(json_object_get(c, "state")) ?: "", state) == 0) {
            found = json_incref(b);
            break;
        }
    }
    pthread_mutex_unlock(&rc->lock);
    return found;
}

/* ---- helpers ---- */

static void start(hs_server_t *s, receiver_t *rc, const char *const *extra)
{
    static char url[64];
    snprintf(url, sizeof(url), "ALERT_WEBHOOK_URL=http://127.0.0.1:%d/hook", rc->port);
    const char *env[16] = {url, "ALERT_WINDOW_SECONDS=15"};
    size_t n = 2;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 15; ++i)
        env[n++] = extra[i];
    env[n] = NULL;
    hs_server_start(s, env);
}

/* Whether /api/metrics says rule is firing (1), not (0), or could not be read (-1). */
static int firing(int port, const char *rule)
{
    hs_response_t r = hs_get(port, "/api/metrics");
    char needle[96];
    snprintf(needle, sizeof(needle), "alerts_firing{rule=\"%s\",", rule);
    const char *p = r.status == 200 && r.body != NULL ? strstr(r.body, needle) : NULL;
    int v = -1;
    if (p != NULL && (p = strchr(p, '}')) != NULL)
        v = (int)strtol(p + 1, NULL, 10);
    hs_response_free(&r);
    return v;
}

/*
 * Polls until rule is in the wanted state (1 firing, 0 not) and the receiver has the
 * matching notice; `tick` (may be NULL) runs between polls to keep the condition up.
 * Returns the ms it took, or -1 at the deadline.
 */
static double wait_for(int port, receiver_t *rc, const char *rule, int want, int deadline_ms, void (*tick)(int),
                       double t0)
{
    while (hs_now_ms() - t0 < deadline_ms) {
        if (tick != NULL)
            tick(port);
        json_t *n = receiver_find(rc, rule, want ? "firing" : "resolved");
        int ok = n != NULL && firing(port, rule) == want;
        json_decref(n);
        if (ok)
            return hs_now_ms() - t0;
        hs_sleep_ms(200);
    }
    return -1;
}

static void assert_notice(receiver_t *rc, const char *rule, const char *level)
{
    json_t *n = receiver_find(rc, rule, "firing");
    cr_assert_not_null(n, "no firing notice for %s", rule);
    const char *text = json_string_value(json_object_get(n, "text"));
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "[ALERT][%s] ", level);
    cr_assert(text != NULL && strncmp(text, prefix, strlen(prefix)) == 0, "text %s", text ? text : "(none)");
    json_t *att = json_array_get(json_object_get(n, "attachments"), 0);
    cr_assert(json_is_string(json_object_get(att, "color")) && json_is_array(json_object_get(att, "fields")),
              "not a Slack attachment: %s", json_dumps(n, 0));
    json_decref(n);
}

static void assert_logged(const hs_server_t *s, const char *rule_message, const char *level)
{
    char *log = hs_server_log(s);
    char needle[128];
    snprintf(needle, sizeof(needle), "[ALERT][%s] %s", level, rule_message);
    cr_assert(strstr(log, needle) != NULL, "no log line %s", needle);
    free(log);
}

static char *admin_token(int port, const char *slug)
{
    char email[96];
    hs_company(slug, slug);
    snprintf(email, sizeof(email), "admin@%s.test", slug);
    return hs_login(port, email);
}

static void fast_requests(int port)
{
    for (int i = 0; i != 20; ++i) {
        hs_response_t r = hs_get(port, "/api/health/live");
        hs_response_free(&r);
    }
}

/* ---- the rules ---- */

Test(alerts, database_down_and_5xx_fire_resolve_and_reach_the_receiver)
{
    receiver_t rc;
    receiver_start(&rc, 0);
    hs_server_t s;
    const char *env[] = {"CACHE_ENABLED=off", NULL};
    start(&s, &rc, env);
    char *token = admin_token(s.port, "al-db");
    cr_assert_eq(hs_stack("pg-stop"), 0);
    double t0 = hs_now_ms();
    /* requests keep coming and fail with 503 */
    for (int i = 0; i != 10; ++i) {
        hs_response_t r = hs_call(s.port, "GET", "/api/v1/contacts", token, NULL);
        cr_assert(r.status == 503 || r.status == 500, "while PostgreSQL is down: %ld", r.status);
        hs_response_free(&r);
    }
    double db = wait_for(s.port, &rc, "database_down", 1, ALERT_DEADLINE_MS, NULL, t0);
    double err = wait_for(s.port, &rc, "error_rate", 1, ALERT_DEADLINE_MS, NULL, t0);
    cr_assert(db >= 0, "database_down did not fire within 30 s");
    cr_assert(err >= 0, "error_rate did not fire within 30 s");
    cr_log_info("database_down fired after %.1f s, error_rate after %.1f s", db / 1000, err / 1000);
    assert_notice(&rc, "database_down", "CRITICAL");
    assert_notice(&rc, "error_rate", "CRITICAL");
    assert_logged(&s, "PostgreSQL unreachable", "CRITICAL");
    assert_logged(&s, "Server errors (5xx)", "CRITICAL");

    cr_assert_eq(hs_stack("pg-start"), 0);
    double t1 = hs_now_ms();
    cr_assert(wait_for(s.port, &rc, "database_down", 0, ALERT_DEADLINE_MS, fast_requests, t1) >= 0,
              "database_down did not resolve");
    cr_assert(wait_for(s.port, &rc, "error_rate", 0, ALERT_DEADLINE_MS, fast_requests, t1) >= 0,
              "error_rate did not resolve after the errors left the window");
    assert_logged(&s, "Resolved: PostgreSQL unreachable", "CRITICAL");
    /* the API lists both, newest first, firing and resolved */
    json_t *j = hs_call_json(s.port, "GET", "/api/v1/alerts", token, NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(j, "active")), 0, "%s", json_dumps(j, 0));
    char *text = json_dumps(json_object_get(j, "recent"), 0);
    cr_assert(strstr(text, "\"rule\": \"database_down\"") != NULL || strstr(text, "\"rule\":\"database_down\"") != NULL,
              "%s", text);
    cr_assert(strstr(text, "resolved") != NULL, "%s", text);
    free(text);
    cr_assert_eq(json_array_size(json_object_get(j, "rules")), 8);
    json_decref(j);
    /* only admins see them */
    char *agent = hs_login(s.port, "agent@al-db.test");
    hs_response_t r = hs_call(s.port, "GET", "/api/v1/alerts", agent, NULL);
    cr_assert_eq(r.status, 403);
    hs_response_free(&r);
    free(agent);
    free(token);
    hs_server_stop(&s);
    receiver_stop(&rc);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = 'al-db'");
}

Test(alerts, redis_down_fires_and_resolves)
{
    receiver_t rc;
    receiver_start(&rc, 0);
    hs_server_t s;
    start(&s, &rc, NULL);
    cr_assert_eq(hs_stack("redis-stop"), 0);
    double t0 = hs_now_ms();
    double ms = wait_for(s.port, &rc, "redis_down", 1, ALERT_DEADLINE_MS, NULL, t0);
    cr_assert(ms >= 0, "redis_down did not fire within 30 s");
    cr_log_info("redis_down fired after %.1f s", ms / 1000);
    assert_notice(&rc, "redis_down", "CRITICAL");
    cr_assert_eq(hs_stack("redis-start"), 0);
    cr_assert(wait_for(s.port, &rc, "redis_down", 0, ALERT_DEADLINE_MS, NULL, hs_now_ms()) >= 0);
    hs_server_stop(&s);
    receiver_stop(&rc);
}

/* Runs `psql` in the background holding contacts locked for ~1 s at a time, `rounds` times. */
static void lock_contacts(int rounds)
{
    hs_sh(NULL, 0,
          "(for i in $(seq %d); do echo 'BEGIN; LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE;"
          " SELECT pg_sleep(1); COMMIT; SELECT pg_sleep(0.05);'; done | psql -q \"$DATABASE_URL\" >/dev/null 2>&1 &)",
          rounds);
}

static char *slow_token;

static void slow_request(int port)
{
    hs_response_t r = hs_call(port, "GET", "/api/v1/contacts?limit=5", slow_token, NULL);
    hs_response_free(&r);
}

Test(alerts, slow_responses_fire_mean_and_p95_then_resolve)
{
    receiver_t rc;
    receiver_start(&rc, 0);
    hs_server_t s;
    const char *env[] = {"CACHE_ENABLED=off", "ALERT_RESPONSE_MS=300", NULL};
    start(&s, &rc, env);
    slow_token = admin_token(s.port, "al-slow");
    lock_contacts(30);
    double t0 = hs_now_ms();
    double mean = wait_for(s.port, &rc, "response_time_mean", 1, ALERT_DEADLINE_MS, slow_request, t0);
    double p95 = wait_for(s.port, &rc, "response_time_p95", 1, ALERT_DEADLINE_MS, slow_request, t0);
    cr_assert(mean >= 0, "response_time_mean did not fire within 30 s");
    cr_assert(p95 >= 0, "response_time_p95 did not fire within 30 s");
    cr_log_info("response_time_mean fired after %.1f s, p95 after %.1f s", mean / 1000, p95 / 1000);
    assert_notice(&rc, "response_time_mean", "CRITICAL");
    assert_notice(&rc, "response_time_p95", "WARNING");
    assert_logged(&s, "Response time degraded: mean", "CRITICAL");
    /* the locks end by themselves (30 rounds); then fast requests fill the window */
    double t1 = hs_now_ms();
    cr_assert(wait_for(s.port, &rc, "response_time_mean", 0, 70000, fast_requests, t1) >= 0, "mean did not resolve");
    cr_assert(wait_for(s.port, &rc, "response_time_p95", 0, 70000, fast_requests, t1) >= 0, "p95 did not resolve");
    free(slow_token);
    hs_server_stop(&s);
    receiver_stop(&rc);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = 'al-slow'");
}

static char *cache_token;
static int cache_variant;

static void missing_request(int port)
{
    char path[96];
    /* a page not asked for before: limit is at most 50, so the page varies too */
    snprintf(path, sizeof(path), "/api/v1/conversations?limit=%d&page=%d", 1 + cache_variant % 50,
             1 + cache_variant / 50 % 20);
    cache_variant++;
    hs_response_t r = hs_call(port, "GET", path, cache_token, NULL);
    hs_response_free(&r);
}

static void hitting_requests(int port)
{
    for (int i = 0; i != 20; ++i) {
        hs_response_t r = hs_call(port, "GET", "/api/v1/conversations?limit=7", cache_token, NULL);
        hs_response_free(&r);
    }
}

Test(alerts, low_cache_hit_rate_fires_once_there_are_enough_lookups)
{
    receiver_t rc;
    receiver_start(&rc, 0);
    hs_server_t s;
    const char *env[] = {"ALERT_CACHE_MIN_LOOKUPS=30", NULL};
    start(&s, &rc, env);
    cache_token = admin_token(s.port, "al-cache");
    /* a few misses are not enough to judge */
    for (int i = 0; i != 10; ++i)
        missing_request(s.port);
    hs_sleep_ms(100);
    double t0 = hs_now_ms();
    double ms = wait_for(s.port, &rc, "cache_hit_rate", 1, ALERT_DEADLINE_MS, missing_request, t0);
    cr_assert(ms >= 0, "cache_hit_rate did not fire within 30 s");
    cr_log_info("cache_hit_rate fired after %.1f s", ms / 1000);
    assert_notice(&rc, "cache_hit_rate", "WARNING");
    assert_logged(&s, "Low cache hit rate", "WARNING");
    cr_assert(wait_for(s.port, &rc, "cache_hit_rate", 0, ALERT_DEADLINE_MS, hitting_requests, hs_now_ms()) >= 0,
              "cache_hit_rate did not resolve");
    free(cache_token);
    hs_server_stop(&s);
    receiver_stop(&rc);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = 'al-cache'");
}

Test(alerts, memory_over_a_small_limit_fires_and_the_notice_is_retried)
{
    receiver_t rc;
    receiver_start(&rc, 2); /* the first two posts fail: the notice must arrive on the third */
    hs_server_t s;
    const char *env[] = {"MEMORY_LIMIT_MB=2", NULL};
    double t0 = hs_now_ms();
    start(&s, &rc, env);
    double ms = wait_for(s.port, &rc, "memory", 1, ALERT_DEADLINE_MS, NULL, t0);
    cr_assert(ms >= 0, "memory did not fire within 30 s");
    cr_log_info("memory fired (and was delivered on the 3rd try) after %.1f s", ms / 1000);
    assert_notice(&rc, "memory", "WARNING");
    assert_logged(&s, "High memory usage", "WARNING");
    cr_assert_geq(rc.posts, 3);
    hs_response_t m = hs_get(s.port, "/api/metrics");
    cr_assert(strstr(m.body, "alerts_notifications_total{result=\"sent\"} ") != NULL);
    hs_response_free(&m);
    hs_server_stop(&s);
    receiver_stop(&rc);
}

Test(alerts, queue_backlog_fires_for_a_job_stuck_behind_another)
{
    receiver_t rc;
    receiver_start(&rc, 0);
    hs_server_t s;
    const char *env[] = {"ALERT_QUEUE_AGE_SECONDS=20", "QUEUE_CONCURRENCY=1", NULL};
    start(&s, &rc, env);
    hs_company("al-queue", "al-queue");
    /* a running job holds its key for an hour; the next one of that key has been due for a minute */
    int rc_sql = hs_sql(NULL, 0,
                        "INSERT INTO jobs (company_id, queue, key, payload, status, locked_until, locked_by)"
                        " SELECT id, 'webhooks', 'alert-test', '\\x00', 'running', now() + interval '1 hour', 'test'"
                        " FROM companies WHERE slug = 'al-queue';"
                        " INSERT INTO jobs (company_id, queue, key, payload, run_at)"
                        " SELECT id, 'webhooks', 'alert-test', '\\x00', now() - interval '1 minute'"
                        " FROM companies WHERE slug = 'al-queue'");
    cr_assert_eq(rc_sql, 0);
    double t0 = hs_now_ms();
    double ms = wait_for(s.port, &rc, "queue_backlog", 1, ALERT_DEADLINE_MS, NULL, t0);
    if (ms < 0) {
        hs_response_t m = hs_get(s.port, "/api/metrics");
        const char *g = m.body != NULL ? strstr(m.body, "\nqueue_oldest_waiting_seconds ") : NULL;
        char jobs[256] = "";
        hs_sql(jobs, sizeof(jobs),
               "SELECT string_agg(status || ' ' || run_at, ', ') FROM jobs WHERE key = 'alert-test'");
        cr_assert_fail("queue_backlog did not fire within 30 s (gauge: %.40s; jobs: %s)", g != NULL ? g + 1 : "none",
                       jobs);
    }
    cr_log_info("queue_backlog fired after %.1f s", ms / 1000);
    assert_notice(&rc, "queue_backlog", "WARNING");
    hs_sql(NULL, 0, "DELETE FROM jobs WHERE key = 'alert-test'");
    cr_assert(wait_for(s.port, &rc, "queue_backlog", 0, ALERT_DEADLINE_MS, NULL, hs_now_ms()) >= 0,
              "queue_backlog did not resolve");
    hs_server_stop(&s);
    receiver_stop(&rc);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = 'al-queue'");
}
