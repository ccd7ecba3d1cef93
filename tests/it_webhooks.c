/*
 * Integration tests of Meta webhooks and the job queue: the real binary, real
 * PostgreSQL and Redis, real HTTP, and Meta's documented payloads (tests/data/meta)
 * sent byte for byte with signatures computed over those bytes.
 *
 * The suite owns a company ("it-wh-<pid>", an admin and an agent) with the connection
 * whose phone_number_id the samples carry; each test starts from an empty inbox
 * (wh_reset) and the company is deleted at the end with everything it owns.
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "meta/apply.h"
#include "meta/webhook.h"
#include "queue/wake.h"

#define WH_SECRET              "it-app-secret"
#define WH_VERIFY              "it-verify-token"
#define WH_PHONE_ID            "106540352242922"
#define WH_CONTACT             "16505551234"
#define WH_STATUS_WAMID_SENT   "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="
#define WH_STATUS_WAMID_FAILED "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA"

static char wh_slug[32], wh_company[24];
static hs_server_t wh_srv;
static char *wh_admin;

/* ---- helpers ---- */

static char *wh_file(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof(path), "tests/data/meta/%s", name);
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert(fread(b, 1, (size_t)n, f) == (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* POSTs body to the suite's webhook address with a signature made with secret (none when NULL). */
static hs_response_t wh_post_to(int port, const char *slug, const char *body, size_t len, const char *secret)
{
    char path[128], sig[72], hdr[96];
    snprintf(path, sizeof(path), "/api/webhooks/meta/%s", slug);
    const char *headers[] = {"Content-Type: application/json", NULL, NULL};
    if (secret != NULL) {
        meta_signature(secret, strlen(secret), body, len, sig);
        snprintf(hdr, sizeof(hdr), "X-Hub-Signature-256: %s", sig);
        headers[1] = hdr;
    }
    return hs_request(port, "POST", path, body, len, headers);
}

/* POSTs a correctly signed body and requires {"queued":true}. */
static void wh_post(const char *body, size_t len)
{
    hs_response_t r = wh_post_to(wh_srv.port, wh_slug, body, len, WH_SECRET);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(r.body, "{\"queued\":true}");
    hs_response_free(&r);
}

static void wh_post_file(const char *name)
{
    size_t len;
    char *b = wh_file(name, &len);
    wh_post(b, len);
    free(b);
}

/* A one-message text payload from contact with wamid and text. */
static int wh_text(char *out, size_t cap, const char *contact, const char *wamid, const char *text)
{
    return snprintf(out, cap,
                    "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{\"value\":{"
                    "\"messaging_product\":\"whatsapp\",\"metadata\":{\"display_phone_number\":\"15550783881\","
                    "\"phone_number_id\":\"" WH_PHONE_ID "\"},\"contacts\":[{\"profile\":{\"name\":\"C %s\"},"
                    "\"wa_id\":\"%s\"}],\"messages\":[{\"from\":\"%s\",\"id\":\"%s\",\"timestamp\":\"1750000000\","
                    "\"type\":\"text\",\"text\":{\"body\":\"%s\"}}]},\"field\":\"messages\"}]}]}",
                    contact, contact, contact, wamid, text);
}

/* A one-status payload. */
static int wh_status(char *out, size_t cap, const char *wamid, const char *status)
{
    return snprintf(out, cap,
                    "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{\"value\":{"
                    "\"messaging_product\":\"whatsapp\",\"metadata\":{\"phone_number_id\":\"" WH_PHONE_ID "\"},"
                    "\"statuses\":[{\"id\":\"%s\",\"status\":\"%s\",\"timestamp\":\"1750000001\","
                    "\"recipient_id\":\"" WH_CONTACT "\"}]},\"field\":\"messages\"}]}]}",
                    wamid, status);
}

static void wh_q(char *out, size_t cap, const char *fmt, const char *arg)
{
    char sql[2048];
    snprintf(sql, sizeof(sql), fmt, arg);
    int rc = hs_sql(out, cap, "%s", sql);
    cr_assert_eq(rc, 0, "%s: %s", sql, out);
}

static long wh_count(const char *where)
{
    char out[64];
    char sql[1024];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s AND company_id = %s", where, wh_company);
    cr_assert_eq(hs_sql(out, sizeof(out), "%s", sql), 0, "%s", out);
    return atol(out);
}

/* Waits until wh_count(where) is want (deadline ms); returns whether it got there. */
static int wh_wait_count(const char *where, long want, int ms)
{
    double t0 = hs_now_ms();
    while (hs_now_ms() - t0 < ms) {
        if (wh_count(where) == want)
            return 1;
        hs_sleep_ms(20);
    }
    return 0;
}

/* Waits until the company has no job queued or running (deadline ms); returns whether it got there. */
static int wh_drain(int ms)
{
    return wh_wait_count("jobs WHERE status IN ('queued', 'running')", 0, ms);
}

/* Empties the company's inbox and jobs. */
static void wh_reset(void)
{
    char out[256];
    cr_assert_eq(hs_sql(out, sizeof(out),
                        "DELETE FROM jobs WHERE company_id = %s; DELETE FROM notifications WHERE company_id = %s;"
                        "DELETE FROM contacts WHERE company_id = %s",
                        wh_company, wh_company, wh_company),
                 0, "%s", out);
}

/* An outbound message the company sent with wamid, for statuses to land on. */
static void wh_outbound(const char *wamid)
{
    char out[256];
    cr_assert_eq(
        hs_sql(out, sizeof(out),
               "WITH k AS (INSERT INTO contacts (company_id, phone_number, wa_id) VALUES (%s, '" WH_CONTACT
               "', '" WH_CONTACT "') ON CONFLICT (company_id, phone_number) DO UPDATE SET wa_id = excluded.wa_id"
               " RETURNING id), c AS (INSERT INTO conversations (company_id, contact_id) SELECT %s, id FROM k"
               " RETURNING id) INSERT INTO messages (company_id, conversation_id, direction, body, wamid, status)"
               " SELECT %s, id, 'outbound', 'hello', '%s', 'pending' FROM c",
               wh_company, wh_company, wh_company, wamid),
        0, "%s", out);
}

static void wh_message_status(const char *wamid, char *out, size_t cap)
{
    char sql[512];
    snprintf(
        sql, sizeof(sql),
        "SELECT status || '|' || coalesce(error_code::text, '-') || '|' || coalesce(error_title, '-') FROM messages"
        " WHERE company_id = %s AND wamid = '%s'",
        wh_company, wamid);
    cr_assert_eq(hs_sql(out, cap, "%s", sql), 0, "%s", out);
}

/* ---- suite ---- */

static void wh_setup(void)
{
    snprintf(wh_slug, sizeof(wh_slug), "it-wh-%d", (int)getpid());
    hs_company(wh_slug, "Webhooks test");
    char out[256];
    wh_q(wh_company, sizeof(wh_company), "SELECT id FROM companies WHERE slug = '%s'", wh_slug);
    /* the demo seed or an earlier run may hold the samples' phone number id */
    cr_assert_eq(hs_sql(out, sizeof(out), "UPDATE connections SET phone_number_id = NULL WHERE phone_number_id = '%s'",
                        WH_PHONE_ID),
                 0, "%s", out);
    static const char *const env[] = {"QUEUE_CONCURRENCY=8", "QUEUE_LEASE_MS=6000", "SEND_CONCURRENCY=0", NULL};
    hs_server_start(&wh_srv, env);
    char email[96];
    snprintf(email, sizeof(email), "admin@%s.test", wh_slug);
    wh_admin = hs_login(wh_srv.port, email);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\":\"Webhooks\",\"slug\":\"%s\",\"phone_number_id\":\"" WH_PHONE_ID
             "\",\"app_secret\":\"" WH_SECRET "\",\"verify_token\":\"" WH_VERIFY "\"}",
             wh_slug);
    json_t *j = hs_call_json(wh_srv.port, "POST", "/api/v1/connections", wh_admin, body, 201);
    json_decref(j);
}

static void wh_teardown(void)
{
    if (wh_srv.pid > 0)
        hs_server_stop(&wh_srv);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = '%s'", wh_slug);
    free(wh_admin);
}

TestSuite(webhooks, .init = wh_setup, .fini = wh_teardown, .timeout = 180);

/* ---- verification ---- */

Test(webhooks, verification_handshake)
{
    char path[256];
    snprintf(path, sizeof(path),
             "/api/webhooks/meta/%s?hub.mode=subscribe&hub.verify_token=" WH_VERIFY "&hub.challenge=1158201444",
             wh_slug);
    hs_response_t r = hs_get(wh_srv.port, path);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    cr_assert_str_eq(r.body, "1158201444");
    char *ct = hs_header(&r, "content-type");
    cr_assert(ct != NULL && strncmp(ct, "text/plain", 10) == 0, "%s", ct);
    free(ct);
    hs_response_free(&r);

    const char *bad[] = {
        "?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        "?hub.mode=unsubscribe&hub.verify_token=" WH_VERIFY "&hub.challenge=1",
        "?hub.verify_token=" WH_VERIFY "&hub.challenge=1",
        "?hub.mode=subscribe&hub.challenge=1",
        "?hub.mode=subscribe&hub.verify_token=" WH_VERIFY,
        "?hub.mode=subscribe&hub.verify_token=" WH_VERIFY "x&hub.challenge=1",
        "?hub.mode=subscribe&hub.verify_token=%ZZ&hub.challenge=1",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        snprintf(path, sizeof(path), "/api/webhooks/meta/%s%s", wh_slug, bad[i]);
        r = hs_get(wh_srv.port, path);
        cr_assert_eq(r.status, 403, "%s: %ld %s", path, r.status, r.body);
        hs_response_free(&r);
    }
    r = hs_get(wh_srv.port,
               "/api/webhooks/meta/no-such-slug?hub.mode=subscribe&hub.verify_token=" WH_VERIFY "&hub.challenge=1");
    cr_assert_eq(r.status, 403);
    hs_response_free(&r);
}

/* ---- what is refused ---- */

Test(webhooks, refuses_unsigned_forged_and_malformed_posts)
{
    wh_reset();
    size_t len;
    char *b = wh_file("inbound-text.json", &len);
    hs_response_t r = wh_post_to(wh_srv.port, "no-such-slug", b, len, WH_SECRET);
    cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
    hs_response_free(&r);
    r = wh_post_to(wh_srv.port, wh_slug, b, len, NULL);
    cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
    hs_response_free(&r);
    r = wh_post_to(wh_srv.port, wh_slug, b, len, "another-secret");
    cr_assert_eq(r.status, 401);
    hs_response_free(&r);

    /* the same JSON re-serialised with Meta's escapes: the bytes differ, so does the signature */
    char sig[72], hdr[96], path[128];
    meta_signature(WH_SECRET, strlen(WH_SECRET), b, len, sig);
    snprintf(hdr, sizeof(hdr), "X-Hub-Signature-256: %s", sig);
    snprintf(path, sizeof(path), "/api/webhooks/meta/%s", wh_slug);
    const char *eh[] = {hdr, NULL};
    /* a "." escaped as \u002e (valid JSON, same meaning) under the original's signature */
    char *reser = strdup(b);
    char *at = strstr(reser, "wamid.");
    cr_assert(at != NULL);
    size_t rl = strlen(reser);
    char *alt = malloc(rl + 8);
    size_t pre = (size_t)(at - reser);
    memcpy(alt, reser, pre);
    memcpy(alt + pre, "wamid\\u002e", 11);
    memcpy(alt + pre + 11, at + 6, rl - pre - 6 + 1);
    r = hs_request(wh_srv.port, "POST", path, alt, strlen(alt), eh);
    cr_assert_eq(r.status, 401, "re-serialised JSON accepted: %ld %s", r.status, r.body);
    hs_response_free(&r);
    free(alt);
    free(reser);

    /* malformed signatures */
    const char *sigs[] = {"X-Hub-Signature-256: sha256=", "X-Hub-Signature-256: sha1=abc",
                          "X-Hub-Signature-256: sha256=zz", "X-Hub-Signature-256: " /* empty */};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); ++i) {
        const char *h[] = {sigs[i], NULL};
        r = hs_request(wh_srv.port, "POST", path, b, len, h);
        cr_assert_eq(r.status, 401, "%s: %ld", sigs[i], r.status);
        hs_response_free(&r);
    }
    /* well signed, but not JSON, or not an object */
    const char *notjson[] = {"{\"object\":", "not json at all", "[1,2,3]", "\"text\"", "{}}"};
    for (size_t i = 0; i < sizeof(notjson) / sizeof(notjson[0]); ++i) {
        r = wh_post_to(wh_srv.port, wh_slug, notjson[i], strlen(notjson[i]), WH_SECRET);
        cr_assert_eq(r.status, 400, "%s: %ld %s", notjson[i], r.status, r.body);
        json_t *j = hs_json(&r);
        cr_assert(j != NULL, "a JSON error body");
        json_decref(j);
        hs_response_free(&r);
    }
    r = wh_post_to(wh_srv.port, wh_slug, "", 0, WH_SECRET);
    cr_assert_eq(r.status, 400);
    hs_response_free(&r);

    /* more updates than Meta ever batches (1,000), each for another contact: refused
     * before the quadratic split */
    char *many = malloc(1 << 20);
    int mn = sprintf(many, "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{\"field\":"
                           "\"messages\",\"value\":{\"statuses\":[");
    for (int i = 0; i < 1001; ++i)
        mn += sprintf(many + mn, "%s{\"id\":\"w%d\",\"status\":\"sent\",\"recipient_id\":\"55%09d\"}", i ? "," : "", i,
                      i);
    mn += sprintf(many + mn, "]}}]}]}");
    r = wh_post_to(wh_srv.port, wh_slug, many, (size_t)mn, WH_SECRET);
    cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
    cr_assert(strstr(r.body, "more than 1000") != NULL, "%s", r.body);
    hs_response_free(&r);
    free(many);

    /* over 3 MiB, signed or not: refused on its Content-Length, before a byte of it is
     * read. (A client that sends such a body without waiting may find the connection
     * reset before it reads the 413: the server does not read what it refused.) */
    size_t big = 3 * 1024 * 1024 + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    char head[512];
    meta_signature(WH_SECRET, strlen(WH_SECRET), huge, big, sig);
    int hn = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "X-Hub-Signature-256: %s\r\nContent-Length: %zu\r\n\r\n",
                      path, sig, big);
    int closed;
    char *out = hs_exchange(wh_srv.port, head, (size_t)hn, 5000, &closed);
    cr_assert(strncmp(out, "HTTP/1.1 413 ", 13) == 0, "a 3 MiB body's headers answered %.200s", out);
    cr_assert(closed, "the connection stayed open after the 413");
    free(out);
    free(huge);
    free(b);

    /* a connection without an app secret refuses everything, and says so once, not per request */
    char nb[256], nslug[48];
    snprintf(nslug, sizeof(nslug), "%s-nosecret", wh_slug);
    snprintf(nb, sizeof(nb), "{\"name\":\"No secret\",\"slug\":\"%s\"}", nslug);
    json_t *nc = hs_call_json(wh_srv.port, "POST", "/api/v1/connections", wh_admin, nb, 201);
    json_decref(nc);
    for (int i = 0; i < 20; ++i) {
        r = wh_post_to(wh_srv.port, nslug, "{}", 2, WH_SECRET);
        cr_assert_eq(r.status, 401, "%ld %s", r.status, r.body);
        hs_response_free(&r);
    }
    char *log = hs_server_log(&wh_srv);
    int warned = 0;
    for (const char *pos = log; (pos = strstr(pos, "has no app secret")) != NULL; ++pos)
        ++warned;
    free(log);
    cr_assert(warned >= 1 && warned <= 2, "%d warnings for 20 refused webhooks (one a minute per loop thread)", warned);

    cr_assert_eq(wh_count("jobs WHERE true"), 0, "a refused webhook left a job");
    /* the server is still fine */
    r = hs_get(wh_srv.port, "/api/health/live");
    cr_assert_eq(r.status, 200);
    hs_response_free(&r);
}

