/*
 * throttle.h - fixed-window request counters in process: the rate limiter's stand-in
 * while Redis is away, and login throttling.
 *
 * The semantics are those of the Redis limiter (http/ratelimit.h): a key's window
 * opens at its first request and lasts window_ms; the request that takes the count
 * past the limit blocks the key for block_ms. Keys are short strings ("e:ana@x",
 * "ip:10.0.0.1"). Thread-safe (one mutex: this runs only when Redis is down, or for
 * logins). The table is bounded: when full, the keys that reset soonest are forgotten
 * first, so memory does not grow with the number of keys an attacker can invent.
 */
#ifndef CONVERSA_CORE_THROTTLE_H
#define CONVERSA_CORE_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

/**
 * Counts one request for key under `limit` per window_ms, blocking block_ms (0: to
 * the window's end) once over. Returns the count in the current window (over limit:
 * refuse) and sets *ms_left to the milliseconds until the key resets.
 */
unsigned throttle_hit(const char *key, size_t len, unsigned limit, uint64_t window_ms, uint64_t block_ms,
                      uint64_t *ms_left);

/** Forgets every counter (tests, and a restart of the limiter). */
void throttle_reset(void);

#endif
