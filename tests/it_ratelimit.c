/*
 * Rate limiting (src/http/ratelimit.c) against the real binary, the real Redis and
 * each other: the plan's check (120 requests from one address give 100 answers then
 * 429s), shared counts across two processes, blocks that lift, who the client is
 * behind a proxy, authenticated traffic per token under a per-address ceiling, and the
 * in-process limiter while Redis is away.
 *
 * tests/run.sh sets every limit very high so other tests are never limited; each test
 * here sets the limits it checks, and clears the counters the start-up probes made.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* Forgets every counter in Redis (the start-up probes of hs_server_start count too). */
static void clear_counters(void)
{
    int rc = hs_sh(NULL, 0,
                   "redis-cli -u \"$REDIS_URL\" --scan --pattern 'rl:*' | xargs -r redis-cli -u \"$REDIS_URL\" del"
                   " >/dev/null");
    cr_assert_eq(rc, 0, "could not clear the rate-limit counters");
}

/* Each test starts with no counters, and leaves none that would refuse the next one's start-up. */
static void restore_stack(void)
{
    hs_stack("redis-start");
    clear_counters();
}

TestSuite(ratelimit, .init = clear_counters, .fini = restore_stack, .timeout = 120);

/* A server with the limits in env, its start-up probes forgotten. */
static void start(hs_server_t *s, const char *const *env)
{
    hs_server_start(s, env);
    clear_counters();
}

/* GET path with an optional X-Forwarded-For; returns the response (caller frees). */
static hs_response_t get_from(int port, const char *path, const char *xff)
{
    char h[160];
    const char *headers[] = {h, NULL};
    snprintf(h, sizeof(h), "X-Forwarded-For: %s", xff != NULL ? xff : "");
    return hs_request(port, "GET", path, NULL, 0, xff != NULL ? headers : NULL);
}

static long status_from(int port, const char *path, const char *xff)
{
    hs_response_t r = get_from(port, path, xff);
    long s = r.status;
    hs_response_free(&r);
    return s;
}

static long authed(int port, const char *token)
{
    hs_response_t r = hs_call(port, "GET", "/api/v1/conversations/status", token, NULL);
    long s = r.status;
    hs_response_free(&r);
    return s;
}

/* The value of one sample in an exposition, or -1. */
static long metric(const char *body, const char *sample)
{
    const char *p = body != NULL ? strstr(body, sample) : NULL;
    return p != NULL ? strtol(p + strlen(sample), NULL, 10) : -1;
}

static void assert_429(const hs_response_t *r, const char *policy_name, unsigned max_retry)
{
    cr_assert_eq(r->status, 429, "status %ld: %s", r->status, r->body);
    char *ra = hs_header(r, "retry-after");
    cr_assert_not_null(ra, "429 without Retry-After");
    long secs = strtol(ra, NULL, 10);
    cr_assert(secs >= 1 && secs <= (long)max_retry, "Retry-After %s", ra);
    free(ra);
    char *pol = hs_header(r, "ratelimit-policy");
    cr_assert(pol != NULL && strstr(pol, policy_name) != NULL, "RateLimit-Policy %s", pol ? pol : "(none)");
    free(pol);
    json_t *j = hs_json(r);
    cr_assert_not_null(j, "429 body is not JSON: %s", r->body);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "rate_limited");
    json_decref(j);
}

