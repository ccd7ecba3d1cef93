/*
 * Hostile clients against the real binary: request smuggling shapes, heads, URLs,
 * bodies and JSON nesting too big, slowloris, and thousands of idle keep-alive
 * connections. Each must be refused early or cut off by its timeout while normal
 * clients keep being served; their latency meanwhile is printed (never asserted as
 * speed: only that every one was answered, within a generous functional bound).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

TestSuite(hostile, .timeout = 180);

static int count(const char *hay, const char *needle)
{
    int c = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        ++c;
    return c;
}

static void assert_refused(int port, const char *what, const char *data, size_t len, const char *status)
{
    int closed;
    char *out = hs_exchange(port, data, len, 5000, &closed);
    cr_assert(strncmp(out, status, strlen(status)) == 0, "%s: answered %.120s", what, out);
    cr_assert(strstr(out, "\"error\":{") != NULL, "%s: not the JSON error shape: %.300s", what, out);
    cr_assert(closed, "%s: the connection stayed open", what);
    cr_assert_eq(count(out, "HTTP/1.1 "), 1, "%s: a request smuggled after it was answered: %s", what, out);
    free(out);
}

Test(hostile, smuggling_shapes_are_refused_and_the_connection_closed)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    static const char *const shapes[][2] = {
        {"Content-Length with Transfer-Encoding",
         "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\nGET /api/health/live HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"Transfer-Encoding with Content-Length",
         "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\ncontent-length: 40\r\n\r\n"
         "0\r\n\r\nGET /api/health/live HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"two Content-Lengths",
         "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 41\r\n\r\n"
         "{}GET /api/health/live HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"two Transfer-Encodings",
         "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
         "\r\n0\r\n\r\nGET /api/health/live HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"an unknown Transfer-Encoding",
         "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
         "0\r\n\r\nGET /api/health/live HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"a negative Content-Length", "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"},
    };
    for (size_t i = 0; i != sizeof(shapes) / sizeof(shapes[0]); ++i)
        assert_refused(s.port, shapes[i][0], shapes[i][1], strlen(shapes[i][1]), "HTTP/1.1 400 ");
    /* and an honest pipelined pair is still served, both */
    const char *pair = "GET /api/health/live HTTP/1.1\r\nHost: x\r\n\r\nGET /api/health/live HTTP/1.1\r\nHost: x\r\n"
                       "Connection: close\r\n\r\n";
    int closed;
    char *out = hs_exchange(s.port, pair, strlen(pair), 5000, &closed);
    cr_assert_eq(count(out, "HTTP/1.1 200 "), 2, "%s", out);
    free(out);
    hs_server_stop(&s);
}

static char *repeat(const char *prefix, char c, size_t n, const char *suffix)
{
    size_t a = strlen(prefix), b = strlen(suffix);
    char *s = malloc(a + n + b + 1);
    memcpy(s, prefix, a);
    memset(s + a, c, n);
    memcpy(s + a + n, suffix, b + 1);
    return s;
}

Test(hostile, oversized_heads_urls_bodies_and_nesting_are_refused_early)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    char *big = repeat("GET /api/health/live HTTP/1.1\r\nHost: x\r\nX-Big: ", 'a', 20000, "\r\n\r\n");
    assert_refused(s.port, "20 kB of headers", big, strlen(big), "HTTP/1.1 431 ");
    free(big);
    /* 1 MB of headers: refused without the server reading it all (h2o stops at its own bound) */
    big = repeat("GET /api/health/live HTTP/1.1\r\nHost: x\r\nX-Big: ", 'a', 1 << 20, "\r\n\r\n");
    int closed;
    char *out = hs_exchange(s.port, big, strlen(big), 5000, &closed);
    cr_assert(strncmp(out, "HTTP/1.1 4", 10) == 0 && closed, "1 MB of headers: %.100s", out);
    free(out);
    free(big);
    big = repeat("GET /api/health/live?", 'a', 20000, " HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_refused(s.port, "a 20 kB URL", big, strlen(big), "HTTP/1.1 414 ");
    free(big);
    /* a body announced at 100 MB: the answer comes before any of it is sent */
    const char *huge = "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 104857600\r\n\r\n";
    assert_refused(s.port, "a 100 MB body", huge, strlen(huge), "HTTP/1.1 413 ");
    /* JSON nested 100,000 deep */
    size_t depth = 100000;
    char *nest = repeat("", '[', depth, "");
    char head[256];
    int hn = snprintf(head, sizeof(head),
                      "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      depth);
    char *req = malloc((size_t)hn + depth + 1);
    memcpy(req, head, (size_t)hn);
    memcpy(req + hn, nest, depth + 1);
    out = hs_exchange(s.port, req, (size_t)hn + depth, 5000, &closed);
    cr_assert(strncmp(out, "HTTP/1.1 400 ", 13) == 0 && strstr(out, "nested deeper") != NULL, "%.300s", out);
    free(out);
    free(req);
    free(nest);
    /* the server is fine afterwards */
    hs_response_t r = hs_get(s.port, "/api/health/live");
    cr_assert_eq(r.status, 200);
    hs_response_free(&r);
    hs_server_stop(&s);
}

/* ---- many connections, and a normal client meanwhile ---- */

static void raise_fd_limit(size_t want)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want && rl.rlim_max >= want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    cr_assert_geq(rl.rlim_cur, want, "this test needs %zu descriptors", want);
}

typedef struct normal {
    int port, stop, n, ok;
    double worst_ms, total_ms;
    double lat[4096];
} normal_t;

