#include "ops/proc.h"
#include "core/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static uint64_t proc_limit;
static double proc_start_wall;
static uint64_t proc_start_mono;

/* Reads a small file into buf; returns bytes read or -1. */
static ssize_t proc_read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/* A limit file's value, or 0 when there is none ("max", absent, or absurdly large). */
static uint64_t proc_limit_file(const char *path)
{
    char buf[64];
    if (proc_read_file(path, buf, sizeof(buf)) <= 0 || strncmp(buf, "max", 3) == 0)
        return 0;
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    /* cgroup v1 reports "no limit" as a huge page-rounded number */
    return end != buf && v > 0 && v < (1ull << 60) ? v : 0;
}

/*
 * The tightest memory limit of the cgroups holding this process: under cgroup v2 our
 * own group is named in /proc/self/cgroup ("0::/system.slice/conversa.service") and
 * /sys/fs/cgroup is the whole hierarchy (a systemd unit's MemoryMax= is there), or
 * our group is the root of a namespace (a container); cgroup v1 last. 0: none.
 */
static uint64_t proc_cgroup_limit(void)
{
    uint64_t best = 0;
    char self[512], path[700];
    if (proc_read_file("/proc/self/cgroup", self, sizeof(self)) > 0) {
        char *line = strstr(self, "0::");
        if (line != NULL && (line == self || line[-1] == '\n')) {
            char *group = line + 3;
            group[strcspn(group, "\n")] = '\0';
            /* the group and each ancestor up to the root */
            for (;;) {
                snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.max", strcmp(group, "/") == 0 ? "" : group);
                uint64_t v = proc_limit_file(path);
                if (v != 0 && (best == 0 || v < best))
                    best = v;
                char *slash = strrchr(group, '/');
                if (slash == NULL || slash == group)
                    break;
                *slash = '\0';
            }
        }
    }
    static const char *const paths[] = {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (size_t i = 0; i != UTIL_ARRAY_SIZE(paths); ++i) {
        uint64_t v = proc_limit_file(paths[i]);
        if (v != 0 && (best == 0 || v < best))
            best = v;
    }
    return best;
}

void proc_init(unsigned limit_mb)
{
    proc_start_wall = (double)util_wall_ns() / 1e9;
    proc_start_mono = util_now_ns();
    uint64_t physical = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    /* the tightest of the three: an operator may hold the process below its cgroup */
    uint64_t cgroup = proc_cgroup_limit(), configured = (uint64_t)limit_mb * 1024 * 1024;
    proc_limit = physical;
    if (cgroup != 0 && cgroup < proc_limit)
        proc_limit = cgroup;
    if (configured != 0 && configured < proc_limit)
        proc_limit = configured;
}

uint64_t proc_memory_limit(void)
{
    return proc_limit;
}

double proc_uptime_s(void)
{
    return (double)(util_now_ns() - proc_start_mono) / 1e9;
}

uint64_t proc_rss_bytes(void)
{
    char buf[128];
    unsigned long long size = 0, resident = 0;
    if (proc_read_file("/proc/self/statm", buf, sizeof(buf)) <= 0 || sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

void proc_stats(proc_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    char buf[128];
    unsigned long long size = 0, resident = 0;
    long page = sysconf(_SC_PAGESIZE);
    if (proc_read_file("/proc/self/statm", buf, sizeof(buf)) > 0 && sscanf(buf, "%llu %llu", &size, &resident) == 2) {
        out->vsize_bytes = (uint64_t)size * (uint64_t)page;
        out->rss_bytes = (uint64_t)resident * (uint64_t)page;
    }
    out->memory_limit_bytes = proc_limit;
    out->start_time_s = proc_start_wall;
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    out->cpu_seconds = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                ++out->open_fds;
        closedir(d);
        if (out->open_fds > 0)
            --out->open_fds; /* the directory stream itself */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        out->max_fds = rl.rlim_cur == RLIM_INFINITY ? 0 : (unsigned)rl.rlim_cur;
}
