/*
 * conversa fake-meta - a stand-in for the WhatsApp Cloud API, for tests, the bench and
 * the demo. It speaks Meta's documented shapes:
 *
 *   POST /{version}/{phone_number_id}/messages   send: text or template; answers
 *        {"messaging_product","contacts":[{"input","wa_id"}],"messages":[{"id"}]} or
 *        {"error":{"message","type","code","error_data","fbtrace_id"}}
 *
 * and, like Meta, sends the matching status webhooks (sent, delivered, read; failed
 * with errors[] for unreachable numbers) back to WEBHOOK_URL, batched, signed with
 * X-Hub-Signature-256 (HMAC-SHA256 of the body with the app secret), echoing
 * biz_opaque_callback_data. Text messages need the customer's 24 h window open (an
 * inbound message, see /_fake/inbound) unless --window open; outside it they get
 * 131047, as from Meta.
 *
 * Control (not Meta's; for whoever drives a test):
 *   GET  /_fake/stats[?window_ms=1000][&per_second=1]  requests, accepted, errors per
 *        code, duplicates (biz_opaque_callback_data accepted twice), distinct
 *        recipients, the most requests seen in any window_ms, the requests in each
 *        second, webhooks sent, failed (and retried, as Meta retries) and pending
 *   POST /_fake/config    {"latency_ms", "errors": [{"code", "share"}], "window":
 *        "open"|"check", "statuses": [...], "status_delay_ms", "webhook_url",
 *        "app_secret", "unreachable_prefix", "token"}: any subset
 *   POST /_fake/reset     forgets requests, windows and pending statuses
 *   POST /_fake/inbound   {"phone_number_id", "from", "text", "name"}: a customer
 *        writes in: opens the window and sends the messages webhook
 *
 * One event loop thread; state is that thread's alone.
 */
#include "api/input.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timer.h"
#include "core/util.h"
#include "core/waiter.h"
#include "http/client.h"
#include "http/reply.h"
#include "http/server.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_ERRORS_MAX    8
#define FAKE_WEBHOOK_BATCH 200
/*
 * Pending statuses wait in one list per kind (sent or failed, delivered, read), each in
 * due order: a kind's delay is the same for every send, so a new status goes at its
 * list's tail. One list for all had each "sent" walk back past every delivered and
 * read status still pending, thousands at 1,000 sends/s: most of the stand-in's CPU.
 */
#define FAKE_STATUS_KINDS 3
#define FAKE_FLUSH_MS     20
#define FAKE_RETRY_MS     500
#define FAKE_RETRIES      240

/* ---- a set of strings with counts ---- */

typedef struct fake_map {
    char **keys;
    unsigned *counts;
    size_t cap, n;
} fake_map_t;

static void fake_map_clear(fake_map_t *m)
{
    for (size_t i = 0; i < m->cap; ++i)
        free(m->keys[i]);
    free(m->keys);
    free(m->counts);
    *m = (fake_map_t){0};
}

/* Adds one to key's count; returns the new count. */
static unsigned fake_map_add(fake_map_t *m, const char *key, unsigned by)
{
    if ((m->n + 1) * 2 > m->cap) {
        fake_map_t g = {util_calloc(m->cap ? m->cap * 2 : 64, sizeof(char *)),
                        util_calloc(m->cap ? m->cap * 2 : 64, sizeof(unsigned)), m->cap ? m->cap * 2 : 64, 0};
        for (size_t i = 0; i < m->cap; ++i)
            if (m->keys[i] != NULL) {
                size_t h = util_hash(m->keys[i], strlen(m->keys[i])) & (g.cap - 1);
                while (g.keys[h] != NULL)
                    h = (h + 1) & (g.cap - 1);
                g.keys[h] = m->keys[i];
                g.counts[h] = m->counts[i];
                g.n++;
            }
        free(m->keys);
        free(m->counts);
        *m = g;
    }
    size_t h = util_hash(key, strlen(key)) & (m->cap - 1);
    while (m->keys[h] != NULL && strcmp(m->keys[h], key) != 0)
        h = (h + 1) & (m->cap - 1);
    if (m->keys[h] == NULL) {
        m->keys[h] = util_strdup(key);
        m->n++;
    }
    return m->counts[h] += by;
}

/* key's count; 0 when absent. */
static unsigned fake_map_get(const fake_map_t *m, const char *key)
{
    if (m->cap == 0)
        return 0;
    size_t h = util_hash(key, strlen(key)) & (m->cap - 1);
    while (m->keys[h] != NULL && strcmp(m->keys[h], key) != 0)
        h = (h + 1) & (m->cap - 1);
    return m->keys[h] != NULL ? m->counts[h] : 0;
}

/* ---- state ---- */

typedef struct fake_status {
    h2o_linklist_t link;
    uint64_t due_ms;
    char *phone_number_id, *to, *wamid, *callback;
    const char *status;
    int code; /* for failed */
} fake_status_t;