/* A normal client: one request at a time on fresh connections until told to stop. */
static void *normal_main(void *arg)
{
    normal_t *c = arg;
    while (!c->stop && c->n < 4096) {
        hs_response_t r = hs_get(c->port, "/api/health");
        double ms = r.seconds * 1000;
        c->lat[c->n++] = ms;
        c->ok += r.status == 200;
        c->total_ms += ms;
        if (ms > c->worst_ms)
            c->worst_ms = ms;
        hs_response_free(&r);
        hs_sleep_ms(5);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, normal_t *c)
{
    qsort(c->lat, (size_t)c->n, sizeof(double), cmp_double);
    cr_log_info("%s: normal client %d/%d answered, p50 %.2f ms, p99 %.2f ms, worst %.2f ms", what, c->ok, c->n,
                c->lat[c->n / 2], c->lat[c->n * 99 / 100], c->worst_ms);
    printf("%s: normal client %d/%d answered, p50 %.2f ms, p99 %.2f ms, worst %.2f ms\n", what, c->ok, c->n,
           c->lat[c->n / 2], c->lat[c->n * 99 / 100], c->worst_ms);
    cr_assert_geq(c->n, 20, "the normal client barely ran");
    cr_assert_eq(c->ok, c->n, "%s: %d of %d normal requests failed", what, c->n - c->ok, c->n);
    cr_assert_lt(c->worst_ms, 3000, "%s: a normal request took %.0f ms", what, c->worst_ms);
}

/* Connections still open among fds (a read that is not EOF or an error). */
static int still_open(const int *fds, int n)
{
    int open = 0;
    for (int i = 0; i != n; ++i) {
        if (fds[i] < 0)
            continue;
        char b[256];
        ssize_t k = recv(fds[i], b, sizeof(b), MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            continue;
        ++open;
    }
    return open;
}

Test(hostile, slowloris_does_not_stop_normal_clients_and_is_cut_off)
{
    enum { N = 2000 };
    raise_fd_limit(2 * N + 256);
    const char *env[] = {"HTTP_TIMEOUT_MS=6000", "MAX_CONNECTIONS=20000", NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    static int fds[N];
    for (int i = 0; i != N; ++i) {
        fds[i] = hs_dial(s.port);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
    }
    normal_t *c = calloc(1, sizeof(*c));
    c->port = s.port;
    pthread_t tid;
    pthread_create(&tid, NULL, normal_main, c);
    /* every connection sends its headers one byte at a time, never finishing */
    static const char head[] =
        "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    /* each connection sends one byte every 100 ms, a tenth of them every 10 ms (as
     * independent clients would, not all in the same instant) */
    double t0 = hs_now_ms();
    size_t tick = 0;
    while (hs_now_ms() - t0 < 5000) {
        size_t pos = tick / 10, part = tick % 10;
        for (int i = (int)part; i < N; i += 10)
            if (fds[i] >= 0 && send(fds[i], head + pos % (sizeof(head) - 1), 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN)
                fds[i] = (close(fds[i]), -1);
        ++tick;
        hs_sleep_ms(10);
    }
    c->stop = 1;
    pthread_join(tid, NULL);
    report("slowloris", c);
    /* the server gives each head HTTP_TIMEOUT_MS in all, however it trickles */
    int open = N;
    while (hs_now_ms() - t0 < 12000 && (open = still_open(fds, N)) > N / 100) {
        for (int i = 0; i != N; ++i)
            if (fds[i] >= 0)
                send(fds[i], "a", 1, MSG_NOSIGNAL);
        hs_sleep_ms(200);
    }
    cr_assert_leq(open, N / 100, "%d of %d slow connections still open after %.0f ms", open, N, hs_now_ms() - t0);
    for (int i = 0; i != N; ++i)
        if (fds[i] >= 0)
            close(fds[i]);
    free(c);
    hs_server_stop(&s);
}

Test(hostile, thousands_of_idle_keep_alive_connections_do_not_stop_normal_clients)
{
    enum { N = 3000 };
    raise_fd_limit(2 * N + 256);
    const char *env[] = {"HTTP_TIMEOUT_MS=4000", "MAX_CONNECTIONS=20000", NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    static int fds[N];
    static const char req[] = "GET /api/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i != N; ++i) {
        fds[i] = hs_dial(s.port);
        cr_assert_eq(send(fds[i], req, sizeof(req) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(req) - 1);
    }
    /* every one is answered and then left idle, kept alive */
    for (int i = 0; i != N; ++i) {
        char b[512];
        struct pollfd p = {fds[i], POLLIN, 0};
        cr_assert_eq(poll(&p, 1, 5000), 1, "connection %d not answered", i);
        ssize_t k = recv(fds[i], b, sizeof(b) - 1, 0);
        cr_assert(k > 12 && strncmp(b, "HTTP/1.1 200", 12) == 0, "connection %d", i);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
    }
    double t0 = hs_now_ms();
    normal_t *c = calloc(1, sizeof(*c));
    c->port = s.port;
    pthread_t tid;
    pthread_create(&tid, NULL, normal_main, c);
    hs_sleep_ms(2000);
    c->stop = 1;
    pthread_join(tid, NULL);
    report("idle keep-alive", c);
    hs_response_t m = hs_get(s.port, "/api/metrics");
    const char *g = strstr(m.body, "\nhttp_connections_open ");
    cr_assert(g != NULL && strtol(g + 23, NULL, 10) >= N, "the server does not hold the idle connections");
    hs_response_free(&m);
    /* idle past HTTP_TIMEOUT_MS: closed by the server */
    int open = N;
    while (hs_now_ms() - t0 < 10000 && (open = still_open(fds, N)) > 0)
        hs_sleep_ms(200);
    cr_assert_eq(open, 0, "%d idle connections still open after %.0f ms", open, hs_now_ms() - t0);
    for (int i = 0; i != N; ++i)
        close(fds[i]);
    free(c);
    hs_server_stop(&s);
}
