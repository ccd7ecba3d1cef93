#include "api/input.h"
#include "core/util.h"
#include "core/utf8.h"
#include "http/reply.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int api_utf8_valid(const char *s, size_t n, size_t *chars)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t count = 0;
    for (size_t i = 0; i < n; ++count) {
        uint32_t cp;
        size_t len = utf8_decode(p + i, n - i, &cp);
        if (len == 0 || cp == 0)
            return 0;
        i += len;
    }
    if (chars != NULL)
        *chars = count;
    return 1;
}

size_t api_utf8_prefix(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n <= max)
        return n;
    /* s[max] is the first byte left out: while it continues a character, that character goes too */
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        --max;
    return max;
}

int api_json_depth_ok(const char *s, size_t n)
{
    int depth = 0, in_string = 0;
    /* i < n, not i != n: a backslash that ends the text skips past the end */
    for (size_t i = 0; i < n; ++i) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > API_JSON_MAX_DEPTH)
                return 0;
        } else if (c == '}' || c == ']') {
            --depth;
        }
    }
    return 1;
}

json_t *api_body_object(http_request_t *r, const char *const *allowed)
{
    h2o_iovec_t body = r->req->entity;
    if (body.base == NULL || body.len == 0) {
        http_reply_invalid(r, "body", "a JSON object is required");
        return NULL;
    }
    if (!api_json_depth_ok(body.base, body.len)) {
        http_reply_invalid(r, "body", "JSON nested deeper than %d levels", API_JSON_MAX_DEPTH);
        return NULL;
    }
    json_error_t err;
    json_t *obj = json_loadb(body.base, body.len, JSON_REJECT_DUPLICATES, &err);
    if (obj == NULL) {
        /* jansson's text quotes the input near the error, which may be a password: not echoed */
        http_reply_invalid(r, "body", "malformed JSON at line %d column %d", err.line, err.column);
        return NULL;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        http_reply_invalid(r, "body", "a JSON object is required");
        return NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach (obj, key, value) {
        size_t i;
        for (i = 0; allowed[i] != NULL && strcmp(allowed[i], key) != 0; ++i)
            ;
        if (allowed[i] == NULL) {
            char field[64];
            snprintf(field, sizeof(field), "%.*s", (int)api_utf8_prefix(key, sizeof(field) - 1), key);
            json_decref(obj);
            http_reply_invalid(r, field, "unknown field %s", field);
            return NULL;
        }
    }
    return obj;
}

/* Replies 400 for a required member that is missing; returns -1 then, else 0. */
static int api_json_required(http_request_t *r, json_t *v, const char *name, int required)
{
    if (v != NULL || !required)
        return 0;
    http_reply_invalid(r, name, "%s is required", name);
    return -1;
}

/* Replies 400 naming the accepted values of an enumerated input. */
static void api_reply_choices(http_request_t *r, const char *name, const char *const *choices)
{
    char list[256] = "";
    for (size_t i = 0; choices[i] != NULL; ++i)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", choices[i]);
    http_reply_invalid(r, name, "%s must be one of: %s", name, list);
}

int api_json_string(http_request_t *r, json_t *obj, const char *name, int required, size_t min_len, size_t max_len,
                    const char **out)
{
    *out = NULL;
    json_t *v = json_object_get(obj, name);
    if (v == NULL)
        return api_json_required(r, v, name, required);
    if (!json_is_string(v)) {
        http_reply_invalid(r, name, "%s must be a string", name);
        return -1;
    }
    size_t n = json_string_length(v), chars;
    const char *s = json_string_value(v);
    if (!api_utf8_valid(s, n, &chars)) {
        http_reply_invalid(r, name, "%s must be valid UTF-8 without NUL characters", name);
        return -1;
    }
    if (chars < min_len || chars > max_len) {
        http_reply_invalid(r, name, "%s must be %zu to %zu characters long", name, min_len, max_len);
        return -1;
    }
    *out = h2o_strdup(&r->req->pool, s, n).base;
    return 0;
}

int api_json_nullable_id(http_request_t *r, json_t *obj, const char *name, int64_t *out, int *is_null, int *present)
{
    json_t *v = json_object_get(obj, name);
    *present = v != NULL;
    *is_null = v != NULL && json_is_null(v);
    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        http_reply_invalid(r, name, "%s must be a positive integer id or null", name);
        return -1;
    }
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int api_json_bool(http_request_t *r, json_t *obj, const char *name, int required, int *out, int *present)
{
    json_t *v = json_object_get(obj, name);
    *present = v != NULL;
    if (v == NULL)
        return api_json_required(r, v, name, required);
    if (!json_is_boolean(v)) {
        http_reply_invalid(r, name, "%s must be true or false", name);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

int api_json_enum(http_request_t *r, json_t *obj, const char *name, int required, const char *const *choices,
                  const char **out)
{
    *out = NULL;
    json_t *v = json_object_get(obj, name);
    if (v == NULL)
        return api_json_required(r, v, name, required);
    if (json_is_string(v))
        for (size_t i = 0; choices[i] != NULL; ++i)
            if (strcmp(json_string_value(v), choices[i]) == 0) {
                *out = choices[i];
                return 0;
            }
    api_reply_choices(r, name, choices);
    return -1;
}

static int api_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into the pool; '+' is a space. Returns NULL on a bad escape. */
static char *api_decode(h2o_mem_pool_t *pool, const char *s, size_t n, size_t *outlen)
{
    char *out = h2o_mem_alloc_pool(pool, n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; ++i) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= n || (hi = api_hex(s[i + 1])) < 0 || (lo = api_hex(s[i + 2])) < 0)
                return NULL;
            out[k++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[k++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    out[k] = '\0';
    *outlen = k;
    return out;
}

int api_query_lookup(http_request_t *r, const char *name, size_t max_len, const char **out, const char **why)
{
    *out = NULL;
    h2o_req_t *req = r->req;
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nlen = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        if (amp == NULL)
            amp = end;
        const char *eq = memchr(q, '=', (size_t)(amp - q));
        const char *kend = eq != NULL ? eq : amp;
        if ((size_t)(kend - q) == nlen && memcmp(q, name, nlen) == 0) {
            const char *v = eq != NULL ? eq + 1 : amp;
            size_t len;
            char *decoded = api_decode(&req->pool, v, (size_t)(amp - v), &len);
            if (decoded == NULL) {
                *why = "has a malformed percent-escape";
                return -1;
            }
            if (len > max_len) {
                *why = "is too long";
                return -1;
            }
            if (!api_utf8_valid(decoded, len, NULL)) {
                *why = "must be valid UTF-8 without NUL characters";
                return -1;
            }
            *out = decoded;
            return 0;
        }
        q = amp + 1;
    }
    return 0;
}

int api_query_string(http_request_t *r, const char *name, size_t max_len, const char **out)
{
    const char *why;
    if (api_query_lookup(r, name, max_len, out, &why) == 0)
        return 0;
    if (strcmp(why, "is too long") == 0)
        http_reply_invalid(r, name, "%s must be at most %zu bytes", name, max_len);
    else
        http_reply_invalid(r, name, "%s %s", name, why);
    return -1;
}

/* Parses a decimal integer that is the whole of s. */
static int api_parse_i64(const char *s, int64_t *out)
{
    if (*s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int api_query_int(http_request_t *r, const char *name, int64_t dflt, int64_t min, int64_t max, int clamp_max,
                  int64_t *out)
{
    const char *s;
    *out = dflt;
    if (api_query_string(r, name, 32, &s) != 0)
        return -1;
    if (s == NULL || *s == '\0')
        return 0;
    int64_t v;
    if (api_parse_i64(s, &v) != 0 || v < min || (v > max && !clamp_max)) {
        http_reply_invalid(r, name, "%s must be an integer from %" PRId64 " to %" PRId64, name, min, max);
        return -1;
    }
    *out = v > max ? max : v;
    return 0;
}

int api_query_enum(http_request_t *r, const char *name, const char *const *choices, const char *dflt, const char **out)
{
    const char *s;
    *out = dflt;
    if (api_query_string(r, name, 64, &s) != 0)
        return -1;
    if (s == NULL || *s == '\0')
        return 0;
    for (size_t i = 0; choices[i] != NULL; ++i)
        if (strcmp(s, choices[i]) == 0) {
            *out = choices[i];
            return 0;
        }
    api_reply_choices(r, name, choices);
    return -1;
}

int api_param_id(http_request_t *r, const char *name, int64_t *out)
{
    h2o_iovec_t v = http_params_get(&r->params, name);
    int64_t id = 0;
    int ok = v.len > 0 && v.len <= 18;
    for (size_t i = 0; ok && i != v.len; ++i) {
        ok = v.base[i] >= '0' && v.base[i] <= '9';
        id = id * 10 + (v.base[i] - '0');
    }
    if (!ok || id < 1) {
        http_reply_invalid(r, name, "%s must be a positive integer id", name);
        return -1;
    }
    *out = id;
    return 0;
}

const char *api_i64(http_request_t *r, int64_t v)
{
    char *s = h2o_mem_alloc_pool(&r->req->pool, 24);
    util_fmt_t f = util_fmt_on(s, 24);
    util_fmt_i64(&f, v);
    return s;
}
