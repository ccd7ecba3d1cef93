/*
 * Integration tests of the core server: the real binary against the real PostgreSQL
 * and Redis of tests/run.sh, over real sockets.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

/* Whatever a failed test left behind, the next one starts with both servers up. */
static void restore_stack(void)
{
    hs_stack("pg-thaw");
    hs_stack("pg-start");
    hs_stack("redis-start");
}

TestSuite(server, .fini = restore_stack, .timeout = 120);

static json_t *get_json(int port, const char *path, long *status)
{
    hs_response_t r = hs_get(port, path);
    *status = r.status;
    json_t *j = hs_json(&r);
    hs_response_free(&r);
    return j;
}

/* Polls GET path until its status is `want` and the body contains `needle`; returns ms waited or -1. */
static double poll_until(int port, const char *path, long want, const char *needle, int timeout_ms)
{
    double t0 = hs_now_ms();
    while (hs_now_ms() - t0 < timeout_ms) {
        hs_response_t r = hs_get(port, path);
        int ok = r.status == want && (needle == NULL || (r.body != NULL && strstr(r.body, needle) != NULL));
        hs_response_free(&r);
        if (ok)
            return hs_now_ms() - t0;
        hs_sleep_ms(50);
    }
    return -1;
}

static void assert_error_shape(const hs_response_t *r, long status, const char *code)
{
    cr_assert_eq(r->status, status, "status %ld, body %s", r->status, r->body);
    char *ct = hs_header(r, "content-type");
    cr_assert(ct != NULL && strcmp(ct, "application/json") == 0, "content-type %s", ct ? ct : "(none)");
    free(ct);
    json_t *j = hs_json(r);
    cr_assert_not_null(j, "not JSON: %s", r->body);
    json_t *err = json_object_get(j, "error");
    cr_assert(json_is_object(err));
    cr_assert_eq(json_integer_value(json_object_get(err, "status")), status);
    cr_assert_str_eq(json_string_value(json_object_get(err, "code")), code);
    cr_assert(json_is_string(json_object_get(err, "message")));
    cr_assert(json_is_string(json_object_get(j, "request_id")));
    char *rid = hs_header(r, "x-request-id");
    cr_assert(rid != NULL && strcmp(rid, json_string_value(json_object_get(j, "request_id"))) == 0);
    free(rid);
    json_decref(j);
}

Test(server, health_reports_every_field)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    cr_assert(poll_until(s.port, "/api/health", 200, "\"status\":\"ok\"", 10000) >= 0);
    hs_response_t r = hs_get(s.port, "/api/health");
    cr_assert_eq(r.status, 200);
    json_t *j = hs_json(&r);
    cr_assert_not_null(j, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
    json_t *db = json_object_get(j, "database"), *rd = json_object_get(j, "redis"), *mem = json_object_get(j, "memory");
    cr_assert_str_eq(json_string_value(json_object_get(db, "status")), "up");
    cr_assert_str_eq(json_string_value(json_object_get(rd, "status")), "up");
    double db_ms = json_number_value(json_object_get(db, "responseTime"));
    double rd_ms = json_number_value(json_object_get(rd, "responseTime"));
    cr_assert(json_is_number(json_object_get(db, "responseTime")) && db_ms > 0 && db_ms < 5000, "%f", db_ms);
    cr_assert(json_is_number(json_object_get(rd, "responseTime")) && rd_ms > 0 && rd_ms < 5000, "%f", rd_ms);
    double used = json_number_value(json_object_get(mem, "used")),
           total = json_number_value(json_object_get(mem, "total"));
    double pct = json_number_value(json_object_get(mem, "percentage"));
    cr_assert(used > 1 && total > used, "used %f total %f", used, total);
    cr_assert(pct > 0 && pct < 100 && (pct - 100 * used / total) < 0.1 && (100 * used / total - pct) < 0.1);
    cr_assert(json_number_value(json_object_get(j, "uptime")) > 0);
    cr_assert(json_is_string(json_object_get(j, "version")));
    char *ct = hs_header(&r, "content-type");
    cr_assert_str_eq(ct, "application/json");
    free(ct);
    json_decref(j);
    hs_response_free(&r);

    r = hs_get(s.port, "/api/health/live");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "{\"status\":\"ok\"}");
    hs_response_free(&r);
    cr_assert_eq(hs_server_stop(&s), 0);

    /* one access line per request, with the route template and the request id */
    char *log = hs_server_log(&s);
    cr_assert(strstr(log, "\"msg\":\"access\",\"method\":\"GET\",\"route\":\"/api/health/live\",\"status\":200") !=
                  NULL,
              "%s", log);
    cr_assert(strstr(log, "\"request_id\":\"") != NULL);
    free(log);
}

