/*
 * fuzz_query.c - the request line: method, path and query string.
 *
 * The input is "<method> <path>[?<query>]" (no space: GET and the whole input as the
 * target). In order:
 *   1. http_router_match (src/http/router.c) with the real table (src/api/routes.c),
 *      against a reference matcher written here: the same route index, the same
 *      404/405 verdict and Allow list; a match's parameters put back into its template
 *      give the path again, each a non-empty segment;
 *   2. the matched route's real handler, with the router's parameters and no body (all
 *      but the few that need a live server): one reply or one statement (fake.c's
 *      rules), and a 400 names a parameter by its fixed name, never client text;
 *   3. src/api/input.c's query readers on the query, for the names the endpoints use
 *      and for the input's first key, name after name on one request as a handler
 *      reads them (a fresh request after a 400): api_query_lookup against a reference
 *      decoder (first match wins, '+' is a space, bad escapes refused, length and
 *      UTF-8 limits), a found value re-encoded is found again unchanged;
 *      api_query_int against a reference integer parser.
 */
#include "api/input.h"
#include "api/routes.h"
#include "core/throttle.h"
#include "fake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_VALUE_MAX 64

/* Handlers that need a live server behind them (its loop, PostgreSQL pool or metrics). */
static const http_handler_fn query_skipped[] = {api_health_get, api_metrics_get, api_alerts_list,
                                                api_connections_delete};

/* The names the endpoints read from query strings. */
static const char *const query_names[] = {"status",       "assignee", "page",  "limit",  "cursor",   "q",
                                          "phone",        "before",   "after", "unread", "hub.mode", "hub.verify_token",
                                          "hub.challenge"};

/* ---- 1. routing ---- */

/* The reference matcher: tmpl's segments against path's, ":x" taking one non-empty segment. */
static int query_ref_match(const char *tmpl, const char *p, size_t n)
{
    size_t i = 0;
    const char *t = tmpl;
    while (*t != '\0') {
        if (*t != '/' || i == n || p[i] != '/')
            return 0;
        ++t;
        ++i;
        size_t tl = strcspn(t, "/"), pl = 0;
        while (i + pl < n && p[i + pl] != '/')
            ++pl;
        if (t[0] == ':' ? pl == 0 : tl != pl || memcmp(t, p + i, tl) != 0)
            return 0;
        t += tl;
        i += pl;
    }
    return i == n;
}

/* Whether the request's method is route i's (HEAD is served by GET routes). */
static int query_method_is(const http_route_t *route, const char *m, size_t mlen)
{
    if (strlen(route->method) == mlen && memcmp(route->method, m, mlen) == 0)
        return 1;
    return mlen == 4 && memcmp(m, "HEAD", 4) == 0 && strcmp(route->method, "GET") == 0;
}

/* Puts a match's parameters back into its template and checks that this gives the path. */
static void query_check_params(const http_route_t *route, const http_params_t *params, const char *p, size_t n)
{
    char rebuilt[8192];
    size_t k = 0, used = 0;
    for (const char *t = route->path; *t != '\0';) {
        size_t tl = strcspn(t + 1, "/") + 1; /* the segment with its '/' */
        if (t[1] == ':') {
            FUZZ_CHECK(used < params->count && params->items[used].name == t + 2 &&
                       params->items[used].name_len == tl - 2);
            h2o_iovec_t v = params->items[used++].value;
            FUZZ_CHECK(v.len != 0 && memchr(v.base, '/', v.len) == NULL && k + 1 + v.len <= sizeof(rebuilt));
            rebuilt[k++] = '/';
            memcpy(rebuilt + k, v.base, v.len);
            k += v.len;
        } else {
            FUZZ_CHECK(k + tl <= sizeof(rebuilt));
            memcpy(rebuilt + k, t, tl);
            k += tl;
        }
        t += tl;
    }
    FUZZ_CHECK(used == params->count && k == n && memcmp(rebuilt, p, n) == 0);
}

/* Routes path and checks the verdict against the reference; returns the route index or -1. */
static int query_route(const char *m, size_t mlen, const char *p, size_t n, http_params_t *params)
{
    char allow[64], want_allow[64] = "";
    size_t want_len = 0;
    int want = HTTP_ROUTE_NOT_FOUND;
    for (size_t i = 0; i != api_nroutes && want < 0; ++i) {
        if (!query_ref_match(api_routes[i].path, p, n))
            continue;
        if (query_method_is(&api_routes[i], m, mlen)) {
            want = (int)i;
            break;
        }
        want = HTTP_ROUTE_BAD_METHOD;
        size_t ml = strlen(api_routes[i].method);
        if (want_len + ml + 3 < sizeof(want_allow)) {
            want_len += (size_t)snprintf(want_allow + want_len, sizeof(want_allow) - want_len, "%s%s",
                                         want_len != 0 ? ", " : "", api_routes[i].method);
        }
    }
    int got = http_router_match(api_routes, api_nroutes, h2o_iovec_init(m, mlen), h2o_iovec_init(p, n), params, allow,
                                sizeof(allow));
    FUZZ_CHECK(got == want);
    if (got >= 0) {
        query_check_params(&api_routes[got], params, p, n);
        return got;
    }
    FUZZ_CHECK(params->count == 0 && strcmp(allow, want_allow) == 0);
    return -1;
}