typedef struct fake_delayed {
    waiter_t waiter;
    h2o_linklist_t link;
    uint64_t due_ms;
    http_request_t *r;
    int status;
    char *body;
} fake_delayed_t;

static struct {
    /* configuration */
    unsigned latency_ms;
    struct {
        int code;
        double share;
    } errors[FAKE_ERRORS_MAX];
    size_t nerrors;
    int window_open;
    int statuses; /* bit 0 sent, 1 delivered, 2 read */
    unsigned status_delay_ms;
    char *webhook_url, *app_secret, *unreachable_prefix, *token;
    /* what happened */
    uint64_t *times_ms;
    size_t ntimes, times_cap;
    uint64_t accepted, webhooks_sent, webhooks_failed, next_wamid;
    fake_map_t codes, callbacks, recipients, windows;
    /* the loop's */
    h2o_loop_t *loop;
    http_client_t *http;
    h2o_linklist_t statuses_due[FAKE_STATUS_KINDS], delayed, retries;
    size_t npending;
    loop_timer_t flush, reply, retry;
} fake = {.statuses = 7, .status_delay_ms = 1000}; /* Meta's sent comes about a second after the send */

static uint64_t fake_now_ms(void)
{
    return util_now_ns() / 1000000;
}

static void fake_set(char **field, const char *v)
{
    free(*field);
    *field = v != NULL && *v != '\0' ? util_strdup(v) : NULL;
}

/* ---- Meta's errors ---- */

static const struct {
    int code, http;
    const char *message, *details;
} fake_codes[] = {
    {4, 400, "(#4) Application request limit reached", "Too many calls."},
    {80007, 400, "(#80007) Rate limit issues", "The WhatsApp Business Account has reached its rate limit."},
    {130429, 400, "(#130429) Rate limit hit", "Cloud API message throughput has been reached."},
    {131056, 400, "(#131056) (Business Account, Consumer Account) pair rate limit hit",
     "Message failed to send because there were too many messages sent from this phone number to the same phone "
     "number in a short period of time."},
    {131057, 503, "(#131057) Account in maintenance mode", "Business Account is in maintenance mode."},
    {131047, 400, "(#131047) Re-engagement message",
     "Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
    {131026, 400, "(#131026) Message undeliverable", "Unable to deliver message."},
    {100, 400, "(#100) Invalid parameter", "Parameter value is not valid."},
    {190, 401, "Invalid OAuth access token - Cannot parse access token", "Invalid OAuth access token."},
    {131000, 500, "(#131000) Something went wrong", "Message failed to send due to an unknown error."},
    {2, 503, "(#2) Service temporarily unavailable", "Service temporarily unavailable."},
};

static char *fake_error_body(int code, int *http)
{
    size_t k = 0;
    while (k < UTIL_ARRAY_SIZE(fake_codes) && fake_codes[k].code != code)
        ++k;
    const char *message = k < UTIL_ARRAY_SIZE(fake_codes) ? fake_codes[k].message : "(#1) An unknown error occurred";
    const char *details = k < UTIL_ARRAY_SIZE(fake_codes) ? fake_codes[k].details : "Unknown error.";
    *http = k < UTIL_ARRAY_SIZE(fake_codes) ? fake_codes[k].http : 500;
    json_t *e = json_pack("{s:{s:s, s:s, s:i, s:{s:s, s:s}, s:s}}", "error", "message", message, "type",
                          "OAuthException", "code", code, "error_data", "messaging_product", "whatsapp", "details",
                          details, "fbtrace_id", "AfakeMetaTrace");
    char *out = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    char key[16];
    snprintf(key, sizeof(key), "%d", code);
    fake_map_add(&fake.codes, key, 1);
    return out;
}

/* ---- webhooks back to conversa ---- */

static void fake_send_webhook(char *body, unsigned attempt);

/* A delivery that failed, sent again after FAKE_RETRY_MS (Meta retries for days). */
typedef struct fake_retry {
    h2o_linklist_t link;
    uint64_t due_ms;
    char *body;
    unsigned attempt;
} fake_retry_t;

typedef struct fake_delivery {
    char *body;
    unsigned attempt;
} fake_delivery_t;

static void fake_on_webhook(void *data, const http_client_response_t *res)
{
    fake_delivery_t *d = data;
    if (res->status == 200) {
        fake.webhooks_sent++;
        free(d->body);
    } else {
        fake.webhooks_failed++;
        log_warn("fake-meta", "webhook answered %ld%s%s (attempt %u)", res->status, res->error ? ": " : "",
                 res->error ? res->error : "", d->attempt);
        if (d->attempt < FAKE_RETRIES && fake.http != NULL && strcmp(res->error ? res->error : "", "shutting down")) {
            fake_retry_t *r = util_calloc(1, sizeof(*r));
            r->due_ms = fake_now_ms() + FAKE_RETRY_MS;
            r->body = d->body;
            r->attempt = d->attempt + 1;
            h2o_linklist_insert(&fake.retries, &r->link);
            if (!loop_timer_armed(&fake.retry))
                loop_timer_start(&fake.retry, FAKE_RETRY_MS);
        } else {
            free(d->body);
        }
    }
    free(d);
}

static void fake_on_retry(loop_timer_t *t)
{
    (void)t;
    uint64_t now = fake_now_ms();
    while (!h2o_linklist_is_empty(&fake.retries)) {
        fake_retry_t *r = H2O_STRUCT_FROM_MEMBER(fake_retry_t, link, fake.retries.next);
        if (r->due_ms > now) {
            loop_timer_start(&fake.retry, r->due_ms - now);
            return;
        }
        h2o_linklist_unlink(&r->link);
        fake_send_webhook(r->body, r->attempt);
        free(r);
    }
}

/* Signs and POSTs body (owned) to the webhook URL. */
static void fake_send_webhook(char *body, unsigned attempt)
{
    if (fake.webhook_url == NULL) {
        free(body);
        return;
    }
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    const char *secret = fake.app_secret != NULL ? fake.app_secret : "";
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, strlen(body));
    crypto_auth_hmacsha256_final(&st, mac);
    char sig[32 + 2 * sizeof(mac) + 1] = "X-Hub-Signature-256: sha256=";
    size_t at = strlen(sig);
    for (size_t i = 0; i < sizeof(mac); ++i)
        snprintf(sig + at + 2 * i, 3, "%02x", mac[i]);
    const char *headers[] = {sig, "Content-Type: application/json"};
    fake_delivery_t *d = util_malloc(sizeof(*d));
    d->body = body;
    d->attempt = attempt;
    http_client_post(fake.http, fake.webhook_url, headers, 2, body, strlen(body), fake_on_webhook, d);
}

