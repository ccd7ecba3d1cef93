#include "http/peer.h"
#include "core/config.h"

#include <netinet/in.h>
#include <string.h>

/* Trims spaces, "[v6]" brackets and an IPv4 ":port", then parses. */
static int http_peer_hop(const char *p, size_t len, cidr_addr_t *out)
{
    while (len != 0 && (*p == ' ' || *p == '\t'))
        ++p, --len;
    while (len != 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        --len;
    if (len != 0 && *p == '[') {
        const char *close = memchr(p, ']', len);
        if (close == NULL)
            return -1;
        return cidr_addr_parse(p + 1, (size_t)(close - p - 1), out);
    }
    const char *colon = memchr(p, ':', len);
    if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon - p) - 1) == NULL)
        len = (size_t)(colon - p); /* one colon: a.b.c.d:port */
    return cidr_addr_parse(p, len, out);
}

void http_peer_resolve(const cidr_addr_t *peer, const h2o_iovec_t *xff, size_t n, const cidr_list_t *trusted,
                       cidr_addr_t *out)
{
    *out = *peer;
    if (!cidr_list_match(trusted, peer))
        return;
    for (size_t h = n; h-- > 0;) {
        const char *base = xff[h].base;
        size_t end = xff[h].len;
        while (end != 0) {
            size_t start = end;
            while (start != 0 && base[start - 1] != ',')
                --start;
            cidr_addr_t hop;
            if (end > start && http_peer_hop(base + start, end - start, &hop) != 0)
                return;
            if (end > start) {
                *out = hop;
                if (!cidr_list_match(trusted, &hop))
                    return;
            }
            end = start != 0 ? start - 1 : 0;
        }
    }
}

void http_peer_of(h2o_req_t *req, cidr_addr_t *out)
{
    struct sockaddr_storage ss;
    cidr_addr_t peer;
    memset(&peer, 0, sizeof(peer));
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (len != 0 && ss.ss_family == AF_INET) {
        peer.b[10] = peer.b[11] = 0xff;
        memcpy(peer.b + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (len != 0 && ss.ss_family == AF_INET6) {
        memcpy(peer.b, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    }
    if (config.trusted_proxies.n == 0) {
        *out = peer;
        return;
    }
    h2o_iovec_t xff[8];
    size_t n = 0;
    ssize_t i = -1;
    while ((i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-forwarded-for"), i)) >= 0) {
        if (n == sizeof(xff) / sizeof(xff[0])) {
            memmove(xff, xff + 1, sizeof(xff) - sizeof(xff[0])); /* keep the right-most headers */
            --n;
        }
        xff[n++] = req->headers.entries[i].value;
    }
    http_peer_resolve(&peer, xff, n, &config.trusted_proxies, out);
}
