#include "queue/worker.h"
#include "queue/wake.h"
#include "cache/redis.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timer.h"
#include "core/util.h"
#include "ops/metrics.h"
#include "store/pgarray.h"

#include <inttypes.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WORKER_TICK_MS     1000 /* safety poll, lease recovery */
#define WORKER_STATS_TICKS 2    /* gauges every 2 s */
#define WORKER_PRUNE_TICKS 60   /* completed jobs pruned every minute */
#define WORKER_PRUNE_BATCH "5000"

typedef enum slot_state { SLOT_IDLE, SLOT_CLAIMING, SLOT_RUNNING, SLOT_FAILING } slot_state_t;

struct queue_slot {
    queue_worker_t *worker;
    unsigned index;
    slot_state_t state;
    queue_job_t *jobs; /* the batch being run: def.batch entries */
    char **errors;     /* per job: NULL, or why it failed (owned) */
    int64_t *delays;   /* per failed job: -1 counted, -2 parked, else ms to wait */
    size_t njobs;
    uint64_t started_ns;
    char owner[96];
};

struct queue_worker {
    queue_def_t def;
    unsigned concurrency;
    pthread_t tid;
    atomic_int stopping;
    int closing; /* the loop is being torn down: slots only go idle */
    uint64_t stop_deadline_ns;
    h2o_loop_t *loop;
    h2o_multithread_queue_t *mq;
    h2o_multithread_receiver_t receiver;
    sem_t ready; /* posted by the thread once loop, mq and receiver exist */
    h2o_multithread_message_t stop_msg;
    int stop_seen; /* the stop message was taken off the queue (on the worker's thread) */
    h2o_multithread_message_t wake_msg;
    atomic_int wake_sent; /* wake_msg is queued: set by the listener, cleared here */
    queue_wake_sub_t wake;
    metrics_shard_t *metrics;
    pg_pool_t *pg;
    redis_client_t *redis;
    cache_thread_t *cache;
    config_redis_addr_t redis_addr;
    loop_timer_t tick, due;
    unsigned ticks;
    unsigned stats_tick, prune_tick; /* ticks at which each last ran */
    int housekeeping;                /* a recovery, stats or prune statement is in flight */
    int due_asked;                   /* a next-due query is in flight */
    int kick_pending;                /* work was announced while a claim was in flight */
    char lease_ms[16], backoff_ms[16], retention_s[16];
    strbuf_t claim_sql, stats_sql;    /* WORKER_CLAIM_SQL and WORKER_STATS_SQL for this queue */
    pg_stmt_t claim_stmt, stats_stmt; /* prepared from them */
    queue_slot_t *slots;
    void *context; /* def.thread_start's */
};

/* ---- statements ---- */

/*
 * Candidates are locked (SKIP LOCKED: two slots never wait on each other) and must
 * have no earlier job of their key queued or running, so a batch holds at most one job
 * per key. Ids are drawn in commit order for a key (queue/push.h), so an earlier job
 * is always visible here.
 *
 * The queue and the batch size are written into the text, not passed as
 * parameters. Every connection plans generically (store/pg.c: plan_cache_mode), that
 * is without knowing the parameters: for `queue = $1 ... LIMIT $4` the planner guessed
 * a tenth of the waiting jobs and updated through a hash join over a scan of the whole
 * table, 71 ms a claim on average (3.4 s at worst) with 200,000 jobs in the table,
 * against 0.5 ms through the index. With the values in the text, the generic plan is
 * the index plan.
 *
 * Every statement here over jobs is also planned at each execution (pg_stmt_t.replan).
 * A plan cached while the table was empty (a worker's first claim after a quiet spell)
 * reads the table from end to end, and for each job again from end to end for the
 * earlier jobs of its key: once 75,000 webhooks were waiting, an idle queue's claim took
 * 60 s and was cancelled at the statement timeout, holding a core for those seconds
 * while the webhooks' acknowledgements waited for the other.
 */
