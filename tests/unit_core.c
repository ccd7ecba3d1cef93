/* Unit tests of the small modules: router, configuration, string building, metrics. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cidr.h"
#include "core/config.h"
#include "core/throttle.h"
#include "core/util.h"
#include "http/peer.h"
#include "http/router.h"
#include "ops/metrics.h"
#include "ops/proc.h"

static void h_a(struct http_request *r)
{
    (void)r;
}

static const http_route_t routes[] = {
    {"GET", "/api/health", h_a},
    {"GET", "/api/health/live", h_a},
    {"GET", "/api/webhooks/meta/:slug", h_a},
    {"POST", "/api/webhooks/meta/:slug", h_a},
    {"PATCH", "/api/v1/conversations/:id", h_a},
    {"GET", "/api/v1/conversations/:id/messages", h_a},
};

static int match(const char *method, const char *path, http_params_t *p, char *allow)
{
    return http_router_match(routes, sizeof(routes) / sizeof(routes[0]), h2o_iovec_init(method, strlen(method)),
                             h2o_iovec_init(path, strlen(path)), p, allow, 64);
}

Test(router, exact_and_parameters)
{
    http_params_t p;
    char allow[64];
    cr_assert_eq(match("GET", "/api/health", &p, allow), 0);
    cr_assert_eq(match("GET", "/api/health/live", &p, allow), 1);
    cr_assert_eq(match("POST", "/api/webhooks/meta/acme-1", &p, allow), 3);
    h2o_iovec_t slug = http_params_get(&p, "slug");
    cr_assert_eq(slug.len, 6);
    cr_assert(memcmp(slug.base, "acme-1", 6) == 0);
    cr_assert_eq(match("GET", "/api/v1/conversations/42/messages", &p, allow), 5);
    h2o_iovec_t id = http_params_get(&p, "id");
    cr_assert(id.len == 2 && memcmp(id.base, "42", 2) == 0);
    cr_assert_null(http_params_get(&p, "nope").base);
}

Test(router, not_found_and_bad_method)
{
    http_params_t p;
    char allow[64];
    cr_assert_eq(match("GET", "/api/health/", &p, allow), HTTP_ROUTE_NOT_FOUND);
    cr_assert_eq(match("GET", "/api/webhooks/meta/", &p, allow), HTTP_ROUTE_NOT_FOUND);
    cr_assert_eq(match("GET", "/api/webhooks/meta/a/b", &p, allow), HTTP_ROUTE_NOT_FOUND);
    cr_assert_eq(match("GET", "", &p, allow), HTTP_ROUTE_NOT_FOUND);
    cr_assert_eq(match("GET", "/", &p, allow), HTTP_ROUTE_NOT_FOUND);
    cr_assert_eq(match("DELETE", "/api/webhooks/meta/x", &p, allow), HTTP_ROUTE_BAD_METHOD);
    cr_assert_str_eq(allow, "GET, POST");
    cr_assert_eq(match("GET", "/api/v1/conversations/7", &p, allow), HTTP_ROUTE_BAD_METHOD);
    cr_assert_str_eq(allow, "PATCH");
    /* HEAD is served by GET routes */
    cr_assert_eq(match("HEAD", "/api/health", &p, allow), 0);
}

Test(router, validate_rejects_bad_tables)
{
    static const http_route_t dup[] = {{"GET", "/a", h_a}, {"GET", "/a", h_a}};
    static const http_route_t slash[] = {{"GET", "/a/", h_a}};
    static const http_route_t empty_param[] = {{"GET", "/a/:/b", h_a}};
    cr_assert_eq(http_router_validate(routes, sizeof(routes) / sizeof(routes[0])), 0);
    cr_assert_eq(http_router_validate(dup, 2), -1);
    cr_assert_eq(http_router_validate(slash, 1), -1);
    cr_assert_eq(http_router_validate(empty_param, 1), -1);
}

Test(config, redis_urls)
{
    config_redis_addr_t a;
    cr_assert_eq(config_parse_redis_url("redis://127.0.0.1:6380", &a), 0);
    cr_assert_str_eq(a.host, "127.0.0.1");
    cr_assert_eq(a.port, 6380);
    cr_assert_eq(config_parse_redis_url("redis://:s3cret@cache.local/2", &a), 0);
    cr_assert_str_eq(a.password, "s3cret");
    cr_assert_str_eq(a.host, "cache.local");
    cr_assert_eq(a.port, 6379);
    cr_assert_eq(a.db, 2);
    cr_assert_eq(config_parse_redis_url("http://x", &a), -1);
    cr_assert_eq(config_parse_redis_url("redis://", &a), -1);
    cr_assert_eq(config_parse_redis_url("redis://h:0", &a), -1);
    cr_assert_eq(config_parse_redis_url("redis://h:99999", &a), -1);
    cr_assert_eq(config_parse_redis_url("redis://h:12x", &a), -1);
    cr_assert_eq(config_parse_redis_url("redis://h/x", &a), -1);
}

