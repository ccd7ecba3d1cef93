#define _GNU_SOURCE /* pthread_setname_np */
#include "core/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t util_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t util_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void util_thread_name(const char *fmt, ...)
{
    char name[16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    pthread_setname_np(pthread_self(), name);
}

void util_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

void *util_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        util_fatal("out of memory (%zu bytes)", n);
    return p;
}

void *util_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (p == NULL)
        util_fatal("out of memory (%zu x %zu bytes)", count, n);
    return p;
}

void *util_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        util_fatal("out of memory (%zu bytes)", n);
    return q;
}

char *util_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(util_malloc(n), s, n);
}

uint64_t util_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i != n; ++i)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

void strbuf_init(strbuf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void strbuf_reserve(strbuf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = util_realloc(b->data, cap);
    b->cap = cap;
}

void strbuf_append(strbuf_t *b, const void *p, size_t n)
{
    strbuf_reserve(b, n);
    if (n != 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void strbuf_puts(strbuf_t *b, const char *s)
{
    strbuf_append(b, s, strlen(s));
}

void strbuf_vprintf(strbuf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    strbuf_reserve(b, 128);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        util_fatal("vsnprintf failed for format %s", fmt);
    }
    if ((size_t)n >= b->cap - b->len) {
        strbuf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
    }
    va_end(ap2);
    b->len += (size_t)n;
}

void strbuf_printf(strbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(b, fmt, ap);
    va_end(ap);
}

void strbuf_json_escape(strbuf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    strbuf_reserve(b, n);
    for (size_t i = 0; i != n; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            strbuf_append(b, e, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            strbuf_append(b, e, 6);
        } else {
            strbuf_append(b, &s[i], 1);
        }
    }
}

void strbuf_reset(strbuf_t *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void strbuf_free(strbuf_t *b)
{
    free(b->data);
    strbuf_init(b);
}

util_fmt_t util_fmt_on(char *buf, size_t cap)
{
    buf[0] = '\0';
    return (util_fmt_t){.buf = buf, .cap = cap, .len = 0, .full = 0};
}

void util_fmt_mem(util_fmt_t *f, const void *p, size_t n)
{
    if (f->full || n >= f->cap - f->len) {
        f->full = 1;
        return;
    }
    memcpy(f->buf + f->len, p, n);
    f->len += n;
    f->buf[f->len] = '\0';
}

void util_fmt_str(util_fmt_t *f, const char *s)
{
    util_fmt_mem(f, s, strlen(s));
}

void util_fmt_u64(util_fmt_t *f, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);
    do
        tmp[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    util_fmt_mem(f, tmp + i, sizeof(tmp) - i);
}

void util_fmt_i64(util_fmt_t *f, int64_t v)
{
    if (v < 0) {
        util_fmt_mem(f, "-", 1);
        util_fmt_u64(f, (uint64_t)0 - (uint64_t)v); /* well defined for INT64_MIN too */
    } else {
        util_fmt_u64(f, (uint64_t)v);
    }
}

void util_fmt_hex(util_fmt_t *f, uint64_t v, unsigned width)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t i = sizeof(tmp);
    if (width > sizeof(tmp))
        width = sizeof(tmp);
    do
        tmp[--i] = digits[v & 15];
    while ((v >>= 4) != 0);
    while (sizeof(tmp) - i < width)
        tmp[--i] = '0';
    util_fmt_mem(f, tmp + i, sizeof(tmp) - i);
}
