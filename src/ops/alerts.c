#include "ops/alerts.h"
#include "core/config.h"
#include "core/log.h"
#include "http/client.h"
#include "ops/metrics.h"
#include "ops/proc.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ALERTS_SAMPLES_MAX  4096
#define ALERTS_RECENT       64
#define ALERTS_QUEUE        64
#define ALERTS_ATTEMPTS     4    /* per notice: 1 s, 2 s, 4 s between them */
#define ALERTS_POST_TIMEOUT 5000 /* ms, per attempt */

/* ---- what the rules look at ---- */

typedef struct alerts_sample {
    uint64_t at_ns;
    metrics_http_summary_t http;
    uint64_t hits, misses;
} alerts_sample_t;

typedef struct alerts_view {
    uint64_t requests;
    double mean_ms;
    double p95_ms; /* INFINITY: above the last bucket's bound */
    double errors_per_min;
    uint64_t lookups;
    double hit_percent;
    double memory_percent;
    double queue_age_s;
    int64_t pg_ready, pg_pool, redis_ready;
} alerts_view_t;

/*
 * A rule's check says whether its condition holds now, with the figure and the
 * threshold it compared; -1 when there is not enough to judge (the rule then keeps
 * its state: no evidence is not recovery, nor trouble).
 */
typedef int (*alerts_check_fn)(const alerts_view_t *v, double *value, double *threshold);

typedef struct alerts_rule {
    const char *name;
    const char *level;
    alerts_check_fn check;
    const char *unit;    /* of value and threshold in messages */
    const char *message; /* what is wrong, before the figures */
    int instant;         /* judged on a figure as it is now, not over the window */
} alerts_rule_t;

static int alerts_check_mean(const alerts_view_t *v, double *value, double *threshold)
{
    *value = v->mean_ms;
    *threshold = config.alert_response_ms;
    return v->requests == 0 ? -1 : v->mean_ms > *threshold;
}

static int alerts_check_p95(const alerts_view_t *v, double *value, double *threshold)
{
    *value = v->p95_ms;
    *threshold = config.alert_response_ms;
    return v->requests == 0 ? -1 : v->p95_ms > *threshold;
}

static int alerts_check_memory(const alerts_view_t *v, double *value, double *threshold)
{
    *value = v->memory_percent;
    *threshold = config.alert_memory_percent;
    return v->memory_percent > *threshold;
}

static int alerts_check_errors(const alerts_view_t *v, double *value, double *threshold)
{
    *value = v->errors_per_min;
    *threshold = config.alert_errors_per_min;
    return v->errors_per_min > *threshold;
}

static int alerts_check_cache(const alerts_view_t *v, double *value, double *threshold)
{
    *value = v->hit_percent;
    *threshold = config.alert_cache_hit_percent;
    return v->lookups < config.alert_cache_min_lookups ? -1 : v->hit_percent < *threshold;
}

static int alerts_check_queue(const alerts_view_t *v, double *value, double *threshold)
{
    *value = v->queue_age_s;
    *threshold = config.alert_queue_age_s;
    return v->queue_age_s > *threshold;
}

static int alerts_check_database(const alerts_view_t *v, double *value, double *threshold)
{
    *value = (double)v->pg_ready;
    *threshold = 0;
    return v->pg_pool == 0 ? -1 : v->pg_ready == 0;
}

static int alerts_check_redis(const alerts_view_t *v, double *value, double *threshold)
{
    *value = (double)v->redis_ready;
    *threshold = 0;
    return v->redis_ready == 0;
}