#define WORKER_CLAIM_SQL /* queue, batch */                                                                            \
    "UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, locked_by = $1,"                                 \
    " locked_until = now() + $2::bigint * interval '1 millisecond', updated_at = now()"                                \
    " FROM (SELECT c.company_id, c.id FROM jobs c"                                                                     \
    " WHERE c.queue = '%s' AND c.status = 'queued' AND c.run_at <= now()"                                              \
    " AND (c.key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs e WHERE e.queue = c.queue AND e.key = c.key"                \
    " AND e.id < c.id AND e.status IN ('queued', 'running')))"                                                         \
    " ORDER BY c.run_at, c.id LIMIT %u FOR UPDATE OF c SKIP LOCKED) s"                                                 \
    " WHERE j.company_id = s.company_id AND j.id = s.id"                                                               \
    " RETURNING j.company_id, j.id, j.attempts, j.max_attempts"

/*
 * A batch's failures in one statement. delay -1: a counted attempt, retried with
 * backoff or left as failed after the last; delay >= 0: retried after that many
 * milliseconds without counting the attempt; -2: parked (run_at infinity) until
 * whoever parked it moves run_at back.
 */
static pg_stmt_t worker_fail_stmt = {
    "UPDATE jobs j SET attempts = CASE WHEN f.delay = -1 THEN j.attempts ELSE j.attempts - 1 END,"
    " status = CASE WHEN f.delay = -1 AND j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END,"
    " run_at = CASE WHEN f.delay = -2 THEN 'infinity'"
    " WHEN f.delay >= 0 THEN now() + f.delay * interval '1 millisecond'"
    " WHEN j.attempts >= j.max_attempts THEN j.run_at"
    " ELSE now() + $4::bigint * (2 ^ (j.attempts - 1)) * (0.8 + random() * 0.4) * interval '1 millisecond' END,"
    " last_error = left(f.error, 2000), locked_by = NULL, locked_until = NULL, updated_at = now()"
    " FROM unnest($1::int8[], $2::int8[], $3::text[], $6::int8[]) f(company, id, error, delay)"
    " WHERE j.company_id = f.company AND j.id = f.id AND j.status = 'running' AND j.locked_by = $5"
    " RETURNING j.id, j.status, f.delay",
    6, .replan = 1};

/* Milliseconds until the earliest scheduled retry; NULL when none is waiting. */
static pg_stmt_t worker_due_stmt = {"SELECT ceil(extract(epoch FROM min(run_at) - now()) * 1000)::bigint FROM jobs"
                                    " WHERE queue = $1 AND status = 'queued' AND run_at > now()",
                                    1, .replan = 1};

static pg_stmt_t worker_recover_stmt = {
    "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,"
    " run_at = now(), locked_by = NULL, locked_until = NULL, updated_at = now(),"
    " last_error = 'its worker stopped answering (lease expired after attempt ' || attempts || ')'"
    " WHERE status = 'running' AND locked_until < now() AND queue = $1"
    " RETURNING status",
    1, .replan = 1};

/*
 * Counting is linear in the backlog (a few hundred ms at 200,000 queued jobs), hence
 * sampled every WORKER_STATS_TICKS; the oldest due job is the first entry of
 * jobs_claim_idx. The queued jobs are counted in that index's order so that the
 * planner walks the index: a plain count(*) of a queue holding a good share of the
 * table gets a parallel scan of the whole table instead, completed jobs included,
 * and spawns its workers each time (25 ms at 136,000 rows, 200 ms on a busy machine,
 * against 3 ms through the index). The queue is in the text, as in the claim: the
 * generic plan for `queue = $1` scanned and sorted the whole table (40 ms for an empty
 * queue beside 90,000 other jobs, 110 ms for 60,000 of its own, against 0.05 and 24).
 */
#define WORKER_STATS_SQL /* queue four times */                                                                        \
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE queue = '%s' AND status = 'queued'"                        \
    " ORDER BY run_at, id LIMIT 1000000000) q),"                                                                       \
    " (SELECT count(*) FROM jobs WHERE queue = '%s' AND status = 'running'),"                                          \
    " (SELECT count(*) FROM jobs WHERE queue = '%s' AND status = 'failed'),"                                           \
    " coalesce((SELECT floor(extract(epoch FROM now() - run_at))::bigint FROM jobs"                                    \
    " WHERE queue = '%s' AND status = 'queued' AND run_at <= now() ORDER BY run_at, id LIMIT 1), 0),"                  \
    " (SELECT reltuples::bigint FROM pg_class WHERE oid = 'jobs'::regclass)"