/* ---- Meta's samples ---- */

Test(webhooks, documented_samples_are_applied)
{
    wh_reset();
    wh_post_file("inbound-text.json");
    cr_assert(wh_drain(10000), "jobs did not run");
    char out[1024];
    wh_q(out, sizeof(out),
         "SELECT m.type || '|' || m.body || '|' || m.direction || '|' || m.status || '|' || k.phone_number || '|' ||"
         " k.name || '|' || c.status FROM messages m JOIN conversations c ON c.company_id = m.company_id AND"
         " c.id = m.conversation_id JOIN contacts k ON k.company_id = c.company_id AND k.id = c.contact_id"
         " WHERE m.company_id = %s",
         wh_company);
    cr_assert_str_eq(out, "text|Does it come in another color?|inbound|received|16505551234|Sheena Nelson|open");
    /* the agent is told (the conversation has no assignee) */
    cr_assert_eq(wh_count("notifications n WHERE n.user_id IN (SELECT id FROM users WHERE role = 'agent')"), 1);
    cr_assert_eq(wh_count("notifications n WHERE n.user_id IN (SELECT id FROM users WHERE role = 'admin')"), 0);

    /* the image sample reuses the text sample's wamid: Meta's duplicate, a no-op */
    wh_post_file("inbound-image.json");
    cr_assert(wh_drain(10000));
    cr_assert_eq(wh_count("messages WHERE true"), 1);
    cr_assert_eq(wh_count("jobs WHERE status = 'completed'"), 2);

    /* on its own, the image is stored with its caption and media id */
    wh_reset();
    wh_post_file("inbound-image.json");
    wh_post_file("inbound-interactive-button.json");
    cr_assert(wh_drain(10000));
    wh_q(out, sizeof(out),
         "SELECT string_agg(type || '|' || coalesce(body, '-') || '|' || coalesce(payload -> type ->> 'id', '-'), ','"
         " ORDER BY id) FROM messages WHERE company_id = %s",
         wh_company);
    cr_assert_str_eq(out, "image|Taj Mahal|1003383421387256,interactive|Cancel|-");
    /* one conversation for both, two messages in it */
    cr_assert_eq(wh_count("conversations WHERE unread_count = 2"), 1);

    /* statuses: sent, then failed with its error */
    wh_outbound(WH_STATUS_WAMID_SENT);
    wh_outbound(WH_STATUS_WAMID_FAILED);
    wh_post_file("status-sent.json");
    wh_post_file("status-failed.json");
    cr_assert(wh_drain(10000));
    wh_message_status(WH_STATUS_WAMID_SENT, out, sizeof(out));
    cr_assert_str_eq(out, "sent|-|-");
    wh_message_status(WH_STATUS_WAMID_FAILED, out, sizeof(out));
    cr_assert_str_eq(out, "failed|131049|This message was not delivered to maintain healthy ecosystem engagement.");
}

