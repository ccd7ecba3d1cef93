/*
 * Integration tests of /api/v1/connections, of the key that seals their secrets
 * (serve refuses to start without it, the hashing warning is logged once, `conversa
 * keys rotate`) and of `conversa token create`: the real binary against the database
 * of tests/run.sh, whose ENCRYPTION_KEY (the suite's key) sealed the demo's secrets.
 *
 * Everything a test creates is named "itc-..." and removed by the suite's fini, even
 * when an assertion fails midway; a test that rotates to another key rotates back
 * there too, so the demo data is left as it was found (sealed with the suite's key).
 * Login is throttled per email and server process: each server logs in once per user.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth/secrets.h"
#include "harness.h"

#define ADMIN "admin@demo.conversa.dev"
#define AGENT "agent@demo.conversa.dev"

/* Session tokens this process created, deleted by the fini. */
static char *itc_tokens[16];
static size_t itc_ntokens;
/* A key the database was rotated to, rotated back by the fini when set. */
static char itc_rotated_to[128];

/* psql that must succeed. */
static void sql_ok(char *out, size_t cap, const char *sql)
{
    char buf[8192];
    int rc = hs_sql(buf, sizeof(buf), "%s", sql);
    cr_assert_eq(rc, 0, "psql failed: %s\n%s", sql, buf);
    if (out != NULL)
        snprintf(out, cap, "%s", buf);
}

/* Runs the conversa binary with extra environment assignments before it; output and errors into out. */
static int conversa(char *out, size_t cap, const char *env, const char *args)
{
    return hs_sh(out, cap, "%s '%s' %s 2>&1", env != NULL ? env : "", getenv("CONVERSA_BIN"), args);
}

static const char *suite_key(void)
{
    const char *k = getenv("ENCRYPTION_KEY");
    cr_assert(k != NULL && *k != '\0', "ENCRYPTION_KEY is not set: run the tests through tests/run.sh");
    return k;
}

/* The id secrets.c gives the key that key_text derives to. */
static void key_id_of(const char *key_text, char out[SECRETS_KEY_ID_TEXT])
{
    cr_assert_eq(secrets_init(key_text, NULL), 0);
    secrets_key_id(SECRETS_KEY_CURRENT, out);
    secrets_shutdown();
}

static void cleanup(void)
{
    char out[4096];
    hs_sql(out, sizeof(out),
           "DELETE FROM campaigns WHERE name LIKE 'itc-%%';"
           " DELETE FROM connections WHERE slug LIKE 'itc-%%';"
           " DELETE FROM api_tokens WHERE name LIKE 'itc-%%';"
           " DELETE FROM companies WHERE slug LIKE 'itc-%%';");
    for (size_t i = 0; i != itc_ntokens; ++i) {
        hs_sql(out, sizeof(out), "DELETE FROM api_tokens WHERE token_hash = sha256(convert_to('%s', 'UTF8'))",
               itc_tokens[i]);
        free(itc_tokens[i]);
    }
    itc_ntokens = 0;
    if (itc_rotated_to[0] != '\0') {
        char env[512];
        snprintf(env, sizeof(env), "ENCRYPTION_KEY='%s' ENCRYPTION_KEY_PREVIOUS='%s'", suite_key(), itc_rotated_to);
        conversa(out, sizeof(out), env, "keys rotate");
        itc_rotated_to[0] = '\0';
    }
}

TestSuite(connections, .init = cleanup, .fini = cleanup, .timeout = 180);

static const char *demo_password(void)
{
    const char *p = getenv("DEMO_PASSWORD");
    return p != NULL && *p != '\0' ? p : "conversa-demo";
}

/* Signs in; the token is remembered for the fini (caller does not free). */
static const char *login(int port, const char *email)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", email, demo_password());
    static const char *const h[] = {"Content-Type: application/json", NULL};
    hs_response_t r = hs_request(port, "POST", "/api/v1/auth/login", body, strlen(body), h);
    cr_assert_eq(r.status, 200, "login %s: %ld %s", email, r.status, r.body);
    json_t *j = hs_json(&r);
    const char *t = json_string_value(json_object_get(j, "token"));
    cr_assert_not_null(t, "%s", r.body);
    cr_assert_lt(itc_ntokens, sizeof(itc_tokens) / sizeof(itc_tokens[0]));
    itc_tokens[itc_ntokens] = strdup(t);
    json_decref(j);
    hs_response_free(&r);
    return itc_tokens[itc_ntokens++];
}

/* The "data" object of a response (caller decrefs the returned root in *root). */
static json_t *data_of(const hs_response_t *r, json_t **root)
{
    *root = hs_json(r);
    cr_assert_not_null(*root, "not JSON: %s", r->body);
    json_t *d = json_object_get(*root, "data");
    cr_assert_not_null(d, "no data: %s", r->body);
    return d;
}

static const char *str(json_t *obj, const char *name)
{
    return json_string_value(json_object_get(obj, name));
}

static void assert_error(const hs_response_t *r, long status, const char *field)
{
    cr_assert_eq(r->status, status, "status %ld, body %s", r->status, r->body);
    json_t *j = hs_json(r);
    cr_assert_not_null(j, "%s", r->body);
    json_t *err = json_object_get(j, "error");
    cr_assert_eq(json_integer_value(json_object_get(err, "status")), status, "%s", r->body);
    if (field != NULL)
        cr_assert_str_eq(str(err, "field"), field, "%s", r->body);
    json_decref(j);
}

/* The id of a connection by slug ("" when absent). */
static void conn_id(const char *slug, char *out, size_t cap)
{
    char sql[640];
    snprintf(sql, sizeof(sql), "SELECT id FROM connections WHERE slug = '%s'", slug);
    sql_ok(out, cap, sql);
}

