/*
 * client.h - an asynchronous HTTP client on an h2o event loop (libcurl's multi
 * interface underneath).
 *
 * One client per loop thread. curl owns its sockets; we watch a dup() of each one
 * through an h2o socket (as cache/redis.c does for hiredis), and curl's timers run on
 * a loop timer, so requests never block the loop. Connections are kept alive and
 * reused, up to max_connections at once; requests beyond that wait inside curl.
 *
 * Ownership: everything passed to http_client_post() is copied. The callback runs
 * exactly once per request, on the loop thread: with the response, or with an error
 * (connect or total timeout, connection refused, "shutting down" when the client is
 * freed first). The response body is valid only during the callback.
 */
#ifndef CONVERSA_HTTP_CLIENT_H
#define CONVERSA_HTTP_CLIENT_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http_client http_client_t;

typedef struct http_client_config {
    unsigned connect_timeout_ms;
    unsigned timeout_ms; /* the whole request */
    unsigned max_connections;
} http_client_config_t;

typedef struct http_client_response {
    long status;       /* 0 when no response came (then error says why) */
    const char *error; /* NULL when a response came, whatever its status */
    const char *body;  /* NUL-terminated */
    size_t len;
    uint64_t rtt_ns;
} http_client_response_t;

typedef void (*http_client_cb)(void *data, const http_client_response_t *res);

/** libcurl's process-wide set-up, once; for any other code that uses libcurl directly. */
void http_client_global_init(void);

/** A client on loop. */
http_client_t *http_client_new(h2o_loop_t *loop, const http_client_config_t *cfg);

/** Fails the requests in flight ("shutting down") and frees. On the loop thread. */
void http_client_free(http_client_t *c);

/** Requests in flight. */
size_t http_client_pending(const http_client_t *c);

/**
 * POSTs body to url with the given headers ("Name: value"). The callback may run
 * before this returns when curl refuses the request at once.
 */
void http_client_post(http_client_t *c, const char *url, const char *const *headers, size_t nheaders, const void *body,
                      size_t len, http_client_cb cb, void *data);

#endif