/* Every kind of inbound message Meta documents keeps its type, its text or caption and its media id. */
Test(webhooks, every_message_type_is_stored)
{
    wh_reset();
    static const char *const items[] = {
        "\"type\":\"audio\",\"audio\":{\"id\":\"A-1\",\"mime_type\":\"audio/ogg; codecs=opus\",\"voice\":true}",
        "\"type\":\"video\",\"video\":{\"id\":\"V-1\",\"caption\":\"a video\",\"mime_type\":\"video/mp4\"}",
        "\"type\":\"document\",\"document\":{\"id\":\"D-1\",\"filename\":\"invoice.pdf\"}",
        "\"type\":\"sticker\",\"sticker\":{\"id\":\"S-1\",\"animated\":false}",
        "\"type\":\"location\",\"location\":{\"latitude\":-23.56,\"longitude\":-46.65,\"name\":\"Paulista\","
        "\"address\":\"Av. Paulista 1000\"}",
        "\"type\":\"interactive\",\"interactive\":{\"type\":\"list_reply\",\"list_reply\":{\"id\":\"r1\","
        "\"title\":\"Red\",\"description\":\"the red one\"}}",
        "\"type\":\"button\",\"button\":{\"payload\":\"YES\",\"text\":\"Yes please\"}",
        "\"type\":\"reaction\",\"reaction\":{\"message_id\":\"wamid.X\",\"emoji\":\"\\ud83d\\udc4d\"}",
        "\"type\":\"unsupported\",\"errors\":[{\"code\":131051,\"title\":\"Message type unknown\"}]",
    };
    char *b = malloc(1 << 16);
    int n = sprintf(b, "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{\"field\":"
                       "\"messages\",\"value\":{\"metadata\":{\"phone_number_id\":\"" WH_PHONE_ID "\"},"
                       "\"messages\":[");
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); ++i)
        n += sprintf(b + n, "%s{\"from\":\"" WH_CONTACT "\",\"id\":\"wamid.T%zu\",\"timestamp\":\"1750000000\",%s}",
                     i ? "," : "", i, items[i]);
    n += sprintf(b + n, "]}}]}]}");
    wh_post(b, (size_t)n);
    free(b);
    cr_assert(wh_drain(10000));
    char out[2048];
    wh_q(out, sizeof(out),
         "SELECT string_agg(type || '|' || coalesce(body, '-') || '|' || coalesce(payload -> type ->> 'id', '-'), ','"
         " ORDER BY id) FROM messages WHERE company_id = %s",
         wh_company);
    cr_assert_str_eq(out, "audio|-|A-1,video|a video|V-1,document|invoice.pdf|D-1,sticker|-|S-1,"
                          "location|Paulista Av. Paulista 1000|-,interactive|Red|-,button|Yes please|-,"
                          "reaction|\xf0\x9f\x91\x8d|-,unsupported|-|-");
}