Test(ratelimit, plan_check_120_requests_give_exactly_100_then_429s)
{
    const char *env[] = {"RATE_LIMIT_PUBLIC=100/60/60", "RATE_LIMIT_EXEMPT=127.0.0.1", NULL};
    hs_server_t s;
    start(&s, env);
    int ok = 0, limited = 0, first_limited = -1;
    for (int i = 0; i != 120; ++i) {
        hs_response_t r = hs_get(s.port, "/api/health");
        if (r.status == 200) {
            ++ok;
            cr_assert_eq(first_limited, -1, "request %d answered 200 after a 429", i + 1);
            char *pol = hs_header(&r, "ratelimit-policy"), *st = hs_header(&r, "ratelimit");
            char want[64];
            snprintf(want, sizeof(want), "\"default\";r=%d;t=", 99 - i);
            cr_assert(pol != NULL && strcmp(pol, "\"default\";q=100;w=60") == 0, "policy %s", pol ? pol : "(none)");
            cr_assert(st != NULL && strncmp(st, want, strlen(want)) == 0, "request %d: RateLimit %s", i + 1,
                      st ? st : "(none)");
            free(pol);
            free(st);
        } else {
            if (first_limited < 0)
                first_limited = i;
            assert_429(&r, "\"default\";q=100;w=60", 60);
            ++limited;
        }
        hs_response_free(&r);
    }
    cr_assert_eq(ok, 100);
    cr_assert_eq(limited, 20);
    /* the flood was counted, and answered from memory after Redis said so once per loop thread (2) */
    hs_response_t m = hs_get(s.port, "/api/metrics");
    long allowed = metric(m.body, "ratelimit_requests_total{group=\"default\",result=\"allowed\"}");
    long refused = metric(m.body, "ratelimit_requests_total{group=\"default\",result=\"limited\"}");
    long blocked = metric(m.body, "ratelimit_requests_total{group=\"default\",result=\"blocked\"}");
    cr_assert_geq(allowed, 100);
    cr_assert(refused >= 1 && refused <= 2 && refused + blocked == 20, "limited %ld, blocked %ld", refused, blocked);
    hs_response_free(&m);
    hs_server_stop(&s);
}

Test(ratelimit, two_processes_share_one_count)
{
    const char *env[] = {"RATE_LIMIT_PUBLIC=100/60/60", NULL};
    hs_server_t a, b;
    hs_server_start(&a, env);
    hs_server_start(&b, env);
    clear_counters();
    int ok = 0, limited = 0;
    for (int i = 0; i != 120; ++i) {
        long st = status_from(i % 2 ? b.port : a.port, "/api/health", NULL);
        ok += st == 200;
        limited += st == 429;
    }
    cr_assert_eq(ok, 100, "%d answered 200 across two processes", ok);
    cr_assert_eq(limited, 20);
    hs_server_stop(&a);
    hs_server_stop(&b);
}

Test(ratelimit, block_lasts_its_duration_then_lifts)
{
    /* 5 per 2 s, and the one that goes over blocks for 3 s: longer than the window */
    const char *env[] = {"RATE_LIMIT_PUBLIC=5/2/3", NULL};
    hs_server_t s;
    start(&s, env);
    for (int i = 0; i != 5; ++i)
        cr_assert_eq(status_from(s.port, "/api/health/live", NULL), 200);
    hs_response_t r = hs_get(s.port, "/api/health/live");
    double blocked_at = hs_now_ms();
    assert_429(&r, "\"default\";q=5;w=2", 3);
    char *ra = hs_header(&r, "retry-after");
    cr_assert_str_eq(ra, "3");
    free(ra);
    hs_response_free(&r);
    /* refused for the whole block, then served again */
    double lifted = -1;
    while (hs_now_ms() - blocked_at < 8000) {
        long st = status_from(s.port, "/api/health/live", NULL);
        if (st == 200) {
            lifted = hs_now_ms() - blocked_at;
            break;
        }
        cr_assert_eq(st, 429);
        hs_sleep_ms(100);
    }
    cr_assert(lifted >= 2800, "the block lifted after %.0f ms, before its 3 s", lifted);
    cr_assert(lifted > 0 && lifted < 4500, "the block lasted %.0f ms", lifted);
    hs_server_stop(&s);
}

Test(ratelimit, forwarded_for_from_an_untrusted_peer_changes_nothing)
{
    const char *env[] = {"RATE_LIMIT_PUBLIC=5/60/60", "TRUSTED_PROXIES=", NULL};
    hs_server_t s;
    start(&s, env);
    char xff[64];
    for (int i = 0; i != 5; ++i) {
        snprintf(xff, sizeof(xff), "203.0.113.%d", i + 1);
        cr_assert_eq(status_from(s.port, "/api/health/live", xff), 200);
    }
    /* a new made-up address every time: still the one peer, so limited */
    cr_assert_eq(status_from(s.port, "/api/health/live", "198.51.100.77"), 429);
    cr_assert_eq(status_from(s.port, "/api/health/live", NULL), 429);
    hs_server_stop(&s);
}

