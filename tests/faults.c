/*
 * The fault suite (`make test-faults`): two `serve` processes on one PostgreSQL and
 * Redis under a steady mixed load (cached and uncached reads, contact inserts,
 * conversation updates, signed webhooks), and in turn: PostgreSQL stopped for 10 s,
 * Redis stopped for 10 s, one process killed with SIGKILL and restarted, PostgreSQL
 * stalled (every process stopped with SIGSTOP: statement timeouts are hit).
 *
 * For each: during the fault every answer is a success or a clear 503 in the error
 * shape, in bounded time (a killed process refuses connections); after it, service
 * comes back by itself (time to recover is printed and bounded); and the data hold:
 * every acknowledged webhook applied exactly once, every acknowledged insert present,
 * the last acknowledged update in place, and the cached counts of both processes
 * equal to what PostgreSQL says.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "harness.h"
#include "meta/webhook.h"

#define FT_SECRET   "faults-app-secret"
#define FT_PHONE_ID "990000000000777"
#define FT_FAULT_MS 10000

static const char *const ft_env[] = {"QUEUE_CONCURRENCY=2", "SEND_CONCURRENCY=0", "STATEMENT_TIMEOUT_MS=2000",
                                     "QUEUE_LEASE_MS=5000", NULL};

typedef enum { OP_STATUS, OP_LIST, OP_CONTACT, OP_PATCH, OP_WEBHOOK, OP_MAX } op_kind_t;
static const char *const ft_op_names[OP_MAX] = {"status", "list", "contact", "patch", "webhook"};

typedef struct ft_load {
    hs_server_t *srv[2];
    pthread_mutex_t lock;
    int stop;
    long seq;
    /* acknowledged, for the data checks */
    strbuf_t wamids, phones;
    long nwamids, nphones;
    const char *patched; /* the last status a PATCH was acknowledged with; NULL after a failed one */
    /* during the current window */
    long ok, refused, unavailable, other, slow;
    double worst_ms;
    double last_failure_ms; /* hs_now_ms() of the last op that did not succeed */
    char other_sample[256];
} ft_load_t;

static ft_load_t ft;
static char ft_company[24], ft_slug[40], ft_conv[24];
static char *ft_token;
static hs_server_t ft_a, ft_b;

static void ft_record(op_kind_t kind, long status, double ms, const char *body)
{
    (void)kind;
    pthread_mutex_lock(&ft.lock);
    if (ms > ft.worst_ms)
        ft.worst_ms = ms;
    if (status >= 200 && status < 300) {
        ft.ok++;
    } else {
        ft.last_failure_ms = hs_now_ms();
        if (status == 0)
            ft.refused++;
        else if (status == 503 && body != NULL && strstr(body, "\"error\":{\"status\":503") != NULL)
            ft.unavailable++;
        else {
            ft.other++;
            snprintf(ft.other_sample, sizeof(ft.other_sample), "%s: %ld %.200s", ft_op_names[kind], status,
                     body ? body : "");
        }
    }
    pthread_mutex_unlock(&ft.lock);
}

