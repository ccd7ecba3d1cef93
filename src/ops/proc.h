/*
 * proc.h - figures about this process read from /proc and the cgroup: resident
 * memory, the memory limit it is held to, file descriptors and CPU time.
 *
 * proc_init() must run once at start-up (it fixes the start time and reads the
 * memory limit, which does not change while we run); proc_stats() may then be
 * called from any thread.
 */
#ifndef CONVERSA_OPS_PROC_H
#define CONVERSA_OPS_PROC_H

#include <stdint.h>

typedef struct proc_stats {
    uint64_t rss_bytes;
    uint64_t vsize_bytes;
    uint64_t memory_limit_bytes;
    double start_time_s;
    double cpu_seconds;
    unsigned open_fds;
    unsigned max_fds;
} proc_stats_t;

/** Records the start time and the memory limit: the least of the cgroup's, limit_mb (when non-zero) and RAM. */
void proc_init(unsigned limit_mb);

/** Fills out with current figures. Cheap enough for every health probe (two small reads). */
void proc_stats(proc_stats_t *out);

/** Resident set size in bytes (one read of /proc/self/statm). */
uint64_t proc_rss_bytes(void);

/** The memory limit fixed by proc_init(). */
uint64_t proc_memory_limit(void);

/** Seconds since proc_init(). */
double proc_uptime_s(void);

#endif
