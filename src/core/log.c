#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_ACCESS_FLUSH_AT (32 * 1024)

static volatile log_level_t log_threshold = LOG_INFO;
static volatile int log_access_on = 1;
static const char *const log_level_names[] = {"debug", "info", "warn", "error", "off"};

static __thread strbuf_t log_access_buf;

void log_set_level(log_level_t level)
{
    log_threshold = level;
}

log_level_t log_get_level(void)
{
    return log_threshold;
}

int log_parse_level(const char *s)
{
    for (size_t i = 0; i != UTIL_ARRAY_SIZE(log_level_names); ++i)
        if (strcmp(s, log_level_names[i]) == 0)
            return (int)i;
    return -1;
}

void log_set_access(int enabled)
{
    log_access_on = enabled;
}

int log_access_enabled(void)
{
    return log_access_on;
}

/* Writes all of buf, retrying on short writes; logging never fails the caller. */
static void log_write_all(const char *p, size_t n)
{
    while (n != 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void log_timestamp(strbuf_t *b)
{
    uint64_t ns = util_wall_ns();
    time_t secs = (time_t)(ns / 1000000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[32];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    strbuf_printf(b, "{\"ts\":\"%s.%03uZ\"", ts, (unsigned)(ns / 1000000u % 1000u));
}

void log_write(log_level_t level, const char *module, const char *fmt, ...)
{
    if (level < log_threshold || level >= LOG_OFF)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(msg))
        n = sizeof(msg) - 1;

    strbuf_t b;
    strbuf_init(&b);
    log_timestamp(&b);
    strbuf_printf(&b, ",\"level\":\"%s\",\"module\":\"%s\",\"msg\":\"", log_level_names[level], module);
    strbuf_json_escape(&b, msg, (size_t)n);
    strbuf_puts(&b, "\"}\n");
    log_flush();
    log_write_all(b.data, b.len);
    strbuf_free(&b);
}

void log_access(const char *method, size_t method_len, const char *route, int status, double duration_ms,
                unsigned long long bytes, const char *request_id)
{
    if (!log_access_on || log_threshold > LOG_INFO)
        return;
    strbuf_t *b = &log_access_buf;
    log_timestamp(b);
    strbuf_puts(b, ",\"level\":\"info\",\"module\":\"http\",\"msg\":\"access\",\"method\":\"");
    strbuf_json_escape(b, method, method_len);
    strbuf_puts(b, "\",\"route\":\"");
    strbuf_json_escape(b, route, strlen(route));
    strbuf_printf(b, "\",\"status\":%d,\"duration_ms\":%.3f,\"bytes\":%llu,\"request_id\":\"%s\"}\n", status,
                  duration_ms, bytes, request_id);
    if (b->len >= LOG_ACCESS_FLUSH_AT)
        log_flush();
}

void log_flush(void)
{
    strbuf_t *b = &log_access_buf;
    if (b->len == 0)
        return;
    log_write_all(b->data, b->len);
    strbuf_reset(b);
}

void log_thread_done(void)
{
    log_flush();
    strbuf_free(&log_access_buf);
}
