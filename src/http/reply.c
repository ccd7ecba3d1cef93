#include "http/reply.h"
#include "core/log.h"
#include "core/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Set on first reply; http_request_t.replied guards against a second one. */
static void http_reply_start(http_request_t *r, int status, const char *content_type, size_t len)
{
    if (r->replied)
        util_fatal("request %s replied twice", r->id);
    r->replied = 1;
    h2o_req_t *req = r->req;
    req->res.status = status;
    req->res.reason = NULL;
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, r->id, strlen(r->id));
}

static const char *http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

void http_reply_iovec(http_request_t *r, int status, const char *content_type, h2o_iovec_t body)
{
    static h2o_generator_t generator = {NULL, NULL};
    switch (r->hold) {
    case HTTP_HOLD_RUNNING:
        r->held.status = status;
        r->held.content_type = content_type;
        r->held.body = body;
        r->hold = HTTP_HOLD_HELD;
        return;
    case HTTP_HOLD_HELD:
        util_fatal("request %s replied twice", r->id);
    case HTTP_HOLD_DROPPED:
        return;
    case HTTP_HOLD_NONE:
    case HTTP_HOLD_GATED:
        break;
    }
    http_reply_start(r, status, content_type, body.len);
    r->req->res.reason = http_reason(status);
    h2o_start_response(r->req, &generator);
    if (r->req->input.method.len == 4 && memcmp(r->req->input.method.base, "HEAD", 4) == 0)
        h2o_send(r->req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(r->req, &body, 1, H2O_SEND_STATE_FINAL);
}

void http_reply_copy(http_request_t *r, int status, const char *content_type, const char *body, size_t len)
{
    http_reply_iovec(r, status, content_type, h2o_strdup(&r->req->pool, body, len));
}

void http_reply_json(http_request_t *r, int status, const char *json, size_t len)
{
    http_reply_copy(r, status, "application/json", json, len);
}

const char *http_reply_code_for(int status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 408:
        return "request_timeout";
    case 409:
        return "conflict";
    case 413:
        return "payload_too_large";
    case 414:
        return "uri_too_long";
    case 415:
        return "unsupported_media_type";
    case 417:
        return "expectation_failed";
    case 422:
        return "unprocessable";
    case 429:
        return "rate_limited";
    case 431:
        return "headers_too_large";
    case 503:
        return "unavailable";
    case 504:
        return "timeout";
    default:
        return status >= 500 ? "internal" : "error";
    }
}

/* Builds the error body in the request's pool. */
static h2o_iovec_t http_error_body(h2o_mem_pool_t *pool, int status, const char *code, const char *msg,
                                   const char *field, const char *request_id)
{
    strbuf_t b;
    strbuf_init(&b);
    strbuf_printf(&b, "{\"error\":{\"status\":%d,\"code\":\"", status);
    strbuf_json_escape(&b, code, strlen(code));
    strbuf_puts(&b, "\",\"message\":\"");
    strbuf_json_escape(&b, msg, strlen(msg));
    if (field != NULL) {
        strbuf_puts(&b, "\",\"field\":\"");
        strbuf_json_escape(&b, field, strlen(field));
    }
    strbuf_puts(&b, "\"},\"request_id\":\"");
    strbuf_json_escape(&b, request_id, strlen(request_id));
    strbuf_puts(&b, "\"}\n");
    h2o_iovec_t out = h2o_strdup(pool, b.data, b.len);
    strbuf_free(&b);
    return out;
}

static void http_reply_verror(http_request_t *r, int status, const char *code, const char *field, const char *fmt,
                              va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (status >= 500)
        log_warn("http", "request %s: %d %s: %s", r->id, status, code, msg);
    http_reply_iovec(r, status, "application/json", http_error_body(&r->req->pool, status, code, msg, field, r->id));
}

void http_reply_error(http_request_t *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_reply_verror(r, status, code, NULL, fmt, ap);
    va_end(ap);
}

void http_reply_invalid(http_request_t *r, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_reply_verror(r, 400, "invalid", field, fmt, ap);
    va_end(ap);
}

void http_reply_header(http_request_t *r, const char *name, const char *value)
{
    h2o_req_t *req = r->req;
    size_t nlen = strlen(name);
    char *lname = h2o_mem_alloc_pool(&req->pool, nlen);
    for (size_t i = 0; i != nlen; ++i)
        lname[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    h2o_iovec_t v = h2o_strdup(&req->pool, value, strlen(value));
    h2o_add_header_by_str(&req->pool, &req->res.headers, lname, nlen, 0, NULL, v.base, v.len);
}

/* ---- the filter for h2o's own errors ---- */

typedef struct http_errfix {
    h2o_ostream_t super;
    h2o_iovec_t body;
} http_errfix_t;

static void http_errfix_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                             h2o_send_state_t state)
{
    (void)bufs;
    (void)bufcnt;
    http_errfix_t *e = (http_errfix_t *)self;
    if (state == H2O_SEND_STATE_IN_PROGRESS) {
        h2o_ostream_send_next(&e->super, req, NULL, 0, state);
        return;
    }
    int head = req->input.method.len == 4 && memcmp(req->input.method.base, "HEAD", 4) == 0;
    h2o_ostream_send_next(&e->super, req, &e->body, head ? 0 : 1, state);
}

/* h2o_send_error_generic() is the only source of text/plain errors: handlers send JSON. */
static int http_is_h2o_error(h2o_req_t *req)
{
    if (req->res.status < 400)
        return 0;
    ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    return i >= 0 && h2o_memis(req->res.headers.entries[i].value.base, req->res.headers.entries[i].value.len,
                               H2O_STRLIT("text/plain; charset=utf-8"));
}

extern void http_server_note_h2o_error(h2o_req_t *req, char *id, size_t id_cap);

static void http_errfix_setup(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    if (http_is_h2o_error(req)) {
        char id[40];
        http_server_note_h2o_error(req, id, sizeof(id));
        int status = req->res.status;
        const char *msg = status == 413   ? "request body is too large"
                          : status == 404 ? "no such file"
                                          : "the request could not be read";
        http_errfix_t *e = (http_errfix_t *)h2o_add_ostream(req, sizeof(*e), slot);
        e->super.do_send = http_errfix_send;
        e->body = http_error_body(&req->pool, status, http_reply_code_for(status), msg, NULL, id);
        req->res.content_length = e->body.len;
        memset(&req->res.headers, 0, sizeof(req->res.headers));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
        h2o_iovec_t idv = h2o_strdup(&req->pool, id, strlen(id));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, idv.base, idv.len);
        slot = &e->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

void http_reply_install_filter(h2o_pathconf_t *pathconf)
{
    h2o_filter_t *f = h2o_create_filter(pathconf, sizeof(*f));
    f->on_setup_ostream = http_errfix_setup;
}