Test(ratelimit, forwarded_for_from_a_trusted_proxy_is_honoured_right_to_left)
{
    const char *env[] = {"RATE_LIMIT_PUBLIC=5/60/60", "TRUSTED_PROXIES=127.0.0.0/8, 10.1.0.0/16", NULL};
    hs_server_t s;
    start(&s, env);
    for (int i = 0; i != 5; ++i)
        cr_assert_eq(status_from(s.port, "/api/health/live", "192.0.2.10"), 200);
    cr_assert_eq(status_from(s.port, "/api/health/live", "192.0.2.10"), 429);
    /* another client behind the same proxy is not affected */
    cr_assert_eq(status_from(s.port, "/api/health/live", "192.0.2.11"), 200);
    /* the blocked client cannot escape by prepending an address: the right-most untrusted hop counts */
    cr_assert_eq(status_from(s.port, "/api/health/live", "192.0.2.99, 192.0.2.10"), 429);
    /* trusted hops on the right are skipped: 192.0.2.10 came through a second proxy */
    cr_assert_eq(status_from(s.port, "/api/health/live", "192.0.2.10, 10.1.2.3"), 429);
    /* an IPv6 client, and garbage that stops the walk at the proxy that reported it */
    cr_assert_eq(status_from(s.port, "/api/health/live", "2001:db8::1"), 200);
    cr_assert_eq(status_from(s.port, "/api/health/live", "not-an-address"), 200);
    hs_server_stop(&s);
}