static void *ft_load_main(void *arg)
{
    (void)arg;
    char path[160], body[2048];
    while (!__atomic_load_n(&ft.stop, __ATOMIC_ACQUIRE)) {
        long n = ft.seq++;
        int port = ft.srv[n % 2]->port;
        op_kind_t kind = (op_kind_t)(n % OP_MAX);
        hs_response_t r;
        switch (kind) {
        case OP_STATUS:
            r = hs_call(port, "GET", "/api/v1/conversations/status", ft_token, NULL);
            break;
        case OP_LIST:
            snprintf(path, sizeof(path), "/api/v1/contacts?limit=5&page=%ld", 1 + n % 7);
            r = hs_call(port, "GET", path, ft_token, NULL);
            break;
        case OP_CONTACT: {
            char phone[32];
            snprintf(phone, sizeof(phone), "5521%09ld", n);
            snprintf(body, sizeof(body), "{\"phone_number\":\"+%s\",\"name\":\"F %ld\"}", phone, n);
            r = hs_call(port, "POST", "/api/v1/contacts", ft_token, body);
            if (r.status == 201) {
                pthread_mutex_lock(&ft.lock);
                strbuf_printf(&ft.phones, "%s'%s'", ft.nphones++ ? "," : "", phone);
                pthread_mutex_unlock(&ft.lock);
            }
            break;
        }
        case OP_PATCH: {
            const char *status = n % 2 ? "pending" : "open";
            snprintf(path, sizeof(path), "/api/v1/conversations/%s", ft_conv);
            snprintf(body, sizeof(body), "{\"status\":\"%s\"}", status);
            r = hs_call(port, "PATCH", path, ft_token, body);
            pthread_mutex_lock(&ft.lock);
            ft.patched = r.status == 200 ? status : NULL;
            pthread_mutex_unlock(&ft.lock);
            break;
        }
        default: {
            char wamid[64], sig[72], hdr[96];
            snprintf(wamid, sizeof(wamid), "wamid.FAULT.%d.%ld", (int)getpid(), n);
            int len = snprintf(
                body, sizeof(body),
                "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{\"value\":{"
                "\"messaging_product\":\"whatsapp\",\"metadata\":{\"display_phone_number\":\"15550000000\","
                "\"phone_number_id\":\"" FT_PHONE_ID "\"},\"contacts\":[{\"profile\":{\"name\":\"W %ld\"},"
                "\"wa_id\":\"5531%09ld\"}],\"messages\":[{\"from\":\"5531%09ld\",\"id\":\"%s\",\"timestamp\":"
                "\"1750000000\",\"type\":\"text\",\"text\":{\"body\":\"fault %ld\"}}]},\"field\":\"messages\"}]}]}",
                n % 13, n % 13, n % 13, wamid, n);
            meta_signature(FT_SECRET, strlen(FT_SECRET), body, (size_t)len, sig);
            snprintf(hdr, sizeof(hdr), "X-Hub-Signature-256: %s", sig);
            snprintf(path, sizeof(path), "/api/webhooks/meta/%s", ft_slug);
            const char *headers[] = {"Content-Type: application/json", hdr, NULL};
            r = hs_request(port, "POST", path, body, (size_t)len, headers);
            if (r.status == 200) {
                pthread_mutex_lock(&ft.lock);
                strbuf_printf(&ft.wamids, "%s'%s'", ft.nwamids++ ? "," : "", wamid);
                pthread_mutex_unlock(&ft.lock);
            }
            break;
        }
        }
        ft_record(kind, r.status, r.seconds * 1000, r.body);
        hs_response_free(&r);
        hs_sleep_ms(5);
    }
    return NULL;
}

/* Starts a fresh count of outcomes. */
static void ft_window(void)
{
    pthread_mutex_lock(&ft.lock);
    ft.ok = ft.refused = ft.unavailable = ft.other = ft.slow = 0;
    ft.worst_ms = 0;
    ft.other_sample[0] = '\0';
    pthread_mutex_unlock(&ft.lock);
}

static pthread_t ft_tid;

static void ft_setup(void)
{
    snprintf(ft_slug, sizeof(ft_slug), "faults-%d", (int)getpid());
    hs_stack("pg-thaw");
    hs_stack("pg-start");
    hs_stack("redis-start");
    hs_company(ft_slug, "Faults");
    cr_assert_eq(hs_sql(ft_company, sizeof(ft_company), "SELECT id FROM companies WHERE slug = '%s'", ft_slug), 0);
    hs_sql(NULL, 0, "UPDATE connections SET phone_number_id = NULL WHERE phone_number_id = '" FT_PHONE_ID "'");
    hs_server_start(&ft_a, ft_env);
    hs_server_start(&ft_b, ft_env);
    char email[96], body[512];
    snprintf(email, sizeof(email), "admin@%s.test", ft_slug);
    ft_token = hs_login(ft_a.port, email);
    snprintf(body, sizeof(body),
             "{\"name\":\"Faults\",\"slug\":\"%s\",\"phone_number_id\":\"" FT_PHONE_ID "\",\"app_secret\":\"" FT_SECRET
             "\"}",
             ft_slug);
    json_decref(hs_call_json(ft_a.port, "POST", "/api/v1/connections", ft_token, body, 201));
    /* one conversation to update back and forth: made by a first webhook */
    char sig[72], hdr[96], path[96];
    const char *first = "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"changes\":[{\"value\":{"
                        "\"messaging_product\":\"whatsapp\",\"metadata\":{\"phone_number_id\":\"" FT_PHONE_ID
                        "\"},\"contacts\":[{\"profile\":{\"name\":\"First\"},\"wa_id\":\"5541999990000\"}],"
                        "\"messages\":[{\"from\":\"5541999990000\",\"id\":\"wamid.FAULT.first\",\"timestamp\":"
                        "\"1750000000\",\"type\":\"text\",\"text\":{\"body\":\"hi\"}}]},\"field\":\"messages\"}]}]}";
    meta_signature(FT_SECRET, strlen(FT_SECRET), first, strlen(first), sig);
    snprintf(hdr, sizeof(hdr), "X-Hub-Signature-256: %s", sig);
    snprintf(path, sizeof(path), "/api/webhooks/meta/%s", ft_slug);
    const char *headers[] = {"Content-Type: application/json", hdr, NULL};
    hs_response_t r = hs_request(ft_a.port, "POST", path, first, strlen(first), headers);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    hs_response_free(&r);
    double t0 = hs_now_ms();
    while (hs_now_ms() - t0 < 10000) {
        hs_sql(ft_conv, sizeof(ft_conv), "SELECT min(id) FROM conversations WHERE company_id = %s", ft_company);
        if (atol(ft_conv) > 0)
            break;
        hs_sleep_ms(100);
    }
    cr_assert(atol(ft_conv) > 0, "the first webhook made no conversation");
    memset(&ft, 0, sizeof(ft));
    pthread_mutex_init(&ft.lock, NULL);
    strbuf_init(&ft.wamids);
    strbuf_init(&ft.phones);
    ft.srv[0] = &ft_a;
    ft.srv[1] = &ft_b;
    pthread_create(&ft_tid, NULL, ft_load_main, NULL);
}