static void fake_post_webhook(json_t *payload)
{
    fake_send_webhook(json_dumps(payload, JSON_COMPACT), 1);
}

/* The envelope of a webhook for phone_number_id, with value's member `what` set to list. */
static json_t *fake_envelope(const char *phone_number_id, const char *what, json_t *list)
{
    json_t *value = json_pack("{s:s, s:{s:s, s:s}}", "messaging_product", "whatsapp", "metadata",
                              "display_phone_number", "15550000000", "phone_number_id", phone_number_id);
    json_object_set_new(value, what, list);
    return json_pack("{s:s, s:[{s:s, s:[{s:s, s:o}]}]}", "object", "whatsapp_business_account", "entry", "id",
                     "102290129340398", "changes", "field", "messages", "value", value);
}

static void fake_status_free(fake_status_t *s)
{
    free(s->phone_number_id);
    free(s->to);
    free(s->wamid);
    free(s->callback);
    free(s);
}

/* The pending status due first, or NULL when none is pending. */
static fake_status_t *fake_earliest(void)
{
    fake_status_t *best = NULL;
    for (size_t k = 0; k < FAKE_STATUS_KINDS; ++k) {
        if (h2o_linklist_is_empty(&fake.statuses_due[k]))
            continue;
        fake_status_t *s = H2O_STRUCT_FROM_MEMBER(fake_status_t, link, fake.statuses_due[k].next);
        if (best == NULL || s->due_ms < best->due_ms)
            best = s;
    }
    return best;
}

/* A status as Meta words it in a webhook's statuses[]. */
static json_t *fake_status_json(const fake_status_t *s)
{
    char ts[24];
    snprintf(ts, sizeof(ts), "%" PRIu64, util_wall_ns() / 1000000000);
    json_t *st =
        json_pack("{s:s, s:s, s:s, s:s}", "id", s->wamid, "status", s->status, "timestamp", ts, "recipient_id", s->to);
    if (s->callback != NULL)
        json_object_set_new(st, "biz_opaque_callback_data", json_string(s->callback));
    if (s->code != 0)
        json_object_set_new(st, "errors",
                            json_pack("[{s:i, s:s, s:s}]", "code", s->code, "title", "Message undeliverable.",
                                      "message", "Message undeliverable."));
    json_object_set_new(st, "conversation",
                        json_pack("{s:s, s:{s:s}}", "id", "fakeconversation", "origin", "type", "utility"));
    return st;
}

/* Sends every status that is due, in batches of one phone number. */
static void fake_on_flush(loop_timer_t *t)
{
    (void)t;
    uint64_t now = fake_now_ms();
    fake_status_t *first;
    while ((first = fake_earliest()) != NULL && first->due_ms <= now) {
        char *pnid = util_strdup(first->phone_number_id);
        json_t *list = json_array();
        for (size_t k = 0; k < FAKE_STATUS_KINDS; ++k) {
            h2o_linklist_t *node = fake.statuses_due[k].next;
            while (node != &fake.statuses_due[k] && json_array_size(list) < FAKE_WEBHOOK_BATCH) {
                fake_status_t *s = H2O_STRUCT_FROM_MEMBER(fake_status_t, link, node);
                node = node->next;
                if (s->due_ms > now)
                    break;
                if (strcmp(s->phone_number_id, pnid) != 0)
                    continue;
                json_array_append_new(list, fake_status_json(s));
                h2o_linklist_unlink(&s->link);
                fake.npending--;
                fake_status_free(s);
            }
        }
        if (fake.webhook_url != NULL) {
            json_t *payload = fake_envelope(pnid, "statuses", list);
            fake_post_webhook(payload);
            json_decref(payload);
        } else {
            json_decref(list);
        }
        free(pnid);
    }
    if (fake.npending > 0)
        loop_timer_start(&fake.flush, FAKE_FLUSH_MS);
}