Test(ratelimit, tokens_are_limited_each_under_the_address_ceiling)
{
    hs_company("rl-office", "Office");
    const char *env[] = {"RATE_LIMIT_TOKEN=5/60/60", "RATE_LIMIT_IP=10/60/60", "RATE_LIMIT_PUBLIC=3/60/60", NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    char *runaway = hs_login(s.port, "admin@rl-office.test");
    char *colleague = hs_login(s.port, "agent@rl-office.test");
    clear_counters();
    for (int i = 0; i != 5; ++i) {
        hs_response_t a = hs_call(s.port, "GET", "/api/v1/conversations/status", runaway, NULL);
        cr_assert_eq(a.status, 200, "request %d: %ld %s", i + 1, a.status, a.body);
        hs_response_free(&a);
    }
    hs_response_t r = hs_call(s.port, "GET", "/api/v1/conversations/status", runaway, NULL);
    assert_429(&r, "\"token\";q=5;w=60", 60);
    /* the read ran while it was counted; nothing of its own answer goes out with the 429 */
    char *xc = hs_header(&r, "x-cache");
    cr_assert_null(xc, "a refused read carried its handler's X-Cache: %s", xc);
    char *pol = hs_header(&r, "ratelimit-policy");
    cr_assert_str_eq(pol, "\"token\";q=5;w=60, \"ip\";q=10;w=60");
    free(pol);
    hs_response_free(&r);
    /* the colleague at the same address keeps working, up to the address's ceiling (10, 6 used) */
    for (int i = 0; i != 4; ++i)
        cr_assert_eq(authed(s.port, colleague), 200, "colleague's request %d", i + 1);
    r = hs_call(s.port, "GET", "/api/v1/conversations/status", colleague, NULL);
    assert_429(&r, "\"ip\";q=10;w=60", 60);
    char *st = hs_header(&r, "ratelimit");
    cr_assert(st != NULL && strstr(st, "\"ip\";r=0;") != NULL, "RateLimit %s", st ? st : "(none)");
    free(st);
    hs_response_free(&r);
    /* a request without a valid token is anonymous: the public group, 401 until it too is over */
    for (int i = 0; i != 3; ++i) {
        hs_response_t u = hs_call(s.port, "GET", "/api/v1/conversations/status", "cv_not_a_token", NULL);
        cr_assert_eq(u.status, 401, "%ld %s", u.status, u.body);
        hs_response_free(&u);
    }
    hs_response_t u = hs_call(s.port, "GET", "/api/v1/conversations/status", "cv_not_a_token", NULL);
    assert_429(&u, "\"default\";q=3;w=60", 60);
    hs_response_free(&u);
    free(runaway);
    free(colleague);
    hs_server_stop(&s);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = 'rl-office'");
}

/* The "r=" of the group in the RateLimit header of a raw answer, or -1. */
static long remaining_of(char *answer, const char *group)
{
    hs_response_t raw = {.headers = answer};
    char *v = hs_header(&raw, "ratelimit"), want[32];
    snprintf(want, sizeof(want), "\"%s\";r=", group);
    const char *p = v != NULL ? strstr(v, want) : NULL;
    long r = p != NULL ? strtol(p + strlen(want), NULL, 10) : -1;
    free(v);
    return r;
}

/*
 * Requests that reach a loop thread together are counted by one call of the script,
 * each distinct key once for all of its requests: every request still gets the count
 * that one call each would have given it. 30 requests of one token sent at once on 30
 * connections, with 20 allowed: 20 answers 200 whose RateLimit remaining values are 19
 * down to 0, each exactly once, then 10 answers 429.
 */
Test(ratelimit, requests_that_arrive_together_are_counted_one_by_one)
{
    hs_company("rl-burst", "Burst");
    const char *env[] = {"THREADS=1", "RATE_LIMIT_TOKEN=20/60/60", "RATE_LIMIT_IP=1000/60/60", NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    char *token = hs_login(s.port, "admin@rl-burst.test");
    clear_counters();
    enum { N = 30 };
    int fds[N];
    for (int i = 0; i != N; ++i)
        fds[i] = hs_dial(s.port);
    hs_sleep_ms(200); /* every connection accepted: the requests below arrive as one burst */
    char req[512];
    int len = snprintf(req, sizeof(req),
                       "GET /api/v1/conversations/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                       "Connection: close\r\n\r\n",
                       token);
    for (int i = 0; i != N; ++i)
        cr_assert_eq(send(fds[i], req, (size_t)len, MSG_NOSIGNAL), len);
    int ok = 0, limited = 0, seen[20] = {0};
    for (int i = 0; i != N; ++i) {
        int closed;
        char *head = hs_read_all(fds[i], 10000, &closed);
        long status = strncmp(head, "HTTP/1.1 ", 9) == 0 ? strtol(head + 9, NULL, 10) : -1;
        long r = remaining_of(head, "token");
        if (status == 200) {
            ++ok;
            cr_assert(r >= 0 && r < 20, "a 200 with RateLimit remaining %ld: %.300s", r, head);
            cr_assert_eq(seen[r]++, 0, "two requests were told %ld remain", r);
        } else {
            cr_assert_eq(status, 429, "%.300s", head);
            cr_assert_eq(r, 0, "a 429 with RateLimit remaining %ld", r);
            ++limited;
        }
        free(head);
    }
    cr_assert_eq(ok, 20);
    cr_assert_eq(limited, 10);
    free(token);
    hs_server_stop(&s);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = 'rl-burst'");
}

Test(ratelimit, webhooks_have_their_own_limit_and_scrapers_can_be_exempt)
{
    const char *env[] = {"RATE_LIMIT_PUBLIC=3/60/60", "RATE_LIMIT_WEBHOOKS=6/60/60", "RATE_LIMIT_EXEMPT=127.0.0.1",
                         NULL};
    hs_server_t s;
    start(&s, env);
    for (int i = 0; i != 6; ++i) {
        long st = status_from(s.port, "/api/webhooks/meta/no-such-slug?hub.mode=subscribe", NULL);
        cr_assert(st != 429 && st != 0, "webhook request %d: %ld", i + 1, st);
    }
    cr_assert_eq(status_from(s.port, "/api/webhooks/meta/no-such-slug?hub.mode=subscribe", NULL), 429);
    /* the public group is untouched by the webhooks' count */
    for (int i = 0; i != 3; ++i)
        cr_assert_eq(status_from(s.port, "/api/health", NULL), 200);
    cr_assert_eq(status_from(s.port, "/api/health", NULL), 429);
    /* while the configured monitor scrapes /api/metrics and probes liveness as often as it likes */
    for (int i = 0; i != 10; ++i) {
        cr_assert_eq(status_from(s.port, "/api/metrics", NULL), 200);
        cr_assert_eq(status_from(s.port, "/api/health/live", NULL), 200);
    }
    hs_server_stop(&s);
}

Test(ratelimit, metrics_and_liveness_are_limited_for_everyone_else)
{
    const char *env[] = {"RATE_LIMIT_PUBLIC=3/60/60", "RATE_LIMIT_EXEMPT=192.0.2.0/24", NULL};
    hs_server_t s;
    start(&s, env);
    for (int i = 0; i != 2; ++i)
        cr_assert_eq(status_from(s.port, "/api/metrics", NULL), 200);
    cr_assert_eq(status_from(s.port, "/api/health/live", NULL), 200);
    cr_assert_eq(status_from(s.port, "/api/metrics", NULL), 429);
    cr_assert_eq(status_from(s.port, "/api/health/live", NULL), 429);
    hs_server_stop(&s);
}

Test(ratelimit, redis_stopped_the_process_still_limits)
{
    const char *env[] = {"RATE_LIMIT_PUBLIC=5/60/60", "RATE_LIMIT_EXEMPT=127.0.0.1", NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    cr_assert_eq(hs_stack("redis-stop"), 0);
    for (int i = 0; i != 5; ++i)
        cr_assert_eq(status_from(s.port, "/api/health", NULL), 200, "request %d", i + 1);
    hs_response_t r = hs_get(s.port, "/api/health");
    assert_429(&r, "\"default\";q=5;w=60", 60);
    hs_response_free(&r);
    hs_response_t m = hs_get(s.port, "/api/metrics");
    cr_assert_eq(m.status, 200);
    const char *g = strstr(m.body, "\nratelimit_fallback_active ");
    cr_assert(g != NULL && strtol(g + 27, NULL, 10) >= 1, "fallback not reported");
    hs_response_free(&m);
    /* Redis back: the shared count is used again and the metric says so */
    cr_assert_eq(hs_stack("redis-start"), 0);
    double t0 = hs_now_ms();
    int shared = 0;
    while (!shared && hs_now_ms() - t0 < 10000) {
        /* another group's key: the blocked one is refused from memory without asking Redis */
        status_from(s.port, "/api/webhooks/meta/any?hub.mode=subscribe", NULL);
        hs_response_t m2 = hs_get(s.port, "/api/metrics");
        const char *g2 = m2.body != NULL ? strstr(m2.body, "\nratelimit_fallback_active ") : NULL;
        shared = g2 != NULL && strtol(g2 + 27, NULL, 10) == 0;
        hs_response_free(&m2);
        if (!shared)
            hs_sleep_ms(100);
    }
    cr_assert(shared, "still limiting in process 10 s after Redis came back");
    hs_server_stop(&s);
}

/*
 * A read runs while its rate limit is counted. Refused, it answers 429 at once even
 * when its own query is stuck behind a lock, and the query's answer, when it comes, is
 * dropped: the server goes on serving.
 */
Test(ratelimit, a_refused_read_answers_at_once_while_its_query_waits)
{
    hs_company("rl-stuck", "Stuck");
    const char *env[] = {"RATE_LIMIT_TOKEN=1/60/60", "CACHE_ENABLED=off", NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    char *agent = hs_login(s.port, "agent@rl-stuck.test");
    char *admin = hs_login(s.port, "admin@rl-stuck.test");
    clear_counters();
    cr_assert_eq(authed(s.port, agent), 200, "the token's one request");
    hs_sh(NULL, 0,
          "(echo 'BEGIN; LOCK TABLE conversation_counts IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2); COMMIT;'"
          " | psql -q \"$DATABASE_URL\" >/dev/null 2>&1 &)");
    char held[8] = "";
    double t0 = hs_now_ms();
    while (strcmp(held, "1") != 0 && hs_now_ms() - t0 < 5000) {
        hs_sql(held, sizeof(held),
               "SELECT count(*) FROM pg_locks WHERE relation = 'conversation_counts'::regclass"
               " AND mode = 'AccessExclusiveLock' AND granted");
        if (strcmp(held, "1") != 0)
            hs_sleep_ms(20);
    }
    cr_assert_str_eq(held, "1", "the lock was not taken");
    double t1 = hs_now_ms();
    hs_response_t r = hs_call(s.port, "GET", "/api/v1/conversations/status", agent, NULL);
    double took = hs_now_ms() - t1;
    assert_429(&r, "\"token\";q=1;w=60", 60);
    hs_response_free(&r);
    cr_assert(took < 1500, "the 429 waited %.0f ms for the query it replaces", took);
    /* another token's read waits for the lock like the dropped query, and is served once it goes */
    cr_assert_eq(authed(s.port, admin), 200, "the server stopped serving after a dropped answer");
    cr_assert_eq(authed(s.port, agent), 429, "the refused token is still over its limit");
    free(agent);
    free(admin);
    cr_assert_eq(hs_server_stop(&s), 0, "the server did not stop cleanly");
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = 'rl-stuck'");
}