/*
 * Bulk inserts (a campaign's expansion, a burst of webhooks) outrun autovacuum's
 * analyze (a minute apart by default); with the table's statistics saying "nearly
 * empty", the planner may claim through a nested range scan that grows with the
 * square of the backlog. When the live jobs of this queue alone outnumber what the
 * statistics think the whole table holds, the worker analyzes it.
 */
static pg_stmt_t worker_analyze_stmt = {"ANALYZE jobs", 0};
#define WORKER_STALE_SLACK 1000

static pg_stmt_t worker_prune_stmt = {
    "DELETE FROM jobs WHERE (company_id, id) IN (SELECT company_id, id FROM jobs"
    " WHERE status = 'completed' AND completed_at < now() - $2::bigint * interval '1 second' AND queue = $1"
    " LIMIT " WORKER_PRUNE_BATCH ")",
    2, .replan = 1};

/* ---- slots ---- */

static void slot_claim(queue_slot_t *s);
static void worker_kick(queue_worker_t *w);

static int worker_claiming(const queue_worker_t *w)
{
    return !atomic_load(&w->stopping) && !w->closing;
}

static void worker_on_due(void *data, const pg_reply_t *reply)
{
    queue_worker_t *w = data;
    w->due_asked = 0;
    if (reply->error != NULL || PQntuples(reply->res) != 1 || PQgetisnull(reply->res, 0, 0) || w->closing)
        return;
    long long ms = strtoll(PQgetvalue(reply->res, 0, 0), NULL, 10);
    if (ms < 1)
        ms = 1;
    if (ms < WORKER_TICK_MS)
        loop_timer_start(&w->due, (uint64_t)ms);
}

/* Nothing to claim now: wake when the earliest scheduled retry is due. */
static void worker_ask_due(queue_worker_t *w)
{
    if (w->due_asked || w->closing)
        return;
    w->due_asked = 1;
    pg_param_t p[] = {PG_TEXT(w->def.name)};
    pg_exec(w->pg, &worker_due_stmt, p, 1, worker_on_due, w, NULL);
}

static void slot_on_claim(void *data, const pg_reply_t *reply)
{
    queue_slot_t *s = data;
    queue_worker_t *w = s->worker;
    s->state = SLOT_IDLE;
    if (reply->error != NULL || w->closing) {
        if (reply->error != NULL && !w->closing)
            log_debug("queue", "%s: claim failed: %s", w->def.name, reply->error);
        return; /* the next tick tries again */
    }
    PGresult *res = reply->res;
    int wake_next = w->kick_pending || (unsigned)PQntuples(res) >= w->def.batch;
    w->kick_pending = 0;
    if (PQntuples(res) == 0) {
        worker_ask_due(w);
        if (wake_next)
            worker_kick(w);
        return;
    }
    s->njobs = 0;
    for (int i = 0; i < PQntuples(res) && s->njobs < w->def.batch; ++i) {
        s->jobs[s->njobs++] = (queue_job_t){.company = strtoll(PQgetvalue(res, i, 0), NULL, 10),
                                            .id = strtoll(PQgetvalue(res, i, 1), NULL, 10),
                                            .attempt = atoi(PQgetvalue(res, i, 2)),
                                            .max_attempts = atoi(PQgetvalue(res, i, 3))};
    }
    s->state = SLOT_RUNNING;
    s->started_ns = util_now_ns();
    log_debug("queue", "%s: %zu jobs from %" PRId64 " (attempt %d/%d) on slot %u", w->def.name, s->njobs, s->jobs[0].id,
              s->jobs[0].attempt, s->jobs[0].max_attempts, s->index);
    if (wake_next)
        worker_kick(w); /* there may be more: the next slot looks */
    w->def.run(s, s->jobs, s->njobs);
}

