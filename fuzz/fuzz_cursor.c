/*
 * fuzz_cursor.c - the paging positions clients send back: the conversation list's
 * cursor and the before/after ids of messages and campaigns.
 *
 * The input is the parameter's value, percent-encoded byte for byte into the query so
 * that the handler's parser sees exactly these bytes, and the real handlers run on it
 * (src/api/conversations.c: api_conversations_list and its conv_parse_cursor, and
 * api_conversations_messages; src/api/campaigns.c: api_campaigns_list; through
 * src/api/input.c's api_query_string/api_query_int). Checked against a reference
 * written here:
 *   - cursor "<micros>.<id>": accepted exactly when it is an optional '-', 1 to 19
 *     characters with the sign, '.', 1 to 18 digits, an id >= 1 and micros within
 *     int64; then the statement gets those two numbers, and the canonical cursor
 *     printed from them is accepted with the same ones (next_cursor round trip);
 *     refused is a 400 naming "cursor";
 *   - before/after: accepted exactly when the value is a decimal int64 in the
 *     endpoint's range (an empty value keeps the default); refused is a 400 naming it.
 */
#include "api/routes.h"
#include "fake.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CURSOR_QUERY_MAX 64 /* api_conversations_list's limit for cursor */
#define INT_QUERY_MAX    32 /* api_query_int's limit */

/* Whether s (n bytes) is what a query value may be: UTF-8 without NUL, at most max bytes. */
static int cursor_text_ok(const uint8_t *s, size_t n, size_t max)
{
    return n <= max && memchr(s, '\0', n) == NULL && fuzz_utf8_ok(s, n);
}

/* Accumulates decimal digits [p, end) into *v; 0 when they do not fit in int64. */
static int cursor_digits(const uint8_t *p, const uint8_t *end, int64_t *v)
{
    *v = 0;
    for (; p != end; ++p) {
        if (*p < '0' || *p > '9' || *v > (INT64_MAX - (*p - '0')) / 10)
            return 0;
        *v = *v * 10 + (*p - '0');
    }
    return 1;
}

/* The reference for a cursor: 1 with *ts and *id when s (n bytes) is one. */
static int cursor_ref(const uint8_t *s, size_t n, int64_t *ts, int64_t *id)
{
    const uint8_t *end = s + n, *dot = memchr(s, '.', n);
    int neg = n != 0 && s[0] == '-';
    if (dot == NULL || dot - s > 19 || dot == s + neg || end - dot - 1 < 1 || end - dot - 1 > 18)
        return 0;
    if (!cursor_digits(s + neg, dot, ts) || !cursor_digits(dot + 1, end, id) || *id < 1)
        return 0;
    *ts = neg ? -*ts : *ts;
    return 1;
}

/* The reference for an integer query value: 1 with *v when s (n bytes) is a decimal int64. */
static int cursor_int_ref(const uint8_t *s, size_t n, int64_t *v)
{
    int neg = n != 0 && s[0] == '-';
    if (n == (size_t)neg || !cursor_digits(s + neg, s + n, v)) {
        /* -9223372036854775808 is an int64 too, though its digits alone are not */
        static const char min[] = "-9223372036854775808";
        if (n == sizeof(min) - 1 && memcmp(s, min, n) == 0) {
            *v = INT64_MIN;
            return 1;
        }
        return 0;
    }
    *v = neg ? -*v : *v;
    return 1;
}

/*
 * Runs handler on path + "?" + name + "=" + the encoded value, with path parameter id
 * when the route has one; the caller frees the request.
 */
static http_request_t *cursor_run(http_handler_fn handler, const char *path, const char *id, const char *name,
                                  const uint8_t *value, size_t n)
{
    size_t cap = strlen(path) + strlen(name) + 3 * n + 3;
    char *target = malloc(cap);
    FUZZ_CHECK(target != NULL);
    int k = snprintf(target, cap, "%s?%s=", path, name);
    fuzz_percent_encode(value, n, target + k);
    http_request_t *r = fuzz_request_new("GET", target, strlen(target), NULL, 0);
    if (id != NULL)
        fuzz_request_param(r, "id", id, strlen(id));
    handler(r);
    free(target);
    fuzz_expect_done(r);
    return r;
}

/* Whether parameter i of the statement is the integer v. */
static int cursor_param_is(const fuzz_outcome_t *o, size_t i, int64_t v)
{
    char want[24];
    snprintf(want, sizeof(want), "%" PRId64, v);
    return i < o->nparams && o->params[i].value != NULL && strcmp(o->params[i].value, want) == 0;
}

static void cursor_list(const uint8_t *data, size_t size)
{
    int64_t ts = 0, id = 0;
    int ok = cursor_text_ok(data, size, CURSOR_QUERY_MAX) && cursor_ref(data, size, &ts, &id);
    http_request_t *r = cursor_run(api_conversations_list, "/api/v1/conversations", NULL, "cursor", data, size);
    fuzz_outcome_t *o = fuzz_outcome(r);
    if (size == 0) {
        /* an empty cursor is no cursor: the first page by page number (company, limit, page) */
        FUZZ_CHECK(o->status == 0 && o->nparams == 3);
    } else if (!ok) {
        FUZZ_CHECK(o->status == 400 && strcmp(o->field, "cursor") == 0);
    } else {
        /* company, limit, then the cursor's time and id */
        FUZZ_CHECK(o->status == 0 && o->nparams == 4 && cursor_param_is(o, 2, ts) && cursor_param_is(o, 3, id));
        char canon[48];
        int n = snprintf(canon, sizeof(canon), "%" PRId64 ".%" PRId64, ts, id);
        http_request_t *again = cursor_run(api_conversations_list, "/api/v1/conversations", NULL, "cursor",
                                           (const uint8_t *)canon, (size_t)n);
        fuzz_outcome_t *o2 = fuzz_outcome(again);
        FUZZ_CHECK(o2->status == 0 && o2->nparams == 4 && cursor_param_is(o2, 2, ts) && cursor_param_is(o2, 3, id));
        fuzz_request_free(again);
    }
    fuzz_request_free(r);
}

/* One integer parameter of a list: param is where the statement receives it. */
static void cursor_int(http_handler_fn handler, const char *path, const char *id, const char *name, int64_t min,
                       int64_t max, size_t param, const uint8_t *data, size_t size)
{
    int64_t v = 0;
    int ok = cursor_text_ok(data, size, INT_QUERY_MAX) && cursor_int_ref(data, size, &v) && v >= min && v <= max;
    http_request_t *r = cursor_run(handler, path, id, name, data, size);
    fuzz_outcome_t *o = fuzz_outcome(r);
    if (size == 0) {
        FUZZ_CHECK(o->status == 0);
    } else if (!ok) {
        FUZZ_CHECK(o->status == 400 && strcmp(o->field, name) == 0);
    } else {
        FUZZ_CHECK(o->status == 0 && cursor_param_is(o, param, v));
    }
    fuzz_request_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4 * CURSOR_QUERY_MAX)
        return 0; /* longer is refused for its length alone */
    cursor_list(data, size);
    /* messages: (company, conversation, after, before, limit); campaigns: (company, limit, before) */
    cursor_int(api_conversations_messages, "/api/v1/conversations/7/messages", "7", "before", 1, INT64_MAX, 3, data,
               size);
    cursor_int(api_conversations_messages, "/api/v1/conversations/7/messages", "7", "after", 0, INT64_MAX - 1, 2, data,
               size);
    cursor_int(api_campaigns_list, "/api/v1/campaigns", NULL, "before", 1, INT64_MAX, 2, data, size);
    return 0;
}
