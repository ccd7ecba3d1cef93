#include "store/pgarray.h"

#include <string.h>

#define PG_ARRAY_HEADER 20 /* ndim, has-null flag, element type, length, lower bound */

static void pg_array_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

void pg_array_init(pg_array_t *a, uint32_t elem_oid)
{
    static const unsigned char zero[PG_ARRAY_HEADER];
    *a = (pg_array_t){.elem_oid = elem_oid};
    strbuf_init(&a->buf);
    strbuf_append(&a->buf, zero, sizeof(zero));
}

void pg_array_add(pg_array_t *a, const void *p, size_t len)
{
    unsigned char n[4];
    if (p == NULL) {
        pg_array_put32(n, UINT32_MAX); /* -1: NULL */
        a->has_null = 1;
        strbuf_append(&a->buf, n, 4);
    } else {
        if (len > INT32_MAX)
            util_fatal("pg_array_add: element of %zu bytes", len);
        pg_array_put32(n, (uint32_t)len);
        strbuf_append(&a->buf, n, 4);
        strbuf_append(&a->buf, p, len);
    }
    a->n++;
}

void pg_array_add_i64(pg_array_t *a, int64_t v)
{
    unsigned char b[8];
    uint64_t u = (uint64_t)v;
    pg_array_put32(b, (uint32_t)(u >> 32));
    pg_array_put32(b + 4, (uint32_t)u);
    pg_array_add(a, b, sizeof(b));
}

void pg_array_concat(pg_array_t *dst, const pg_array_t *src)
{
    if (dst->elem_oid != src->elem_oid)
        util_fatal("pg_array_concat: element types %u and %u", dst->elem_oid, src->elem_oid);
    strbuf_append(&dst->buf, src->buf.data + PG_ARRAY_HEADER, src->buf.len - PG_ARRAY_HEADER);
    dst->n += src->n;
    dst->has_null |= src->has_null;
}

pg_param_t pg_array_param(pg_array_t *a)
{
    unsigned char *h = (unsigned char *)a->buf.data;
    if (a->n == 0) {
        /* an empty array has no dimensions: 12 bytes of header */
        pg_array_put32(h, 0);
        pg_array_put32(h + 4, 0);
        pg_array_put32(h + 8, a->elem_oid);
        return (pg_param_t){a->buf.data, 12, 1};
    }
    pg_array_put32(h, 1);
    pg_array_put32(h + 4, a->has_null ? 1 : 0);
    pg_array_put32(h + 8, a->elem_oid);
    pg_array_put32(h + 12, a->n);
    pg_array_put32(h + 16, 1);
    return (pg_param_t){a->buf.data, a->buf.len, 1};
}

void pg_array_free(pg_array_t *a)
{
    strbuf_free(&a->buf);
}