Test(server, errors_have_one_shape)
{
    static const char *const env[] = {"MAX_BODY_BYTES=2048", NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    hs_response_t r = hs_get(s.port, "/api/nothing-here");
    assert_error_shape(&r, 404, "not_found");
    hs_response_free(&r);

    r = hs_request(s.port, "DELETE", "/api/health", NULL, 0, NULL);
    assert_error_shape(&r, 405, "method_not_allowed");
    char *allow = hs_header(&r, "allow");
    cr_assert_str_eq(allow, "GET");
    free(allow);
    hs_response_free(&r);

    /* Content-Length over the limit: refused before the body is read */
    char *big = malloc(4096);
    memset(big, 'x', 4096);
    r = hs_request(s.port, "POST", "/api/health", big, 4096, NULL);
    assert_error_shape(&r, 413, "payload_too_large");
    hs_response_free(&r);

    /* chunked, no length: refused once the limit is crossed */
    static const char *const chunked[] = {"Transfer-Encoding: chunked", NULL};
    r = hs_request(s.port, "POST", "/api/health", big, 4096, chunked);
    assert_error_shape(&r, 413, "payload_too_large");
    hs_response_free(&r);
    free(big);

    /* a client's own request id is echoed when it is plain, replaced when it is not */
    static const char *const good_id[] = {"X-Request-Id: trace-abc.123", NULL};
    r = hs_request(s.port, "GET", "/nope", NULL, 0, good_id);
    char *rid = hs_header(&r, "x-request-id");
    cr_assert_str_eq(rid, "trace-abc.123");
    free(rid);
    hs_response_free(&r);
    static const char *const bad_id[] = {"X-Request-Id: <script>", NULL};
    r = hs_request(s.port, "GET", "/nope", NULL, 0, bad_id);
    rid = hs_header(&r, "x-request-id");
    cr_assert(rid != NULL && strchr(rid, '<') == NULL);
    free(rid);
    hs_response_free(&r);

    /* the server is still fine */
    r = hs_get(s.port, "/api/health/live");
    cr_assert_eq(r.status, 200);
    hs_response_free(&r);
    cr_assert_eq(hs_server_stop(&s), 0);
}

static void expect_bad_config(const char *assignment, const char *name)
{
    static const char *const serve[] = {"serve", NULL};
    const char *env[] = {assignment, NULL};
    hs_server_t s = {.port = hs_free_port()};
    hs_server_spawn(&s, serve, env);
    cr_assert_eq(hs_server_wait(&s, 5000), 2, "%s should exit with status 2", assignment);
    char *log = hs_server_log(&s);
    cr_assert(strstr(log, name) != NULL, "log should name %s: %s", name, log);
    cr_assert(strchr(log, '\n') == strrchr(log, '\n'), "one line expected: %s", log);
    free(log);
}

Test(server, bad_configuration_is_one_line_and_status_2)
{
    expect_bad_config("THREADS=zero", "THREADS");
    expect_bad_config("LOG_LEVEL=loud", "LOG_LEVEL");
    expect_bad_config("REDIS_URL=localhost", "REDIS_URL");
    expect_bad_config("MAX_BODY_BYTES=-5", "MAX_BODY_BYTES");
    expect_bad_config("DATABASE_URL=postgresql://[::1", "DATABASE_URL");
    expect_bad_config("STATEMENT_TIMEOUT_MS=0", "STATEMENT_TIMEOUT_MS");
}

Test(server, database_down_then_back_without_restart)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    cr_assert(poll_until(s.port, "/api/health", 200, "\"status\":\"ok\"", 10000) >= 0);
    cr_assert_eq(hs_stack("pg-stop"), 0);
    cr_assert(poll_until(s.port, "/api/health", 503, "\"database\":{\"status\":\"down\"", 10000) >= 0);
    long status;
    json_t *j = get_json(s.port, "/api/health", &status);
    cr_assert_eq(status, 503);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "error");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "redis"), "status")), "up");
    cr_assert(json_is_object(json_object_get(j, "memory")));
    json_decref(j);
    /* liveness needs no database */
    hs_response_t r = hs_get(s.port, "/api/health/live");
    cr_assert_eq(r.status, 200);
    hs_response_free(&r);
    cr_assert_eq(hs_stack("pg-start"), 0);
    double ms = poll_until(s.port, "/api/health", 200, "\"status\":\"ok\"", 20000);
    cr_assert(ms >= 0, "did not recover within 20 s");
    cr_log_info("database recovery seen after %.0f ms", ms);
    cr_assert_eq(hs_server_stop(&s), 0);
}

