/*
 * peer.h - who the client is: the socket's peer, or the address a trusted proxy says
 * it forwarded for.
 *
 * X-Forwarded-For is believed only when the peer is in TRUSTED_PROXIES. Then its hops
 * are read from the right (the one our proxy appended) leftwards, skipping trusted
 * proxies; the first untrusted hop is the client. Anything to its left was written by
 * the client and is ignored, so a client cannot choose its own address. A hop that is
 * not an address stops the walk at the proxy that reported it.
 */
#ifndef CONVERSA_HTTP_PEER_H
#define CONVERSA_HTTP_PEER_H

#include <h2o.h>

#include "core/cidr.h"

/**
 * The client's address given the socket's peer, the X-Forwarded-For values in the
 * order received (n may be 0) and the trusted proxies.
 */
void http_peer_resolve(const cidr_addr_t *peer, const h2o_iovec_t *xff, size_t n, const cidr_list_t *trusted,
                       cidr_addr_t *out);

/** http_peer_resolve() for a request, with config.trusted_proxies. */
void http_peer_of(h2o_req_t *req, cidr_addr_t *out);

#endif