static void slot_claim(queue_slot_t *s)
{
    queue_worker_t *w = s->worker;
    if (s->state != SLOT_IDLE || !worker_claiming(w))
        return;
    s->state = SLOT_CLAIMING;
    pg_param_t p[] = {PG_TEXT(s->owner), PG_TEXT(w->lease_ms)};
    pg_exec(w->pg, &w->claim_stmt, p, 2, slot_on_claim, s, NULL);
}

/*
 * A slot that ran jobs looks for more at once: its batch may have been full, and jobs
 * of the keys it ran were held back behind them (a contact's next message, an agent's
 * next reply) and are due now, with no notification to announce them. A claim that
 * finds nothing stops there; an idle slot claims again when work is announced (a
 * notification, or a retry falling due, finds it idle or sets kick_pending).
 */
static void slot_idle(queue_slot_t *s)
{
    queue_worker_t *w = s->worker;
    int again = s->njobs > 0 || w->kick_pending;
    for (size_t i = 0; i < s->njobs; ++i) {
        free(s->errors[i]);
        s->errors[i] = NULL;
    }
    s->njobs = 0;
    s->state = SLOT_IDLE;
    if (again) {
        w->kick_pending = 0;
        slot_claim(s);
    }
    worker_ask_due(w);
}

static void slot_on_failed(void *data, const pg_reply_t *reply)
{
    queue_slot_t *s = data;
    queue_worker_t *w = s->worker;
    if (reply->error != NULL) {
        log_warn("queue", "%s: failed jobs could not be rescheduled (%s); their leases will expire", w->def.name,
                 reply->error);
    } else {
        for (int i = 0; i < PQntuples(reply->res); ++i) {
            if (strcmp(PQgetvalue(reply->res, i, 2), "-1") != 0)
                continue; /* not a counted attempt */
            if (strcmp(PQgetvalue(reply->res, i, 1), "failed") == 0) {
                metrics_add(w->metrics, METRICS_JOBS_FAILED, 1);
                log_warn("queue", "%s: job %s failed for good after its last attempt", w->def.name,
                         PQgetvalue(reply->res, i, 0));
            } else {
                metrics_add(w->metrics, METRICS_JOBS_RETRIED, 1);
            }
        }
    }
    slot_idle(s);
}

/* Records the batch's failures in one statement, then looks for more work. */
static void slot_record_failures(queue_slot_t *s)
{
    queue_worker_t *w = s->worker;
    pg_array_t company, id, error, delay;
    pg_array_init(&company, PG_OID_INT8);
    pg_array_init(&id, PG_OID_INT8);
    pg_array_init(&error, PG_OID_TEXT);
    pg_array_init(&delay, PG_OID_INT8);
    size_t n = 0;
    for (size_t i = 0; i < s->njobs; ++i) {
        if (s->errors[i] == NULL)
            continue;
        const queue_job_t *job = &s->jobs[i];
        if (s->delays[i] == -1)
            log_info("queue", "%s: job %" PRId64 " attempt %d/%d failed: %s", w->def.name, job->id, job->attempt,
                     job->max_attempts, s->errors[i]);
        else
            log_debug("queue", "%s: job %" PRId64 " deferred (%" PRId64 " ms): %s", w->def.name, job->id, s->delays[i],
                      s->errors[i]);
        pg_array_add_i64(&company, job->company);
        pg_array_add_i64(&id, job->id);
        pg_array_add(&error, s->errors[i], strlen(s->errors[i]));
        pg_array_add_i64(&delay, s->delays[i]);
        n++;
    }
    if (n == 0 || w->closing) {
        pg_array_free(&company);
        pg_array_free(&id);
        pg_array_free(&error);
        pg_array_free(&delay);
        slot_idle(s);
        return;
    }
    pg_param_t p[] = {pg_array_param(&company), pg_array_param(&id), pg_array_param(&error),
                      PG_TEXT(w->backoff_ms),   PG_TEXT(s->owner),   pg_array_param(&delay)};
    pg_exec(w->pg, &worker_fail_stmt, p, 6, slot_on_failed, s, NULL);
    pg_array_free(&company);
    pg_array_free(&id);
    pg_array_free(&error);
    pg_array_free(&delay);
}