/* An unassigned conversation notifies every agent: more of them than one cache bump takes. */
Test(webhooks, many_agents_are_notified_and_see_it)
{
    wh_reset();
    char out[512];
    cr_assert_eq(hs_sql(out, sizeof(out),
                        "INSERT INTO users (company_id, email, name, role, password_hash) SELECT %s, 'many' || g ||"
                        " '@%s.test', 'Many ' || g, 'agent', d.password_hash FROM generate_series(1, 12) g, users d"
                        " WHERE lower(d.email) = 'admin@demo.conversa.dev'",
                        wh_company, wh_slug),
                 0, "%s", out);
    char email[96];
    snprintf(email, sizeof(email), "many12@%s.test", wh_slug);
    char *agent = hs_login(wh_srv.port, email);
    for (int i = 0; i < 2; ++i) {
        json_t *j = hs_call_json(wh_srv.port, "GET", "/api/v1/notifications", agent, NULL, 200);
        cr_assert_eq(json_array_size(json_object_get(j, "data")), 0);
        json_decref(j);
    }
    char b[1024];
    wh_post(b, (size_t)wh_text(b, sizeof(b), "4490000000001", "wamid.MANY", "hello all"));
    cr_assert(wh_drain(10000));
    cr_assert_eq(wh_count("notifications WHERE true"), 13);
    json_t *j = hs_call_json(wh_srv.port, "GET", "/api/v1/notifications", agent, NULL, 200);
    cr_assert_eq(json_array_size(json_object_get(j, "data")), 1, "a stale notifications page");
    cr_assert_eq(json_integer_value(json_object_get(j, "unread_count")), 1);
    json_decref(j);
    free(agent);
    wh_reset();
    hs_sql(NULL, 0, "DELETE FROM users WHERE company_id = %s AND email LIKE 'many%%'", wh_company);
}

Test(webhooks, statuses_only_move_forward)
{
    wh_reset();
    wh_outbound("wamid.FWD1");
    char b[1024];
    const char *seq[] = {"read", "delivered", "sent", "read", "delivered"};
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); ++i)
        wh_post(b, (size_t)wh_status(b, sizeof(b), "wamid.FWD1", seq[i]));
    cr_assert(wh_drain(10000));
    char out[256];
    wh_message_status("wamid.FWD1", out, sizeof(out));
    cr_assert_str_eq(out, "read|-|-");
    /* failed is terminal */
    wh_post(b, (size_t)wh_status(b, sizeof(b), "wamid.FWD1", "failed"));
    wh_post(b, (size_t)wh_status(b, sizeof(b), "wamid.FWD1", "delivered"));
    wh_post(b, (size_t)wh_status(b, sizeof(b), "wamid.FWD1", "read"));
    cr_assert(wh_drain(10000));
    wh_message_status("wamid.FWD1", out, sizeof(out));
    cr_assert(strncmp(out, "failed|", 7) == 0, "%s", out);
}

Test(webhooks, batched_payload_applies_every_item)
{
    wh_reset();
    /* 3 entries x 2 changes, 5 contacts, 40 messages and the statuses of 2 outbound ones */
    wh_outbound("wamid.B-OUT-1");
    wh_outbound("wamid.B-OUT-2");
    char *b = malloc(1 << 20);
    int n = sprintf(b, "{\"object\":\"whatsapp_business_account\",\"entry\":[");
    int k = 0;
    for (int e = 0; e < 3; ++e) {
        n += sprintf(b + n, "%s{\"id\":\"%d\",\"changes\":[", e ? "," : "", e);
        for (int c = 0; c < 2; ++c) {
            n += sprintf(b + n,
                         "%s{\"field\":\"messages\",\"value\":{\"messaging_product\":\"whatsapp\",\"metadata\":"
                         "{\"phone_number_id\":\"" WH_PHONE_ID "\"},\"contacts\":[",
                         c ? "," : "");
            for (int p = 0; p < 5; ++p)
                n += sprintf(b + n, "%s{\"profile\":{\"name\":\"Batch %d\"},\"wa_id\":\"55119000000%d\"}", p ? "," : "",
                             p, p);
            n += sprintf(b + n, "],\"messages\":[");
            int per = (e == 2 && c == 1) ? 5 : 7;
            for (int m = 0; m < per; ++m, ++k)
                n += sprintf(b + n,
                             "%s{\"from\":\"55119000000%d\",\"id\":\"wamid.B%03d\",\"timestamp\":\"1750000000\","
                             "\"type\":\"text\",\"text\":{\"body\":\"m%03d\"}}",
                             m ? "," : "", k % 5, k, k);
            n += sprintf(b + n, "]");
            if (e == 1 && c == 0)
                n += sprintf(
                    b + n,
                    ",\"statuses\":[{\"id\":\"wamid.B-OUT-1\",\"status\":\"delivered\",\"recipient_id\":\"" WH_CONTACT
                    "\"},{\"id\":\"wamid.B-OUT-2\",\"status\":\"read\",\"recipient_id\":\"" WH_CONTACT "\"}]");
            n += sprintf(b + n, "}}");
        }
        n += sprintf(b + n, "]}");
    }
    n += sprintf(b + n, "]}");
    cr_assert_eq(k, 40);
    wh_post(b, (size_t)n);
    /* split by contact: 5, and one part with the statuses */
    cr_assert_eq(wh_count("jobs WHERE true"), 6);
    cr_assert(wh_drain(10000));
    cr_assert_eq(wh_count("messages WHERE direction = 'inbound'"), 40);
    cr_assert_eq(wh_count("contacts WHERE phone_number LIKE '55119000000%%'"), 5);
    cr_assert_eq(wh_count("conversations WHERE unread_count = 8"), 5);
    char out[256];
    wh_message_status("wamid.B-OUT-1", out, sizeof(out));
    cr_assert_str_eq(out, "delivered|-|-");
    wh_message_status("wamid.B-OUT-2", out, sizeof(out));
    cr_assert_str_eq(out, "read|-|-");
    /* each contact's messages in the order of the payload */
    wh_q(out, sizeof(out),
         "SELECT count(*) FROM (SELECT k.phone_number, m.body, lag(m.body) OVER (PARTITION BY k.id ORDER BY m.id)"
         " AS prev FROM messages m JOIN conversations c ON c.company_id = m.company_id AND c.id = m.conversation_id"
         " JOIN contacts k ON k.company_id = c.company_id AND k.id = c.contact_id WHERE m.company_id = %s) x"
         " WHERE prev > body",
         wh_company);
    cr_assert_str_eq(out, "0");
    /* the same batch again: every item a duplicate */
    wh_post(b, (size_t)n);
    cr_assert(wh_drain(10000));
    cr_assert_eq(wh_count("messages WHERE direction = 'inbound'"), 40);
    free(b);
}

/* ---- the queue ---- */

/*
 * A status for a message nobody knows yet fails; it is retried after about 2 s, then
 * 4 s (+/-20 %), then left as failed, holding back the contact's next job meanwhile.
 * The queue API lists it, and its retry succeeds once the message exists.
 */
