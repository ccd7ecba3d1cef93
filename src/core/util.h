/*
 * util.h - small helpers shared by every module: clocks, fatal errors, string building.
 *
 * Contract: nothing here allocates except strbuf_*, whose buffer the caller owns and
 * frees with strbuf_free(). fatal() is for broken invariants only; it never returns.
 */
#ifndef CONVERSA_CORE_UTIL_H
#define CONVERSA_CORE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define UTIL_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define UTIL_MIN(a, b)     ((a) < (b) ? (a) : (b))

#define util_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/** Monotonic clock in nanoseconds. */
uint64_t util_now_ns(void);

/** Wall clock in nanoseconds since the epoch. */
uint64_t util_wall_ns(void);

/**
 * Names the calling thread (what top -H, ps -T and perf show), printf-style; cut to
 * the kernel's 15 characters.
 */
__attribute__((format(printf, 1, 2))) void util_thread_name(const char *fmt, ...);

/** Prints "fatal: <message>" and aborts. For broken invariants, never for bad input. */
__attribute__((noreturn, format(printf, 1, 2))) void util_fatal(const char *fmt, ...);

/** malloc/calloc/realloc that call util_fatal() when memory is exhausted. */
void *util_malloc(size_t n);
void *util_calloc(size_t count, size_t n);
void *util_realloc(void *p, size_t n);
char *util_strdup(const char *s);

/** FNV-1a of n bytes: a fast, well-spread hash for in-memory tables (not keyed). */
uint64_t util_hash(const void *p, size_t n);

/**
 * A growable byte buffer. Always NUL-terminated after any append so it can be used
 * as a C string; len excludes the terminator.
 */
typedef struct strbuf {
    char *data;
    size_t len;
    size_t cap;
} strbuf_t;

void strbuf_init(strbuf_t *b);
void strbuf_reserve(strbuf_t *b, size_t extra);
void strbuf_append(strbuf_t *b, const void *p, size_t n);
void strbuf_puts(strbuf_t *b, const char *s);
__attribute__((format(printf, 2, 3))) void strbuf_printf(strbuf_t *b, const char *fmt, ...);
void strbuf_vprintf(strbuf_t *b, const char *fmt, va_list ap);
/** Appends s as the inside of a JSON string (without quotes), escaping as RFC 8259 asks. */
void strbuf_json_escape(strbuf_t *b, const char *s, size_t n);
void strbuf_reset(strbuf_t *b);
void strbuf_free(strbuf_t *b);

/**
 * Text built on the caller's fixed buffer, for the paths every request takes, where
 * snprintf's parsing of its format costs more than the text it writes. An append that
 * does not fit writes nothing and sets full; the text is always NUL-terminated
 * (cap >= 1), so a full result is a shorter string, never an overflow.
 */
typedef struct util_fmt {
    char *buf;
    size_t cap, len;
    int full;
} util_fmt_t;

/** Starts an empty text on buf (cap >= 1 bytes). */
util_fmt_t util_fmt_on(char *buf, size_t cap);
void util_fmt_mem(util_fmt_t *f, const void *p, size_t n);
void util_fmt_str(util_fmt_t *f, const char *s);
/** Appends a string literal, its length counted by the compiler. */
#define util_fmt_lit(f, lit) util_fmt_mem((f), "" lit, sizeof(lit) - 1)
/** Decimal. */
void util_fmt_i64(util_fmt_t *f, int64_t v);
void util_fmt_u64(util_fmt_t *f, uint64_t v);
/** Lower-case hexadecimal, zero-padded to at least width digits (width <= 16). */
void util_fmt_hex(util_fmt_t *f, uint64_t v, unsigned width);

#endif