static void slot_mark(queue_slot_t *s, size_t i, const char *error, int64_t delay)
{
    if (i >= s->njobs || s->errors[i] != NULL)
        return;
    s->errors[i] = util_strdup(error != NULL && *error != '\0' ? error : "failed");
    s->delays[i] = delay;
}

void queue_slot_fail(queue_slot_t *s, size_t i, const char *error)
{
    slot_mark(s, i, error, -1);
}

void queue_slot_retry(queue_slot_t *s, size_t i, int64_t delay_ms, const char *error)
{
    slot_mark(s, i, error, delay_ms < 0 ? -2 : delay_ms);
}

void queue_slot_done(queue_slot_t *s)
{
    queue_worker_t *w = s->worker;
    uint64_t took = util_now_ns() - s->started_ns;
    size_t failed = 0;
    for (size_t i = 0; i < s->njobs; ++i) {
        metrics_observe_rtt(w->metrics, METRICS_RTT_JOB, took);
        failed += s->errors[i] != NULL;
    }
    metrics_add(w->metrics, METRICS_JOBS_COMPLETED, s->njobs - failed);
    s->state = SLOT_FAILING;
    slot_record_failures(s);
}

void queue_slot_exec_batch(queue_slot_t *s, pg_stmt_t *stmt, pg_cb cb, void *data)
{
    pg_array_t companies, ids;
    pg_array_init(&companies, PG_OID_INT8);
    pg_array_init(&ids, PG_OID_INT8);
    for (size_t i = 0; i < s->njobs; ++i) {
        pg_array_add_i64(&companies, s->jobs[i].company);
        pg_array_add_i64(&ids, s->jobs[i].id);
    }
    pg_param_t p[] = {pg_array_param(&companies), pg_array_param(&ids), PG_TEXT(s->owner)};
    pg_exec(s->worker->pg, stmt, p, 3, cb, data, NULL); /* copies the parameters */
    pg_array_free(&companies);
    pg_array_free(&ids);
}

h2o_loop_t *queue_slot_loop(queue_slot_t *s)
{
    return s->worker->loop;
}

void *queue_slot_context(queue_slot_t *s)
{
    return s->worker->context;
}

metrics_shard_t *queue_slot_metrics(queue_slot_t *s)
{
    return s->worker->metrics;
}

int queue_slot_stopping(queue_slot_t *s)
{
    return atomic_load(&s->worker->stopping) || s->worker->closing;
}

pg_pool_t *queue_slot_pg(queue_slot_t *s)
{
    return s->worker->pg;
}

cache_thread_t *queue_slot_cache(queue_slot_t *s)
{
    return s->worker->cache;
}

const char *queue_slot_owner(queue_slot_t *s)
{
    return s->owner;
}

/*
 * Wakes the queue: one idle slot claims. A claim that fills its batch, or that was in
 * flight when more work was announced, wakes the next slot (slot_on_claim), so slots
 * start as the work needs them; waking every slot at each notification cost a claim
 * statement per slot that mostly found nothing, and a claim is not cheap on a busy
 * queue table.
 */
static void worker_kick(queue_worker_t *w)
{
    for (unsigned i = 0; i < w->concurrency; ++i)
        if (w->slots[i].state == SLOT_CLAIMING) {
            w->kick_pending = 1;
            return;
        }
    for (unsigned i = 0; i < w->concurrency; ++i)
        if (w->slots[i].state == SLOT_IDLE) {
            slot_claim(&w->slots[i]);
            return;
        }
    w->kick_pending = 1; /* every slot is busy: the first to finish looks */
}

/* ---- notifications ---- */

/* On the listener's thread (queue/wake.h): one message in the queue at a time. */
static void worker_on_wake(void *data)
{
    queue_worker_t *w = data;
    if (!atomic_exchange(&w->wake_sent, 1))
        h2o_multithread_send_message(&w->receiver, &w->wake_msg);
}

/* ---- housekeeping ---- */

static void worker_on_housekeeping(void *data, const pg_reply_t *reply);

typedef enum { HK_RECOVER, HK_STATS, HK_ANALYZE, HK_PRUNE } hk_step_t;

typedef struct hk {
    queue_worker_t *w;
    hk_step_t step;
    int stats, analyze, prune;
} hk_t;

