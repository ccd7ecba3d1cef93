/*
 * reply.h - the one way a response leaves conversa.
 *
 * Every error, from any layer, is
 *     {"error":{"status":404,"code":"not_found","message":"…"},"request_id":"…"}
 * with the HTTP status equal to error.status; errors about one input field (400,
 * code "invalid") add "field":"name". Errors h2o produces on its own (a body
 * over MAX_BODY_BYTES, broken chunked encoding) are rewritten into the same shape by
 * the filter installed with http_reply_install_filter().
 *
 * A request is replied to exactly once; a second reply is a bug and aborts.
 */
#ifndef CONVERSA_HTTP_REPLY_H
#define CONVERSA_HTTP_REPLY_H

#include <h2o.h>

#include "http/server.h"

/**
 * Sends body as is; `body` and `content_type` must stay valid until the response is
 * finished (static, or request pool). A read's answer may be held until its rate
 * limit's verdict, or dropped when the read was refused (see http_hold_t).
 */
void http_reply_iovec(http_request_t *r, int status, const char *content_type, h2o_iovec_t body);

/** Sends a copy of body (into the request's pool). */
void http_reply_copy(http_request_t *r, int status, const char *content_type, const char *body, size_t len);

/** Sends a JSON body (copied). */
void http_reply_json(http_request_t *r, int status, const char *json, size_t len);

/** Sends the error shape above; message is printf-formatted and JSON-escaped here. */
__attribute__((format(printf, 4, 5))) void http_reply_error(http_request_t *r, int status, const char *code,
                                                            const char *fmt, ...);

/** Replies 400 {"error":{"code":"invalid","field":field,…}}; field names the offending input. */
__attribute__((format(printf, 3, 4))) void http_reply_invalid(http_request_t *r, const char *field, const char *fmt,
                                                              ...);

/** Adds a response header (name and value copied into the request's pool). */
void http_reply_header(http_request_t *r, const char *name, const char *value);

/** The stable error code used for a status when none is more specific. */
const char *http_reply_code_for(int status);

/** Installs the filter that rewrites h2o's own plain-text errors into the JSON shape. */
void http_reply_install_filter(h2o_pathconf_t *pathconf);

#endif