/* Queues a status of kind (0 sent or failed, 1 delivered, 2 read), due after delay_ms. */
static void fake_queue_status(const char *pnid, const char *to, const char *wamid, const char *callback, size_t kind,
                              const char *status, int code, uint64_t delay_ms)
{
    fake_status_t *s = util_calloc(1, sizeof(*s));
    s->due_ms = fake_now_ms() + delay_ms;
    s->phone_number_id = util_strdup(pnid);
    s->to = util_strdup(to);
    s->wamid = util_strdup(wamid);
    s->callback = callback != NULL ? util_strdup(callback) : NULL;
    s->status = status;
    s->code = code;
    /* kept in due order: walk back from the tail (only after status_delay_ms was changed) */
    h2o_linklist_t *list = &fake.statuses_due[kind], *at = list->prev;
    while (at != list && H2O_STRUCT_FROM_MEMBER(fake_status_t, link, at)->due_ms > s->due_ms)
        at = at->prev;
    h2o_linklist_insert(at->next, &s->link);
    fake.npending++;
    if (!loop_timer_armed(&fake.flush))
        loop_timer_start(&fake.flush, FAKE_FLUSH_MS);
}

/* ---- replies after latency_ms ---- */

static void fake_delayed_free(fake_delayed_t *d)
{
    h2o_linklist_unlink(&d->link);
    free(d->body);
    free(d);
}

static void fake_on_delayed_cancel(waiter_t *w)
{
    fake_delayed_free(H2O_STRUCT_FROM_MEMBER(fake_delayed_t, waiter, w));
}

static void fake_on_reply_timer(loop_timer_t *t)
{
    (void)t;
    uint64_t now = fake_now_ms();
    while (!h2o_linklist_is_empty(&fake.delayed)) {
        fake_delayed_t *d = H2O_STRUCT_FROM_MEMBER(fake_delayed_t, link, fake.delayed.next);
        if (d->due_ms > now) {
            loop_timer_start(&fake.reply, d->due_ms - now);
            return;
        }
        waiter_detach(&d->waiter);
        http_reply_copy(d->r, d->status, "application/json", d->body, strlen(d->body));
        fake_delayed_free(d);
    }
}

/* Replies body (owned) now or after the configured latency. */
static void fake_reply(http_request_t *r, int status, char *body)
{
    if (fake.latency_ms == 0) {
        http_reply_copy(r, status, "application/json", body, strlen(body));
        free(body);
        return;
    }
    fake_delayed_t *d = util_calloc(1, sizeof(*d));
    d->due_ms = fake_now_ms() + fake.latency_ms;
    d->r = r;
    d->status = status;
    d->body = body;
    d->waiter.cancel = fake_on_delayed_cancel;
    waiter_attach(&d->waiter, &r->waiters);
    h2o_linklist_insert(&fake.delayed, &d->link);
    if (!loop_timer_armed(&fake.reply))
        loop_timer_start(&fake.reply, fake.latency_ms);
}

/* ---- POST /{version}/{phone_number_id}/messages ---- */

static int fake_digits(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    return n >= min && n <= max && strspn(s, "0123456789") == n;
}

static void fake_error(http_request_t *r, int code)
{
    int http;
    char *body = fake_error_body(code, &http);
    fake_reply(r, http, body);
}