static void worker_hk_next(hk_t *h)
{
    queue_worker_t *w = h->w;
    pg_param_t p[] = {PG_TEXT(w->def.name), PG_TEXT(w->retention_s)};
    if (h->step == HK_RECOVER && h->stats) {
        h->step = HK_STATS;
        pg_exec(w->pg, &w->stats_stmt, NULL, 0, worker_on_housekeeping, h, NULL);
        return;
    }
    if (h->step == HK_STATS && h->analyze) {
        h->step = HK_ANALYZE;
        log_info("queue", "%s: the jobs table's statistics are stale; analyzing it", w->def.name);
        pg_exec(w->pg, &worker_analyze_stmt, NULL, 0, worker_on_housekeeping, h, NULL);
        return;
    }
    if (h->step != HK_PRUNE && h->prune) {
        h->step = HK_PRUNE;
        pg_exec(w->pg, &worker_prune_stmt, p, 2, worker_on_housekeeping, h, NULL);
        return;
    }
    w->housekeeping = 0;
    free(h);
}

static void worker_on_housekeeping(void *data, const pg_reply_t *reply)
{
    hk_t *h = data;
    queue_worker_t *w = h->w;
    if (reply->error != NULL || w->closing) {
        w->housekeeping = 0;
        free(h);
        return;
    }
    PGresult *res = reply->res;
    switch (h->step) {
    case HK_RECOVER:
        if (PQntuples(res) > 0) {
            int failed = 0;
            for (int i = 0; i < PQntuples(res); ++i)
                failed += strcmp(PQgetvalue(res, i, 0), "failed") == 0;
            metrics_add(w->metrics, METRICS_JOBS_RECOVERED, (uint64_t)PQntuples(res));
            metrics_add(w->metrics, METRICS_JOBS_FAILED, (uint64_t)failed);
            log_warn("queue", "%s: took back %d jobs whose lease expired (%d of them out of attempts)", w->def.name,
                     PQntuples(res), failed);
            worker_kick(w);
        }
        break;
    case HK_STATS:
        if (PQntuples(res) == 1) {
            metrics_gauge_set(w->metrics, METRICS_QUEUE_QUEUED, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
            metrics_gauge_set(w->metrics, METRICS_QUEUE_RUNNING, strtoll(PQgetvalue(res, 0, 1), NULL, 10));
            metrics_gauge_set(w->metrics, METRICS_QUEUE_DEAD, strtoll(PQgetvalue(res, 0, 2), NULL, 10));
            metrics_gauge_set(w->metrics, METRICS_QUEUE_OLDEST_S, strtoll(PQgetvalue(res, 0, 3), NULL, 10));
            long long live = strtoll(PQgetvalue(res, 0, 0), NULL, 10) + strtoll(PQgetvalue(res, 0, 1), NULL, 10);
            h->analyze = live > strtoll(PQgetvalue(res, 0, 4), NULL, 10) + WORKER_STALE_SLACK;
        }
        break;
    case HK_ANALYZE:
        break;
    case HK_PRUNE:
        if (strtoll(PQcmdTuples(res), NULL, 10) > 0)
            log_debug("queue", "%s: pruned %s completed jobs", w->def.name, PQcmdTuples(res));
        break;
    }
    worker_hk_next(h);
}

static void worker_on_tick(loop_timer_t *t)
{
    queue_worker_t *w = util_container_of(t, queue_worker_t, tick);
    loop_timer_start(&w->tick, WORKER_TICK_MS);
    if (w->closing)
        return;
    w->ticks++;
    if (atomic_load(&w->stopping))
        return;
    worker_kick(w);
    if (!w->housekeeping) {
        hk_t *h = util_calloc(1, sizeof(*h));
        h->w = w;
        h->step = HK_RECOVER;
        /* due by ticks elapsed, not by tick parity: a chain that outlasts a tick (a
         * busy database) would otherwise keep starting on ticks that never sample */
        h->stats = w->ticks - w->stats_tick >= WORKER_STATS_TICKS || w->stats_tick == 0;
        h->prune = w->ticks - w->prune_tick >= WORKER_PRUNE_TICKS || w->prune_tick == 0;
        if (h->stats)
            w->stats_tick = w->ticks;
        if (h->prune)
            w->prune_tick = w->ticks;
        w->housekeeping = 1;
        pg_param_t p[] = {PG_TEXT(w->def.name)};
        pg_exec(w->pg, &worker_recover_stmt, p, 1, worker_on_housekeeping, h, NULL);
    }
}

static void worker_on_due_timer(loop_timer_t *t)
{
    queue_worker_t *w = util_container_of(t, queue_worker_t, due);
    worker_kick(w);
}

/* ---- the thread ---- */

static void worker_on_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    queue_worker_t *w = util_container_of(receiver, queue_worker_t, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        if (m == &w->wake_msg) {
            atomic_store(&w->wake_sent, 0);
            worker_kick(w);
        } else {
            w->stop_seen = 1; /* the stop message: the loop condition does the rest */
        }
    }
}