static const alerts_rule_t alerts_rules[] = {
    {"response_time_mean", "CRITICAL", alerts_check_mean, "ms", "Response time degraded: mean"},
    {"response_time_p95", "WARNING", alerts_check_p95, "ms", "Response time degraded: p95"},
    {"memory", "WARNING", alerts_check_memory, "%", "High memory usage", 1},
    {"error_rate", "CRITICAL", alerts_check_errors, "/min", "Server errors (5xx)"},
    {"cache_hit_rate", "WARNING", alerts_check_cache, "%", "Low cache hit rate"},
    {"queue_backlog", "WARNING", alerts_check_queue, "s", "Job queue backlog: oldest job waiting", 1},
    {"database_down", "CRITICAL", alerts_check_database, "connections", "PostgreSQL unreachable: ready", 1},
    {"redis_down", "CRITICAL", alerts_check_redis, "connections", "Redis unreachable: ready", 1},
};
#define ALERTS_NRULES (sizeof(alerts_rules) / sizeof(alerts_rules[0]))

/* ---- state, shared with scrapes and GET /api/v1/alerts under alerts_lock ---- */

typedef struct alerts_state {
    uint64_t pending_ns; /* when the condition started holding; 0 = it does not */
    uint64_t notified_ns;
    uint64_t since_wall_ns;
    int firing;
    double value, threshold;
    char message[256];
} alerts_state_t;

typedef struct alerts_event {
    size_t rule;
    const char *state; /* "firing", "repeat", "resolved" */
    uint64_t at_wall_ns;
    double value;
    char message[256];
} alerts_event_t;

typedef struct alerts_notice {
    size_t rule;
    const char *state;
    double value, threshold;
    char text[300];
    uint64_t at_wall_ns;
} alerts_notice_t;

static pthread_mutex_t alerts_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t alerts_wake; /* the evaluator's sleep and the notifier's queue */
static int alerts_stopping, alerts_running;
static pthread_t alerts_eval_tid, alerts_send_tid;
static alerts_state_t alerts_states[ALERTS_NRULES];
static alerts_event_t alerts_recent[ALERTS_RECENT];
static size_t alerts_nrecent; /* events ever; the ring holds the last ALERTS_RECENT */
static alerts_notice_t alerts_queue[ALERTS_QUEUE];
static size_t alerts_qhead, alerts_qlen;
static uint64_t alerts_sent, alerts_failed, alerts_dropped;

static alerts_sample_t *alerts_samples;
static size_t alerts_cap, alerts_nsamples; /* ring; alerts_nsamples counts every sample taken */

static void alerts_take(alerts_sample_t *s)
{
    s->at_ns = util_now_ns();
    metrics_http_summary(&s->http);
    s->hits = metrics_cache_total(METRICS_CACHE_HIT);
    s->misses = metrics_cache_total(METRICS_CACHE_MISS);
}

/* The p95 of the requests in a delta of buckets, interpolated inside its bucket as Prometheus does. */
static double alerts_p95_ms(const uint64_t *buckets, uint64_t count)
{
    double target = 0.95 * (double)count, cum = 0;
    for (size_t b = 0; b != METRICS_HTTP_BUCKETS; ++b) {
        double lower = b == 0 ? 0 : metrics_http_bounds[b - 1];
        if (cum + (double)buckets[b] >= target && buckets[b] != 0)
            return 1000 * (lower + (metrics_http_bounds[b] - lower) * (target - cum) / (double)buckets[b]);
        cum += (double)buckets[b];
    }
    return INFINITY;
}