static void fake_messages(http_request_t *r)
{
    if (fake.ntimes == fake.times_cap) {
        fake.times_cap = fake.times_cap ? fake.times_cap * 2 : 4096;
        fake.times_ms = util_realloc(fake.times_ms, fake.times_cap * sizeof(uint64_t));
    }
    fake.times_ms[fake.ntimes++] = fake_now_ms();

    ssize_t hi = h2o_find_header(&r->req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    h2o_iovec_t auth = hi >= 0 ? r->req->headers.entries[hi].value : h2o_iovec_init(NULL, 0);
    if (auth.len <= 7 || strncmp(auth.base, "Bearer ", 7) != 0 ||
        (fake.token != NULL &&
         (auth.len - 7 != strlen(fake.token) || memcmp(auth.base + 7, fake.token, auth.len - 7)))) {
        fake_error(r, 190);
        return;
    }
    h2o_iovec_t pnid_v = http_params_get(&r->params, "phone_number_id");
    char pnid[65];
    if (pnid_v.len == 0 || pnid_v.len >= sizeof(pnid)) {
        fake_error(r, 100);
        return;
    }
    memcpy(pnid, pnid_v.base, pnid_v.len);
    pnid[pnid_v.len] = '\0';
    json_t *msg = r->req->entity.len ? json_loadb(r->req->entity.base, r->req->entity.len, 0, NULL) : NULL;
    const char *product = json_string_value(json_object_get(msg, "messaging_product"));
    const char *to = json_string_value(json_object_get(msg, "to"));
    const char *type = json_string_value(json_object_get(msg, "type"));
    const char *callback = json_string_value(json_object_get(msg, "biz_opaque_callback_data"));
    if (to != NULL && *to == '+')
        ++to;
    int ok = product != NULL && strcmp(product, "whatsapp") == 0 && to != NULL && fake_digits(to, 7, 15) &&
             fake_digits(pnid, 1, 64) && type != NULL;
    if (ok && strcmp(type, "text") == 0) {
        const char *text = json_string_value(json_object_get(json_object_get(msg, "text"), "body"));
        ok = text != NULL && *text != '\0' && strlen(text) <= 4096;
    } else if (ok && strcmp(type, "template") == 0) {
        json_t *t = json_object_get(msg, "template");
        ok = json_string_value(json_object_get(t, "name")) != NULL &&
             json_string_value(json_object_get(json_object_get(t, "language"), "code")) != NULL;
    } else {
        ok = 0;
    }
    if (!ok) {
        json_decref(msg);
        fake_error(r, 100);
        return;
    }
    /* injected errors, by share */
    double draw = randombytes_uniform(1000000) / 1e6, acc = 0;
    for (size_t i = 0; i < fake.nerrors; ++i) {
        acc += fake.errors[i].share;
        if (draw < acc) {
            json_decref(msg);
            fake_error(r, fake.errors[i].code);
            return;
        }
    }
    char window[96];
    snprintf(window, sizeof(window), "%s:%s", pnid, to);
    if (strcmp(type, "text") == 0 && !fake.window_open && fake_map_get(&fake.windows, window) == 0) {
        json_decref(msg);
        fake_error(r, 131047);
        return;
    }
    char wamid[96];
    snprintf(wamid, sizeof(wamid), "wamid.FAKE%016" PRIx64 "%08" PRIx32, ++fake.next_wamid, randombytes_random());
    fake.accepted++;
    fake_map_add(&fake.recipients, to, 1);
    if (callback != NULL)
        fake_map_add(&fake.callbacks, callback, 1);
    uint64_t d = fake.status_delay_ms;
    if (fake.unreachable_prefix != NULL && strncmp(to, fake.unreachable_prefix, strlen(fake.unreachable_prefix)) == 0) {
        fake_queue_status(pnid, to, wamid, callback, 0, "failed", 131026, d);
    } else {
        if (fake.statuses & 1)
            fake_queue_status(pnid, to, wamid, callback, 0, "sent", 0, d);
        if (fake.statuses & 2)
            fake_queue_status(pnid, to, wamid, callback, 1, "delivered", 0, 2 * d);
        if (fake.statuses & 4)
            fake_queue_status(pnid, to, wamid, callback, 2, "read", 0, 3 * d);
    }
    json_t *out = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s}]}", "messaging_product", "whatsapp", "contacts", "input",
                            to, "wa_id", to, "messages", "id", wamid);
    if (strcmp(type, "template") == 0)
        json_object_set_new(json_array_get(json_object_get(out, "messages"), 0), "message_status",
                            json_string("accepted"));
    json_decref(msg);
    char *body = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    fake_reply(r, 200, body);
}

/* ---- control ---- */

static void fake_stats(http_request_t *r)
{
    int64_t window, per_second;
    if (api_query_int(r, "window_ms", 1000, 1, 3600000, 0, &window) != 0 ||
        api_query_int(r, "per_second", 0, 0, 1, 0, &per_second) != 0)
        return;
    /* requests in each whole second from the first one (with ?per_second=1) */
    json_t *seconds = json_array();
    if (per_second && fake.ntimes > 0) {
        uint64_t t0 = fake.times_ms[0];
        size_t at = 0;
        for (uint64_t sec = 0; at < fake.ntimes; ++sec) {
            size_t k = 0;
            while (at < fake.ntimes && fake.times_ms[at] - t0 < (sec + 1) * 1000) {
                ++k;
                ++at;
            }
            json_array_append_new(seconds, json_integer((json_int_t)k));
        }
    }
    /* the most requests in any window_ms: times are in arrival order */
    size_t most = 0, lo = 0;
    for (size_t hi = 0; hi < fake.ntimes; ++hi) {
        while (fake.times_ms[hi] - fake.times_ms[lo] >= (uint64_t)window)
            ++lo;
        if (hi - lo + 1 > most)
            most = hi - lo + 1;
    }
    uint64_t dups = 0;
    for (size_t i = 0; i < fake.callbacks.cap; ++i)
        if (fake.callbacks.keys[i] != NULL && fake.callbacks.counts[i] > 1)
            dups += fake.callbacks.counts[i] - 1;
    json_t *errors = json_object();
    for (size_t i = 0; i < fake.codes.cap; ++i)
        if (fake.codes.keys[i] != NULL)
            json_object_set_new(errors, fake.codes.keys[i], json_integer(fake.codes.counts[i]));
    double span = fake.ntimes > 1 ? (double)(fake.times_ms[fake.ntimes - 1] - fake.times_ms[0]) / 1000.0 : 0;
    size_t retrying = 0;
    for (h2o_linklist_t *n = fake.retries.next; n != &fake.retries; n = n->next)
        retrying++;
    json_t *out = json_pack(
        "{s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:{s:I, s:I, s:I, s:I}}", "requests",
        (json_int_t)fake.ntimes, "accepted", (json_int_t)fake.accepted, "errors", errors, "duplicates",
        (json_int_t)dups, "recipients", (json_int_t)fake.recipients.n, "window_ms", (json_int_t)window, "max_in_window",
        (json_int_t)most, "first_ms", (json_int_t)(fake.ntimes ? fake.times_ms[0] : 0), "seconds", span, "per_second",
        seconds, "webhooks", "sent", (json_int_t)fake.webhooks_sent, "failed", (json_int_t)fake.webhooks_failed,
        "pending", (json_int_t)fake.npending, "retrying", (json_int_t)retrying);
    char *body = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    http_reply_copy(r, 200, "application/json", body, strlen(body));
    free(body);
}