Test(webhooks, poison_job_backs_off_dead_letters_and_retries)
{
    wh_reset();
    char b[1024];
    wh_post(b, (size_t)wh_status(b, sizeof(b), "wamid.LATE", "delivered"));
    /* the same contact's next webhook waits behind it */
    wh_post(b, (size_t)wh_text(b, sizeof(b), WH_CONTACT, "wamid.BEHIND", "after the status"));
    double seen[4] = {0};
    double t0 = hs_now_ms();
    char out[256];
    while (hs_now_ms() - t0 < 15000) {
        /* one snapshot: the job's state and whether the later job already ran */
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "SELECT attempts || '|' || status || '|' || (SELECT count(*) FROM messages WHERE company_id = %s"
                 " AND wamid = 'wamid.BEHIND') FROM jobs WHERE company_id = %s ORDER BY id LIMIT 1",
                 wh_company, wh_company);
        cr_assert_eq(hs_sql(out, sizeof(out), "%s", sql), 0, "%s", out);
        int a = atoi(out);
        if (a >= 1 && a <= 3 && seen[a] == 0)
            seen[a] = hs_now_ms();
        if (strstr(out, "failed") != NULL)
            break;
        cr_assert(strstr(out, "|0") != NULL, "a later job of the key ran first: %s", out);
        hs_sleep_ms(20);
    }
    cr_assert(strncmp(out, "3|failed|", 9) == 0, "the job is %s", out);
    double gap1 = seen[2] - seen[1], gap2 = seen[3] - seen[2];
    cr_assert(gap1 >= 1500 && gap1 <= 3000, "first backoff %.0f ms", gap1);
    cr_assert(gap2 >= 3100 && gap2 <= 5500, "second backoff %.0f ms", gap2);
    /* now the key is free */
    cr_assert(wh_drain(5000));
    cr_assert_eq(wh_count("messages WHERE wamid = 'wamid.BEHIND'"), 1);

    json_t *j = hs_call_json(wh_srv.port, "GET", "/api/v1/queues/webhooks/failed", wh_admin, NULL, 200);
    json_t *data = json_object_get(j, "data");
    cr_assert_eq(json_array_size(data), 1);
    json_t *job = json_array_get(data, 0);
    cr_assert_eq(json_integer_value(json_object_get(job, "attempts")), 3);
    cr_assert(strstr(json_string_value(json_object_get(job, "last_error")), "not known yet") != NULL);
    long long id = json_integer_value(json_object_get(job, "id"));
    json_decref(j);
    j = hs_call_json(wh_srv.port, "GET", "/api/v1/queues", wh_admin, NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "failed")), 1);
    json_decref(j);

    /* the message appears; a retry through the API applies the status */
    wh_outbound("wamid.LATE");
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/queues/webhooks/failed/%lld/retry", id);
    j = hs_call_json(wh_srv.port, "POST", path, wh_admin, NULL, 200);
    json_decref(j);
    cr_assert(wh_drain(5000));
    wh_message_status("wamid.LATE", out, sizeof(out));
    cr_assert_str_eq(out, "delivered|-|-");
    /* retried again: nothing failed is left */
    j = hs_call_json(wh_srv.port, "POST", path, wh_admin, NULL, 404);
    json_decref(j);
    j = hs_call_json(wh_srv.port, "POST", "/api/v1/queues/webhooks/failed/retry_all", wh_admin, NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "data"), "retried")), 0);
    json_decref(j);
    j = hs_call_json(wh_srv.port, "GET", "/api/v1/queues/nope/failed", wh_admin, NULL, 404);
    json_decref(j);
}

/* Per-key ordering at concurrency 8: interleaved contacts, each one's messages in send order. */
#define ORD_CONTACTS 16
#define ORD_EACH     12

static void *ord_client(void *arg)
{
    int t = (int)(intptr_t)arg;
    char b[1024], wamid[64], text[32], contact[32];
    for (int m = 0; m < ORD_EACH; ++m)
        for (int c = t; c < ORD_CONTACTS; c += 4) {
            snprintf(contact, sizeof(contact), "4420000%05d", c);
            snprintf(wamid, sizeof(wamid), "wamid.ORD.%d.%d", c, m);
            snprintf(text, sizeof(text), "%03d", m);
            int n = wh_text(b, sizeof(b), contact, wamid, text);
            hs_response_t r = wh_post_to(wh_srv.port, wh_slug, b, (size_t)n, WH_SECRET);
            if (r.status != 200)
                fprintf(stderr, "post %s: %ld\n", wamid, r.status);
            hs_response_free(&r);
        }
    return NULL;
}

Test(webhooks, per_contact_order_under_concurrency)
{
    wh_reset();
    pthread_t th[4];
    for (int t = 0; t < 4; ++t)
        pthread_create(&th[t], NULL, ord_client, (void *)(intptr_t)t);
    for (int t = 0; t < 4; ++t)
        pthread_join(th[t], NULL);
    cr_assert(wh_drain(30000));
    cr_assert_eq(wh_count("messages WHERE wamid LIKE 'wamid.ORD.%%'"), ORD_CONTACTS * ORD_EACH);
    char out[64];
    wh_q(out, sizeof(out),
         "SELECT count(*) FROM (SELECT m.body, lag(m.body) OVER (PARTITION BY m.conversation_id ORDER BY m.created_at,"
         " m.id) AS prev FROM messages m WHERE m.company_id = %s) x WHERE prev >= body",
         wh_company);
    cr_assert_str_eq(out, "0", "messages of a contact stored out of order");
}

/* The plan's check 3.1: ten webhooks in parallel, each {"queued":true}, each applied once. */
static void *par_one(void *arg)
{
    int i = (int)(intptr_t)arg;
    char b[1024], wamid[32], contact[32];
    snprintf(contact, sizeof(contact), "4430000%05d", i % 3);
    snprintf(wamid, sizeof(wamid), "wamid.PAR.%d", i);
    int n = wh_text(b, sizeof(b), contact, wamid, "parallel");
    hs_response_t r = wh_post_to(wh_srv.port, wh_slug, b, (size_t)n, WH_SECRET);
    intptr_t ok = r.status == 200 && strcmp(r.body, "{\"queued\":true}") == 0;
    hs_response_free(&r);
    return (void *)ok;
}

Test(webhooks, ten_in_parallel)
{
    wh_reset();
    pthread_t th[10];
    for (int i = 0; i < 10; ++i)
        pthread_create(&th[i], NULL, par_one, (void *)(intptr_t)i);
    for (int i = 0; i < 10; ++i) {
        void *ok;
        pthread_join(th[i], &ok);
        cr_assert(ok != NULL, "webhook %d was not queued", i);
    }
    cr_assert(wh_drain(10000));
    cr_assert_eq(wh_count("messages WHERE wamid LIKE 'wamid.PAR.%%'"), 10);
    cr_assert_eq(wh_count("conversations WHERE true"), 3);
    cr_assert_eq(wh_count("jobs WHERE status = 'completed'"), 10);
}

/* The median time from insert to completion of the company's completed jobs, by the database's clock. */
static long wh_median_wait_ms(void)
{
    char out[64];
    wh_q(out, sizeof(out),
         "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at))"
         " * 1000) FROM jobs WHERE company_id = %s AND status = 'completed'",
         wh_company);
    return atol(out);
}

/*
 * An idle worker is woken by the notification the pusher sends after its commit, not
 * by its once-a-second poll: the time from a job's insert to its completion, as the
 * database's own clock records them, one webhook at a time on an idle queue. Were only
 * the poll left, each delay would be spread evenly over a second, and a median under
 * 150 ms of 15 would happen about once in ten thousand runs.
 */
Test(webhooks, an_idle_worker_starts_at_once)
{
    wh_reset();
    enum { N = 15 };
    for (int i = 0; i < N; ++i) {
        char b[1024], wamid[32];
        snprintf(wamid, sizeof(wamid), "wamid.WAKE.%d", i);
        int n = wh_text(b, sizeof(b), "443100000001", wamid, "wake");
        wh_post(b, (size_t)n);
        cr_assert(wh_drain(10000), "webhook %d was not applied", i);
    }
    cr_assert_eq(wh_count("jobs WHERE status = 'completed'"), N);
    long median = wh_median_wait_ms();
    cr_assert(median < 150, "median %ld ms from insert to completion", median);
}