/* ---- 2. the handler ---- */

static void query_handle(int route, const char *m, size_t mlen, const uint8_t *target, size_t size)
{
    const http_route_t *rt = &api_routes[route];
    for (size_t i = 0; i != sizeof(query_skipped) / sizeof(query_skipped[0]); ++i)
        if (rt->handler == query_skipped[i])
            return;
    char method[16];
    if (mlen >= sizeof(method))
        return; /* no route's method is that long: a match was HEAD or a route's own */
    memcpy(method, m, mlen);
    method[mlen] = '\0';
    http_request_t *r = fuzz_request_new(method, target, size, NULL, 0);
    size_t n = r->req->query_at != SIZE_MAX ? r->req->query_at : r->req->path.len;
    /* the router's parameters point into the request's own path, as in the server */
    FUZZ_CHECK(http_router_match(api_routes, api_nroutes, r->req->method, h2o_iovec_init(r->req->path.base, n),
                                 &r->params, NULL, 0) == route);
    r->route = route;
    if (rt->handler == api_auth_login)
        throttle_reset();
    rt->handler(r);
    fuzz_outcome_t *o = fuzz_expect_done(r);
    if (o->status == 400)
        FUZZ_CHECK(strspn(o->field, "abcdefghijklmnopqrstuvwxyz_.") == strlen(o->field));
    fuzz_request_free(r);
}

/* ---- 3. the query readers ---- */

static int query_hex(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (uint8_t)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * The reference lookup: 1 with the decoded value in out (*len bytes) when name is
 * there, 0 when it is not, -1 when its value is malformed, too long or not UTF-8.
 */
static int query_ref_lookup(const uint8_t *q, size_t n, const char *name, size_t max, uint8_t *out, size_t *len)
{
    size_t nl = strlen(name), i = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && q[end] != '&')
            ++end;
        size_t eq = i;
        while (eq < end && q[eq] != '=')
            ++eq;
        if (eq - i == nl && memcmp(q + i, name, nl) == 0) {
            size_t k = 0;
            for (size_t j = eq < end ? eq + 1 : end; j < end; ++j) {
                if (q[j] != '%') {
                    out[k++] = q[j] == '+' ? ' ' : q[j];
                    continue;
                }
                if (j + 2 >= end || query_hex(q[j + 1]) < 0 || query_hex(q[j + 2]) < 0)
                    return -1;
                out[k++] = (uint8_t)(query_hex(q[j + 1]) << 4 | query_hex(q[j + 2]));
                j += 2;
            }
            *len = k;
            return k <= max && memchr(out, '\0', k) == NULL && fuzz_utf8_ok(out, k) ? 1 : -1;
        }
        i = end + 1;
    }
    return 0;
}

/* The reference integer: 1 with *v when s (n bytes) is a decimal int64 ('-' allowed, '+' not). */
static int query_ref_int(const uint8_t *s, size_t n, int64_t *v)
{
    int neg = n != 0 && s[0] == '-';
    uint64_t a = 0;
    if (n == (size_t)neg)
        return 0;
    for (size_t i = (size_t)neg; i != n; ++i) {
        if (s[i] < '0' || s[i] > '9' || a > (UINT64_MAX - (s[i] - '0')) / 10)
            return 0;
        a = a * 10 + (s[i] - '0');
    }
    if (a > (uint64_t)INT64_MAX + (uint64_t)neg)
        return 0;
    *v = neg ? (int64_t)(0 - a) : (int64_t)a;
    return 1;
}

static http_request_t *query_request(const uint8_t *target, size_t size)
{
    return fuzz_request_new("GET", target, size, NULL, 0);
}

/*
 * The request the readers share for the input's target, as a handler reads several
 * names from one request: a fresh one only once the last has replied (a refused
 * integer). A request per read was more than half of the target's time (copies,
 * allocator), none of it in the code under test.
 */
static http_request_t *query_shared;

static http_request_t *query_shared_request(const uint8_t *target, size_t size)
{
    if (query_shared != NULL && fuzz_outcome(query_shared)->replies != 0) {
        fuzz_request_free(query_shared);
        query_shared = NULL;
    }
    if (query_shared == NULL)
        query_shared = query_request(target, size);
    return query_shared;
}