/* Compares the newest sample with the last one taken before the window began. */
static void alerts_view(alerts_view_t *v)
{
    const alerts_sample_t *now = &alerts_samples[(alerts_nsamples - 1) % alerts_cap];
    uint64_t window_ns = (uint64_t)config.alert_window_s * 1000000000u;
    size_t oldest = alerts_nsamples > alerts_cap ? alerts_nsamples - alerts_cap : 0;
    const alerts_sample_t *base = &alerts_samples[oldest % alerts_cap];
    for (size_t i = alerts_nsamples - 1; i-- > oldest;) {
        const alerts_sample_t *s = &alerts_samples[i % alerts_cap];
        base = s;
        if (now->at_ns - s->at_ns >= window_ns)
            break;
    }
    memset(v, 0, sizeof(*v));
    v->requests = now->http.count - base->http.count;
    if (v->requests != 0) {
        v->mean_ms = (double)(now->http.sum_ns - base->http.sum_ns) / 1e6 / (double)v->requests;
        uint64_t d[METRICS_HTTP_BUCKETS];
        for (size_t b = 0; b != METRICS_HTTP_BUCKETS; ++b)
            d[b] = now->http.buckets[b] - base->http.buckets[b];
        v->p95_ms = alerts_p95_ms(d, v->requests);
    }
    /* errors per minute over the window (all of it, so a young process is not judged on seconds) */
    v->errors_per_min = (double)(now->http.errors - base->http.errors) * 60.0 / config.alert_window_s;
    uint64_t hits = now->hits - base->hits, misses = now->misses - base->misses;
    v->lookups = hits + misses;
    v->hit_percent = v->lookups != 0 ? 100.0 * (double)hits / (double)v->lookups : 100;
    proc_stats_t ps;
    proc_stats(&ps);
    v->memory_percent = ps.memory_limit_bytes != 0 ? 100.0 * (double)ps.rss_bytes / (double)ps.memory_limit_bytes : 0;
    v->queue_age_s = (double)metrics_gauge_total(METRICS_QUEUE_OLDEST_S);
    v->pg_ready = metrics_gauge_total(METRICS_PG_UP);
    v->pg_pool = metrics_gauge_total(METRICS_PG_POOL);
    v->redis_ready = metrics_gauge_total(METRICS_REDIS_UP);
}

static void alerts_figure(const alerts_rule_t *rule, double value, char *out, size_t cap)
{
    if (isinf(value))
        snprintf(out, cap, "above %g %s", 1000 * metrics_http_bounds[METRICS_HTTP_BUCKETS - 1], rule->unit);
    else
        snprintf(out, cap, "%.*f %s", fabs(value) < 10 && value != floor(value) ? 1 : 0, value, rule->unit);
}

/* Under alerts_lock: logs, remembers and queues one event of rule i. */
static void alerts_event(size_t i, const char *state, uint64_t wall)
{
    const alerts_rule_t *rule = &alerts_rules[i];
    alerts_state_t *st = &alerts_states[i];
    char value[64], limit[64];
    alerts_figure(rule, st->value, value, sizeof(value));
    alerts_figure(rule, st->threshold, limit, sizeof(limit));
    char window[48] = "now";
    if (!rule->instant)
        snprintf(window, sizeof(window), "over the last %u s", config.alert_window_s);
    if (strcmp(state, "resolved") != 0)
        snprintf(st->message, sizeof(st->message), "%s %s %s (threshold %s)", rule->message, value, window, limit);
    alerts_event_t *e = &alerts_recent[alerts_nrecent++ % ALERTS_RECENT];
    e->rule = i;
    e->state = state;
    e->at_wall_ns = wall;
    e->value = st->value;
    if (strcmp(state, "resolved") == 0) {
        snprintf(e->message, sizeof(e->message), "Resolved: %s", st->message);
        log_info("alerts", "[ALERT][%s] %s", rule->level, e->message);
    } else {
        snprintf(e->message, sizeof(e->message), "%s", st->message);
        log_warn("alerts", "[ALERT][%s] %s", rule->level, e->message);
    }
    if (config.alert_webhook_url == NULL)
        return;
    if (alerts_qlen == ALERTS_QUEUE) { /* the receiver is far behind: the oldest notice goes */
        alerts_qhead = (alerts_qhead + 1) % ALERTS_QUEUE;
        alerts_qlen--;
        alerts_dropped++;
    }
    alerts_notice_t *n = &alerts_queue[(alerts_qhead + alerts_qlen++) % ALERTS_QUEUE];
    n->rule = i;
    n->state = state;
    n->value = st->value;
    n->threshold = st->threshold;
    n->at_wall_ns = wall;
    snprintf(n->text, sizeof(n->text), "[ALERT][%s] %s", rule->level, e->message);
    pthread_cond_broadcast(&alerts_wake);
}

