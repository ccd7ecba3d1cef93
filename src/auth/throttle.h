/*
 * throttle.h - fixed-window attempt counters, in process, for login throttling.
 *
 * Keys are short strings ("email:ana@x", "ip:10.0.0.1"). A key allows `limit`
 * attempts per `window_s` seconds; throttle_hit() counts one and says how long to wait
 * when over. Thread-safe (one mutex; logins are rare next to reads). The table is
 * bounded: when full, the oldest windows are forgotten first, so memory does not grow
 * with the number of keys an attacker can invent.
 */
#ifndef CONVERSA_AUTH_THROTTLE_H
#define CONVERSA_AUTH_THROTTLE_H

#include <stddef.h>

/** Counts an attempt for key; returns 0 when allowed, else the seconds until the window ends. */
unsigned throttle_hit(const char *key, size_t len, unsigned limit, unsigned window_s);

/** Forgets every counter (tests, and a restart of the limiter). */
void throttle_reset(void);

#endif