static int worker_busy(const queue_worker_t *w)
{
    for (unsigned i = 0; i < w->concurrency; ++i)
        if (w->slots[i].state != SLOT_IDLE)
            return 1;
    return w->housekeeping || w->due_asked;
}

static void *worker_main(void *arg)
{
    queue_worker_t *w = arg;
    util_thread_name("queue-%s", w->def.name);
    /*
     * The loop and its message queue are made on this thread, not by the starter: h2o
     * 2.2.5 gives a socket the input buffers of the thread that creates it (a per-thread
     * free list, not locked), and the queue's pipe is a socket that takes a buffer from
     * that list at each wake-up and gives it back once read. Made on the starting
     * thread, all workers' pipes shared its list from their own threads at once: a
     * buffer could be handed out twice, and read into after it was freed (seen under
     * the soak load, as a crash one run in a few).
     */
    w->loop = h2o_evloop_create();
    w->mq = h2o_multithread_create_queue(w->loop);
    h2o_multithread_register_receiver(w->mq, &w->receiver, worker_on_message);
    sem_post(&w->ready);
    w->metrics = metrics_shard_new();
    metrics_shard_bind(w->metrics);
    pg_pool_config_t pc = {
        .conninfo = config.database_url,
        .size = w->concurrency,
        .pipeline_depth = 4,
        .queue_max = 1024,
        .statement_timeout_ms = config.statement_timeout_ms,
        .application_name = "conversa-worker",
    };
    w->pg = pg_pool_new(w->loop, &pc, w->metrics);
    config_parse_redis_url(config.redis_url, &w->redis_addr);
    w->redis = redis_client_new(w->loop, &w->redis_addr, config.redis_timeout_ms, w->metrics);
    w->cache = cache_thread_new(w->loop, w->mq, w->redis, w->metrics);
    if (w->def.thread_start != NULL)
        w->context = w->def.thread_start(w->loop, w->redis, w->metrics);
    loop_timer_init(&w->tick, w->loop, worker_on_tick);
    loop_timer_init(&w->due, w->loop, worker_on_due_timer);
    loop_timer_start(&w->tick, 100); /* first look once the pool had a moment to connect */

    /* Until the stop message itself is taken, not merely `stopping` seen: a tick between
     * the flag and the message would otherwise leave the message queued, and h2o
     * refuses to unregister a receiver with messages pending. */
    while (!w->stop_seen)
        h2o_evloop_run(w->loop, INT32_MAX);
    /* finish what is running, within the shutdown timeout */
    while (worker_busy(w) && util_now_ns() < w->stop_deadline_ns)
        h2o_evloop_run(w->loop, 50);
    if (worker_busy(w))
        log_warn("queue", "%s: jobs still running at shutdown are left to their lease", w->def.name);

    w->closing = 1;
    if (w->def.thread_stop != NULL)
        w->def.thread_stop(w->context); /* what it still had in flight fails: slots go idle */
    loop_timer_dispose(&w->tick);
    loop_timer_dispose(&w->due);
    pg_pool_free(w->pg); /* fails what is in flight: callbacks see closing */
    redis_client_free(w->redis);
    cache_thread_free(w->cache);
    for (int i = 0; i != 4; ++i)
        h2o_evloop_run(w->loop, 0);
    h2o_multithread_unregister_receiver(w->mq, &w->receiver);
    h2o_multithread_destroy_queue(w->mq);
    free(w->mq); /* h2o 2.2.5's destroy closes the queue but does not free it */
    h2o_evloop_destroy(w->loop);
    loop_thread_release();
    log_thread_done();
    return NULL;
}