static void alerts_evaluate(void)
{
    alerts_view_t v;
    alerts_view(&v);
    uint64_t now = util_now_ns(), wall = util_wall_ns();
    uint64_t hold = (uint64_t)config.alert_for_s * 1000000000u, repeat = (uint64_t)config.alert_repeat_s * 1000000000u;
    pthread_mutex_lock(&alerts_lock);
    for (size_t i = 0; i != ALERTS_NRULES; ++i) {
        alerts_state_t *st = &alerts_states[i];
        double value, threshold;
        int holds = alerts_rules[i].check(&v, &value, &threshold);
        if (holds < 0)
            continue;
        st->threshold = threshold;
        if (holds) {
            st->value = value;
            if (st->pending_ns == 0)
                st->pending_ns = now;
            if (!st->firing && now - st->pending_ns >= hold) {
                st->firing = 1;
                st->since_wall_ns = wall;
                st->notified_ns = now;
                alerts_event(i, "firing", wall);
            } else if (st->firing && now - st->notified_ns >= repeat) {
                st->notified_ns = now;
                alerts_event(i, "repeat", wall);
            }
        } else {
            st->pending_ns = 0;
            if (st->firing) {
                st->value = value;
                st->firing = 0;
                alerts_event(i, "resolved", wall);
            }
        }
    }
    pthread_mutex_unlock(&alerts_lock);
}

/* Waits until `ns` from now or until stopping; returns whether to go on. Under alerts_lock. */
static int alerts_sleep(uint64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + ns;
    ts.tv_sec = (time_t)(t / 1000000000u);
    ts.tv_nsec = (long)(t % 1000000000u);
    while (!alerts_stopping && pthread_cond_timedwait(&alerts_wake, &alerts_lock, &ts) != ETIMEDOUT)
        ;
    return !alerts_stopping;
}

static void *alerts_eval_main(void *arg)
{
    (void)arg;
    util_thread_name("alerts-eval");
    for (;;) {
        alerts_take(&alerts_samples[alerts_nsamples % alerts_cap]);
        alerts_nsamples++;
        alerts_evaluate();
        pthread_mutex_lock(&alerts_lock);
        int go_on = alerts_sleep((uint64_t)config.alert_interval_ms * 1000000u);
        pthread_mutex_unlock(&alerts_lock);
        if (!go_on)
            break;
    }
    log_thread_done();
    return NULL;
}

/* ---- notices: a Slack-compatible POST each, off every other thread ---- */

static size_t alerts_discard(char *p, size_t size, size_t n, void *data)
{
    (void)p;
    (void)data;
    return size * n;
}

/* One POST; 0 when the receiver answered 2xx. */
static int alerts_post(CURL *curl, const alerts_notice_t *n)
{
    const alerts_rule_t *rule = &alerts_rules[n->rule];
    int resolved = strcmp(n->state, "resolved") == 0;
    const char *color = resolved ? "good" : strcmp(rule->level, "CRITICAL") == 0 ? "danger" : "warning";
    char host[128] = "";
    gethostname(host, sizeof(host) - 1);
    json_t *body = json_pack(
        "{s:s, s:[{s:s, s:s, s:s, s:[{s:s, s:s, s:b}, {s:s, s:s, s:b}, {s:s, s:s, s:b}], s:I}], s:{s:s, s:s, s:s, s:f, "
        "s:f, s:s}}",
        "text", n->text, "attachments", "color", color, "fallback", n->text, "title", rule->name, "fields", "title",
        "Level", "value", rule->level, "short", 1, "title", "State", "value", n->state, "short", 1, "title", "Host",
        "value", host, "short", 1, "ts", (json_int_t)(n->at_wall_ns / 1000000000u), "conversa", "rule", rule->name,
        "level", rule->level, "state", n->state, "value", isfinite(n->value) ? n->value : -1.0, "threshold",
        n->threshold, "host", host);
    if (body == NULL)
        return -1;
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return -1;
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, config.alert_webhook_url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)ALERTS_POST_TIMEOUT);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, alerts_discard);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "conversa-alerts");
    long status = 0;
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    free(text);
    if (rc != CURLE_OK || status < 200 || status > 299) {
        log_warn("alerts", "notice for %s not delivered: %s", rule->name,
                 rc != CURLE_OK ? curl_easy_strerror(rc) : "the receiver did not answer 2xx");
        return -1;
    }
    return 0;
}