Test(server, redis_down_is_degraded_then_back)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    cr_assert(poll_until(s.port, "/api/health", 200, "\"status\":\"ok\"", 10000) >= 0);
    cr_assert_eq(hs_stack("redis-stop"), 0);
    cr_assert(poll_until(s.port, "/api/health", 200, "\"status\":\"degraded\"", 10000) >= 0);
    long status;
    json_t *j = get_json(s.port, "/api/health", &status);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "redis"), "status")), "down");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "database"), "status")), "up");
    json_decref(j);
    cr_assert_eq(hs_stack("redis-start"), 0);
    cr_assert(poll_until(s.port, "/api/health", 200, "\"status\":\"ok\"", 20000) >= 0, "redis not back within 20 s");
    cr_assert_eq(hs_server_stop(&s), 0);
}

Test(server, starts_without_a_database_and_retries)
{
    char url[128];
    snprintf(url, sizeof(url), "DATABASE_URL=postgresql://conversa@127.0.0.1:%d/conversa", hs_free_port());
    const char *env[] = {url, NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    cr_assert(poll_until(s.port, "/api/health", 503, "\"database\":{\"status\":\"down\"", 5000) >= 0);
    /* the failed connection attempts are logged (the first at once, then with backoff) */
    double t0 = hs_now_ms();
    char *log = NULL;
    int logged = 0;
    while (!logged && hs_now_ms() - t0 < 5000) {
        free(log);
        log = hs_server_log(&s);
        logged = strstr(log, "retrying with backoff") != NULL;
        if (!logged)
            hs_sleep_ms(50);
    }
    cr_assert(logged, "%s", log);
    cr_assert_eq(hs_server_stop(&s), 0);
    free(log);
}

/* Sends a request on a raw socket and hangs up without reading the answer. */
static void send_and_hang_up(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    hs_sleep_ms(20);
    close(fd);
}

Test(server, client_hangs_up_while_query_in_flight)
{
    static const char *const env[] = {"STATEMENT_TIMEOUT_MS=1000", NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    cr_assert(poll_until(s.port, "/api/health", 200, "\"status\":\"ok\"", 10000) >= 0);
    cr_assert_eq(hs_stack("pg-freeze"), 0);
    for (int i = 0; i != 16; ++i)
        send_and_hang_up(s.port, "/api/health");
    /* a patient client gets a clear 503 once the stalled connection is given up */
    hs_response_t r = hs_get(s.port, "/api/health");
    cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
    cr_assert(r.seconds < 8, "took %.1f s", r.seconds);
    hs_response_free(&r);
    for (int i = 0; i != 16; ++i)
        send_and_hang_up(s.port, "/api/health");
    cr_assert_eq(hs_stack("pg-thaw"), 0);
    cr_assert(poll_until(s.port, "/api/health", 200, "\"status\":\"ok\"", 20000) >= 0);
    /* under the sanitizers a leak or a use-after-free turns this exit status non-zero */
    cr_assert_eq(hs_server_stop(&s), 0);
}

typedef struct par_arg {
    int port;
    long status;
    double pct;
} par_arg_t;

static void *par_health(void *p)
{
    par_arg_t *a = p;
    hs_response_t r = hs_get(a->port, "/api/health");
    a->status = r.status;
    json_t *j = hs_json(&r);
    a->pct = j != NULL ? json_number_value(json_object_get(json_object_get(j, "memory"), "percentage")) : 100;
    json_decref(j);
    hs_response_free(&r);
    return NULL;
}

Test(server, hundred_parallel_health_checks)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    cr_assert(poll_until(s.port, "/api/health", 200, "\"status\":\"ok\"", 10000) >= 0);
    enum { N = 100 };
    pthread_t th[N];
    par_arg_t args[N];
    for (int i = 0; i != N; ++i) {
        args[i] = (par_arg_t){.port = s.port};
        cr_assert_eq(pthread_create(&th[i], NULL, par_health, &args[i]), 0);
    }
    for (int i = 0; i != N; ++i)
        pthread_join(th[i], NULL);
    for (int i = 0; i != N; ++i) {
        cr_assert_eq(args[i].status, 200, "request %d: %ld", i, args[i].status);
        cr_assert(args[i].pct < 10, "memory percentage %f", args[i].pct);
    }
    cr_assert_eq(hs_server_stop(&s), 0);
}

/* The value of an unlabelled sample in a metrics body, or -1. */
static double metric_value(const char *body, const char *name)
{
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(body, key);
    return p != NULL ? strtod(p + strlen(key), NULL) : -1;
}

Test(server, metrics_pass_promtool_and_statements_stay_prepared)
{
    hs_server_t s;
    /* The request path's statements: the queue worker's are first used at their own
     * pace (pruning once a minute) and would be prepared during the count below. */
    static const char *const env[] = {"QUEUE_CONCURRENCY=0", "SEND_CONCURRENCY=0", NULL};
    hs_server_start(&s, env);
    cr_assert(poll_until(s.port, "/api/health", 200, "\"status\":\"ok\"", 10000) >= 0);
    for (int i = 0; i != 50; ++i) {
        hs_response_t r = hs_get(s.port, "/api/health");
        hs_response_free(&r);
    }
    hs_response_t m = hs_get(s.port, "/api/metrics");
    cr_assert_eq(m.status, 200);
    char *ct = hs_header(&m, "content-type");
    cr_assert(ct != NULL && strncmp(ct, "text/plain; version=0.0.4", 25) == 0);
    free(ct);
    cr_assert(strstr(m.body, "http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/health\",status=\"200\","
                             "le=\"0.0001\"}") != NULL);
    cr_assert(strstr(m.body, "le=\"0.005\"") && strstr(m.body, "le=\"0.015\"") && strstr(m.body, "le=\"2.5\""));
    double prepared = metric_value(m.body, "db_prepared_statements_total");
    cr_assert(prepared >= 1, "%s", m.body);
    /* The queue threads' housekeeping prepares its statements on its first tick, 1 s
     * after start, whatever the request path does: count from when the total has held
     * still across a tick (a few seconds at most). */
    for (double deadline = hs_now_ms() + 15000;;) {
        hs_sleep_ms(1500);
        hs_response_t again = hs_get(s.port, "/api/metrics");
        double now = metric_value(again.body, "db_prepared_statements_total");
        hs_response_free(&again);
        if (now == prepared)
            break;
        cr_assert(hs_now_ms() < deadline, "prepared statements still growing after 15 s: %g", now);
        prepared = now;
    }
    cr_assert(metric_value(m.body, "process_resident_memory_bytes") > 1e6);
    cr_assert(metric_value(m.body, "process_start_time_seconds") > 1.6e9);
    cr_assert(metric_value(m.body, "process_open_fds") > 3);
    cr_assert(metric_value(m.body, "db_query_duration_seconds_count") >= 1);
    cr_assert(metric_value(m.body, "redis_command_duration_seconds_count") >= 1);

    char path[300];
    snprintf(path, sizeof(path), "%s/metrics-%d.txt", getenv("STACK_DIR"), (int)getpid());
    FILE *f = fopen(path, "w");
    fwrite(m.body, 1, m.len, f);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' > '%s.out' 2>&1", path, path);
    int rc = system(cmd);
    snprintf(cmd, sizeof(cmd), "%s.out", path);
    f = fopen(cmd, "r");
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    fclose(f);
    cr_assert_eq(rc, 0, "promtool: %s", out);
    cr_assert_eq(n, 0, "promtool warnings: %s", out);
    hs_response_free(&m);

    /* "zero recompilations": more traffic prepares nothing more */
    for (int i = 0; i != 200; ++i) {
        hs_response_t r = hs_get(s.port, "/api/health");
        hs_response_free(&r);
    }
    m = hs_get(s.port, "/api/metrics");
    cr_assert_eq(metric_value(m.body, "db_prepared_statements_total"), prepared);
    hs_response_free(&m);
    cr_assert_eq(hs_server_stop(&s), 0);
}

static void *slow_health(void *p)
{
    par_arg_t *a = p;
    hs_response_t r = hs_get(a->port, "/api/health");
    a->status = r.status;
    hs_response_free(&r);
    return NULL;
}

Test(server, sigterm_finishes_in_flight_requests)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    cr_assert(poll_until(s.port, "/api/health", 200, "\"status\":\"ok\"", 10000) >= 0);
    cr_assert_eq(hs_stack("pg-freeze"), 0);
    par_arg_t a = {.port = s.port};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, slow_health, &a), 0);
    /* wait until the request is in the server, held by the frozen database (the metrics
     * request counts itself, so two in flight means the health check is there) */
    double t0 = hs_now_ms();
    double inflight = 0;
    while (inflight < 2 && hs_now_ms() - t0 < 5000) {
        hs_response_t m = hs_get(s.port, "/api/metrics");
        inflight = m.status == 200 ? metric_value(m.body, "http_requests_in_flight") : 0;
        hs_response_free(&m);
        if (inflight < 2)
            hs_sleep_ms(20);
    }
    cr_assert(inflight >= 2, "the health request never reached the server");
    kill(s.pid, SIGTERM);
    /* it stops accepting within a tick */
    t0 = hs_now_ms();
    long status = 200;
    while (status != 0 && hs_now_ms() - t0 < 3000) {
        hs_response_t r = hs_get(s.port, "/api/health/live");
        status = r.status;
        hs_response_free(&r);
        if (status != 0)
            hs_sleep_ms(20);
    }
    cr_assert_eq(status, 0, "a stopping server kept accepting new requests");
    cr_assert_eq(hs_stack("pg-thaw"), 0);
    pthread_join(th, NULL);
    cr_assert_eq(a.status, 200, "the in-flight request got %ld", a.status);
    cr_assert_eq(hs_server_wait(&s, 10000), 0);
}