/* Posts a one-message text payload to the server on port; it must be queued. */
static void wh_post_text_to(int port, const char *contact, const char *wamid, const char *text)
{
    char b[1024];
    int n = wh_text(b, sizeof(b), contact, wamid, text);
    hs_response_t r = wh_post_to(port, wh_slug, b, (size_t)n, WH_SECRET);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    hs_response_free(&r);
}

/* A second server that acknowledges webhooks and works no job: the suite's server applies them. */
static void wh_front_start(hs_server_t *front)
{
    static const char *const env[] = {"QUEUE_CONCURRENCY=0", "SEND_CONCURRENCY=0", "THREADS=1", NULL};
    hs_server_start(front, env);
}

/*
 * The same across processes: a server without workers acknowledges, the suite's
 * server applies, woken by the NOTIFY the first one sends. Webhooks go one at a time
 * and in pairs, the second posted as soon as the first is acknowledged, hence inside
 * the pusher's gap between two notifications: the second must be announced at the end
 * of the gap, not left to the workers' once-a-second poll. With the poll only, the
 * median of 20 delays spread over a second would be under 150 ms about once in a
 * hundred thousand runs.
 */
Test(webhooks, an_idle_worker_of_another_process_starts_at_once)
{
    wh_reset();
    hs_server_t front;
    wh_front_start(&front);
    enum { N = 20 };
    for (int i = 0; i < N; ++i) {
        char wamid[32];
        snprintf(wamid, sizeof(wamid), "wamid.XWAKE.%d", i);
        wh_post_text_to(front.port, "443100000003", wamid, "wake");
        if (i % 3 == 1) /* in threes: one alone, then a pair */
            continue;
        cr_assert(wh_drain(10000), "webhook %d was not applied", i);
    }
    cr_assert(wh_drain(10000));
    hs_server_stop(&front);
    cr_assert_eq(wh_count("jobs WHERE status = 'completed'"), N);
    cr_assert_eq(wh_count("messages WHERE wamid LIKE 'wamid.XWAKE.%%'"), N);
    long median = wh_median_wait_ms();
    cr_assert(median < 150, "median %ld ms from insert to completion", median);
}

/* A connection listening to the queues' notifications, as another process's would. */
static PGconn *wh_listen(void)
{
    PGconn *c = PQconnectdb(getenv("DATABASE_URL"));
    cr_assert(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, "LISTEN " QUEUE_WAKE_CHANNEL);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);
    return c;
}

/* Notifications naming the webhooks queue that arrive within ms, counting at most max. */
static int wh_notes(PGconn *c, int ms, int max)
{
    int n = 0;
    for (double end = hs_now_ms() + ms; n < max;) {
        PGnotify *note;
        while (n < max && (note = PQnotifies(c)) != NULL) {
            n += strcmp(note->extra, META_QUEUE) == 0;
            PQfreemem(note);
        }
        int left = (int)(end - hs_now_ms());
        if (n >= max || left <= 0)
            break;
        struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
        if (poll(&pfd, 1, left) > 0)
            cr_assert(PQconsumeInput(c) == 1, "%s", PQerrorMessage(c));
    }
    return n;
}

static int wh_front_port;

static void *wh_burst(void *arg)
{
    intptr_t ok = 1;
    for (int i = 0; i < 10; ++i) {
        char b[1024], wamid[32];
        snprintf(wamid, sizeof(wamid), "wamid.BURST.%d.%d", (int)(intptr_t)arg, i);
        int n = wh_text(b, sizeof(b), "443100000004", wamid, "burst");
        hs_response_t r = wh_post_to(wh_front_port, wh_slug, b, (size_t)n, WH_SECRET);
        ok &= r.status == 200;
        hs_response_free(&r);
    }
    return (void *)ok;
}

/*
 * Other processes learn of committed webhooks by NOTIFY, one per pusher per 10 ms at
 * most (queue/push.h): a burst is announced by far fewer notifications than it has
 * webhooks, and a commit inside the gap after a notification is announced by the next
 * one, at the end of the gap, never left unannounced. The pair: B is posted once A's
 * notification has arrived, so B commits inside A's gap (or after it, on a very slow
 * machine: then at once); either way B must be announced.
 */
Test(webhooks, notifications_are_coalesced_and_none_is_missed)
{
    wh_reset();
    hs_server_t front;
    wh_front_start(&front);
    wh_front_port = front.port;
    PGconn *c = wh_listen();

    for (int i = 0; i < 3; ++i) {
        char wamid[32];
        snprintf(wamid, sizeof(wamid), "wamid.PAIR.%d.a", i);
        wh_post_text_to(front.port, "443100000005", wamid, "a");
        cr_assert_eq(wh_notes(c, 2000, 1), 1, "pair %d: A was not announced", i);
        snprintf(wamid, sizeof(wamid), "wamid.PAIR.%d.b", i);
        wh_post_text_to(front.port, "443100000005", wamid, "b");
        cr_assert_eq(wh_notes(c, 2000, 1), 1, "pair %d: B was not announced", i);
        hs_sleep_ms(50); /* past the gap: the next A is announced at once */
    }

    enum { T = 4 };
    pthread_t th[T];
    for (int i = 0; i < T; ++i)
        pthread_create(&th[i], NULL, wh_burst, (void *)(intptr_t)i);
    for (int i = 0; i < T; ++i) {
        void *ok;
        pthread_join(th[i], &ok);
        cr_assert(ok != NULL, "burst %d: a webhook was not queued", i);
    }
    int notes = wh_notes(c, 1000, 1000);
    PQfinish(c);
    hs_server_stop(&front);
    fprintf(stderr, "burst: %d notifications for %d webhooks\n", notes, T * 10);
    cr_assert(notes >= 1 && notes <= T * 10 / 2, "%d notifications for %d webhooks", notes, T * 10);
    cr_assert(wh_drain(10000));
    cr_assert_eq(wh_count("messages WHERE wamid LIKE 'wamid.BURST.%%' OR wamid LIKE 'wamid.PAIR.%%'"), T * 10 + 6);
}

/* Calls and total milliseconds of the workers' claim so far, from pg_stat_statements. */
static void wh_claim_stats(long *calls, double *ms)
{
    char out[128];
    cr_assert_eq(hs_sql(out, sizeof(out),
                        "SELECT coalesce(sum(calls), 0) || ' ' || coalesce(sum(total_exec_time), 0)"
                        " FROM pg_stat_statements WHERE query LIKE 'UPDATE jobs j SET status = %%'"
                        " AND query LIKE '%%FOR UPDATE OF c SKIP LOCKED%%'"),
                 0, "%s", out);
    cr_assert_eq(sscanf(out, "%ld %lf", calls, ms), 2, "%s", out);
}

/*
 * A claim walks its queue's index however many jobs wait in the table. Statements are
 * planned without their parameters (generic plans); with the queue as a parameter the
 * claim's plan guessed a share of the waiting jobs of every queue and scanned the
 * whole table at each call (71 ms on average in the bench), instead of reading a few
 * index entries. The jobs here wait in a queue nobody works.
 */