static void ft_teardown(void)
{
    __atomic_store_n(&ft.stop, 1, __ATOMIC_RELEASE);
    pthread_join(ft_tid, NULL);
    hs_stack("pg-thaw");
    hs_stack("pg-start");
    hs_stack("redis-start");
    if (ft_a.pid > 0)
        hs_server_stop(&ft_a);
    if (ft_b.pid > 0)
        hs_server_stop(&ft_b);
    hs_sql(NULL, 0, "DELETE FROM companies WHERE slug = '%s'", ft_slug);
    strbuf_free(&ft.wamids);
    strbuf_free(&ft.phones);
    free(ft_token);
}

TestSuite(faults, .init = ft_setup, .fini = ft_teardown, .timeout = 240);

/* Load with no fault for ms: everything succeeds. */
static void ft_steady(int ms)
{
    ft_window();
    hs_sleep_ms(ms);
    pthread_mutex_lock(&ft.lock);
    long ok = ft.ok, bad = ft.refused + ft.unavailable + ft.other;
    pthread_mutex_unlock(&ft.lock);
    cr_assert_gt(ok, 20, "the load barely ran (%ld)", ok);
    cr_assert_eq(bad, 0, "%ld failures with no fault: %s", bad, ft.other_sample);
}

/*
 * Checks the fault window just ended: answers were successes, clear 503s, or (when
 * refused_ok) refused connections, and none took longer than bound_ms.
 */
static void ft_check_fault(const char *what, int refused_ok, double bound_ms)
{
    pthread_mutex_lock(&ft.lock);
    long ok = ft.ok, refused = ft.refused, unavailable = ft.unavailable, other = ft.other;
    double worst = ft.worst_ms;
    pthread_mutex_unlock(&ft.lock);
    printf("%s: during the fault %ld ok, %ld 503, %ld refused, %ld other; slowest answer %.0f ms\n", what, ok,
           unavailable, refused, other, worst);
    cr_assert_eq(other, 0, "%s: answers other than success or 503: %s", what, ft.other_sample);
    cr_assert(refused_ok || refused == 0, "%s: %ld connections refused", what, refused);
    cr_assert_lt(worst, bound_ms, "%s: an answer took %.0f ms", what, worst);
}

/* Waits until 2 s pass with no failure; returns ms from fault_end until the last failure (time to recover). */
static double ft_recover(const char *what, double fault_end)
{
    double deadline = fault_end + 30000;
    for (;;) {
        pthread_mutex_lock(&ft.lock);
        double last = ft.last_failure_ms;
        pthread_mutex_unlock(&ft.lock);
        double now = hs_now_ms();
        if (now - last >= 2000 && now - fault_end >= 2000) {
            double ttr = last > fault_end ? last - fault_end : 0;
            printf("%s: recovered %.2f s after the fault ended\n", what, ttr / 1000);
            cr_log_info("%s: time to recover %.2f s", what, ttr / 1000);
            return ttr;
        }
        cr_assert_lt(now, deadline, "%s: still failing 30 s after the fault ended", what);
        hs_sleep_ms(100);
    }
}