static void query_readers(const uint8_t *target, size_t size, const char *name)
{
    http_request_t *r = query_shared_request(target, size);
    size_t at = r->req->query_at;
    const uint8_t *q = at != SIZE_MAX ? target + at + 1 : NULL;
    size_t qn = at != SIZE_MAX ? size - at - 1 : 0;
    uint8_t *want = malloc(qn + 1);
    size_t want_len = 0;
    FUZZ_CHECK(want != NULL);
    int ref = q != NULL ? query_ref_lookup(q, qn, name, QUERY_VALUE_MAX, want, &want_len) : 0;

    const char *out = NULL, *why = NULL;
    int rc = api_query_lookup(r, name, QUERY_VALUE_MAX, &out, &why);
    FUZZ_CHECK(fuzz_outcome(r)->replies == 0); /* lookup only reports */
    if (ref < 0) {
        FUZZ_CHECK(rc == -1 && why != NULL && out == NULL);
    } else if (ref == 0) {
        FUZZ_CHECK(rc == 0 && out == NULL);
    } else {
        FUZZ_CHECK(rc == 0 && out != NULL && strlen(out) == want_len && memcmp(out, want, want_len) == 0);
        /* found again, unchanged, once re-encoded */
        size_t nl = strlen(name);
        char *again = malloc(3 + nl + 3 * want_len + 1); /* "/?", name, "=", the value encoded, NUL */
        FUZZ_CHECK(again != NULL);
        again[0] = '/';
        again[1] = '?';
        memcpy(again + 2, name, nl);
        again[2 + nl] = '=';
        size_t len = 3 + nl + fuzz_percent_encode(out, want_len, again + 3 + nl);
        http_request_t *r2 = query_request((const uint8_t *)again, len);
        const char *out2 = NULL;
        FUZZ_CHECK(api_query_lookup(r2, name, QUERY_VALUE_MAX, &out2, &why) == 0 && out2 != NULL &&
                   strcmp(out2, out) == 0);
        fuzz_request_free(r2);
        free(again);
    }

    /* api_query_int: absent or empty is the default, else an integer in range (limit-like: clamped above) */
    r = query_shared_request(target, size);
    int64_t v = 0, iv = 0;
    int clamp = name[0] == 'l';
    int ok_int = q != NULL ? query_ref_lookup(q, qn, name, 32, want, &want_len) : 0;
    rc = api_query_int(r, name, 42, -1000, 1000, clamp, &v);
    if (ok_int == 0 || (ok_int == 1 && want_len == 0)) {
        FUZZ_CHECK(rc == 0 && v == 42 && fuzz_outcome(r)->replies == 0);
    } else if (ok_int == 1 && query_ref_int(want, want_len, &iv) && iv >= -1000 && (iv <= 1000 || clamp)) {
        FUZZ_CHECK(rc == 0 && v == (iv > 1000 ? 1000 : iv) && fuzz_outcome(r)->replies == 0);
    } else {
        FUZZ_CHECK(rc == -1 && fuzz_expect_done(r)->status == 400 && strcmp(fuzz_outcome(r)->field, name) == 0);
    }
    free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0; /* the server refuses longer request lines */
    const char *m = "GET";
    size_t mlen = 3;
    const uint8_t *target = data;
    const uint8_t *sp = memchr(data, ' ', size);
    if (sp != NULL) {
        m = (const char *)data;
        mlen = (size_t)(sp - data);
        target = sp + 1;
    }
    size_t n = size - (size_t)(target - data);

    const uint8_t *qm = memchr(target, '?', n);
    size_t path_len = qm != NULL ? (size_t)(qm - target) : n;
    http_params_t params;
    int route = query_route(m, mlen, (const char *)target, path_len, &params);
    if (route >= 0)
        query_handle(route, m, mlen, target, n);

    for (size_t i = 0; i != sizeof(query_names) / sizeof(query_names[0]); ++i)
        query_readers(target, n, query_names[i]);
    /*
     * and the input's own first key, when it could be a name an endpoint reads (names
     * are literals in the code, and a 400 repeats them: never client text)
     */
    if (qm != NULL) {
        const uint8_t *k = qm + 1, *end = target + n;
        char key[32];
        size_t kl = 0;
        while (k + kl < end && kl < sizeof(key) - 1 && ((k[kl] >= 'a' && k[kl] <= 'z') || k[kl] == '_' || k[kl] == '.'))
            ++kl;
        if (kl != 0 && (k + kl == end || k[kl] == '=' || k[kl] == '&')) {
            memcpy(key, k, kl);
            key[kl] = '\0';
            query_readers(target, n, key);
        }
    }
    if (query_shared != NULL) {
        fuzz_request_free(query_shared);
        query_shared = NULL;
    }
    return 0;
}