static json_t *fake_config_json(void)
{
    json_t *errors = json_array();
    for (size_t i = 0; i < fake.nerrors; ++i)
        json_array_append_new(errors,
                              json_pack("{s:i, s:f}", "code", fake.errors[i].code, "share", fake.errors[i].share));
    json_t *st = json_array();
    static const char *const names[] = {"sent", "delivered", "read"};
    for (int i = 0; i != 3; ++i)
        if (fake.statuses & (1 << i))
            json_array_append_new(st, json_string(names[i]));
    return json_pack("{s:I, s:o, s:s, s:o, s:I, s:s?, s:b, s:s?}", "latency_ms", (json_int_t)fake.latency_ms, "errors",
                     errors, "window", fake.window_open ? "open" : "check", "statuses", st, "status_delay_ms",
                     (json_int_t)fake.status_delay_ms, "webhook_url", fake.webhook_url, "app_secret_set",
                     fake.app_secret != NULL, "unreachable_prefix", fake.unreachable_prefix);
}

/* Applies a configuration object; NULL or a reason it was refused (nothing applied then). */
static const char *fake_configure(json_t *c)
{
    json_t *v;
    if ((v = json_object_get(c, "errors")) != NULL) {
        if (!json_is_array(v) || json_array_size(v) > FAKE_ERRORS_MAX)
            return "errors must be an array of at most 8 {code, share}";
        double total = 0;
        size_t i;
        json_t *e;
        json_array_foreach (v, i, e) {
            json_t *share = json_object_get(e, "share");
            if (!json_is_integer(json_object_get(e, "code")) || !json_is_number(share) || json_number_value(share) < 0)
                return "each error needs an integer code and a share from 0 to 1";
            total += json_number_value(share);
        }
        if (total > 1)
            return "the shares add up to more than 1";
        fake.nerrors = 0;
        json_array_foreach (v, i, e) {
            fake.errors[fake.nerrors].code = (int)json_integer_value(json_object_get(e, "code"));
            fake.errors[fake.nerrors++].share = json_number_value(json_object_get(e, "share"));
        }
    }
    if ((v = json_object_get(c, "latency_ms")) != NULL && json_is_integer(v) && json_integer_value(v) >= 0 &&
        json_integer_value(v) <= 60000)
        fake.latency_ms = (unsigned)json_integer_value(v);
    if ((v = json_object_get(c, "status_delay_ms")) != NULL && json_is_integer(v) && json_integer_value(v) >= 0 &&
        json_integer_value(v) <= 600000)
        fake.status_delay_ms = (unsigned)json_integer_value(v);
    if ((v = json_object_get(c, "window")) != NULL && json_is_string(v))
        fake.window_open = strcmp(json_string_value(v), "open") == 0;
    if ((v = json_object_get(c, "statuses")) != NULL && json_is_array(v)) {
        size_t i;
        json_t *e;
        fake.statuses = 0;
        json_array_foreach (v, i, e) {
            const char *s = json_string_value(e);
            fake.statuses |= s == NULL                     ? 0
                             : strcmp(s, "sent") == 0      ? 1
                             : strcmp(s, "delivered") == 0 ? 2
                             : strcmp(s, "read") == 0      ? 4
                                                           : 0;
        }
    }
    if ((v = json_object_get(c, "webhook_url")) != NULL)
        fake_set(&fake.webhook_url, json_string_value(v));
    if ((v = json_object_get(c, "app_secret")) != NULL)
        fake_set(&fake.app_secret, json_string_value(v));
    if ((v = json_object_get(c, "unreachable_prefix")) != NULL)
        fake_set(&fake.unreachable_prefix, json_string_value(v));
    if ((v = json_object_get(c, "token")) != NULL)
        fake_set(&fake.token, json_string_value(v));
    return NULL;
}

