/*
 * router.h - a static route table of method + path template.
 *
 * Templates are literal segments and ":name" parameters ("/api/webhooks/meta/:slug").
 * A parameter matches one non-empty segment. Matching is exact: no trailing-slash
 * folding, no prefixes. The table is walked in order; it is small and fixed at build
 * time, so a linear scan with segment compares beats anything fancier here.
 */
#ifndef CONVERSA_HTTP_ROUTER_H
#define CONVERSA_HTTP_ROUTER_H

#include <h2o.h>
#include <stddef.h>

#define HTTP_MAX_PARAMS 4

struct http_request;

typedef void (*http_handler_fn)(struct http_request *r);

/* Who may call a route. */
enum {
    HTTP_PUBLIC = 0, /* anyone */
    HTTP_AUTH = 1,   /* a valid bearer token; r->auth says whose */
    HTTP_ADMIN = 2,  /* a valid bearer token of an admin */
};

/* Which rate limit a route's requests without a valid token count against. */
enum {
    HTTP_LIMIT_PUBLIC = 0,  /* the public group, per client address */
    HTTP_LIMIT_WEBHOOK = 1, /* Meta's deliveries: the webhooks group */
    HTTP_LIMIT_SCRAPE = 2,  /* the public group, except for RATE_LIMIT_EXEMPT monitors (scrapes, liveness probes) */
};

typedef struct http_route {
    const char *method;
    const char *path;
    http_handler_fn handler;
    int access;
    int limit;
} http_route_t;

typedef struct http_params {
    size_t count;
    struct {
        const char *name; /* points into the template, not NUL-terminated at the colon's end */
        size_t name_len;
        h2o_iovec_t value; /* points into the request path */
    } items[HTTP_MAX_PARAMS];
} http_params_t;

enum { HTTP_ROUTE_NOT_FOUND = -1, HTTP_ROUTE_BAD_METHOD = -2 };

/**
 * Finds the route for method and path (the path without its query). Returns its index,
 * HTTP_ROUTE_NOT_FOUND, or HTTP_ROUTE_BAD_METHOD when the path exists under other
 * methods; then `allow` (if given) lists them ("GET, POST") in at most allow_cap bytes.
 */
int http_router_match(const http_route_t *routes, size_t nroutes, h2o_iovec_t method, h2o_iovec_t path,
                      http_params_t *params, char *allow, size_t allow_cap);

/** Checks a table at start-up: templates well formed, no duplicates. Returns 0 or -1 after logging. */
int http_router_validate(const http_route_t *routes, size_t nroutes);

/** The value of parameter `name`, or an empty iovec when absent. */
h2o_iovec_t http_params_get(const http_params_t *params, const char *name);

#endif
