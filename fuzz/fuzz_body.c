/*
 * fuzz_body.c - request JSON bodies: src/api/input.c's readers and the shape checks of
 * every endpoint that takes a body, run in the real handlers (see fake.h).
 *
 * The first byte picks the endpoint (a letter below, any other byte by its value), the
 * rest is the body:
 *   L  POST  /api/v1/auth/login                    api_auth_login
 *   C  POST  /api/v1/contacts                      api_contacts_create
 *   c  PATCH /api/v1/contacts/:id                  api_contacts_patch
 *   P  PATCH /api/v1/conversations/:id             api_conversations_patch
 *   S  POST  /api/v1/conversations/:id/messages    api_conversations_send
 *   K  POST  /api/v1/campaigns                     api_campaigns_create
 *   T  POST  /api/v1/campaigns/trigger             api_campaigns_trigger
 *   N  POST  /api/v1/connections                   api_connections_create
 *   n  PATCH /api/v1/connections/:id               api_connections_patch
 *   H  the readers alone: api_json_depth_ok, api_utf8_valid, api_json_string/bool/
 *      nullable_id on every member, each against a reference
 *
 * Checked for every endpoint: one reply or one statement (fake.c's rules); a body
 * that is not a JSON object nesting at most API_JSON_MAX_DEPTH deep never reaches the
 * database and is a 400 naming "body"; what reaches the database is what the body
 * said, within the endpoint's rules (below, per endpoint). Connections: the body
 * buffer is wiped whatever the outcome (it holds secrets), and each sealed secret
 * opens to the body's value with its column's context, with the mask of that value.
 */
#include "api/input.h"
#include "api/routes.h"
#include "auth/secrets.h"
#include "core/log.h"
#include "core/phone.h"
#include "core/throttle.h"
#include "fake.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A fixed key: sealing needs one, and its value does not matter here. */
#define BODY_KEY "0001020304050607080910111213141516171819202122232425262728293031"

typedef struct body_endpoint {
    char letter;
    const char *method;
    const char *path;
    const char *id; /* the :id path parameter, or NULL */
    http_handler_fn handler;
    void (*check)(json_t *body, const fuzz_outcome_t *o);
} body_endpoint_t;

/* The depth of a parsed value: 1 for an empty object or array, 0 for a scalar. */
static int body_depth(json_t *v)
{
    int d = 0;
    const char *key;
    json_t *item;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach (v, key, item) {
            int k = body_depth(item);
            d = k > d ? k : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach (v, i, item) {
            int k = body_depth(item);
            d = k > d ? k : d;
        }
        return d + 1;
    }
    return 0;
}

/* The string member name of body, or NULL. */
static const char *body_str(json_t *body, const char *name)
{
    return json_string_value(json_object_get(body, name));
}

/* Whether parameter i is the text s (NULL: SQL NULL). */
static int body_param_is(const fuzz_outcome_t *o, size_t i, const char *s)
{
    const char *v = o->params[i].value;
    return i < o->nparams && (s == NULL ? v == NULL : v != NULL && strcmp(v, s) == 0);
}

