/*
 * cidr.h - lists of IP networks ("10.0.0.0/8, ::1, 192.168.1.7"), for deciding whom to
 * trust (TRUSTED_PROXIES) or exempt (RATE_LIMIT_EXEMPT).
 *
 * Addresses are kept as 16 bytes: IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), so an
 * IPv4 network also matches a client that reached a dual-stack socket. A list is a
 * fixed array filled once at start-up and only read afterwards, so any thread may
 * match against it without a lock.
 */
#ifndef CONVERSA_CORE_CIDR_H
#define CONVERSA_CORE_CIDR_H

#include <stddef.h>
#include <stdint.h>

#define CIDR_MAX 64

typedef struct cidr_addr {
    uint8_t b[16];
} cidr_addr_t;

typedef struct cidr_list {
    size_t n;
    struct {
        cidr_addr_t net;
        unsigned bits; /* of the 128 */
    } items[CIDR_MAX];
} cidr_list_t;

/** Parses one address (IPv4 or IPv6, no brackets, no port); 0, or -1 when it is not one. */
int cidr_addr_parse(const char *s, size_t len, cidr_addr_t *out);

/** Writes the address as text ("10.1.2.3" for mapped IPv4) into out (at least 46 bytes). */
void cidr_addr_format(const cidr_addr_t *a, char *out, size_t cap);

/**
 * Parses a comma- or space-separated list of addresses and networks. An empty string
 * is an empty list. Returns 0, or -1 with *bad pointing at the offending item.
 */
int cidr_list_parse(const char *s, cidr_list_t *out, const char **bad);

/** Whether a is inside any network of the list. */
int cidr_list_match(const cidr_list_t *l, const cidr_addr_t *a);

#endif