/* The stored bytes of column col (access_token, app_secret, verify_token) of a connection; 0 when NULL. */
static size_t stored(const char *slug, const char *col, unsigned char *out, size_t cap)
{
    char sql[256], hex[20000];
    snprintf(sql, sizeof(sql), "SELECT coalesce(encode(%s_enc, 'hex'), '') FROM connections WHERE slug = '%s'", col,
             slug);
    sql_ok(hex, sizeof(hex), sql);
    size_t n = 0;
    cr_assert_eq(sodium_hex2bin(out, cap, hex, strlen(hex), NULL, &n, NULL), 0, "%s", hex);
    return n;
}

/* Opens a stored value with the keys given; returns 0 and the plaintext in out, or -1. */
static int open_with(const char *key, const char *previous, const char *col, const unsigned char *v, size_t n,
                     char *out, size_t cap)
{
    char context[64];
    size_t len;
    snprintf(context, sizeof(context), "connections.%s", col);
    cr_assert_eq(secrets_init(key, previous), 0);
    int rc = secrets_decrypt(context, v, n, out, cap, &len, NULL);
    secrets_shutdown();
    return rc;
}

static const char *const secret_cols[] = {"access_token", "app_secret", "verify_token"};

/* Checks that every secret of slug opens with exactly `key` to the plaintexts given and names that key. */
static void assert_sealed(const char *slug, const char *key, const char *const plain[3])
{
    char want[SECRETS_KEY_ID_TEXT], got[SECRETS_KEY_ID_TEXT];
    key_id_of(key, want);
    for (int i = 0; i != 3; ++i) {
        unsigned char v[4096];
        char out[4096];
        size_t n = stored(slug, secret_cols[i], v, sizeof(v));
        cr_assert_gt(n, (size_t)SECRETS_OVERHEAD, "%s of %s is not stored", secret_cols[i], slug);
        cr_assert_eq(secrets_value_key_id(v, n, got), 0);
        cr_assert_str_eq(got, want, "%s of %s is under key %s, not %s", secret_cols[i], slug, got, want);
        cr_assert_null(memmem(v, n, plain[i], strlen(plain[i])), "plaintext stored");
        cr_assert_eq(open_with(key, NULL, secret_cols[i], v, n, out, sizeof(out)), 0, "%s does not open",
                     secret_cols[i]);
        cr_assert_str_eq(out, plain[i]);
        /* a value does not open as another column's */
        cr_assert_eq(open_with(key, NULL, secret_cols[(i + 1) % 3], v, n, out, sizeof(out)), -1);
    }
}

/* Whether the server log mentions any of the strings. */
static void assert_log_free_of(const hs_server_t *s, const char *const *needles, size_t n)
{
    char *log = hs_server_log(s);
    for (size_t i = 0; i != n; ++i)
        cr_assert_null(strstr(log, needles[i]), "the log holds a secret: %s", needles[i]);
    free(log);
}