static void fake_reply_json(http_request_t *r, int status, json_t *v)
{
    char *body = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    http_reply_copy(r, status, "application/json", body, strlen(body));
    free(body);
}

static void fake_config(http_request_t *r)
{
    json_t *c = r->req->entity.len ? json_loadb(r->req->entity.base, r->req->entity.len, 0, NULL) : NULL;
    const char *why = json_is_object(c) ? fake_configure(c) : "a JSON object is required";
    json_decref(c);
    if (why != NULL) {
        http_reply_invalid(r, "body", "%s", why);
        return;
    }
    fake_reply_json(r, 200, fake_config_json());
}

/* Forgets what happened: requests, counts, windows and statuses not sent yet. */
static void fake_forget(void)
{
    fake.ntimes = 0;
    fake.accepted = fake.webhooks_sent = fake.webhooks_failed = 0;
    fake_map_clear(&fake.codes);
    fake_map_clear(&fake.callbacks);
    fake_map_clear(&fake.recipients);
    fake_map_clear(&fake.windows);
    for (size_t k = 0; k < FAKE_STATUS_KINDS; ++k)
        while (!h2o_linklist_is_empty(&fake.statuses_due[k])) {
            fake_status_t *s = H2O_STRUCT_FROM_MEMBER(fake_status_t, link, fake.statuses_due[k].next);
            h2o_linklist_unlink(&s->link);
            fake_status_free(s);
        }
    fake.npending = 0;
}

static void fake_reset(http_request_t *r)
{
    fake_forget();
    fake_reply_json(r, 200, json_pack("{s:b}", "reset", 1));
}

static void fake_inbound(http_request_t *r)
{
    json_t *c = r->req->entity.len ? json_loadb(r->req->entity.base, r->req->entity.len, 0, NULL) : NULL;
    const char *pnid = json_string_value(json_object_get(c, "phone_number_id"));
    const char *from = json_string_value(json_object_get(c, "from"));
    const char *text = json_string_value(json_object_get(c, "text"));
    const char *name = json_string_value(json_object_get(c, "name"));
    if (pnid == NULL || from == NULL || text == NULL || !fake_digits(pnid, 1, 64) || !fake_digits(from, 7, 15) ||
        fake.webhook_url == NULL) {
        json_decref(c);
        http_reply_invalid(r, "body", "phone_number_id, from (digits) and text are required, and a webhook_url set");
        return;
    }
    char window[96], wamid[96], ts[24];
    snprintf(window, sizeof(window), "%s:%s", pnid, from);
    fake_map_add(&fake.windows, window, 1);
    snprintf(wamid, sizeof(wamid), "wamid.FAKEIN%016" PRIx64 "%08" PRIx32, ++fake.next_wamid, randombytes_random());
    snprintf(ts, sizeof(ts), "%" PRIu64, util_wall_ns() / 1000000000);
    json_t *contacts = json_pack("[{s:{s:s}, s:s}]", "profile", "name", name != NULL ? name : from, "wa_id", from);
    json_t *messages = json_pack("[{s:s, s:s, s:s, s:s, s:{s:s}}]", "from", from, "id", wamid, "timestamp", ts, "type",
                                 "text", "text", "body", text);
    json_t *payload = fake_envelope(pnid, "messages", messages);
    json_object_set_new(
        json_object_get(
            json_array_get(json_object_get(json_array_get(json_object_get(payload, "entry"), 0), "changes"), 0),
            "value"),
        "contacts", contacts);
    fake_post_webhook(payload);
    json_decref(payload);
    json_decref(c);
    fake_reply_json(r, 202, json_pack("{s:s}", "wamid", wamid));
}

static const http_route_t fake_routes[] = {
    {"POST", "/:version/:phone_number_id/messages", fake_messages},
    {"GET", "/_fake/stats", fake_stats},
    {"POST", "/_fake/config", fake_config},
    {"POST", "/_fake/reset", fake_reset},
    {"POST", "/_fake/inbound", fake_inbound},
};

static void fake_thread_start(http_thread_t *t)
{
    fake.loop = t->loop;
    http_client_config_t hc = {.connect_timeout_ms = 2000, .timeout_ms = 10000, .max_connections = 8};
    fake.http = http_client_new(t->loop, &hc);
    loop_timer_init(&fake.flush, t->loop, fake_on_flush);
    loop_timer_init(&fake.reply, t->loop, fake_on_reply_timer);
    loop_timer_init(&fake.retry, t->loop, fake_on_retry);
}

static void fake_thread_stop(http_thread_t *t)
{
    (void)t;
    loop_timer_dispose(&fake.flush);
    loop_timer_dispose(&fake.reply);
    loop_timer_dispose(&fake.retry);
    http_client_t *http = fake.http;
    fake.http = NULL; /* deliveries failing now are not retried */
    http_client_free(http);
    while (!h2o_linklist_is_empty(&fake.retries)) {
        fake_retry_t *r = H2O_STRUCT_FROM_MEMBER(fake_retry_t, link, fake.retries.next);
        h2o_linklist_unlink(&r->link);
        free(r->body);
        free(r);
    }
}