/* The number of code points of UTF-8 text s. */
static size_t body_chars(const char *s)
{
    size_t n = 0;
    for (; *s; ++s)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* Whether text is a JSON array of at most max distinct strings of 1 to max_chars characters. */
static int body_labels_ok(const char *text, size_t max, size_t max_chars)
{
    json_t *a = json_loads(text, 0, NULL);
    int ok = json_is_array(a) && json_array_size(a) <= max;
    size_t i, j;
    json_t *e;
    json_array_foreach (a, i, e) {
        ok = ok && json_is_string(e) && body_chars(json_string_value(e)) >= 1 &&
             body_chars(json_string_value(e)) <= max_chars;
        for (j = 0; ok && j != i; ++j)
            ok = !json_equal(json_array_get(a, j), e);
    }
    json_decref(a);
    return ok;
}

/* ---- per endpoint: what a body that reached the database must have said ---- */

static void body_check_login(json_t *body, const fuzz_outcome_t *o)
{
    const char *email = body_str(body, "email"), *password = body_str(body, "password");
    FUZZ_CHECK(email != NULL && password != NULL && body_param_is(o, 0, email));
    FUZZ_CHECK(body_chars(email) >= 3 && body_chars(email) <= 254 && *password != '\0');
}

/* A contact's phone_number must be stored as phone_normalize() says. */
static void body_check_phone(json_t *body, const fuzz_outcome_t *o, size_t i)
{
    const char *phone = body_str(body, "phone_number");
    char e164[PHONE_E164_SIZE];
    if (phone == NULL) {
        FUZZ_CHECK(body_param_is(o, i, NULL));
        return;
    }
    FUZZ_CHECK(phone_normalize(phone, strlen(phone), e164) == 0 && body_param_is(o, i, e164));
}

static void body_check_contact_create(json_t *body, const fuzz_outcome_t *o)
{
    /* (company, phone, name, labels) */
    FUZZ_CHECK(body_str(body, "phone_number") != NULL);
    body_check_phone(body, o, 1);
    FUZZ_CHECK(body_param_is(o, 2, body_str(body, "name")));
    FUZZ_CHECK(o->params[3].value == NULL || body_labels_ok(o->params[3].value, 20, 50));
}

static void body_check_contact_patch(json_t *body, const fuzz_outcome_t *o)
{
    /* (company, id, name given, name, labels, phone): something must change */
    FUZZ_CHECK(body_param_is(o, 1, "5"));
    FUZZ_CHECK(json_object_get(body, "name") != NULL || o->params[4].value != NULL || o->params[5].value != NULL);
    FUZZ_CHECK(body_param_is(o, 2, json_object_get(body, "name") != NULL ? "true" : "false"));
    FUZZ_CHECK(body_param_is(o, 3, body_str(body, "name")));
    FUZZ_CHECK(o->params[4].value == NULL || body_labels_ok(o->params[4].value, 20, 50));
    body_check_phone(body, o, 5);
}

static void body_check_conversation_patch(json_t *body, const fuzz_outcome_t *o)
{
    /* (company, id, status, assignee given, assignee) */
    const char *status = body_str(body, "status");
    json_t *assignee = json_object_get(body, "assignee_id");
    FUZZ_CHECK(body_param_is(o, 2, status) && (status != NULL || assignee != NULL));
    FUZZ_CHECK(status == NULL || strcmp(status, "open") == 0 || strcmp(status, "pending") == 0 ||
               strcmp(status, "resolved") == 0);
    FUZZ_CHECK(body_param_is(o, 3, assignee != NULL ? "true" : "false"));
    FUZZ_CHECK((assignee == NULL || json_is_null(assignee)) ? body_param_is(o, 4, NULL)
                                                            : json_integer_value(assignee) >= 1);
}

static void body_check_send(json_t *body, const fuzz_outcome_t *o)
{
    /* (company, conversation, text, user, attempts): text as sent, not blank */
    const char *text = body_str(body, "text");
    FUZZ_CHECK(text != NULL && body_param_is(o, 2, text) && text[strspn(text, " \t\r\n")] != '\0');
    FUZZ_CHECK(body_chars(text) <= 4096);
}

static void body_check_campaign(json_t *body, const fuzz_outcome_t *o)
{
    /* (company, connection, name, template name, language, parameters, audience, user) */
    json_t *tpl = json_object_get(body, "template");
    const char *name = body_str(tpl, "name"), *lang = body_str(tpl, "language");
    FUZZ_CHECK(body_param_is(o, 2, body_str(body, "name")) && body_param_is(o, 3, name) && body_param_is(o, 4, lang));
    FUZZ_CHECK(strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(name) && *name != '\0');
    json_t *params = json_loads(o->params[5].value, 0, NULL), *aud = json_loads(o->params[6].value, 0, NULL);
    json_t *given = json_object_get(tpl, "parameters");
    FUZZ_CHECK(json_is_array(params) && json_array_size(params) <= 20);
    FUZZ_CHECK(given != NULL ? json_equal(params, given) : json_array_size(params) == 0);
    FUZZ_CHECK(json_is_object(aud) && json_equal(aud, json_object_get(body, "audience")));
    json_decref(params);
    json_decref(aud);
}

static void body_check_trigger(json_t *body, const fuzz_outcome_t *o)
{
    /* (company, campaign, attempts) */
    json_int_t id = json_integer_value(json_object_get(body, "campaign_id"));
    char want[24];
    snprintf(want, sizeof(want), "%" JSON_INTEGER_FORMAT, id);
    FUZZ_CHECK(id >= 1 && body_param_is(o, 1, want));
}

/* The secrets of a connection, with where their sealed value and mask go in each statement. */
static const struct {
    const char *field;
    const char *context;
    size_t create_at, patch_at;
} body_secrets[] = {
    {"access_token", "connections.access_token", 7, 12},
    {"app_secret", "connections.app_secret", 9, 15},
    {"verify_token", "connections.verify_token", 11, 18},
};

static void body_check_secrets(json_t *body, const fuzz_outcome_t *o, int creating)
{
    for (size_t i = 0; i != sizeof(body_secrets) / sizeof(body_secrets[0]); ++i) {
        size_t at = creating ? body_secrets[i].create_at : body_secrets[i].patch_at;
        const char *plain = body_str(body, body_secrets[i].field);
        const fuzz_param_t *sealed = &o->params[at];
        if (plain == NULL) {
            FUZZ_CHECK(sealed->value == NULL && o->params[at + 1].value == NULL);
            continue;
        }
        char opened[SECRETS_PLAIN_MAX + 1], mask[SECRETS_MASK_MAX];
        size_t len;
        FUZZ_CHECK(sealed->value != NULL && sealed->binary);
        FUZZ_CHECK(secrets_decrypt(body_secrets[i].context, (const unsigned char *)sealed->value, sealed->len, opened,
                                   sizeof(opened), &len, NULL) == 0);
        FUZZ_CHECK(len == strlen(plain) && memcmp(opened, plain, len) == 0);
        for (size_t k = 0; k != len; ++k)
            FUZZ_CHECK(opened[k] >= 0x21 && opened[k] <= 0x7e);
        FUZZ_CHECK(secrets_mask(plain, len, mask, sizeof(mask)) != 0 && body_param_is(o, at + 1, mask));
    }
}

static void body_check_connection_create(json_t *body, const fuzz_outcome_t *o)
{
    /* (company, slug, name, phone_number_id, waba_id, display_phone_number, status, secrets..., mps) */
    const char *slug = body_str(body, "slug");
    FUZZ_CHECK(slug != NULL && body_param_is(o, 1, slug) && body_param_is(o, 2, body_str(body, "name")));
    FUZZ_CHECK(strlen(slug) >= 3 && strlen(slug) <= 63 && slug[0] != '-' &&
               strspn(slug, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(slug));
    body_check_secrets(body, o, 1);
}

static void body_check_connection_patch(json_t *body, const fuzz_outcome_t *o)
{
    /* (company, id, slug, name, status, ...): something must change */
    FUZZ_CHECK(body_param_is(o, 1, "5") && json_object_size(body) != 0);
    body_check_secrets(body, o, 0);
}

static const body_endpoint_t body_endpoints[] = {
    {'L', "POST", "/api/v1/auth/login", NULL, api_auth_login, body_check_login},
    {'C', "POST", "/api/v1/contacts", NULL, api_contacts_create, body_check_contact_create},
    {'c', "PATCH", "/api/v1/contacts/5", "5", api_contacts_patch, body_check_contact_patch},
    {'P', "PATCH", "/api/v1/conversations/5", "5", api_conversations_patch, body_check_conversation_patch},
    {'S', "POST", "/api/v1/conversations/5/messages", "5", api_conversations_send, body_check_send},
    {'K', "POST", "/api/v1/campaigns", NULL, api_campaigns_create, body_check_campaign},
    {'T', "POST", "/api/v1/campaigns/trigger", NULL, api_campaigns_trigger, body_check_trigger},
    {'N', "POST", "/api/v1/connections", NULL, api_connections_create, body_check_connection_create},
    {'n', "PATCH", "/api/v1/connections/5", "5", api_connections_patch, body_check_connection_patch},
};
#define BODY_NENDPOINTS (sizeof(body_endpoints) / sizeof(body_endpoints[0]))

static void body_endpoint(const body_endpoint_t *e, const uint8_t *data, size_t size)
{
    /* the reference view of the body: the same parse the readers do */
    json_t *parsed = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    int shaped = json_is_object(parsed) && body_depth(parsed) <= API_JSON_MAX_DEPTH;
    if (e->handler == api_auth_login)
        throttle_reset(); /* sign-in counters would make one input's outcome depend on the ones before */
    http_request_t *r = fuzz_request_new(e->method, e->path, strlen(e->path), data, size);
    if (e->id != NULL)
        fuzz_request_param(r, "id", e->id, strlen(e->id));
    e->handler(r);
    fuzz_outcome_t *o = fuzz_expect_done(r);
    if (!shaped)
        FUZZ_CHECK(o->status == 400 && strcmp(o->field, "body") == 0);
    if (o->stmt != NULL)
        e->check(parsed, o);
    if (e->handler == api_connections_create || e->handler == api_connections_patch) {
        size_t len;
        const unsigned char *left = fuzz_request_body(r, &len);
        for (size_t i = 0; i != len; ++i)
            FUZZ_CHECK(left[i] == 0);
    }
    fuzz_request_free(r);
    json_decref(parsed);
}

/* A new request for one reader call (each may reply once). */
static http_request_t *body_reader_request(void)
{
    return fuzz_request_new("POST", "/", 1, NULL, 0);
}

/* The readers alone, each against a reference. */
static void body_readers(const uint8_t *data, size_t size)
{
    size_t chars = 0;
    int utf8 = api_utf8_valid((const char *)data, size, &chars);
    FUZZ_CHECK(utf8 == (fuzz_utf8_ok(data, size) && memchr(data, '\0', size) == NULL));
    if (utf8) {
        size_t want = 0;
        for (size_t i = 0; i != size; ++i)
            want += (data[i] & 0xc0) != 0x80;
        FUZZ_CHECK(chars == want);
    }

    json_t *parsed = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (parsed != NULL)
        FUZZ_CHECK(api_json_depth_ok((const char *)data, size) == (body_depth(parsed) <= API_JSON_MAX_DEPTH));
    else
        (void)api_json_depth_ok((const char *)data, size); /* any bytes: it runs before the parser */
    if (!json_is_object(parsed)) {
        json_decref(parsed);
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach (parsed, key, v) {
        http_request_t *r = body_reader_request();
        const char *s;
        int rc = api_json_string(r, parsed, key, 1, 1, 16, &s);
        size_t n = json_string_length(v);
        int want = json_is_string(v) && api_utf8_valid(json_string_value(v), n, &chars) && chars >= 1 && chars <= 16;
        FUZZ_CHECK((rc == 0) == want && fuzz_outcome(r)->replies == !want);
        if (want)
            FUZZ_CHECK(strlen(s) == n && memcmp(s, json_string_value(v), n) == 0);
        fuzz_request_free(r);

        r = body_reader_request();
        int64_t id;
        int is_null, present;
        rc = api_json_nullable_id(r, parsed, key, &id, &is_null, &present);
        want = json_is_null(v) || (json_is_integer(v) && json_integer_value(v) >= 1);
        FUZZ_CHECK((rc == 0) == want && present && is_null == json_is_null(v));
        if (want && !is_null)
            FUZZ_CHECK(id == json_integer_value(v));
        fuzz_request_free(r);

        r = body_reader_request();
        int b;
        rc = api_json_bool(r, parsed, key, 1, &b, &present);
        FUZZ_CHECK((rc == 0) == json_is_boolean(v) && (rc != 0 || b == json_is_true(v)));
        fuzz_request_free(r);
    }
    json_decref(parsed);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_OFF);
    if (secrets_init(BODY_KEY, NULL) != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    if (data[0] == 'H') {
        body_readers(body, n);
        return 0;
    }
    const body_endpoint_t *e = &body_endpoints[data[0] % BODY_NENDPOINTS];
    for (size_t i = 0; i != BODY_NENDPOINTS; ++i)
        if (body_endpoints[i].letter == (char)data[0])
            e = &body_endpoints[i];
    body_endpoint(e, body, n);
    return 0;
}
