#include "http/router.h"
#include "core/log.h"

#include <string.h>

/*
 * Matches one template against a path, filling params. Both are walked segment by
 * segment; a template segment ":x" takes the whole path segment.
 */
static int http_router_match_path(const char *tmpl, h2o_iovec_t path, http_params_t *params)
{
    const char *p = path.base, *pend = path.base + path.len;
    const char *t = tmpl;
    params->count = 0;
    while (*t != '\0') {
        if (p == pend || *p != '/' || *t != '/')
            return 0;
        ++p;
        ++t;
        const char *tseg_end = strchr(t, '/');
        if (tseg_end == NULL)
            tseg_end = t + strlen(t);
        const char *pseg_end = memchr(p, '/', (size_t)(pend - p));
        if (pseg_end == NULL)
            pseg_end = pend;
        size_t plen = (size_t)(pseg_end - p), tlen = (size_t)(tseg_end - t);
        if (*t == ':') {
            if (plen == 0 || params->count == HTTP_MAX_PARAMS)
                return 0;
            params->items[params->count].name = t + 1;
            params->items[params->count].name_len = tlen - 1;
            params->items[params->count].value = h2o_iovec_init(p, plen);
            ++params->count;
        } else if (plen != tlen || memcmp(p, t, tlen) != 0) {
            return 0;
        }
        p = pseg_end;
        t = tseg_end;
    }
    return p == pend;
}

int http_router_match(const http_route_t *routes, size_t nroutes, h2o_iovec_t method, h2o_iovec_t path,
                      http_params_t *params, char *allow, size_t allow_cap)
{
    int path_seen = 0;
    size_t allow_len = 0;
    if (allow != NULL && allow_cap != 0)
        allow[0] = '\0';
    for (size_t i = 0; i != nroutes; ++i) {
        if (!http_router_match_path(routes[i].path, path, params))
            continue;
        size_t mlen = strlen(routes[i].method);
        int head_ok = method.len == 4 && memcmp(method.base, "HEAD", 4) == 0 && strcmp(routes[i].method, "GET") == 0;
        if ((mlen == method.len && memcmp(routes[i].method, method.base, mlen) == 0) || head_ok)
            return (int)i;
        path_seen = 1;
        if (allow != NULL && allow_len + mlen + 3 < allow_cap) {
            if (allow_len != 0) {
                memcpy(allow + allow_len, ", ", 2);
                allow_len += 2;
            }
            memcpy(allow + allow_len, routes[i].method, mlen);
            allow_len += mlen;
            allow[allow_len] = '\0';
        }
    }
    params->count = 0;
    return path_seen ? HTTP_ROUTE_BAD_METHOD : HTTP_ROUTE_NOT_FOUND;
}

int http_router_validate(const http_route_t *routes, size_t nroutes)
{
    for (size_t i = 0; i != nroutes; ++i) {
        const char *p = routes[i].path;
        if (p[0] != '/' || strstr(p, "//") != NULL || strstr(p, "/:/") != NULL ||
            (strlen(p) > 1 && p[strlen(p) - 1] == '/')) {
            log_error("http", "route %s %s: malformed template", routes[i].method, p);
            return -1;
        }
        for (size_t j = 0; j != i; ++j)
            if (strcmp(routes[i].method, routes[j].method) == 0 && strcmp(routes[i].path, routes[j].path) == 0) {
                log_error("http", "route %s %s: listed twice", routes[i].method, p);
                return -1;
            }
    }
    return 0;
}

h2o_iovec_t http_params_get(const http_params_t *params, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i != params->count; ++i)
        if (params->items[i].name_len == n && memcmp(params->items[i].name, name, n) == 0)
            return params->items[i].value;
    return h2o_iovec_init(NULL, 0);
}