static void *alerts_send_main(void *arg)
{
    (void)arg;
    util_thread_name("alerts-send");
    CURL *curl = curl_easy_init();
    pthread_mutex_lock(&alerts_lock);
    for (;;) {
        while (alerts_qlen == 0 && !alerts_stopping)
            pthread_cond_wait(&alerts_wake, &alerts_lock);
        if (alerts_qlen == 0)
            break;
        alerts_notice_t n = alerts_queue[alerts_qhead];
        alerts_qhead = (alerts_qhead + 1) % ALERTS_QUEUE;
        alerts_qlen--;
        int ok = 0;
        for (int attempt = 0; attempt != ALERTS_ATTEMPTS && !ok; ++attempt) {
            if (attempt != 0 && !alerts_sleep(1000000000ull << (attempt - 1)))
                break; /* stopping: no more retries */
            pthread_mutex_unlock(&alerts_lock);
            ok = curl != NULL && alerts_post(curl, &n) == 0;
            pthread_mutex_lock(&alerts_lock);
        }
        if (ok)
            alerts_sent++;
        else
            alerts_failed++;
    }
    pthread_mutex_unlock(&alerts_lock);
    if (curl != NULL)
        curl_easy_cleanup(curl);
    log_thread_done();
    return NULL;
}

/* ---- exposition ---- */

static void alerts_render_metrics(strbuf_t *out)
{
    pthread_mutex_lock(&alerts_lock);
    strbuf_puts(out, "# HELP alerts_firing Whether each alert rule is firing in this process (1) or not (0).\n"
                     "# TYPE alerts_firing gauge\n");
    for (size_t i = 0; i != ALERTS_NRULES; ++i)
        strbuf_printf(out, "alerts_firing{rule=\"%s\",level=\"%s\"} %d\n", alerts_rules[i].name, alerts_rules[i].level,
                      alerts_states[i].firing);
    strbuf_printf(out,
                  "# HELP alerts_notifications_total Alert notices posted to ALERT_WEBHOOK_URL, by outcome (failed: "
                  "after every retry; dropped: the queue was full).\n"
                  "# TYPE alerts_notifications_total counter\n"
                  "alerts_notifications_total{result=\"sent\"} %llu\n"
                  "alerts_notifications_total{result=\"failed\"} %llu\n"
                  "alerts_notifications_total{result=\"dropped\"} %llu\n",
                  (unsigned long long)alerts_sent, (unsigned long long)alerts_failed,
                  (unsigned long long)alerts_dropped);
    pthread_mutex_unlock(&alerts_lock);
}