Test(connections, crud_happy_path)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    const char *tok = login(s.port, ADMIN);
    int pid = (int)getpid();
    char slug[64], body[2048], path[128], id[32], v[512];
    char at[128], as[128], vt[128];
    snprintf(slug, sizeof(slug), "itc-crud-%d", pid);
    snprintf(at, sizeof(at), "EAAGtestAccessToken%dxyzWXYZ", pid);
    snprintf(as, sizeof(as), "0123456789abcdef0123456789abcdef");
    snprintf(vt, sizeof(vt), "vt-%d-hook-check", pid);
    snprintf(body, sizeof(body),
             "{\"name\":\"Sales line\",\"slug\":\"%s\",\"phone_number_id\":\"77%d01\",\"waba_id\":\"88%d\","
             "\"display_phone_number\":\"+55 11 4000-1234\",\"access_token\":\"%s\",\"app_secret\":\"%s\","
             "\"verify_token\":\"%s\"}",
             slug, pid, pid, at, as, vt);
    hs_response_t r = hs_call(s.port, "POST", "/api/v1/connections", tok, body);
    cr_assert_eq(r.status, 201, "%ld %s", r.status, r.body);
    const char *const secrets[] = {at, as, vt};
    for (int i = 0; i != 3; ++i)
        cr_assert_null(strstr(r.body, secrets[i]), "a secret in the response: %s", r.body);
    json_t *root, *d = data_of(&r, &root);
    snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(d, "id")));
    char *loc = hs_header(&r, "location");
    snprintf(path, sizeof(path), "/api/v1/connections/%s", id);
    cr_assert_str_eq(loc, path);
    free(loc);
    cr_assert_str_eq(str(d, "name"), "Sales line");
    cr_assert_str_eq(str(d, "slug"), slug);
    cr_assert_str_eq(str(d, "status"), "active");
    cr_assert_str_eq(str(d, "display_phone_number"), "+55 11 4000-1234");
    snprintf(v, sizeof(v), "/api/webhooks/meta/%s", slug);
    cr_assert_str_eq(str(d, "webhook_url_path"), v);
    cr_assert_str_eq(str(d, "access_token"), "••••WXYZ");
    cr_assert_str_eq(str(d, "app_secret"), "••••cdef");
    cr_assert_str_eq(str(d, "verify_token"), "••••heck");
    cr_assert(json_is_string(json_object_get(d, "created_at")) && json_is_string(json_object_get(d, "updated_at")));
    json_decref(root);
    hs_response_free(&r);

    /* stored sealed under the suite's key, one context per column; the plaintext column stays empty */
    assert_sealed(slug, suite_key(), secrets);
    snprintf(body, sizeof(body),
             "SELECT get_byte(access_token_enc, 0) || '|' || octet_length(access_token_enc) || '|' ||"
             " (verify_token IS NULL) FROM connections WHERE slug = '%s'",
             slug);
    sql_ok(v, sizeof(v), body);
    snprintf(body, sizeof(body), "1|%zu|true", strlen(at) + SECRETS_OVERHEAD);
    cr_assert_str_eq(v, body);

    /* the list and the single read show the same masks */
    r = hs_call(s.port, "GET", "/api/v1/connections", tok, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    d = data_of(&r, &root);
    cr_assert(json_is_array(d));
    int found = 0, demo = 0;
    for (size_t i = 0; i != json_array_size(d); ++i) {
        json_t *it = json_array_get(d, i);
        if (strcmp(str(it, "slug"), slug) == 0) {
            found = 1;
            cr_assert_str_eq(str(it, "access_token"), "••••WXYZ");
        }
        demo |= strcmp(str(it, "slug"), "demo") == 0;
    }
    cr_assert(found && demo, "%s", r.body);
    for (int i = 0; i != 3; ++i)
        cr_assert_null(strstr(r.body, secrets[i]));
    json_decref(root);
    hs_response_free(&r);
    r = hs_call(s.port, "GET", path, tok, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    d = data_of(&r, &root);
    cr_assert_str_eq(str(d, "app_secret"), "••••cdef");
    json_decref(root);
    hs_response_free(&r);

    /* PATCH: any subset; a new secret is sealed again, null clears */
    char at2[128];
    snprintf(at2, sizeof(at2), "EAAGrotatedToken%dLMNO", pid);
    snprintf(body, sizeof(body),
             "{\"name\":\"Renamed\",\"access_token\":\"%s\",\"waba_id\":null,\"status\":\"disabled\"}", at2);
    r = hs_call(s.port, "PATCH", path, tok, body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_null(strstr(r.body, at2));
    d = data_of(&r, &root);
    cr_assert_str_eq(str(d, "name"), "Renamed");
    cr_assert_str_eq(str(d, "status"), "disabled");
    cr_assert(json_is_null(json_object_get(d, "waba_id")));
    cr_assert_str_eq(str(d, "access_token"), "••••LMNO");
    cr_assert_str_eq(str(d, "app_secret"), "••••cdef");
    cr_assert_str_eq(str(d, "slug"), slug);
    json_decref(root);
    hs_response_free(&r);
    const char *const secrets2[] = {at2, as, vt};
    assert_sealed(slug, suite_key(), secrets2);

    r = hs_call(s.port, "PATCH", path, tok, "{\"app_secret\":null,\"verify_token\":\"short\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    d = data_of(&r, &root);
    cr_assert(json_is_null(json_object_get(d, "app_secret")));
    cr_assert_str_eq(str(d, "verify_token"), "••••••••"); /* short: nothing of it shown */
    json_decref(root);
    hs_response_free(&r);
    snprintf(body, sizeof(body),
             "SELECT (app_secret_enc IS NULL AND app_secret_hint IS NULL)::text FROM connections WHERE slug = '%s'",
             slug);
    sql_ok(v, sizeof(v), body);
    cr_assert_str_eq(v, "true");

    /* DELETE, then it is gone */
    r = hs_call(s.port, "DELETE", path, tok, NULL);
    cr_assert_eq(r.status, 204, "%s", r.body);
    hs_response_free(&r);
    r = hs_call(s.port, "GET", path, tok, NULL);
    assert_error(&r, 404, NULL);
    hs_response_free(&r);
    r = hs_call(s.port, "DELETE", path, tok, NULL);
    assert_error(&r, 404, NULL);
    hs_response_free(&r);
    r = hs_call(s.port, "PATCH", path, tok, "{\"name\":\"x\"}");
    assert_error(&r, 404, NULL);
    hs_response_free(&r);

    cr_assert_eq(hs_server_stop(&s), 0);
    const char *const all[] = {at, as, vt, at2};
    assert_log_free_of(&s, all, 4);
}

Test(connections, validation_names_the_field)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    const char *tok = login(s.port, ADMIN);
    char long_name[200], long_slug[80], long_digits[40], long_token[1100], long_secret[300], b[1400];
    memset(long_name, 'n', 101);
    long_name[101] = '\0';
    memset(long_slug, 'a', 64);
    long_slug[64] = '\0';
    memset(long_digits, '1', 33);
    long_digits[33] = '\0';
    memset(long_token, 'T', 1025);
    long_token[1025] = '\0';
    memset(long_secret, 'S', 257);
    long_secret[257] = '\0';
    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{}", "name"},
        {"{\"name\":\"x\"}", "slug"},
        {"{\"name\":\"\",\"slug\":\"itc-ok\"}", "name"},
        {"{\"name\":null,\"slug\":\"itc-ok\"}", "name"},
        {"{\"name\":\"a\\u0007b\",\"slug\":\"itc-ok\"}", "name"},
        {"{\"name\":\"x\",\"slug\":\"Itc_Bad\"}", "slug"},
        {"{\"name\":\"x\",\"slug\":\"ab\"}", "slug"},
        {"{\"name\":\"x\",\"slug\":\"-itc\"}", "slug"},
        {"{\"name\":\"x\",\"slug\":7}", "slug"},
        {"{\"name\":\"x\",\"slug\":\"itc-ok\",\"phone_number_id\":\"12ab\"}", "phone_number_id"},
        {"{\"name\":\"x\",\"slug\":\"itc-ok\",\"phone_number_id\":123}", "phone_number_id"},
        {"{\"name\":\"x\",\"slug\":\"itc-ok\",\"waba_id\":\"-1\"}", "waba_id"},
        {"{\"name\":\"x\",\"slug\":\"itc-ok\",\"display_phone_number\":\"call me\"}", "display_phone_number"},
        {"{\"name\":\"x\",\"slug\":\"itc-ok\",\"status\":\"error\"}", "status"},
        {"{\"name\":\"x\",\"slug\":\"itc-ok\",\"access_token\":123}", "access_token"},
        {"{\"name\":\"x\",\"slug\":\"itc-ok\",\"access_token\":\"has a space\"}", "access_token"},
        {"{\"name\":\"x\",\"slug\":\"itc-ok\",\"app_secret\":\"caf\\u00e9-secret\"}", "app_secret"},
        {"{\"name\":\"x\",\"slug\":\"itc-ok\",\"verify_token\":\"\"}", "verify_token"},
        {"{\"name\":\"x\",\"slug\":\"itc-ok\",\"colour\":\"red\"}", "colour"},
        {"[1,2]", "body"},
        {"{\"name\":\"x\",\"slug\":\"itc-ok\",\"name\":\"y\"}", "body"},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        hs_response_t r = hs_call(s.port, "POST", "/api/v1/connections", tok, cases[i].body);
        assert_error(&r, 400, cases[i].field);
        hs_response_free(&r);
    }
    static const char *const fields[] = {"name", "slug", "phone_number_id", "access_token", "app_secret"};
    const char *values[] = {long_name, long_slug, long_digits, long_token, long_secret};
    for (size_t i = 0; i != 5; ++i) {
        if (i < 2) /* name and slug are in every body: replace them */
            snprintf(b, sizeof(b), "{\"name\":\"%s\",\"slug\":\"%s\"}", i == 0 ? values[i] : "x",
                     i == 1 ? values[i] : "itc-ok");
        else
            snprintf(b, sizeof(b), "{\"name\":\"x\",\"slug\":\"itc-ok\",\"%s\":\"%s\"}", fields[i], values[i]);
        hs_response_t r = hs_call(s.port, "POST", "/api/v1/connections", tok, b);
        assert_error(&r, 400, fields[i]);
        hs_response_free(&r);
    }
    /* malformed JSON: the error names the position, never the text there */
    const char *bad = "{\"name\":\"x\",\"slug\":\"itc-ok\",\"access_token\":\"TOPSECRETVALUE\x01";
    hs_response_t r = hs_call(s.port, "POST", "/api/v1/connections", tok, bad);
    assert_error(&r, 400, "body");
    cr_assert_null(strstr(r.body, "TOPSECRET"), "%s", r.body);
    hs_response_free(&r);
    r = hs_call(s.port, "POST", "/api/v1/connections", tok, NULL);
    assert_error(&r, 400, "body");
    hs_response_free(&r);

    /* PATCH: nothing to change, a required field nulled, a bad id */
    char id[32], path[96];
    conn_id("demo", id, sizeof(id));
    snprintf(path, sizeof(path), "/api/v1/connections/%s", id);
    r = hs_call(s.port, "PATCH", path, tok, "{}");
    assert_error(&r, 400, "body");
    hs_response_free(&r);
    r = hs_call(s.port, "PATCH", path, tok, "{\"slug\":null}");
    assert_error(&r, 400, "slug");
    hs_response_free(&r);
    r = hs_call(s.port, "PATCH", "/api/v1/connections/abc", tok, "{\"name\":\"x\"}");
    assert_error(&r, 400, "id");
    hs_response_free(&r);
    r = hs_call(s.port, "GET", "/api/v1/connections/0", tok, NULL);
    assert_error(&r, 400, "id");
    hs_response_free(&r);

    char n[32];
    sql_ok(n, sizeof(n), "SELECT count(*) FROM connections WHERE slug = 'itc-ok'");
    cr_assert_str_eq(n, "0");
    sql_ok(n, sizeof(n), "SELECT name FROM connections WHERE slug = 'demo'");
    cr_assert_str_eq(n, "Demo WhatsApp");
    cr_assert_eq(hs_server_stop(&s), 0);
    const char *const secret[] = {"TOPSECRETVALUE"};
    assert_log_free_of(&s, secret, 1);
}

Test(connections, duplicates_are_409)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    const char *tok = login(s.port, ADMIN);
    int pid = (int)getpid();
    char body[512], path[96], id[32];
    hs_response_t r = hs_call(s.port, "POST", "/api/v1/connections", tok, "{\"name\":\"x\",\"slug\":\"demo\"}");
    assert_error(&r, 409, NULL);
    cr_assert(strstr(r.body, "slug") != NULL, "%s", r.body);
    hs_response_free(&r);

    snprintf(body, sizeof(body), "{\"name\":\"A\",\"slug\":\"itc-dup-%d\",\"phone_number_id\":\"66%d\"}", pid, pid);
    r = hs_call(s.port, "POST", "/api/v1/connections", tok, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    hs_response_free(&r);
    /* the same slug again (another number): 409 naming slug */
    snprintf(body, sizeof(body), "{\"name\":\"B\",\"slug\":\"itc-dup-%d\",\"phone_number_id\":\"67%d\"}", pid, pid);
    r = hs_call(s.port, "POST", "/api/v1/connections", tok, body);
    assert_error(&r, 409, NULL);
    cr_assert(strstr(r.body, "slug") != NULL, "%s", r.body);
    hs_response_free(&r);
    /* the same number under another slug: 409 naming phone_number_id */
    snprintf(body, sizeof(body), "{\"name\":\"B\",\"slug\":\"itc-dup2-%d\",\"phone_number_id\":\"66%d\"}", pid, pid);
    r = hs_call(s.port, "POST", "/api/v1/connections", tok, body);
    assert_error(&r, 409, NULL);
    cr_assert(strstr(r.body, "phone_number_id") != NULL, "%s", r.body);
    hs_response_free(&r);

    snprintf(body, sizeof(body), "itc-dup-%d", pid);
    conn_id(body, id, sizeof(id));
    snprintf(path, sizeof(path), "/api/v1/connections/%s", id);
    r = hs_call(s.port, "PATCH", path, tok, "{\"slug\":\"demo\"}");
    assert_error(&r, 409, NULL);
    hs_response_free(&r);
    r = hs_call(s.port, "PATCH", path, tok, "{\"phone_number_id\":\"100000000000001\"}");
    assert_error(&r, 409, NULL);
    cr_assert(strstr(r.body, "phone_number_id") != NULL, "%s", r.body);
    hs_response_free(&r);
    /* its own slug and number are not a conflict */
    snprintf(body, sizeof(body), "{\"slug\":\"itc-dup-%d\",\"phone_number_id\":\"66%d\"}", pid, pid);
    r = hs_call(s.port, "PATCH", path, tok, body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    hs_response_free(&r);
    r = hs_call(s.port, "DELETE", path, tok, NULL);
    cr_assert_eq(r.status, 204, "%s", r.body);
    hs_response_free(&r);
    cr_assert_eq(hs_server_stop(&s), 0);
}

Test(connections, agents_read_but_cannot_write)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    const char *tok = login(s.port, AGENT);
    char id[32], path[96], before[512], after[512];
    conn_id("demo", id, sizeof(id));
    snprintf(path, sizeof(path), "/api/v1/connections/%s", id);
    sql_ok(before, sizeof(before), "SELECT c::text FROM connections c WHERE slug = 'demo'");
    hs_response_t r = hs_call(s.port, "GET", "/api/v1/connections", tok, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"demo\"") != NULL);
    hs_response_free(&r);
    r = hs_call(s.port, "GET", path, tok, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    hs_response_free(&r);
    r = hs_call(s.port, "POST", "/api/v1/connections", tok, "{\"name\":\"x\",\"slug\":\"itc-agent\"}");
    assert_error(&r, 403, NULL);
    hs_response_free(&r);
    r = hs_call(s.port, "PATCH", path, tok, "{\"name\":\"taken over\"}");
    assert_error(&r, 403, NULL);
    hs_response_free(&r);
    r = hs_call(s.port, "DELETE", path, tok, NULL);
    assert_error(&r, 403, NULL);
    hs_response_free(&r);
    /* without a token at all */
    r = hs_get(s.port, "/api/v1/connections");
    assert_error(&r, 401, NULL);
    hs_response_free(&r);
    sql_ok(after, sizeof(after), "SELECT c::text FROM connections c WHERE slug = 'demo'");
    cr_assert_str_eq(after, before);
    cr_assert_eq(hs_server_stop(&s), 0);
}

Test(connections, another_company_is_404)
{
    int pid = (int)getpid();
    char sql[1024], id[32], path[96];
    snprintf(sql, sizeof(sql),
             "INSERT INTO companies (slug, name) VALUES ('itc-other-%d', 'Other');"
             " INSERT INTO connections (company_id, slug, name) SELECT id, 'itc-other-%d', 'Theirs'"
             " FROM companies WHERE slug = 'itc-other-%d' RETURNING id",
             pid, pid, pid);
    sql_ok(id, sizeof(id), sql);
    snprintf(path, sizeof(path), "/api/v1/connections/%s", id);
    hs_server_t s;
    hs_server_start(&s, NULL);
    const char *tok = login(s.port, ADMIN);
    hs_response_t r = hs_call(s.port, "GET", path, tok, NULL);
    assert_error(&r, 404, NULL);
    hs_response_free(&r);
    r = hs_call(s.port, "PATCH", path, tok, "{\"name\":\"mine now\"}");
    assert_error(&r, 404, NULL);
    hs_response_free(&r);
    r = hs_call(s.port, "DELETE", path, tok, NULL);
    assert_error(&r, 404, NULL);
    hs_response_free(&r);
    r = hs_call(s.port, "GET", "/api/v1/connections", tok, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_null(strstr(r.body, "itc-other"), "%s", r.body);
    hs_response_free(&r);
    snprintf(sql, sizeof(sql), "SELECT name FROM connections WHERE slug = 'itc-other-%d'", pid);
    char name[64];
    sql_ok(name, sizeof(name), sql);
    cr_assert_str_eq(name, "Theirs");
    cr_assert_eq(hs_server_stop(&s), 0);
}

Test(connections, delete_refused_while_campaigns_use_it)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    const char *tok = login(s.port, ADMIN);
    int pid = (int)getpid();
    char body[256], sql[512], path[96], id[32];
    snprintf(body, sizeof(body), "{\"name\":\"Campaign line\",\"slug\":\"itc-camp-%d\"}", pid);
    hs_response_t r = hs_call(s.port, "POST", "/api/v1/connections", tok, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    hs_response_free(&r);
    snprintf(body, sizeof(body), "itc-camp-%d", pid);
    conn_id(body, id, sizeof(id));
    snprintf(sql, sizeof(sql),
             "INSERT INTO campaigns (company_id, connection_id, name, template_name, template_language, audience)"
             " SELECT company_id, id, 'itc-campaign', 'hello', 'pt_BR', '{}' FROM connections WHERE id = %s",
             id);
    sql_ok(NULL, 0, sql);
    snprintf(path, sizeof(path), "/api/v1/connections/%s", id);
    r = hs_call(s.port, "DELETE", path, tok, NULL);
    assert_error(&r, 409, NULL);
    cr_assert(strstr(r.body, "1 campaign") != NULL && strstr(r.body, "disable") != NULL, "%s", r.body);
    hs_response_free(&r);
    r = hs_call(s.port, "GET", path, tok, NULL);
    cr_assert_eq(r.status, 200);
    hs_response_free(&r);
    /* disabling is the way out; once no campaign uses it, it can go */
    r = hs_call(s.port, "PATCH", path, tok, "{\"status\":\"disabled\"}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    hs_response_free(&r);
    sql_ok(NULL, 0, "DELETE FROM campaigns WHERE name = 'itc-campaign'");
    r = hs_call(s.port, "DELETE", path, tok, NULL);
    cr_assert_eq(r.status, 204, "%s", r.body);
    hs_response_free(&r);
    cr_assert_eq(hs_server_stop(&s), 0);
}

Test(connections, serve_refuses_to_start_without_a_key)
{
    static const char *const serve[] = {"serve", NULL};
    static const char *const env[] = {"ENCRYPTION_KEY=", NULL};
    hs_server_t s = {.port = hs_free_port()};
    hs_server_spawn(&s, serve, env);
    cr_assert_eq(hs_server_wait(&s, 5000), 2, "serve without ENCRYPTION_KEY should exit with status 2");
    char *log = hs_server_log(&s);
    cr_assert(strstr(log, "ENCRYPTION_KEY") != NULL, "%s", log);
    cr_assert(strchr(log, '\n') == strrchr(log, '\n') && strlen(log) > 0, "one line expected: %s", log);
    free(log);
    char out[1024];
    cr_assert_eq(conversa(out, sizeof(out), "ENCRYPTION_KEY=", "keys rotate"), 2, "%s", out);
    cr_assert(strstr(out, "ENCRYPTION_KEY") != NULL, "%s", out);
}

Test(connections, hashed_key_warns_once_however_busy)
{
    static const char *const env[] = {"ENCRYPTION_KEY=just a passphrase, not 32 bytes", "THREADS=4", NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    const char *tok = login(s.port, ADMIN);
    char path[96], id[32];
    conn_id("demo", id, sizeof(id));
    snprintf(path, sizeof(path), "/api/v1/connections/%s", id);
    for (int i = 0; i != 60; ++i) {
        hs_response_t r = hs_call(s.port, "GET", i % 2 ? path : "/api/v1/connections", tok, NULL);
        cr_assert_eq(r.status, 200, "%s", r.body);
        hs_response_free(&r);
    }
    /* writes seal with the key: still no second warning */
    for (int i = 0; i != 5; ++i) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"name\":\"w\",\"slug\":\"itc-hash-%d-%d\",\"access_token\":\"tok-%d-abcdefghijk\"}", (int)getpid(),
                 i, i);
        hs_response_t r = hs_call(s.port, "POST", "/api/v1/connections", tok, body);
        cr_assert_eq(r.status, 201, "%s", r.body);
        hs_response_free(&r);
    }
    int st = hs_server_stop(&s);
    char *log = hs_server_log(&s);
    cr_assert_eq(st, 0, "exit status %d; log:\n%s", st, log);
    int n = 0;
    for (const char *p = log; (p = strstr(p, "ENCRYPTION_KEY was hashed to 32 bytes")) != NULL; ++p)
        ++n;
    cr_assert_eq(n, 1, "the warning was logged %d times:\n%s", n, log);
    free(log);
    /* a 64-hex key (the suite's) is used as is: no warning at all */
    hs_server_start(&s, NULL);
    hs_response_t r = hs_get(s.port, "/api/health/live");
    hs_response_free(&r);
    cr_assert_eq(hs_server_stop(&s), 0);
    log = hs_server_log(&s);
    cr_assert_null(strstr(log, "was hashed"), "%s", log);
    free(log);
}

Test(connections, keys_rotate_then_only_the_new_key_opens)
{
    const char *k1 = suite_key();
    char k2[128], out[8192], env[512], sql[1024], slug[64], legacy[64];
    int pid = (int)getpid();
    cr_assert_eq(conversa(k2, sizeof(k2), NULL, "keys generate"), 0, "%s", k2);
    k2[strcspn(k2, "\n")] = '\0';
    cr_assert_eq(strlen(k2), 64, "%s", k2);

    /* a connection with three secrets, under the suite's key */
    snprintf(slug, sizeof(slug), "itc-rot-%d", pid);
    char at[64], as[64], vt[64];
    snprintf(at, sizeof(at), "EAAGrotation%dtoken", pid);
    snprintf(as, sizeof(as), "appsecret-%d-0123456789", pid);
    snprintf(vt, sizeof(vt), "verify-%d-token", pid);
    const char *const plain[] = {at, as, vt};
    hs_server_t s;
    hs_server_start(&s, NULL);
    const char *tok = login(s.port, ADMIN);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\":\"Rotating\",\"slug\":\"%s\",\"access_token\":\"%s\",\"app_secret\":\"%s\",\"verify_token\":"
             "\"%s\"}",
             slug, at, as, vt);
    hs_response_t r = hs_call(s.port, "POST", "/api/v1/connections", tok, body);
    cr_assert_eq(r.status, 201, "%s", r.body);
    hs_response_free(&r);
    cr_assert_eq(hs_server_stop(&s), 0);
    assert_sealed(slug, k1, plain);
    /* and one with a verify token left in the legacy plaintext column */
    snprintf(legacy, sizeof(legacy), "itc-legacy-%d", pid);
    snprintf(sql, sizeof(sql),
             "INSERT INTO connections (company_id, slug, name, verify_token)"
             " SELECT id, '%s', 'Legacy', 'legacy-verify-token-1234' FROM companies WHERE slug = 'demo'",
             legacy);
    sql_ok(NULL, 0, sql);

    /* rotate to k2 */
    snprintf(env, sizeof(env), "ENCRYPTION_KEY='%s' ENCRYPTION_KEY_PREVIOUS='%s'", k2, k1);
    snprintf(itc_rotated_to, sizeof(itc_rotated_to), "%s", k2);
    cr_assert_eq(conversa(out, sizeof(out), env, "keys rotate"), 0, "%s", out);
    cr_assert(strstr(out, "1 plaintext verify token(s) sealed") != NULL, "%s", out);
    assert_sealed(slug, k2, plain);
    char demo_plain_at[] = "demo-access-token", demo_plain_as[] = "demo-app-secret";
    unsigned char v[4096];
    char got[4096];
    size_t n = stored("demo", "access_token", v, sizeof(v));
    cr_assert_eq(open_with(k2, NULL, "access_token", v, n, got, sizeof(got)), 0);
    cr_assert_str_eq(got, demo_plain_at);
    cr_assert_eq(open_with(k1, NULL, "access_token", v, n, got, sizeof(got)), -1);
    n = stored("demo", "app_secret", v, sizeof(v));
    cr_assert_eq(open_with(k2, NULL, "app_secret", v, n, got, sizeof(got)), 0);
    cr_assert_str_eq(got, demo_plain_as);
    n = stored(legacy, "verify_token", v, sizeof(v));
    cr_assert_eq(open_with(k2, NULL, "verify_token", v, n, got, sizeof(got)), 0);
    cr_assert_str_eq(got, "legacy-verify-token-1234");
    snprintf(sql, sizeof(sql),
             "SELECT (verify_token IS NULL)::text || '|' || verify_token_hint FROM connections WHERE slug = '%s'",
             legacy);
    sql_ok(got, sizeof(got), sql);
    cr_assert_str_eq(got, "true|••••1234");

    /* with only k2, every value opens (a dry run writes nothing) and serve reads and writes */
    snprintf(env, sizeof(env), "ENCRYPTION_KEY='%s' ENCRYPTION_KEY_PREVIOUS=", k2);
    cr_assert_eq(conversa(out, sizeof(out), env, "keys rotate --dry-run"), 0, "%s", out);
    cr_assert(strstr(out, ": 0 value(s) re-sealed") != NULL && strstr(out, "nothing was written") != NULL, "%s", out);
    char k2env[160], id[32], path[96];
    snprintf(k2env, sizeof(k2env), "ENCRYPTION_KEY=%s", k2);
    const char *const serve_env[] = {k2env, "ENCRYPTION_KEY_PREVIOUS=", NULL};
    hs_server_start(&s, serve_env);
    tok = login(s.port, ADMIN);
    conn_id(slug, id, sizeof(id));
    snprintf(path, sizeof(path), "/api/v1/connections/%s", id);
    r = hs_call(s.port, "GET", path, tok, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *root, *d = data_of(&r, &root);
    cr_assert_str_eq(str(d, "access_token"), "••••oken");
    cr_assert_str_eq(str(d, "app_secret"), "••••6789");
    json_decref(root);
    hs_response_free(&r);
    char at2[64];
    snprintf(at2, sizeof(at2), "EAAGafterRotation%d", pid);
    snprintf(body, sizeof(body), "{\"access_token\":\"%s\"}", at2);
    r = hs_call(s.port, "PATCH", path, tok, body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    hs_response_free(&r);
    cr_assert_eq(hs_server_stop(&s), 0);
    const char *const plain2[] = {at2, as, vt};
    assert_sealed(slug, k2, plain2);

    /* with only the old key nothing opens: exit 1, and the transaction changed nothing */
    char hex_before[4096], hex_after[4096];
    snprintf(sql, sizeof(sql), "SELECT string_agg(encode(access_token_enc, 'hex'), ',' ORDER BY id) FROM connections");
    sql_ok(hex_before, sizeof(hex_before), sql);
    snprintf(env, sizeof(env), "ENCRYPTION_KEY='%s' ENCRYPTION_KEY_PREVIOUS=", k1);
    cr_assert_eq(conversa(out, sizeof(out), env, "keys rotate"), 1, "%s", out);
    cr_assert(strstr(out, "opens with neither") != NULL, "%s", out);
    sql_ok(hex_after, sizeof(hex_after), sql);
    cr_assert_str_eq(hex_after, hex_before);

    /* a value no configured key opens stops the rotation midway: rolled back, the row is named */
    snprintf(sql, sizeof(sql),
             "INSERT INTO connections (company_id, slug, name, app_secret_enc)"
             " SELECT id, 'itc-garbage-%d', 'Garbage', '\\x01deadbeef'::bytea || sha512('x'::bytea)"
             " FROM companies WHERE slug = 'demo'",
             pid);
    sql_ok(NULL, 0, sql);
    snprintf(env, sizeof(env), "ENCRYPTION_KEY='%s' ENCRYPTION_KEY_PREVIOUS='%s'", k1, k2);
    cr_assert_eq(conversa(out, sizeof(out), env, "keys rotate"), 1, "%s", out);
    cr_assert(strstr(out, "itc-garbage") != NULL && strstr(out, "deadbeef") != NULL, "%s", out);
    assert_sealed(slug, k2, plain2);
    snprintf(sql, sizeof(sql), "DELETE FROM connections WHERE slug = 'itc-garbage-%d'", pid);
    sql_ok(NULL, 0, sql);

    /* and back to the suite's key */
    cr_assert_eq(conversa(out, sizeof(out), env, "keys rotate"), 0, "%s", out);
    itc_rotated_to[0] = '\0';
    assert_sealed(slug, k1, plain2);
    n = stored("demo", "access_token", v, sizeof(v));
    cr_assert_eq(open_with(k1, NULL, "access_token", v, n, got, sizeof(got)), 0);
    cr_assert_str_eq(got, demo_plain_at);
}

Test(connections, token_create_makes_working_tokens)
{
    int pid = (int)getpid();
    char out[4096], args[512], tok[128], sql[512], demo_id[32], agent_id[32];
    snprintf(args, sizeof(args), "token create --company demo --user " ADMIN " --name itc-token-%d", pid);
    cr_assert_eq(hs_sh(tok, sizeof(tok), "'%s' %s 2>/dev/null", getenv("CONVERSA_BIN"), args), 0, "%s", tok);
    tok[strcspn(tok, "\n")] = '\0';
    cr_assert(strncmp(tok, "cv_", 3) == 0 && strlen(tok) == 46, "stdout should be the token alone: '%s'", tok);
    /* only its hash is stored, as an API token */
    snprintf(sql, sizeof(sql),
             "SELECT kind || '|' || name || '|' || (expires_at IS NULL) FROM api_tokens"
             " WHERE token_hash = sha256(convert_to('%s', 'UTF8'))",
             tok);
    sql_ok(out, sizeof(out), sql);
    snprintf(sql, sizeof(sql), "api|itc-token-%d|true", pid);
    cr_assert_str_eq(out, sql);

    /* by ids: the agent */
    sql_ok(demo_id, sizeof(demo_id), "SELECT id FROM companies WHERE slug = 'demo'");
    sql_ok(agent_id, sizeof(agent_id), "SELECT id FROM users WHERE email = '" AGENT "'");
    char agent_tok[128];
    snprintf(args, sizeof(args), "token create --company %s --user %s --name=itc-agent-%d", demo_id, agent_id, pid);
    cr_assert_eq(hs_sh(agent_tok, sizeof(agent_tok), "'%s' %s 2>/dev/null", getenv("CONVERSA_BIN"), args), 0);
    agent_tok[strcspn(agent_tok, "\n")] = '\0';

    hs_server_t s;
    hs_server_start(&s, NULL);
    hs_response_t r = hs_call(s.port, "GET", "/api/v1/connections", tok, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"demo\"") != NULL);
    hs_response_free(&r);
    r = hs_call(s.port, "GET", "/api/v1/connections", agent_tok, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    hs_response_free(&r);
    r = hs_call(s.port, "POST", "/api/v1/connections", agent_tok, "{\"name\":\"x\",\"slug\":\"itc-by-agent\"}");
    assert_error(&r, 403, NULL);
    hs_response_free(&r);
    r = hs_call(s.port, "GET", "/api/v1/connections", "cv_not-a-real-token", NULL);
    assert_error(&r, 401, NULL);
    hs_response_free(&r);
    cr_assert_eq(hs_server_stop(&s), 0);

    /* unknown company or user, a user of another company: 1 */
    snprintf(sql, sizeof(sql),
             "INSERT INTO companies (slug, name) VALUES ('itc-co-%d', 'Other');"
             " INSERT INTO users (company_id, email, name) SELECT id, 'itc-%d@other.example', 'Other'"
             " FROM companies WHERE slug = 'itc-co-%d'",
             pid, pid, pid);
    sql_ok(NULL, 0, sql);
    cr_assert_eq(conversa(out, sizeof(out), NULL, "token create --company demo --user nobody@nowhere.example"), 1, "%s",
                 out);
    cr_assert(strstr(out, "no user") != NULL, "%s", out);
    cr_assert_eq(conversa(out, sizeof(out), NULL, "token create --company itc-missing --user " ADMIN), 1, "%s", out);
    cr_assert(strstr(out, "no company") != NULL, "%s", out);
    snprintf(args, sizeof(args), "token create --company demo --user itc-%d@other.example", pid);
    cr_assert_eq(conversa(out, sizeof(out), NULL, args), 1, "%s", out);
    cr_assert(strstr(out, "another company") != NULL, "%s", out);
    snprintf(args, sizeof(args), "token create --company itc-co-%d --user " ADMIN, pid);
    cr_assert_eq(conversa(out, sizeof(out), NULL, args), 1, "%s", out);
    cr_assert(strstr(out, "another company") != NULL, "%s", out);
    cr_assert_null(strstr(out, "cv_"), "%s", out);

    /* usage errors: 2; help: 0 */
    cr_assert_eq(conversa(out, sizeof(out), NULL, "token create --company demo"), 2, "%s", out);
    cr_assert_eq(conversa(out, sizeof(out), NULL, "token create --company demo --user " ADMIN " --colour red"), 2);
    cr_assert_eq(conversa(out, sizeof(out), NULL, "token create --company demo --user"), 2);
    cr_assert_eq(conversa(out, sizeof(out), NULL, "token frobnicate"), 2);
    cr_assert_eq(conversa(out, sizeof(out), NULL, "keys sideways"), 2);
    cr_assert_eq(conversa(out, sizeof(out), NULL, "token --help"), 0);
    cr_assert(strstr(out, "usage: conversa token create") != NULL, "%s", out);
    cr_assert_eq(conversa(out, sizeof(out), NULL, "keys --help"), 0);
    cr_assert(strstr(out, "usage: conversa keys rotate") != NULL, "%s", out);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM api_tokens WHERE name LIKE 'itc-%%-%d'", pid);
    sql_ok(out, sizeof(out), sql);
    cr_assert_str_eq(out, "2");
}
