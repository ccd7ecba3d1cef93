/*
 * Security checks against the real binary: SQL injection strings in every parameter
 * of every route (path, query and body), tokens that are expired, malformed or
 * another company's, webhook signatures replayed on another connection, and secrets
 * that must never come back in a response, the metrics or the log.
 * (tests/it_matrix.c walks every route with another company's ids; tests/run.sh
 * also greps every test's output and every server log for ENCRYPTION_KEY.)
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/routes.h"
#include "core/util.h"
#include "harness.h"

static hs_server_t sec_srv;
static char *sec_admin;
static char sec_company[24];

static const char *const injections[] = {
    "' OR '1'='1",
    "1; DROP TABLE contacts; --",
    "1' UNION SELECT token_hash::text FROM api_tokens --",
    "'; SELECT pg_sleep(5); --",
    "\\\\'; DELETE FROM users; --",
    "%27%20OR%201%3D1",
    "$1",
    "1)) OR ((1=1",
    "Robert'); DROP TABLE campaigns;--",
    "\xe2\x80\x99 OR 1=1 --",
};
#define NINJ (sizeof(injections) / sizeof(injections[0]))

static void sec_setup(void)
{
    hs_company("sec-co", "Security Co");
    cr_assert_eq(hs_sql(sec_company, sizeof(sec_company), "SELECT id FROM companies WHERE slug = 'sec-co'"), 0);
    hs_server_start(&sec_srv, NULL);
    sec_admin = hs_login(sec_srv.port, "admin@sec-co.test");
}

static void sec_teardown(void)
{
    free(sec_admin);
    if (sec_srv.pid > 0)
        hs_server_stop(&sec_srv);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug IN ('sec-co', 'sec-other')");
}

TestSuite(security, .init = sec_setup, .fini = sec_teardown, .timeout = 240);

/* Percent-encodes s for a URL. */
static void url_encode(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 4 < cap; ++p) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '_' || *p == '.') {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
}

/* A JSON string literal of s (caller frees). */
static char *json_str(const char *s)
{
    json_t *j = json_string(s);
    char *out = j != NULL ? json_dumps(j, JSON_ENCODE_ANY) : strdup("\"?\"");
    json_decref(j);
    return out;
}

static long calls_made;

/* One call that must be answered (not 5xx) and promptly (an injected pg_sleep would not be). */
static void must_be_handled(const char *method, const char *path, const char *body)
{
    hs_response_t r = hs_call(sec_srv.port, method, path, sec_admin, body);
    ++calls_made;
    cr_assert(r.status >= 200 && r.status < 500, "%s %s %s: %ld %s", method, path, body ? body : "", r.status, r.body);
    cr_assert_lt(r.seconds, 3.0, "%s %s took %.1f s", method, path, r.seconds);
    hs_response_free(&r);
}

/* The route's path with every :param replaced by value (already URL-safe). */
static void fill_params(const char *tmpl, const char *value, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = tmpl; *p && n + 1 < cap;) {
        if (*p == ':') {
            n += (size_t)snprintf(out + n, cap - n, "%s", value);
            while (*p && *p != '/')
                ++p;
        } else {
            out[n++] = *p++;
        }
    }
    out[n < cap ? n : cap - 1] = '\0';
}

/* Bodies with %s for the injected JSON string, for the routes that take one. */
static const struct {
    const char *method, *path, *body;
} bodies[] = {
    {"POST", "/api/v1/auth/login", "{\"email\":%s,\"password\":%s}"},
    {"POST", "/api/v1/contacts", "{\"phone_number\":\"+55 11 90000-0001\",\"name\":%s,\"labels\":[%s]}"},
    {"POST", "/api/v1/contacts", "{\"phone_number\":%s,\"name\":%s}"},
    {"GET", "/api/v1/contacts", NULL},
    {"POST", "/api/v1/connections",
     "{\"name\":%s,\"slug\":%s,\"phone_number_id\":\"1\",\"access_token\":\"t\",\"app_secret\":\"s\"}"},
    {"POST", "/api/v1/campaigns",
     "{\"name\":%s,\"connection_id\":1,\"template\":{\"name\":%s,\"language\":\"en\"},"
     "\"audience\":{\"phone_prefix\":\"55\",\"labels\":[\"x\"]}}"},
    {"POST", "/api/v1/campaigns/trigger", "{\"campaign_id\":%s}"},
};