Test(webhooks, claims_stay_on_the_index_beside_a_large_table)
{
    wh_reset();
    char out[256];
    cr_assert_eq(hs_sql(out, sizeof(out),
                        "INSERT INTO jobs (company_id, queue, key, payload)"
                        " SELECT %s, 'it_elsewhere', 'k' || g, '\\x7b7d'"
                        " FROM generate_series(1, 100000) g; ANALYZE jobs",
                        wh_company),
                 0, "%s", out);
    long calls0, calls1;
    double ms0, ms1;
    wh_claim_stats(&calls0, &ms0);
    for (int i = 0; i < 20; ++i) {
        char b[1024], wamid[32];
        snprintf(wamid, sizeof(wamid), "wamid.CLAIM.%d", i);
        int n = wh_text(b, sizeof(b), "443100000006", wamid, "claim");
        wh_post(b, (size_t)n);
        cr_assert(wh_wait_count("messages WHERE wamid LIKE 'wamid.CLAIM.%%'", i + 1, 10000),
                  "webhook %d was not applied", i);
    }
    wh_claim_stats(&calls1, &ms1);
    wh_reset();
    long calls = calls1 - calls0;
    fprintf(stderr, "claims: %ld, %.3f ms each\n", calls, (ms1 - ms0) / (double)(calls > 0 ? calls : 1));
    cr_assert(calls >= 20, "%ld claims", calls);
    cr_assert((ms1 - ms0) / (double)calls < 5, "%.2f ms a claim over %ld claims", (ms1 - ms0) / (double)calls, calls);
}

/*
 * The claims of a server's idle queues (outbound and campaigns here), whose plans were
 * first made while the job table was empty, stay quick once another queue fills it.
 * A plan cached then read the whole table for every job in it, and again for each
 * job's key: 75,000 waiting webhooks made an idle queue's claim run until the statement
 * timeout. The table is filled without ANALYZE, which would make PostgreSQL drop its
 * cached plans. The server's two workers look at their queues once a second; until
 * each has started a statement two seconds after the fill, none of their statements
 * may run longer than two seconds (such a plan runs to the 5 s statement timeout; a
 * good one takes a millisecond, and two seconds leave room for a busy machine).
 */
Test(webhooks, idle_queues_claim_quickly_after_the_table_fills)
{
    wh_reset();
    char out[512];
    cr_assert_eq(hs_sql(out, sizeof(out), "TRUNCATE jobs; ANALYZE jobs"), 0, "%s", out);
    cr_assert_eq(hs_sql(out, sizeof(out), "SELECT now()"), 0, "%s", out);
    char started[512];
    snprintf(started, sizeof(started), "%s", out);
    hs_server_t front;
    static const char *const env[] = {"QUEUE_CONCURRENCY=0", "SEND_CONCURRENCY=1", "THREADS=1", NULL};
    hs_server_start(&front, env);

#define WH_FRONT_WORKERS "pg_stat_activity WHERE application_name = 'conversa-worker' AND backend_start > '%s'"
    /* the server's two workers (one slot each) have claimed on the empty table */
    int ready = 0;
    for (double t0 = hs_now_ms(); hs_now_ms() - t0 < 10000 && !ready; hs_sleep_ms(20)) {
        cr_assert_eq(hs_sql(out, sizeof(out), "SELECT count(*) FROM " WH_FRONT_WORKERS " AND query <> ''", started), 0,
                     "%s", out);
        ready = atoi(out) >= 2;
    }
    cr_assert(ready, "the server's workers ran nothing (%s)", out);

    cr_assert_eq(hs_sql(out, sizeof(out),
                        "INSERT INTO jobs (company_id, queue, key, payload)"
                        " SELECT %s, 'it_elsewhere', 'k' || (g %% 5000), '\\x7b7d'"
                        " FROM generate_series(1, 75000) g",
                        wh_company),
                 0, "%s", out);
    cr_assert_eq(hs_sql(out, sizeof(out), "SELECT now()"), 0, "%s", out);
    char filled[512];
    snprintf(filled, sizeof(filled), "%s", out);

    /* until each worker has started a statement 2 s after the fill: none runs 2 s */
    long slow = 0, later = 0, longest = 0;
    for (double t0 = hs_now_ms(); hs_now_ms() - t0 < 10000 && slow == 0 && later < 2; hs_sleep_ms(50)) {
        cr_assert_eq(hs_sql(out, sizeof(out),
                            "SELECT count(*) FILTER (WHERE state = 'active' AND now() - query_start > interval '2 s')"
                            " || ' ' || count(*) FILTER (WHERE query_start > timestamptz '%s' + interval '2 s')"
                            " || ' ' || coalesce(max(round(extract(epoch FROM now() - query_start) * 1000))"
                            " FILTER (WHERE state = 'active'), 0) FROM " WH_FRONT_WORKERS,
                            filled, started),
                     0, "%s", out);
        long l = 0;
        cr_assert_eq(sscanf(out, "%ld %ld %ld", &slow, &later, &l), 3, "%s", out);
        if (l > longest)
            longest = l;
    }
#undef WH_FRONT_WORKERS
    hs_server_stop(&front);
    wh_reset();
    cr_assert_eq(hs_sql(out, sizeof(out), "ANALYZE jobs"), 0, "%s", out);
    fprintf(stderr, "idle claims beside 75,000 jobs: the longest statement seen running %ld ms\n", longest);
    cr_assert_eq(slow, 0, "a worker's statement ran %ld ms after the table filled", longest);
    cr_assert_eq(later, 2, "the workers ran nothing 2 s after the table filled");
}

/*
 * A contact's messages run one at a time, and each one held back behind the one
 * before is due as soon as that one completes: the worker looks again then instead of
 * waiting for its once-a-second poll (which would spread five messages over seconds).
 */
Test(webhooks, a_contacts_next_message_runs_when_the_previous_completes)
{
    wh_reset();
    for (int i = 0; i < 5; ++i) {
        char b[1024], wamid[32], text[24];
        snprintf(wamid, sizeof(wamid), "wamid.NEXT.%d", i);
        snprintf(text, sizeof(text), "next %d", i);
        int n = wh_text(b, sizeof(b), "443100000002", wamid, text);
        wh_post(b, (size_t)n);
    }
    cr_assert(wh_drain(10000));
    cr_assert_eq(wh_count("messages WHERE wamid LIKE 'wamid.NEXT.%%'"), 5);
    char out[64];
    wh_q(out, sizeof(out),
         "SELECT round(extract(epoch FROM max(completed_at) - min(created_at)) * 1000) FROM jobs"
         " WHERE company_id = %s AND status = 'completed'",
         wh_company);
    cr_assert(atol(out) < 900, "five messages of one contact took %s ms from the first insert to the last completion",
              out);
}

