#include "core/cidr.h"
#include "core/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cidr_addr_parse(const char *s, size_t len, cidr_addr_t *out)
{
    char buf[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->b + 12) == 1) {
        out->b[10] = out->b[11] = 0xff;
        return 0;
    }
    return inet_pton(AF_INET6, buf, out->b) == 1 ? 0 : -1;
}

static int cidr_is_v4(const cidr_addr_t *a)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a->b, prefix, sizeof(prefix)) == 0;
}

void cidr_addr_format(const cidr_addr_t *a, char *out, size_t cap)
{
    if (cidr_is_v4(a)) {
        util_fmt_t f = util_fmt_on(out, cap); /* each request's address: no printf */
        for (int i = 12; i != 16; ++i) {
            if (i != 12)
                util_fmt_lit(&f, ".");
            util_fmt_u64(&f, a->b[i]);
        }
    } else if (inet_ntop(AF_INET6, a->b, out, (socklen_t)cap) == NULL)
        snprintf(out, cap, "?");
}

/* Clears the host bits, so "10.1.2.3/8" is kept as 10.0.0.0/8. */
static void cidr_mask(cidr_addr_t *a, unsigned bits)
{
    for (unsigned i = 0; i != 16; ++i) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
        a->b[i] &= (uint8_t)(0xff00u >> keep);
    }
}

int cidr_list_parse(const char *s, cidr_list_t *out, const char **bad)
{
    memset(out, 0, sizeof(*out));
    const char *p = s;
    for (;;) {
        p += strspn(p, ", \t");
        if (*p == '\0')
            return 0;
        size_t n = strcspn(p, ", \t");
        const char *slash = memchr(p, '/', n);
        size_t alen = slash != NULL ? (size_t)(slash - p) : n;
        cidr_addr_t a;
        unsigned bits = 128;
        if (out->n == CIDR_MAX || cidr_addr_parse(p, alen, &a) != 0)
            goto Bad;
        unsigned max = cidr_is_v4(&a) ? 32 : 128;
        if (slash != NULL) {
            size_t dl = n - alen - 1;
            char digits[4];
            if (dl == 0 || dl > 3 || strspn(slash + 1, "0123456789") < dl)
                goto Bad;
            memcpy(digits, slash + 1, dl);
            digits[dl] = '\0';
            unsigned v = (unsigned)strtoul(digits, NULL, 10);
            if (v > max)
                goto Bad;
            bits = max == 32 ? 96 + v : v;
        }
        cidr_mask(&a, bits);
        out->items[out->n].net = a;
        out->items[out->n].bits = bits;
        out->n++;
        p += n;
        continue;
    Bad:
        if (bad != NULL)
            *bad = p;
        return -1;
    }
}

int cidr_list_match(const cidr_list_t *l, const cidr_addr_t *a)
{
    for (size_t i = 0; i != l->n; ++i) {
        cidr_addr_t m = *a;
        cidr_mask(&m, l->items[i].bits);
        if (memcmp(m.b, l->items[i].net.b, 16) == 0)
            return 1;
    }
    return 0;
}