Test(server, connection_limit_refuses_extra_connections)
{
    static const char *const env[] = {"MAX_CONNECTIONS=4", "THREADS=1", NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    enum { N = 8 };
    int fds[N];
    for (int i = 0; i != N; ++i) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(connect(fds[i], (struct sockaddr *)&sin, sizeof(sin)), 0);
    }
    /* At most four are held open (the readiness probe's connection may still count as
     * one for a moment); the others are closed by the server at once. */
    int closed = 0;
    for (int i = 0; i != N; ++i) {
        char c;
        struct timeval tv = {0, 300000};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (read(fds[i], &c, 1) == 0)
            ++closed;
    }
    cr_assert(closed >= N - 4 && closed <= N - 3, "%d of %d closed", closed, N);
    for (int i = 0; i != N; ++i)
        close(fds[i]);
    double t0 = hs_now_ms();
    long status = 0;
    while (hs_now_ms() - t0 < 5000 && status != 200) {
        hs_response_t r = hs_get(s.port, "/api/metrics");
        status = r.status;
        if (status == 200)
            cr_assert(metric_value(r.body, "http_connections_refused_total") >= closed, "%s", r.body);
        hs_response_free(&r);
    }
    cr_assert_eq(status, 200);
    cr_assert_eq(hs_server_stop(&s), 0);
}