static void alerts_time(strbuf_t *out, uint64_t wall_ns)
{
    time_t secs = (time_t)(wall_ns / 1000000000u);
    struct tm tm;
    char ts[32];
    gmtime_r(&secs, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    strbuf_puts(out, ts);
}

static void alerts_json_number(strbuf_t *out, double v)
{
    if (isfinite(v))
        strbuf_printf(out, "%.6g", v);
    else
        strbuf_puts(out, "null");
}

/* One alert as a JSON object: state NULL for an active one (with its threshold). */
static void alerts_json_item(strbuf_t *out, int comma, size_t rule, const char *state, const char *message,
                             double value, double threshold, const char *time_name, uint64_t wall_ns)
{
    strbuf_printf(out, "%s{\"rule\":\"%s\",\"level\":\"%s\",", comma ? "," : "", alerts_rules[rule].name,
                  alerts_rules[rule].level);
    if (state != NULL)
        strbuf_printf(out, "\"state\":\"%s\",", state);
    strbuf_puts(out, "\"message\":\"");
    strbuf_json_escape(out, message, strlen(message));
    strbuf_puts(out, "\",\"value\":");
    alerts_json_number(out, value);
    if (state == NULL) {
        strbuf_puts(out, ",\"threshold\":");
        alerts_json_number(out, threshold);
    }
    strbuf_printf(out, ",\"%s\":\"", time_name);
    alerts_time(out, wall_ns);
    strbuf_puts(out, "\"}");
}

void alerts_render_json(strbuf_t *out)
{
    pthread_mutex_lock(&alerts_lock);
    strbuf_puts(out, "{\"active\":[");
    int first = 1;
    for (size_t i = 0; i != ALERTS_NRULES; ++i) {
        const alerts_state_t *st = &alerts_states[i];
        if (!st->firing)
            continue;
        alerts_json_item(out, !first, i, NULL, st->message, st->value, st->threshold, "since", st->since_wall_ns);
        first = 0;
    }
    strbuf_puts(out, "],\"recent\":[");
    size_t n = alerts_nrecent < ALERTS_RECENT ? alerts_nrecent : ALERTS_RECENT;
    for (size_t k = 0; k != n; ++k) { /* newest first */
        const alerts_event_t *e = &alerts_recent[(alerts_nrecent - 1 - k) % ALERTS_RECENT];
        alerts_json_item(out, k != 0, e->rule, e->state, e->message, e->value, 0, "at", e->at_wall_ns);
    }
    strbuf_printf(out, "],\"rules\":[");
    for (size_t i = 0; i != ALERTS_NRULES; ++i) {
        double value, threshold;
        alerts_view_t none;
        memset(&none, 0, sizeof(none));
        alerts_rules[i].check(&none, &value, &threshold);
        strbuf_printf(out, "%s{\"rule\":\"%s\",\"level\":\"%s\",\"threshold\":", i ? "," : "", alerts_rules[i].name,
                      alerts_rules[i].level);
        alerts_json_number(out, threshold);
        strbuf_printf(out, ",\"unit\":\"%s\",\"for_seconds\":%u}", alerts_rules[i].unit, config.alert_for_s);
    }
    strbuf_printf(out, "],\"interval_ms\":%u,\"window_seconds\":%u}", config.alert_interval_ms, config.alert_window_s);
    pthread_mutex_unlock(&alerts_lock);
}

/* ---- life cycle ---- */

void alerts_start(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&alerts_wake, &ca);
    pthread_condattr_destroy(&ca);
    alerts_cap = (size_t)config.alert_window_s * 1000 / config.alert_interval_ms + 2;
    if (alerts_cap > ALERTS_SAMPLES_MAX)
        alerts_cap = ALERTS_SAMPLES_MAX;
    http_client_global_init();
    alerts_samples = util_calloc(alerts_cap, sizeof(*alerts_samples));
    alerts_nsamples = 0;
    alerts_stopping = 0;
    metrics_add_renderer(alerts_render_metrics);
    if (pthread_create(&alerts_eval_tid, NULL, alerts_eval_main, NULL) != 0 ||
        pthread_create(&alerts_send_tid, NULL, alerts_send_main, NULL) != 0)
        util_fatal("alerts: pthread_create failed");
    alerts_running = 1;
}

void alerts_stop(void)
{
    if (!alerts_running)
        return;
    pthread_mutex_lock(&alerts_lock);
    alerts_stopping = 1;
    pthread_cond_broadcast(&alerts_wake);
    pthread_mutex_unlock(&alerts_lock);
    pthread_join(alerts_eval_tid, NULL);
    pthread_join(alerts_send_tid, NULL);
    pthread_cond_destroy(&alerts_wake);
    free(alerts_samples);
    alerts_samples = NULL;
    alerts_running = 0;
}
