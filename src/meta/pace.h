/*
 * pace.h - sending at Meta's pace: token buckets in Redis, shared by every worker and
 * every process.
 *
 * Per connection, a bucket refilled at the number's messages_per_second with a burst
 * of 1/20 s worth (so no one-second window sees much more than the rate); per
 * recipient, Meta's pair limit: one message every META_PAIR_INTERVAL_MS with a burst
 * of META_PAIR_BURST. One Lua script (loaded once, called by SHA) checks and takes
 * both for a whole batch in one round trip, with Redis's clock, so processes on
 * different machines agree.
 *
 * When Meta answers 130429 (or 131056 for a pair), meta_pace_penalize() puts the
 * bucket into debt (META_PENALTY_MS worth of sends, at most once per that window), so
 * every sender slows down instead of hammering.
 *
 * Redis unavailable: connection buckets fall back to this process's own (same rate,
 * no pair limit); several processes may then exceed the rate together, and Meta's
 * 130429 answers slow them down.
 */
#ifndef CONVERSA_META_PACE_H
#define CONVERSA_META_PACE_H

#include <stddef.h>
#include <stdint.h>

#include "cache/redis.h"

#define META_PAIR_INTERVAL_MS 6000
#define META_PAIR_BURST       5
#define META_PENALTY_MS       250

typedef struct meta_pace meta_pace_t;

/**
 * waits[i] is 0 when send i was granted (its tokens are taken), else how many ms to
 * wait before asking again. Valid during the callback only.
 */
typedef void (*meta_pace_cb)(void *data, const int64_t *waits, size_t n);

/** Pacing through redis (one per loop thread). */
meta_pace_t *meta_pace_new(redis_client_t *redis);

/** Fails nothing: commands in flight still call back. Call after the redis client is freed, or before it with none
 * pending. */
void meta_pace_free(meta_pace_t *p);

/** Asks for n sends on connection conn (rate per second), to the recipients to[i]. */
void meta_pace_take(meta_pace_t *p, int64_t conn, unsigned rate, const char *const *to, size_t n, meta_pace_cb cb,
                    void *data);

/** Meta said slow down: the connection's bucket (to NULL) or the pair's goes into debt. Fire and forget. */
void meta_pace_penalize(meta_pace_t *p, int64_t conn, unsigned rate, const char *to);

#endif