/* systemd's notify protocol: READY=1 once listening, WATCHDOG=1 while the loops turn, STOPPING=1 on SIGTERM. */
Test(server, tells_systemd_ready_watchdog_and_stopping)
{
    char path[100], notify[160], wd[64]; /* path fits sun_path */
    snprintf(path, sizeof(path), "%s/notify-%d.sock", getenv("STACK_DIR"), (int)getpid());
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "notify socket");
    struct timeval tv = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    snprintf(notify, sizeof(notify), "NOTIFY_SOCKET=%s", path);
    snprintf(wd, sizeof(wd), "WATCHDOG_USEC=%d", 2000000); /* fed every 0.5 s */
    const char *env[] = {notify, wd, NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    int ready = 0, watchdog = 0, stopping = 0, stopped = 0;
    double t0 = hs_now_ms();
    while (hs_now_ms() - t0 < 10000 && !stopping) {
        char buf[512];
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            ready |= strstr(buf, "READY=1") != NULL;
            watchdog += strstr(buf, "WATCHDOG=1") != NULL;
            stopping |= strstr(buf, "STOPPING=1") != NULL;
        }
        if (ready && watchdog >= 3 && !stopped) {
            kill(s.pid, SIGTERM);
            stopped = 1;
        }
    }
    cr_assert(ready, "no READY=1");
    cr_assert_geq(watchdog, 3, "the watchdog was fed %d times", watchdog);
    cr_assert(stopping, "no STOPPING=1 after SIGTERM");
    cr_assert_eq(hs_server_wait(&s, 20000), 0);
    close(fd);
    unlink(path);
}