static int load_with(const char *name, const char *value)
{
    clearenv();
    setenv(name, value, 1);
    return config_load();
}

Test(config, defaults_and_bad_values)
{
    clearenv();
    cr_assert_eq(config_load(), 0);
    cr_assert_eq(config.port, 5000);
    cr_assert_eq(config.max_body_bytes, 3u * 1024 * 1024);
    cr_assert_eq(load_with("PORT", "8080"), 0);
    cr_assert_eq(config.port, 8080);
    cr_assert_eq(load_with("PORT", "abc"), -1);
    cr_assert_eq(load_with("PORT", "0"), -1);
    cr_assert_eq(load_with("PORT", "65536"), -1);
    cr_assert_eq(load_with("PORT", "-1"), -1);
    cr_assert_eq(load_with("PORT", "80 "), -1);
    cr_assert_eq(load_with("THREADS", "0"), -1);
    cr_assert_eq(load_with("LOG_LEVEL", "loud"), -1);
    cr_assert_eq(load_with("ACCESS_LOG", "maybe"), -1);
    cr_assert_eq(load_with("HOST", "example.com"), -1);
    cr_assert_eq(load_with("REDIS_URL", "localhost:6379"), -1);
    cr_assert_eq(load_with("DATABASE_URL", "postgresql://[::1"), -1);
    cr_assert_eq(load_with("MAX_BODY_BYTES", "99999999999999999999"), -1);
    cr_assert_eq(load_with("ACCESS_LOG", "off"), 0);
    cr_assert_eq(config.access_log, 0);
}