int cli_fake_meta(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: conversa fake-meta [--port N] [--webhook-url URL] [--app-secret S] [--latency-ms N]\n"
               "                          [--window open|check] [--status-delay-ms N] [--throttle-share F]\n"
               "                          [--pair-share F] [--fail-share F]\n\n"
               "A stand-in for the WhatsApp Cloud API (Graph API messages endpoint) on 127.0.0.1:PORT\n"
               "(default 5080), for tests, the bench and the demo: point META_GRAPH_URL at it. It\n"
               "accepts text and template messages, answers Meta's error codes for the shares given\n"
               "(--throttle-share: 130429, --pair-share: 131056, --fail-share: HTTP 500), and sends\n"
               "signed status webhooks (sent, delivered, read) to --webhook-url, like Meta. Text outside\n"
               "a customer's 24 h window gets 131047 unless --window open. GET /_fake/stats reports\n"
               "what it saw; POST /_fake/config changes any setting while it runs.\n");
        return 0;
    }
    if (config_load() != 0)
        return 2;
    config.host = "127.0.0.1";
    config.port = 5080;
    config.threads = 1;
    config.access_log = 0;
    log_set_access(0); /* a line per message sent would be most of its work */
    fake_set(&fake.webhook_url, getenv("FAKE_META_WEBHOOK_URL"));
    fake_set(&fake.app_secret, getenv("FAKE_META_APP_SECRET"));
    double throttle = 0, pair = 0, fail = 0;
    for (int i = 1; i < argc; ++i) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = (char *)""; /* numeric options point it at what strto* left */
        if (v == NULL) {
            fprintf(stderr, "conversa fake-meta: %s needs a value\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--port") == 0) {
            long p = strtol(v, &end, 10);
            if (*end != '\0' || p < 1 || p > 65535) {
                fprintf(stderr, "conversa fake-meta: --port must be 1 to 65535\n");
                return 2;
            }
            config.port = (unsigned)p;
        } else if (strcmp(argv[i], "--webhook-url") == 0) {
            fake_set(&fake.webhook_url, v);
        } else if (strcmp(argv[i], "--app-secret") == 0) {
            fake_set(&fake.app_secret, v);
        } else if (strcmp(argv[i], "--latency-ms") == 0) {
            fake.latency_ms = (unsigned)strtoul(v, &end, 10);
        } else if (strcmp(argv[i], "--status-delay-ms") == 0) {
            fake.status_delay_ms = (unsigned)strtoul(v, &end, 10);
        } else if (strcmp(argv[i], "--window") == 0) {
            fake.window_open = strcmp(v, "open") == 0;
            end = (char *)(strcmp(v, "open") == 0 || strcmp(v, "check") == 0 ? "" : "x");
        } else if (strcmp(argv[i], "--throttle-share") == 0) {
            throttle = strtod(v, &end);
        } else if (strcmp(argv[i], "--pair-share") == 0) {
            pair = strtod(v, &end);
        } else if (strcmp(argv[i], "--fail-share") == 0) {
            fail = strtod(v, &end);
        } else {
            fprintf(stderr, "conversa fake-meta: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
        if (*end != '\0') {
            fprintf(stderr, "conversa fake-meta: bad value '%s' for %s\n", v, argv[i]);
            return 2;
        }
        ++i;
    }
    if (throttle < 0 || pair < 0 || fail < 0 || throttle + pair + fail > 1) {
        fprintf(stderr, "conversa fake-meta: the shares must be from 0 to 1 and add up to at most 1\n");
        return 2;
    }
    if (throttle > 0)
        fake.errors[fake.nerrors++] = (typeof(fake.errors[0])){130429, throttle};
    if (pair > 0)
        fake.errors[fake.nerrors++] = (typeof(fake.errors[0])){131056, pair};
    if (fail > 0)
        fake.errors[fake.nerrors++] = (typeof(fake.errors[0])){131000, fail};
    if (sodium_init() < 0)
        return 1;
    for (size_t k = 0; k < FAKE_STATUS_KINDS; ++k)
        h2o_linklist_init_anchor(&fake.statuses_due[k]);
    h2o_linklist_init_anchor(&fake.delayed);
    h2o_linklist_init_anchor(&fake.retries);
    log_info("fake-meta", "stand-in Graph API on %s:%u, webhooks to %s", config.host, config.port,
             fake.webhook_url != NULL ? fake.webhook_url : "(none)");
    static const http_server_hooks_t hooks = {fake_thread_start, fake_thread_stop, NULL};
    int rc = http_server_run(fake_routes, UTIL_ARRAY_SIZE(fake_routes), &hooks);
    fake_forget();
    free(fake.times_ms);
    fake_set(&fake.webhook_url, NULL);
    fake_set(&fake.app_secret, NULL);
    fake_set(&fake.unreachable_prefix, NULL);
    fake_set(&fake.token, NULL);
    return rc == 0 ? 0 : 1;
}