/* The data checks, with the load paused. */
static void ft_check_data(const char *what)
{
    __atomic_store_n(&ft.stop, 1, __ATOMIC_RELEASE);
    pthread_join(ft_tid, NULL);
    char out[256];
    /* every acknowledged webhook applied, once (the queue may still be draining) */
    double t0 = hs_now_ms();
    long applied = -1, distinct = -1;
    while (hs_now_ms() - t0 < 30000) {
        cr_assert_eq(hs_sql(out, sizeof(out),
                            "SELECT count(*), count(DISTINCT wamid) FROM messages WHERE company_id = %s"
                            " AND wamid IN (%s)",
                            ft_company, ft.nwamids ? ft.wamids.data : "''"),
                     0, "%s", out);
        sscanf(out, "%ld|%ld", &applied, &distinct);
        if (applied >= ft.nwamids)
            break;
        hs_sleep_ms(200);
    }
    printf("%s: %ld webhooks acknowledged, %ld applied, %ld distinct\n", what, ft.nwamids, applied, distinct);
    cr_assert_eq(distinct, ft.nwamids, "%s: acknowledged webhooks not applied", what);
    cr_assert_eq(applied, ft.nwamids, "%s: a webhook applied twice", what);
    /* every acknowledged contact is there */
    cr_assert_eq(hs_sql(out, sizeof(out),
                        "SELECT count(*) FROM contacts WHERE company_id = %s AND phone_number IN (%s)", ft_company,
                        ft.nphones ? ft.phones.data : "''"),
                 0);
    cr_assert_eq(atol(out), ft.nphones, "%s: %ld acknowledged contacts, %s present", what, ft.nphones, out);
    /* the last acknowledged update is in place (when the last one was acknowledged) */
    if (ft.patched != NULL) {
        hs_sql(out, sizeof(out), "SELECT status FROM conversations WHERE company_id = %s AND id = %s", ft_company,
               ft_conv);
        cr_assert_str_eq(out, ft.patched, "%s: the last acknowledged update is lost", what);
    }
    /* no stale cache: both processes' cached counts equal PostgreSQL's */
    char truth[128];
    hs_sql(
        truth, sizeof(truth),
        "SELECT count(*) FILTER (WHERE status = 'open') || ',' || count(*) FILTER (WHERE status = 'pending') || ','"
        " || count(*) FILTER (WHERE status = 'resolved') || ',' || count(*) FROM conversations WHERE company_id = %s",
        ft_company);
    hs_server_t *both[] = {&ft_a, &ft_b};
    for (int i = 0; i != 2; ++i) {
        json_t *j = hs_call_json(both[i]->port, "GET", "/api/v1/conversations/status", ft_token, NULL, 200);
        json_t *d = json_object_get(j, "data");
        if (d == NULL)
            d = j;
        char got[128];
        snprintf(got, sizeof(got), "%lld,%lld,%lld,%lld", json_integer_value(json_object_get(d, "open")),
                 json_integer_value(json_object_get(d, "pending")), json_integer_value(json_object_get(d, "resolved")),
                 json_integer_value(json_object_get(d, "total")));
        cr_assert_str_eq(got, truth, "%s: process %d serves stale counts", what, i);
        json_decref(j);
    }
    /* the load goes on for the next test */
    __atomic_store_n(&ft.stop, 0, __ATOMIC_RELEASE);
    pthread_create(&ft_tid, NULL, ft_load_main, NULL);
}

/* A fault made and ended with two scripts/stack.sh commands, FT_FAULT_MS apart, then every check. */
static void ft_stack_fault(const char *what, const char *begin, const char *end_cmd, double bound_ms)
{
    ft_steady(2000);
    ft_window();
    cr_assert_eq(hs_stack(begin), 0);
    hs_sleep_ms(FT_FAULT_MS);
    cr_assert_eq(hs_stack(end_cmd), 0);
    double end = hs_now_ms();
    ft_check_fault(what, 0, bound_ms);
    cr_assert_lt(ft_recover(what, end), 15000);
    ft_check_data(what);
}

Test(faults, postgres_stopped_for_ten_seconds)
{
    ft_stack_fault("postgres stopped", "pg-stop", "pg-start", 3000);
}

Test(faults, redis_stopped_for_ten_seconds)
{
    ft_stack_fault("redis stopped", "redis-stop", "redis-start", 3000);
}

Test(faults, one_process_killed_and_restarted)
{
    ft_steady(2000);
    ft_window();
    double t0 = hs_now_ms();
    kill(ft_a.pid, SIGKILL);
    waitpid(ft_a.pid, NULL, 0);
    ft_a.pid = 0;
    hs_sleep_ms(3000);
    /* restarted on the same port, as a supervisor would: the load reaches it again */
    static const char *const serve[] = {"serve", NULL};
    hs_server_spawn(&ft_a, serve, ft_env);
    double up = -1;
    while (hs_now_ms() - t0 < 20000) {
        hs_response_t r = hs_get(ft_a.port, "/api/health/live");
        long st = r.status;
        hs_response_free(&r);
        if (st == 200) {
            up = hs_now_ms();
            break;
        }
        hs_sleep_ms(50);
    }
    cr_assert(up > 0, "the restarted process did not come up");
    printf("killed process: back %.2f s after the restart began\n", (up - t0 - 3000) / 1000);
    /* the other process served throughout; the killed one refused connections */
    ft_check_fault("one process killed", 1, 3000);
    cr_assert_lt(ft_recover("one process killed", up), 15000);
    ft_check_data("one process killed");
}

Test(faults, postgres_stalled_statement_timeouts_hit)
{
    /* STATEMENT_TIMEOUT_MS 2000, and a query unanswered 2 s past it drops its connection */
    ft_stack_fault("postgres stalled", "pg-freeze", "pg-thaw", 7000);
}