/* A message applied by the queue shows in the next read, cached or not. */
Test(webhooks, applied_jobs_invalidate_the_cache)
{
    wh_reset();
    char b[1024];
    wh_post(b, (size_t)wh_text(b, sizeof(b), WH_CONTACT, "wamid.C1", "first"));
    cr_assert(wh_drain(10000));
    char conv[32], path[128];
    wh_q(conv, sizeof(conv), "SELECT id FROM conversations WHERE company_id = %s", wh_company);
    snprintf(path, sizeof(path), "/api/v1/conversations/%s/messages", conv);
    for (int i = 0; i < 2; ++i) {
        hs_response_t r = hs_call(wh_srv.port, "GET", path, wh_admin, NULL);
        cr_assert_eq(r.status, 200);
        hs_response_free(&r);
    }
    hs_response_t r = hs_call(wh_srv.port, "GET", "/api/v1/conversations/status", wh_admin, NULL);
    hs_response_free(&r);
    r = hs_call(wh_srv.port, "GET", "/api/v1/conversations/status", wh_admin, NULL);
    char *xc = hs_header(&r, "x-cache");
    cr_assert_str_eq(xc, "HIT");
    free(xc);
    hs_response_free(&r);

    wh_post(b, (size_t)wh_text(b, sizeof(b), WH_CONTACT, "wamid.C2", "second"));
    cr_assert(wh_drain(10000));
    r = hs_call(wh_srv.port, "GET", path, wh_admin, NULL);
    cr_assert(strstr(r.body, "second") != NULL, "stale messages page: %s", r.body);
    hs_response_free(&r);
    /* a new contact opens a conversation: the counts change */
    wh_post(b, (size_t)wh_text(b, sizeof(b), "4470000000001", "wamid.C3", "new contact"));
    cr_assert(wh_drain(10000));
    json_t *j = hs_call_json(wh_srv.port, "GET", "/api/v1/conversations/status", wh_admin, NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "data"), "open")), 2, "%s", json_dumps(j, 0));
    json_decref(j);
}

/* ---- crashes ---- */

typedef struct flood {
    int port;
    int id;
    volatile int *stop;
    int acked;
    char (*acked_ids)[40];
} flood_t;

#define FLOOD_MAX 20000

static void *flood_client(void *arg)
{
    flood_t *f = arg;
    char b[1024], wamid[40], contact[32];
    for (int i = 0; !*f->stop && i < FLOOD_MAX; ++i) {
        snprintf(contact, sizeof(contact), "4480000%05d", (f->id * 7 + i) % 50);
        snprintf(wamid, sizeof(wamid), "wamid.FL.%d.%d", f->id, i);
        int n = wh_text(b, sizeof(b), contact, wamid, "flood");
        hs_response_t r = wh_post_to(f->port, wh_slug, b, (size_t)n, WH_SECRET);
        if (r.status == 200 && strcmp(r.body, "{\"queued\":true}") == 0)
            snprintf(f->acked_ids[f->acked++], 40, "%s", wamid);
        else if (r.status == 0)
            hs_sleep_ms(5); /* nobody listening (killed): Meta would retry later */
        hs_response_free(&r);
    }
    return NULL;
}

/* Runs `clients` flooding port until `disrupt` returns; then checks every acknowledged webhook is applied once. */
static void flood_and_check(hs_server_t *srv, void (*disrupt)(hs_server_t *srv))
{
    enum { CLIENTS = 6 };
    volatile int stop = 0;
    flood_t f[CLIENTS];
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; ++i) {
        f[i] = (flood_t){.port = srv->port, .id = i, .stop = &stop, .acked_ids = calloc(FLOOD_MAX, 40)};
        pthread_create(&th[i], NULL, flood_client, &f[i]);
    }
    hs_sleep_ms(1500);
    disrupt(srv);
    hs_sleep_ms(1000);
    stop = 1;
    int acked = 0;
    for (int i = 0; i < CLIENTS; ++i) {
        pthread_join(th[i], NULL);
        acked += f[i].acked;
    }
    cr_assert(acked > 100, "only %d webhooks acknowledged", acked);
    cr_assert(wh_drain(30000), "the queue did not drain");
    cr_assert_eq(wh_count("jobs WHERE status = 'failed'"), 0);
    /* every acknowledged webhook is a message, exactly once */
    char *list = malloc((size_t)acked * 44 + 16), *o = list;
    for (int i = 0; i < CLIENTS; ++i)
        for (int k = 0; k < f[i].acked; ++k)
            o += sprintf(o, "%s%s", o == list ? "" : "\n", f[i].acked_ids[k]);
    char path[64];
    snprintf(path, sizeof(path), "/tmp/it-wh-acked-%d.txt", (int)getpid());
    FILE *fp = fopen(path, "w");
    fputs(list, fp);
    fclose(fp);
    char out[256];
    char sql[1024];
    snprintf(
        sql, sizeof(sql),
        "CREATE TEMP TABLE acked (w text); \\copy acked FROM '%s'\n"
        "SELECT (SELECT count(*) FROM acked) || '|' || (SELECT count(*) FROM acked a WHERE EXISTS (SELECT 1 FROM"
        " messages m WHERE m.company_id = %s AND m.wamid = a.w)) || '|' || (SELECT count(*) - count(DISTINCT wamid)"
        " FROM messages WHERE company_id = %s)",
        path, wh_company, wh_company);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "printf '%%s' \"%s\" | psql -X -qtA -v ON_ERROR_STOP=1 \"$DATABASE_URL\"", sql);
    cr_assert_eq(hs_sh(out, sizeof(out), "%s", cmd), 0, "%s", out);
    char want[64];
    snprintf(want, sizeof(want), "%d|%d|0", acked, acked);
    cr_assert_str_eq(out, want, "acknowledged|applied|duplicates");
    fprintf(stderr, "flood: %d webhooks acknowledged, %d applied, 0 twice\n", acked, acked);
    unlink(path);
    free(list);
    for (int i = 0; i < CLIENTS; ++i)
        free(f[i].acked_ids);
}

static void kill9_and_restart(hs_server_t *srv)
{
    kill(srv->pid, SIGKILL);
    waitpid(srv->pid, NULL, 0);
    srv->pid = 0;
    hs_sleep_ms(300);
    static const char *const env[] = {"QUEUE_CONCURRENCY=8", "QUEUE_LEASE_MS=6000", "SEND_CONCURRENCY=0", NULL};
    int port = srv->port;
    hs_server_start(srv, env); /* on a new port: the clients see refused connections from then on */
    (void)port;
}

/* How a server to be disrupted mid-flood runs, and runs again after. */
static const char *const victim_env[] = {"QUEUE_CONCURRENCY=2", "QUEUE_LEASE_MS=6000", "SEND_CONCURRENCY=0", NULL};

/* A server of its own, flooded and disrupted by flood_and_check(), then stopped. */
static void flood_a_victim(void (*disrupt)(hs_server_t *srv))
{
    wh_reset();
    hs_server_t victim;
    hs_server_start(&victim, victim_env);
    flood_and_check(&victim, disrupt);
    hs_server_stop(&victim);
}

Test(webhooks, kill9_mid_flood_loses_nothing_and_applies_once)
{
    flood_a_victim(kill9_and_restart);
}

/*
 * A graceful stop in the middle of a flood: the loop threads stop with inserts in
 * flight and webhooks waiting for the next one; the process must still exit by
 * itself, promptly and with status 0, and what it acknowledged must be there.
 */
static void sigterm_and_restart(hs_server_t *srv)
{
    double t0 = hs_now_ms();
    int st = hs_server_stop(srv);
    cr_assert_eq(st, 0, "conversa serve exited with %d after SIGTERM mid-flood", st);
    cr_assert(hs_now_ms() - t0 < 10000, "conversa serve took %.0f ms to stop", hs_now_ms() - t0);
    hs_server_start(srv, victim_env);
}

Test(webhooks, sigterm_mid_flood_stops_cleanly_and_loses_nothing)
{
    flood_a_victim(sigterm_and_restart);
}

static void pg_restart(hs_server_t *srv)
{
    (void)srv;
    cr_assert_eq(hs_stack("pg-stop"), 0);
    hs_sleep_ms(500);
    cr_assert_eq(hs_stack("pg-start"), 0);
}

Test(webhooks, postgres_restart_mid_flood_loses_nothing)
{
    wh_reset();
    flood_and_check(&wh_srv, pg_restart);
}