Test(config, rate_limits_proxies_and_alerts)
{
    clearenv();
    cr_assert_eq(config_load(), 0);
    cr_assert_eq(config.limit_public.points, 100);
    cr_assert_eq(config.limit_public.duration_s, 60);
    cr_assert_eq(config.limit_public.block_s, 60);
    cr_assert_eq(config.limit_token.points, 1200);
    cr_assert_eq(config.limit_ip.points, 6000);
    cr_assert_eq(config.trusted_proxies.n, 0);
    cr_assert_eq(load_with("RATE_LIMIT_PUBLIC", "5/2"), 0);
    cr_assert(config.limit_public.points == 5 && config.limit_public.duration_s == 2 &&
              config.limit_public.block_s == 0);
    const char *bad[] = {"5", "5/", "5/0", "0/60", "/60", "5/60/", "5/60/60/1", "-5/60", "5 /60", "a/b", "5/60/x"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        cr_assert_eq(load_with("RATE_LIMIT_TOKEN", bad[i]), -1, "%s accepted", bad[i]);
    cr_assert_eq(load_with("TRUSTED_PROXIES", "10.0.0.0/8, ::1 192.168.1.7"), 0);
    cr_assert_eq(config.trusted_proxies.n, 3);
    const char *bad_cidrs[] = {"10.0.0.0/33", "::1/129", "example.com", "10.0.0.0/", "10.0.0.0/8x", "1.2.3"};
    for (size_t i = 0; i != sizeof(bad_cidrs) / sizeof(bad_cidrs[0]); ++i)
        cr_assert_eq(load_with("TRUSTED_PROXIES", bad_cidrs[i]), -1, "%s accepted", bad_cidrs[i]);
    cr_assert_eq(load_with("ALERT_WEBHOOK_URL", "hooks.slack.com/x"), -1);
    cr_assert_eq(load_with("ALERT_MEMORY_PERCENT", "101"), -1);
    cr_assert_eq(load_with("ALERT_INTERVAL_MS", "5"), -1);
}

static cidr_addr_t addr(const char *s)
{
    cidr_addr_t a;
    cr_assert_eq(cidr_addr_parse(s, strlen(s), &a), 0, "%s", s);
    return a;
}

Test(cidr, match_v4_v6_and_mapped)
{
    cidr_list_t l;
    const char *bad = NULL;
    cr_assert_eq(cidr_list_parse("10.1.2.3/8,2001:db8::/32 127.0.0.1", &l, &bad), 0);
    cidr_addr_t a = addr("10.255.0.1"), b = addr("11.0.0.1"), c = addr("2001:db8:1::5"), d = addr("::ffff:10.0.0.9");
    cr_assert(cidr_list_match(&l, &a));
    cr_assert(!cidr_list_match(&l, &b));
    cr_assert(cidr_list_match(&l, &c));
    cr_assert(cidr_list_match(&l, &d), "an IPv4-mapped address matches its IPv4 network");
    char text[64];
    cidr_addr_format(&d, text, sizeof(text));
    cr_assert_str_eq(text, "10.0.0.9");
    cidr_addr_format(&a, text, sizeof(text));
    cr_assert_str_eq(text, "10.255.0.1");
    cidr_addr_t z = addr("0.0.0.0");
    cidr_addr_format(&z, text, sizeof(text));
    cr_assert_str_eq(text, "0.0.0.0");
    cr_assert_eq(cidr_list_parse("10.0.0.0/8, nope", &l, &bad), -1);
    cr_assert_str_eq(bad, "nope");
}

/* The client behind X-Forwarded-For values, from peer, with 10.0.0.0/8 trusted. */
static const char *client(const char *peer, const char *xff1, const char *xff2)
{
    static char out[64];
    cidr_list_t trusted;
    cr_assert_eq(cidr_list_parse("10.0.0.0/8", &trusted, NULL), 0);
    h2o_iovec_t v[2] = {h2o_iovec_init(xff1, xff1 ? strlen(xff1) : 0), h2o_iovec_init(xff2, xff2 ? strlen(xff2) : 0)};
    cidr_addr_t p = addr(peer), c;
    http_peer_resolve(&p, v, xff2 != NULL ? 2 : xff1 != NULL ? 1 : 0, &trusted, &c);
    cidr_addr_format(&c, out, sizeof(out));
    return out;
}

Test(peer, forwarded_for_only_from_trusted_peers_right_to_left)
{
    cr_assert_str_eq(client("203.0.113.5", "1.1.1.1", NULL), "203.0.113.5", "untrusted peer: header ignored");
    cr_assert_str_eq(client("10.0.0.2", NULL, NULL), "10.0.0.2");
    cr_assert_str_eq(client("10.0.0.2", "1.1.1.1", NULL), "1.1.1.1");
    cr_assert_str_eq(client("10.0.0.2", "6.6.6.6, 1.1.1.1", NULL), "1.1.1.1", "the client's own prefix is ignored");
    cr_assert_str_eq(client("10.0.0.2", "1.1.1.1, 10.9.9.9", NULL), "1.1.1.1", "trusted hops are skipped");
    cr_assert_str_eq(client("10.0.0.2", "6.6.6.6", "1.1.1.1"), "1.1.1.1", "several headers read as one list");
    cr_assert_str_eq(client("10.0.0.2", "10.1.1.1, 10.2.2.2", NULL), "10.1.1.1", "all trusted: the left-most");
    cr_assert_str_eq(client("10.0.0.2", "1.1.1.1:5555", NULL), "1.1.1.1");
    cr_assert_str_eq(client("10.0.0.2", "[2001:db8::7]", NULL), "2001:db8::7");
    cr_assert_str_eq(client("10.0.0.2", "1.1.1.1, garbage", NULL), "10.0.0.2", "garbage stops at the proxy");
    cr_assert_str_eq(client("10.0.0.2", "1.1.1.1,,", NULL), "1.1.1.1");
}

Test(throttle, window_then_block)
{
    throttle_reset();
    uint64_t ms;
    for (unsigned i = 1; i <= 3; ++i)
        cr_assert_eq(throttle_hit("k", 1, 3, 1000, 5000, &ms), i);
    cr_assert(ms <= 1000);
    cr_assert_eq(throttle_hit("k", 1, 3, 1000, 5000, &ms), 4, "over the limit");
    cr_assert(ms > 4000 && ms <= 5000, "blocked for the block, %llu ms left", (unsigned long long)ms);
    cr_assert_eq(throttle_hit("k", 1, 3, 1000, 5000, &ms), 5);
    cr_assert(ms > 4000, "the block does not restart");
    cr_assert_eq(throttle_hit("other", 5, 3, 1000, 5000, &ms), 1, "keys are apart");
}

Test(util, json_escape)
{
    strbuf_t b;
    strbuf_init(&b);
    strbuf_json_escape(&b, "a\"b\\c\n\x01", 7);
    cr_assert_str_eq(b.data, "a\\\"b\\\\c\\u000a\\u0001");
    strbuf_reset(&b);
    strbuf_printf(&b, "%s-%d", "x", 42);
    cr_assert_str_eq(b.data, "x-42");
    strbuf_free(&b);
}

/* The fixed-buffer builder writes what snprintf would, and cuts at a whole append. */
Test(util, fmt_matches_snprintf_and_never_overflows)
{
    char buf[64], want[64];
    const int64_t ints[] = {0, 7, -7, 1234567890123, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i != sizeof(ints) / sizeof(ints[0]); ++i) {
        util_fmt_t f = util_fmt_on(buf, sizeof(buf));
        util_fmt_str(&f, "{c:");
        util_fmt_i64(&f, ints[i]);
        util_fmt_mem(&f, "}", 1);
        util_fmt_u64(&f, (uint64_t)ints[i]);
        util_fmt_hex(&f, (uint64_t)ints[i], 8);
        snprintf(want, sizeof(want), "{c:%lld}%llu%08llx", (long long)ints[i], (unsigned long long)ints[i],
                 (unsigned long long)ints[i]);
        cr_assert(!f.full);
        cr_assert_str_eq(buf, want);
        cr_assert_eq(f.len, strlen(want));
    }
    char small[8];
    util_fmt_t f = util_fmt_on(small, sizeof(small));
    util_fmt_str(&f, "abc");
    util_fmt_u64(&f, 12345); /* 8 bytes with the NUL: one too many */
    cr_assert(f.full);
    cr_assert_str_eq(small, "abc");
    util_fmt_str(&f, "d"); /* nothing after a cut */
    cr_assert_str_eq(small, "abc");
    f = util_fmt_on(small, sizeof(small));
    util_fmt_hex(&f, 0, 0);
    util_fmt_hex(&f, 0xabc, 16); /* width capped at 16, does not fit */
    cr_assert(f.full);
    cr_assert_str_eq(small, "0");
}

Test(metrics, http_buckets_split_the_first_five_milliseconds)
{
    static const char *const names[] = {"/api/health"};
    proc_init(0);
    metrics_init(names, 1);
    metrics_shard_t *a = metrics_shard_new();
    static const uint64_t ns[] = {300000, 800000, 2000000, 4000000, 4000000}; /* 0.3, 0.8, 2, 4, 4 ms */
    for (size_t i = 0; i != sizeof(ns) / sizeof(ns[0]); ++i)
        metrics_observe_http(a, 0, metrics_method_id("GET", 3), 200, ns[i]);
    strbuf_t out;
    strbuf_init(&out);
    metrics_render(&out);
    static const char *const want[] = {"le=\"0.0001\"} 0\n", "le=\"0.0005\"} 1\n", "le=\"0.001\"} 2\n",
                                       "le=\"0.0025\"} 3\n", "le=\"0.005\"} 5\n",  "le=\"0.015\"} 5\n"};
    for (size_t i = 0; i != sizeof(want) / sizeof(want[0]); ++i) {
        char needle[160];
        snprintf(needle, sizeof(needle), "route=\"/api/health\",status=\"200\",%s", want[i]);
        cr_assert(strstr(out.data, needle) != NULL, "no %s in\n%s", needle, out.data);
    }
    strbuf_free(&out);
    metrics_shutdown();
}

Test(metrics, render_sums_shards)
{
    static const char *const names[] = {"/api/health", "/api/x"};
    proc_init(0);
    metrics_init(names, 2);
    metrics_shard_t *a = metrics_shard_new();
    metrics_shard_t *b = metrics_shard_new();
    metrics_observe_http(a, 0, metrics_method_id("GET", 3), 200, 50000);    /* 50 us */
    metrics_observe_http(b, 0, metrics_method_id("GET", 3), 200, 20000000); /* 20 ms */
    metrics_observe_http(b, 1, metrics_method_id("BREW", 4), 503, 1000);
    metrics_add(a, METRICS_PG_PREPARES, 3);
    metrics_add(b, METRICS_PG_PREPARES, 4);
    strbuf_t out;
    strbuf_init(&out);
    metrics_render(&out);
    cr_assert(strstr(out.data, "http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/health\","
                               "status=\"200\",le=\"0.0001\"} 1\n") != NULL,
              "%s", out.data);
    cr_assert(strstr(out.data, "route=\"/api/health\",status=\"200\",le=\"0.015\"} 1\n") != NULL);
    cr_assert(strstr(out.data, "route=\"/api/health\",status=\"200\",le=\"0.05\"} 2\n") != NULL);
    cr_assert(strstr(out.data, "http_request_duration_seconds_count{method=\"GET\",route=\"/api/health\","
                               "status=\"200\"} 2\n") != NULL);
    cr_assert(strstr(out.data, "method=\"OTHER\",route=\"/api/x\",status=\"503\"") != NULL);
    cr_assert(strstr(out.data, "db_prepared_statements_total 7\n") != NULL);
    cr_assert(strstr(out.data, "process_resident_memory_bytes ") != NULL);
    cr_assert_eq(metrics_counter_total(METRICS_PG_PREPARES), 7);
    strbuf_free(&out);
    metrics_shutdown();
}