Test(security, sql_injection_in_every_parameter_is_only_data)
{
    char before[512], after[512];
    const char *fingerprint =
        "SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = 'public'),"
        " (SELECT count(*) FROM users), (SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL),"
        " (SELECT count(*) FROM campaigns), (SELECT count(*) FROM contacts WHERE company_id <> %s)";
    cr_assert_eq(hs_sql(before, sizeof(before), fingerprint, sec_company), 0);
    static const char *const params[] = {"status", "assignee", "page",  "limit",  "cursor", "before",
                                         "after",  "q",        "phone", "unread", "id",     NULL};
    for (size_t k = 0; k != NINJ; ++k) {
        char enc[512], path[2048];
        url_encode(injections[k], enc, sizeof(enc));
        for (size_t i = 0; i != api_nroutes; ++i) {
            const http_route_t *rt = &api_routes[i];
            if (strcmp(rt->path, "/api/v1/auth/token") == 0)
                continue; /* would revoke the caller's token */
            /* in each path parameter */
            if (strchr(rt->path, ':') != NULL) {
                fill_params(rt->path, enc, path, sizeof(path));
                must_be_handled(rt->method, path, strcmp(rt->method, "GET") == 0 ? NULL : "{}");
            }
            /* in every query parameter any route reads */
            if (strcmp(rt->method, "GET") == 0) {
                char base[256];
                fill_params(rt->path, "1", base, sizeof(base));
                for (size_t p = 0; params[p] != NULL; ++p) {
                    snprintf(path, sizeof(path), "%s?%s=%s", base, params[p], enc);
                    must_be_handled("GET", path, NULL);
                }
            }
        }
        /* in the string fields of bodies */
        char *js = json_str(injections[k]);
        for (size_t b = 0; b != sizeof(bodies) / sizeof(bodies[0]); ++b) {
            if (bodies[b].body == NULL)
                continue;
            char body[2048];
            snprintf(body, sizeof(body), bodies[b].body, js, js);
            must_be_handled(bodies[b].method, bodies[b].path, body);
        }
        free(js);
    }
    /* a contact whose name is an injection string is stored and read back as that string */
    char *js = json_str(injections[1]);
    char body[512];
    snprintf(body, sizeof(body), "{\"phone_number\":\"+55 11 91234-0000\",\"name\":%s}", js);
    free(js);
    json_t *c = hs_call_json(sec_srv.port, "POST", "/api/v1/contacts", sec_admin, body, 201);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "data"), "name")), injections[1]);
    json_decref(c);
    cr_assert_eq(hs_sql(after, sizeof(after), fingerprint, sec_company), 0);
    cr_assert_str_eq(before, after, "the database changed outside the caller's company");
    cr_log_info("%ld injected calls, none a 5xx or slow", calls_made);
}

