/*
 * stall-probe - how long this machine keeps a waiting thread from running.
 *
 * usage: stall-probe [SECONDS]
 *
 * Sleeps 1 ms, again and again, for SECONDS (default: until SIGINT or SIGTERM), and
 * counts how much later than asked each sleep ended. It does no I/O and touches almost
 * no memory, so what it measures is only the wait for a CPU: on a machine with room to
 * spare its sleeps end within a fraction of a millisecond, and a late one means every
 * runnable thread of the machine waited as long. The benches run it next to a paced
 * load and print what it saw beside their latencies, so a p99 made by the machine can
 * be told from one made by the server.
 *
 * At the end, one line (milliseconds):
 *   STALLS samples=… over4=… over10=… p99=… max=… period=…
 * overN counts the sleeps that ended more than N ms late; period is the median time
 * between two stalls over 4 ms (0 with fewer than three): a platform task waking at a
 * fixed interval shows as a steady period.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROBE_MAX_SAMPLES (1u << 22) /* over an hour of 1 ms sleeps */
#define PROBE_MAX_GAPS    (1u << 16)

static volatile sig_atomic_t probe_stop;

static void probe_on_signal(int sig)
{
    (void)sig;
    probe_stop = 1;
}

static double probe_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int probe_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: stall-probe [SECONDS]\n\n"
               "Sleeps 1 ms in a loop for SECONDS (default: until SIGINT or SIGTERM) and prints\n"
               "STALLS samples=N over4=N over10=N p99=MS max=MS period=MS: how late the sleeps\n"
               "ended, the wait for a CPU this machine gives a thread (bench/webhooks.sh).\n");
        return 0;
    }
    double seconds = 0;
    if (argc > 2 || (argc == 2 && (seconds = strtod(argv[1], NULL)) <= 0)) {
        fprintf(stderr, "usage: stall-probe [SECONDS] (--help for more)\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = probe_on_signal; /* no SA_RESTART: a signal ends the sleep at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    double *late = malloc(sizeof(*late) * PROBE_MAX_SAMPLES);
    double *gaps = malloc(sizeof(*gaps) * PROBE_MAX_GAPS);
    if (late == NULL || gaps == NULL) {
        fprintf(stderr, "stall-probe: out of memory\n");
        return 1;
    }
    size_t n = 0, ngaps = 0, over4 = 0, over10 = 0;
    double start = probe_now_ms(), last_stall = 0;
    const struct timespec one_ms = {0, 1000000};
    while (!probe_stop && n < PROBE_MAX_SAMPLES && (seconds == 0 || probe_now_ms() - start < seconds * 1e3)) {
        double before = probe_now_ms();
        if (nanosleep(&one_ms, NULL) != 0 && errno == EINTR)
            break; /* cut short by the signal: not a measurement */
        double after = probe_now_ms(), d = after - before - 1.0;
        late[n++] = d > 0 ? d : 0;
        if (d > 4) {
            /* the gap since the last stall, unless within 50 ms of it (the same episode) */
            if (++over4 > 1 && after - last_stall > 50 && ngaps < PROBE_MAX_GAPS)
                gaps[ngaps++] = after - last_stall;
            last_stall = after;
        }
        if (d > 10)
            ++over10;
    }
    double p99 = 0, max = 0, period = 0;
    if (n > 0) {
        qsort(late, n, sizeof(*late), probe_cmp);
        p99 = late[(size_t)((double)(n - 1) * 0.99)];
        max = late[n - 1];
    }
    if (over4 >= 3 && ngaps > 0) {
        qsort(gaps, ngaps, sizeof(*gaps), probe_cmp);
        period = gaps[ngaps / 2];
    }
    printf("STALLS samples=%zu over4=%zu over10=%zu p99=%.3f max=%.3f period=%.0f\n", n, over4, over10, p99, max,
           period);
    free(late);
    free(gaps);
    return 0;
}
