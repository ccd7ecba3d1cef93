/*
 * log.h - structured logging: one JSON object per line on stderr.
 *
 * Every line carries ts, level, module and msg. Ordinary messages are written at once
 * with a single write(2) so lines from several threads never interleave. Access-log
 * lines are hot (one per request): they are appended to a per-thread buffer that the
 * owning thread flushes when it is full, on a timer (log_flush()) and before exit.
 */
#ifndef CONVERSA_CORE_LOG_H
#define CONVERSA_CORE_LOG_H

#include <stddef.h>

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF } log_level_t;

/** Sets the threshold below which messages are dropped. */
void log_set_level(log_level_t level);

/** The current threshold. */
log_level_t log_get_level(void);

/** Parses "debug", "info", "warn", "error", "off"; returns -1 when unknown. */
int log_parse_level(const char *s);

/** Formats and writes one line when level passes the threshold. */
__attribute__((format(printf, 3, 4))) void log_write(log_level_t level, const char *module, const char *fmt, ...);

#define log_debug(mod, ...)                                                                                            \
    do {                                                                                                               \
        if (log_get_level() <= LOG_DEBUG)                                                                              \
            log_write(LOG_DEBUG, mod, __VA_ARGS__);                                                                    \
    } while (0)
#define log_info(mod, ...)  log_write(LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...)  log_write(LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_write(LOG_ERROR, mod, __VA_ARGS__)

/** Enables or disables the access log (on by default). */
void log_set_access(int enabled);

/** Whether access lines are being written. */
int log_access_enabled(void);

/**
 * Appends one access line to the calling thread's buffer. Strings are escaped here;
 * the caller passes raw bytes with their lengths.
 */
void log_access(const char *method, size_t method_len, const char *route, int status, double duration_ms,
                unsigned long long bytes, const char *request_id);

/** Writes out the calling thread's buffered access lines. */
void log_flush(void);

/** Flushes and releases the calling thread's buffer; call before a thread exits. */
void log_thread_done(void);

#endif
