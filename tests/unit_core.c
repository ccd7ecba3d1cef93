/* Unit tests of the small modules: router, configuration, string building, metrics. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/util.h"
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