queue_worker_t *queue_worker_start(const queue_def_t *def, unsigned concurrency)
{
    queue_worker_t *w = util_calloc(1, sizeof(*w));
    w->def = *def;
    w->concurrency = concurrency;
    w->slots = util_calloc(concurrency, sizeof(*w->slots));
    char host[64] = "";
    gethostname(host, sizeof(host) - 1);
    if (w->def.batch == 0)
        w->def.batch = 1;
    for (unsigned i = 0; i < concurrency; ++i) {
        w->slots[i].worker = w;
        w->slots[i].index = i;
        w->slots[i].jobs = util_calloc(w->def.batch, sizeof(queue_job_t));
        w->slots[i].errors = util_calloc(w->def.batch, sizeof(char *));
        w->slots[i].delays = util_calloc(w->def.batch, sizeof(int64_t));
        snprintf(w->slots[i].owner, sizeof(w->slots[i].owner), "%s:%ld:%u", host, (long)getpid(), i);
    }
    snprintf(w->lease_ms, sizeof(w->lease_ms), "%u", config.queue_lease_ms);
    snprintf(w->backoff_ms, sizeof(w->backoff_ms), "%u", config.queue_backoff_ms);
    snprintf(w->retention_s, sizeof(w->retention_s), "%u", config.queue_retention_s);
    /* the name goes into SQL text: it is one of the program's own, never input */
    if (w->def.name[strspn(w->def.name, "abcdefghijklmnopqrstuvwxyz_")] != '\0')
        util_fatal("queue: the name \"%s\" is not made of a-z and _", w->def.name);
    const char *q = w->def.name;
    strbuf_init(&w->claim_sql);
    strbuf_printf(&w->claim_sql, WORKER_CLAIM_SQL, q, w->def.batch);
    strbuf_init(&w->stats_sql);
    strbuf_printf(&w->stats_sql, WORKER_STATS_SQL, q, q, q, q);
    w->claim_stmt = (pg_stmt_t){w->claim_sql.data, 2, .replan = 1};
    w->stats_stmt = (pg_stmt_t){w->stats_sql.data, 0, .replan = 1};
    /* the thread's loop exists before this returns, so queue_worker_stop() can always reach it */
    if (sem_init(&w->ready, 0, 0) != 0 || pthread_create(&w->tid, NULL, worker_main, w) != 0)
        util_fatal("queue: cannot start the worker thread");
    while (sem_wait(&w->ready) != 0)
        if (errno != EINTR)
            util_fatal("queue: sem_wait: %s", strerror(errno));
    sem_destroy(&w->ready);
    w->wake = (queue_wake_sub_t){.queue = w->def.name, .fn = worker_on_wake, .data = w};
    queue_wake_subscribe(&w->wake);
    return w;
}

void queue_worker_stop(queue_worker_t *w)
{
    if (w == NULL)
        return;
    w->stop_deadline_ns = util_now_ns() + (uint64_t)config.shutdown_timeout_ms * 1000000;
    queue_wake_unsubscribe(&w->wake); /* no wake is sent after this: the stop message is the last */
    atomic_store(&w->stopping, 1);
    /* the loop may be asleep in epoll: a message wakes it */
    h2o_multithread_send_message(&w->receiver, &w->stop_msg);
    pthread_join(w->tid, NULL);
    for (unsigned i = 0; i < w->concurrency; ++i) {
        for (size_t k = 0; k < w->def.batch; ++k)
            free(w->slots[i].errors[k]);
        free(w->slots[i].errors);
        free(w->slots[i].delays);
        free(w->slots[i].jobs);
    }
    free(w->slots);
    strbuf_free(&w->claim_sql);
    strbuf_free(&w->stats_sql);
    free(w);
}