/* Inputs the fuzzers found crashing or misbehaving (the crash-* files of fuzz/corpus), kept as plain requests. */
Test(security, inputs_the_fuzzers_found_are_handled)
{
    /* a backslash as the last byte of a body: read past the buffer before the fix, with no token needed */
    hs_response_t r = hs_request(sec_srv.port, "POST", "/api/v1/auth/login", "\"\\", 2, NULL);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    hs_response_free(&r);
    /* a cursor whose timestamp overflows int64 */
    r = hs_call(sec_srv.port, "GET", "/api/v1/conversations?cursor=9223372360854775807.1", sec_admin, NULL);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    hs_response_free(&r);
    /* an unknown field whose name is cut in the error: the error is still valid UTF-8 JSON */
    char body[256];
    snprintf(body, sizeof(body), "{\"%s\xf0\x9f\x98\x80zz\":1}",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    r = hs_call(sec_srv.port, "POST", "/api/v1/contacts", sec_admin, body);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    json_t *j = hs_json(&r);
    cr_assert_not_null(j, "the error is not valid JSON (UTF-8): %s", r.body);
    json_decref(j);
    hs_response_free(&r);
}

Test(security, expired_malformed_and_foreign_tokens)
{
    /* expired: refused on every thread within the auth cache's 4 s */
    char *tok = hs_login(sec_srv.port, "agent@sec-co.test");
    cr_assert_eq(hs_sql(NULL, 0,
                        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE user_id ="
                        " (SELECT id FROM users WHERE email = 'agent@sec-co.test')"),
                 0);
    double t0 = hs_now_ms();
    int refused = 0;
    while (!refused && hs_now_ms() - t0 < 6000) {
        refused = 1;
        for (int i = 0; i != 6; ++i) {
            hs_response_t r = hs_call(sec_srv.port, "GET", "/api/v1/conversations/status", tok, NULL);
            refused &= r.status == 401;
            hs_response_free(&r);
        }
        if (!refused)
            hs_sleep_ms(200);
    }
    cr_assert(refused, "an expired token still worked after 6 s");
    free(tok);
    /* malformed: never a 5xx, always 401 */
    char longtok[9000];
    memset(longtok, 'A', sizeof(longtok) - 1);
    longtok[sizeof(longtok) - 1] = '\0';
    memcpy(longtok, "Authorization: Bearer cv_", 25);
    const char *const malformed[] = {"Authorization: Bearer",
                                     "Authorization: Bearer ",
                                     "Authorization: Bearer cv_",
                                     "Authorization: Basic YWRtaW46cGFzcw==",
                                     "Authorization: bearer cv_lowercase_scheme_but_unknown_token_0000000000",
                                     "Authorization: Bearer cv_\xff\xfe\xfd",
                                     "Authorization: Bearer cv_a b c",
                                     "Authorization: Bearer ' OR 1=1 --",
                                     longtok,
                                     NULL};
    for (size_t i = 0; malformed[i] != NULL; ++i) {
        const char *h[] = {malformed[i], NULL};
        hs_response_t r = hs_request(sec_srv.port, "GET", "/api/v1/conversations/status", NULL, 0, h);
        cr_assert_eq(r.status, 401, "%.60s: %ld %s", malformed[i], r.status, r.body);
        hs_response_free(&r);
    }
    /* another company's token sees that company only: the demo company's contact is not found */
    char demo_contact[32];
    hs_sql(demo_contact, sizeof(demo_contact),
           "SELECT min(id) FROM contacts WHERE company_id = (SELECT id FROM companies WHERE slug = 'demo')");
    char path[96];
    snprintf(path, sizeof(path), "/api/v1/contacts/%s", demo_contact);
    hs_response_t r = hs_call(sec_srv.port, "GET", path, sec_admin, NULL);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    hs_response_free(&r);
}

Test(security, webhook_signed_for_one_connection_is_refused_on_another)
{
    /* two connections of two companies, each with its own app secret and verify token */
    json_t *a = hs_call_json(sec_srv.port, "POST", "/api/v1/connections", sec_admin,
                             "{\"name\":\"A\",\"slug\":\"sec-a\",\"phone_number_id\":\"7000001\","
                             "\"access_token\":\"sec-token-a\",\"app_secret\":\"sec-secret-a\","
                             "\"verify_token\":\"sec-verify-a\"}",
                             201);
    json_decref(a);
    hs_company("sec-other", "Other Co");
    char *other = hs_login(sec_srv.port, "admin@sec-other.test");
    json_t *b = hs_call_json(sec_srv.port, "POST", "/api/v1/connections", other,
                             "{\"name\":\"B\",\"slug\":\"sec-b\",\"phone_number_id\":\"7000002\","
                             "\"access_token\":\"sec-token-b\",\"app_secret\":\"sec-secret-b\","
                             "\"verify_token\":\"sec-verify-b\"}",
                             201);
    json_decref(b);
    free(other);
    const char *payload = "{\"object\":\"whatsapp_business_account\",\"entry\":[]}";
    char sig[128];
    hs_sh(sig, sizeof(sig), "printf '%%s' '%s' | openssl dgst -sha256 -hmac sec-secret-a | sed 's/.*= //'", payload);
    char h[160];
    snprintf(h, sizeof(h), "X-Hub-Signature-256: sha256=%s", sig);
    const char *hdrs[] = {h, "Content-Type: application/json", NULL};
    /* on its own slug it is accepted; replayed on the other company's slug it is not */
    hs_response_t r = hs_request(sec_srv.port, "POST", "/api/webhooks/meta/sec-a", payload, strlen(payload), hdrs);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    hs_response_free(&r);
    r = hs_request(sec_srv.port, "POST", "/api/webhooks/meta/sec-b", payload, strlen(payload), hdrs);
    cr_assert_eq(r.status, 401, "replayed on another slug: %ld %s", r.status, r.body);
    hs_response_free(&r);
    /* nor does one connection's verify token verify the other */
    r = hs_get(sec_srv.port,
               "/api/webhooks/meta/sec-b?hub.mode=subscribe&hub.verify_token=sec-verify-a&hub.challenge=1");
    cr_assert_eq(r.status, 403, "%ld %s", r.status, r.body);
    hs_response_free(&r);
}

Test(security, secrets_never_come_back)
{
    static const char *const secrets[] = {"sec-token-zz-Access", "sec-secret-zz-App", "sec-verify-zz-Token",
                                          "conversa-demo", NULL};
    json_t *c = hs_call_json(sec_srv.port, "POST", "/api/v1/connections", sec_admin,
                             "{\"name\":\"Z\",\"slug\":\"sec-z\",\"phone_number_id\":\"7000009\","
                             "\"access_token\":\"sec-token-zz-Access\",\"app_secret\":\"sec-secret-zz-App\","
                             "\"verify_token\":\"sec-verify-zz-Token\"}",
                             201);
    json_decref(c);
    /* a failed login with the password in the body, and a patch of every secret */
    hs_response_t r = hs_request(sec_srv.port, "POST", "/api/v1/auth/login",
                                 "{\"email\":\"nobody@sec-co.test\",\"password\":\"conversa-demo\"}", 57, NULL);
    hs_response_free(&r);
    /* every GET route of the company, the metrics and the log */
    strbuf_t all;
    strbuf_init(&all);
    for (size_t i = 0; i != api_nroutes; ++i) {
        if (strcmp(api_routes[i].method, "GET") != 0)
            continue;
        char path[256];
        fill_params(api_routes[i].path, "1", path, sizeof(path));
        if (strstr(api_routes[i].path, ":name") != NULL)
            fill_params(api_routes[i].path, "webhooks", path, sizeof(path));
        if (strstr(api_routes[i].path, ":slug") != NULL)
            snprintf(path, sizeof(path), "/api/webhooks/meta/sec-z?hub.mode=subscribe&hub.challenge=c");
        r = hs_call(sec_srv.port, "GET", path, sec_admin, NULL);
        if (r.body != NULL)
            strbuf_puts(&all, r.body);
        hs_response_free(&r);
    }
    r = hs_call(sec_srv.port, "GET", "/api/v1/connections?limit=100", sec_admin, NULL);
    cr_assert(strstr(r.body, "\"sec-z\"") != NULL, "the connection is listed: %s", r.body);
    strbuf_puts(&all, r.body);
    hs_response_free(&r);
    r = hs_get(sec_srv.port, "/api/metrics");
    strbuf_puts(&all, r.body);
    hs_response_free(&r);
    char *log = hs_server_log(&sec_srv);
    strbuf_puts(&all, log);
    free(log);
    for (size_t i = 0; secrets[i] != NULL; ++i)
        cr_assert(strstr(all.data, secrets[i]) == NULL, "'%s' came back", secrets[i]);
    const char *key = getenv("ENCRYPTION_KEY");
    cr_assert(key != NULL && strstr(all.data, key) == NULL, "ENCRYPTION_KEY came back");
    strbuf_free(&all);
}

/* What `make run` writes (scripts/run-demo.sh and scripts/stack.sh): the key file is its owner's alone. */
Test(security, files_are_created_with_safe_permissions)
{
    char dir[256], out[1024];
    snprintf(dir, sizeof(dir), "%s/demo-perms-%d", getenv("STACK_DIR"), (int)getpid());
    cr_assert_eq(hs_sh(out, sizeof(out), "scripts/stack.sh start '%s' --pg-port 0 --redis-port 0 >/dev/null 2>&1", dir),
                 0, "%s", out);
    int port = hs_free_port();
    int rc = hs_sh(out, sizeof(out), "scripts/run-demo.sh \"$CONVERSA_BIN\" '%s' %d >/dev/null 2>&1", dir, port);
    char mode[64];
    hs_sh(mode, sizeof(mode), "stat -c %%a '%s/secrets.env'", dir);
    char pgmode[64];
    hs_sh(pgmode, sizeof(pgmode), "stat -c %%a '%s/pg'", dir);
    char loose[512];
    hs_sh(loose, sizeof(loose), "find '%s' -perm -o+w ! -type l ! -type s 2>/dev/null | head -5", dir);
    hs_sh(NULL, 0,
          "for f in conversa fake-meta; do [ -f '%s'/$f.pid ] && kill $(cat '%s'/$f.pid) 2>/dev/null; done;"
          " sleep 1; scripts/stack.sh stop '%s' >/dev/null 2>&1; rm -rf '%s'",
          dir, dir, dir, dir);
    cr_assert_eq(rc, 0, "scripts/run-demo.sh failed");
    cr_assert_str_eq(mode, "600", "secrets.env is %s", mode);
    cr_assert_str_eq(pgmode, "700", "the PostgreSQL data directory is %s", pgmode);
    cr_assert_str_eq(loose, "", "world-writable: %s", loose);
}