/*
 * Every thread says what it is, for top -H, ps -T and perf: a profile of a busy server
 * otherwise shows a dozen "conversa" threads, told apart only by the libraries each
 * one calls.
 */
Test(server, threads_are_named)
{
    static const char *const env[] = {"THREADS=2", "QUEUE_CONCURRENCY=1", "SEND_CONCURRENCY=1", NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    cr_assert(poll_until(s.port, "/api/health/live", 200, "ok", 10000) >= 0);
    static const char *const want[] = {"http-0",       "http-1", "queue-webhooks", "queue-outbound", "queue-campaigns",
                                       "queue-listen", "workq",  "alerts-eval",    "alerts-send"};
    int seen[sizeof(want) / sizeof(want[0])] = {0}, unnamed = 0;
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%ld/task", (long)s.pid);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[336], name[32] = "";
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s/comm", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue; /* the thread ended meanwhile */
        if (fgets(name, sizeof(name), f) != NULL)
            name[strcspn(name, "\n")] = '\0';
        fclose(f);
        int known = 0;
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); ++i)
            if (strcmp(name, want[i]) == 0) {
                seen[i]++;
                known = 1;
            }
        unnamed += !known && atol(e->d_name) != (long)s.pid; /* the main thread keeps the program's name */
    }
    closedir(d);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); ++i)
        cr_assert(seen[i] >= 1, "no thread named %s", want[i]);
    cr_assert_eq(unnamed, 0, "%d threads without a name of their own", unnamed);
    cr_assert_eq(hs_server_stop(&s), 0);
}
