/*
 * input.h - reading what a client sent: JSON bodies, query strings, path parameters.
 *
 * Every reader validates as it reads. On bad input it replies 400 with the field's
 * name (http_reply_invalid) and returns -1; the handler then simply returns. Strings
 * handed out live in the request's pool. Nothing here trusts a length, a type or an
 * encoding it was not shown: JSON must be an object of known fields, text must be
 * UTF-8 within its limits, numbers must be integers within their ranges.
 */
#ifndef CONVERSA_API_INPUT_H
#define CONVERSA_API_INPUT_H

#include <jansson.h>
#include <stdint.h>

#include "http/server.h"

/** Maximum nesting of request JSON; deeper is refused before it is built. */
#define API_JSON_MAX_DEPTH 16

/** Whether JSON text nests no deeper than API_JSON_MAX_DEPTH; checked before anything is built. */
int api_json_depth_ok(const char *s, size_t n);

/**
 * Parses the body as a JSON object whose keys are all in `allowed` (NULL-terminated).
 * Returns the object (caller decrefs) or NULL after replying 400.
 */
json_t *api_body_object(http_request_t *r, const char *const *allowed);

/**
 * A string member: absent → 0 with *out NULL (or 400 when required); wrong type, not
 * UTF-8, or outside [min_len, max_len] characters → 400. Returns 0 or -1.
 */
int api_json_string(http_request_t *r, json_t *obj, const char *name, int required, size_t min_len, size_t max_len,
                    const char **out);

/** A member that must be null or an integer in [min, max]; *present says whether it was given. */
int api_json_nullable_id(http_request_t *r, json_t *obj, const char *name, int64_t *out, int *is_null, int *present);

/** A member that must be a boolean. */
int api_json_bool(http_request_t *r, json_t *obj, const char *name, int required, int *out, int *present);

/** A member that must be one of `choices` (NULL-terminated); *out points into choices. */
int api_json_enum(http_request_t *r, json_t *obj, const char *name, int required, const char *const *choices,
                  const char **out);

/**
 * The decoded value of query parameter `name` into *out (NULL when absent), without
 * replying: -1 with *why (static text) when it is malformed, longer than max_len or
 * not UTF-8.
 */
int api_query_lookup(http_request_t *r, const char *name, size_t max_len, const char **out, const char **why);

/**
 * A query parameter, percent-decoded, as a NUL-terminated string in the pool; NULL
 * when absent. Returns 0, or -1 after replying 400 when it is longer than max_len
 * bytes or not valid UTF-8.
 */
int api_query_string(http_request_t *r, const char *name, size_t max_len, const char **out);

/** An integer query parameter in [min, max]; absent gives dflt; clamp_max clamps instead of refusing. */
int api_query_int(http_request_t *r, const char *name, int64_t dflt, int64_t min, int64_t max, int clamp_max,
                  int64_t *out);

/** A query parameter that must be one of `choices` (or absent: *out = dflt). */
int api_query_enum(http_request_t *r, const char *name, const char *const *choices, const char *dflt, const char **out);

/** A path parameter that must be a positive integer id; anything else is 400. */
int api_param_id(http_request_t *r, const char *name, int64_t *out);

/** Whether s is valid UTF-8 (no overlongs, no surrogates) of n bytes; counts code points in *chars. */
int api_utf8_valid(const char *s, size_t n, size_t *chars);

/**
 * The length of the longest start of UTF-8 text s (NUL-terminated) of at most max
 * bytes that does not cut a character: for quoting a client's text, shortened, in an
 * error (a JSON body, which must stay UTF-8).
 */
size_t api_utf8_prefix(const char *s, size_t max);

/** Formats an int64 into the pool (for query parameters). */
const char *api_i64(http_request_t *r, int64_t v);

#endif
