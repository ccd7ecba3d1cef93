#include "meta/send.h"
#include "auth/secrets.h"
#include "cache/cache.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timer.h"
#include "core/util.h"
#include "meta/graph.h"
#include "meta/pace.h"
#include "ops/metrics.h"
#include "store/pgarray.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEND_HTTP_CONNECTIONS 64   /* to Meta, per worker thread */
#define SEND_WAIT_CAP_MS      1000 /* longer waits for the pace go back to the queue: a pause takes effect soon */
#define SEND_THROTTLE_TRIES   3    /* throttled sends paced again within a batch before going back to the queue */
#define SEND_PACE_TICK_MS     10   /* waits for the pace end on this grid (see send_on_paced) */
#define SEND_RECORD_TRIES     5
#define SEND_EXPAND_CHUNK     "10000" /* recipients made per campaign expansion step */

/* The worker thread's own: an HTTP client and pacing. */
typedef struct send_ctx {
    http_client_t *http;
    meta_pace_t *pace;
    metrics_shard_t *metrics;
} send_ctx_t;

typedef enum item_state {
    ITEM_DONE,      /* outcome decided (or handed back to the queue) */
    ITEM_WAITING,   /* for the pace */
    ITEM_ASKING,    /* the pace is being asked */
    ITEM_INFLIGHT,  /* the request is with Meta */
    ITEM_EXPANDING, /* a campaign's expansion step (send.h) */
} item_state_t;

typedef struct send_item {
    item_state_t state;
    const char *outcome; /* for outbound_record: "sent", "failed", "skip", "cancelled"; NULL: nothing to record */
    int64_t conn;
    unsigned rate;
    char *phone_number_id, *to, *body, *token;
    uint64_t wait_until_ms;
    unsigned throttled;
    uint64_t sent_ns;
    int code;
    char wamid[META_WAMID_MAX];
    char title[META_TITLE_MAX];
} send_item_t;

typedef struct send_batch {
    queue_slot_t *slot;
    send_ctx_t *ctx;
    const queue_job_t *jobs;
    size_t n;
    send_item_t *items;
    unsigned busy; /* pace calls and requests in flight */
    uint64_t deadline_ms;
    unsigned record_tries;
    unsigned bumps;
    int stepping, again; /* send_step() is on the stack / was called again meanwhile */
    int pacing;          /* a question to the pace is in flight */
    loop_timer_t timer;
} send_batch_t;

static pg_stmt_t send_prepare_stmt = {
    "SELECT i, action, reason, connection_id, phone_number_id, access_token_enc, messages_per_second, to_number, body,"
    " template_name, template_language, template_params, callback"
    " FROM outbound_prepare($1::bigint[], $2::bigint[], $3)",
    3};

static pg_stmt_t send_expand_stmt = {"SELECT campaign_expand($1, $2, $3, $4, " SEND_EXPAND_CHUNK ", $5)", 5};

static pg_stmt_t send_record_stmt = {
    "SELECT company_id, conversation_id FROM outbound_record($1::bigint[], $2::bigint[], $3::text[], $4::text[],"
    " $5::bigint[], $6::text[], $7)",
    7};

static uint64_t send_now_ms(void)
{
    return util_now_ns() / 1000000;
}

static void send_item_clear(send_item_t *it)
{
    free(it->phone_number_id);
    free(it->to);
    free(it->body);
    if (it->token != NULL) {
        sodium_memzero(it->token, strlen(it->token));
        free(it->token);
    }
    it->phone_number_id = it->to = it->body = it->token = NULL;
}

static void send_batch_free(send_batch_t *b)
{
    for (size_t i = 0; i < b->n; ++i)
        send_item_clear(&b->items[i]);
    loop_timer_dispose(&b->timer);
    free(b->items);
    free(b);
}

static void send_finish(send_batch_t *b)
{
    queue_slot_t *s = b->slot;
    send_batch_free(b);
    queue_slot_done(s);
}

/* ---- RECORD ---- */

static void send_record(send_batch_t *b);

static void send_on_bumped(void *data, int ok)
{
    send_batch_t *b = data;
    (void)ok; /* a failed bump is the cache's to retry */
    if (--b->bumps == 0)
        send_finish(b);
}

static void send_on_recorded(void *data, const pg_reply_t *reply)
{
    send_batch_t *b = data;
    if (reply->error != NULL) {
        if (++b->record_tries < SEND_RECORD_TRIES && !queue_slot_stopping(b->slot)) {
            log_warn("send", "recording sends failed (%s); trying again", reply->error);
            loop_timer_start(&b->timer, 200u * b->record_tries);
            return;
        }
        /* the jobs' leases expire and they run again; Meta's status webhooks name what was sent */
        log_error("send", "recording sends failed for good (%s); their jobs will run again after the lease",
                  reply->error);
        send_finish(b);
        return;
    }
    b->bumps = 1;
    for (int r = 0; r < PQntuples(reply->res); ++r) {
        cache_gen_t gen = {CACHE_SCOPE_MESSAGES, strtoll(PQgetvalue(reply->res, r, 1), NULL, 10)};
        b->bumps++;
        cache_bump(queue_slot_cache(b->slot), strtoll(PQgetvalue(reply->res, r, 0), NULL, 10), &gen, 1, send_on_bumped,
                   b, NULL);
    }
    send_on_bumped(b, 1);
}

static void send_record(send_batch_t *b)
{
    pg_array_t company, job, outcome, wamid, code, title;
    pg_array_init(&company, PG_OID_INT8);
    pg_array_init(&job, PG_OID_INT8);
    pg_array_init(&outcome, PG_OID_TEXT);
    pg_array_init(&wamid, PG_OID_TEXT);
    pg_array_init(&code, PG_OID_INT8);
    pg_array_init(&title, PG_OID_TEXT);
    size_t n = 0;
    for (size_t i = 0; i < b->n; ++i) {
        const send_item_t *it = &b->items[i];
        if (it->outcome == NULL)
            continue;
        pg_array_add_i64(&company, b->jobs[i].company);
        pg_array_add_i64(&job, b->jobs[i].id);
        pg_array_add(&outcome, it->outcome, strlen(it->outcome));
        pg_array_add(&wamid, it->wamid, strlen(it->wamid));
        pg_array_add_i64(&code, it->code);
        pg_array_add(&title, it->title, strlen(it->title));
        n++;
    }
    if (n == 0) {
        send_finish(b);
    } else {
        pg_param_t p[] = {
            pg_array_param(&company), pg_array_param(&job),   pg_array_param(&outcome),          pg_array_param(&wamid),
            pg_array_param(&code),    pg_array_param(&title), PG_TEXT(queue_slot_owner(b->slot))};
        pg_exec(queue_slot_pg(b->slot), &send_record_stmt, p, 7, send_on_recorded, b, NULL);
    }
    pg_array_free(&company);
    pg_array_free(&job);
    pg_array_free(&outcome);
    pg_array_free(&wamid);
    pg_array_free(&code);
    pg_array_free(&title);
}

/* ---- PACE and SEND ---- */

static void send_step(send_batch_t *b);

static void send_done(send_item_t *it, const char *outcome)
{
    it->state = ITEM_DONE;
    it->outcome = outcome;
}

/* A final outcome for a send: recorded later, counted per connection now. */
static void send_final(send_batch_t *b, send_item_t *it, const char *outcome)
{
    metrics_outbound(b->ctx->metrics, it->conn, strcmp(outcome, "sent") == 0);
    send_done(it, outcome);
}

/* Hands item i back to the queue, due again after delay_ms, without counting the attempt. */
static void send_requeue(send_batch_t *b, size_t i, int64_t delay_ms, const char *why)
{
    queue_slot_retry(b->slot, i, delay_ms, why);
    send_done(&b->items[i], NULL);
}

/* What a callback about item i of a batch is given (freed by the callback). */
typedef struct send_ref {
    send_batch_t *batch;
    size_t i;
} send_ref_t;

static send_ref_t *send_ref(send_batch_t *b, size_t i)
{
    send_ref_t *r = util_malloc(sizeof(*r));
    r->batch = b;
    r->i = i;
    return r;
}

/* Unpacks and frees a send_ref_t; returns the batch and sets *i. */
static send_batch_t *send_unref(void *data, size_t *i)
{
    send_ref_t *r = data;
    send_batch_t *b = r->batch;
    *i = r->i;
    free(r);
    return b;
}

static void send_on_result(void *data, const meta_send_result_t *res)
{
    size_t i;
    send_batch_t *b = send_unref(data, &i);
    send_item_t *it = &b->items[i];
    metrics_shard_t *m = b->ctx->metrics;
    metrics_observe_rtt(m, METRICS_RTT_GRAPH, util_now_ns() - it->sent_ns);
    b->busy--;
    it->code = res->code;
    snprintf(it->title, sizeof(it->title), "%s", res->title);
    char why[META_TITLE_MAX + 32];
    snprintf(why, sizeof(why), "Meta %d: %s", res->code, res->title);
    switch (res->kind) {
    case META_SEND_ACCEPTED:
        metrics_add(m, METRICS_GRAPH_ACCEPTED, 1);
        snprintf(it->wamid, sizeof(it->wamid), "%s", res->wamid);
        send_final(b, it, "sent");
        break;
    case META_SEND_THROTTLED:
        metrics_add(m, METRICS_GRAPH_THROTTLED, 1);
        meta_pace_penalize(b->ctx->pace, it->conn, it->rate, NULL);
        if (++it->throttled < SEND_THROTTLE_TRIES) {
            it->state = ITEM_WAITING;
            it->wait_until_ms = send_now_ms() + META_PENALTY_MS;
        } else {
            send_requeue(b, i, 1000 + randombytes_uniform(1000), why);
        }
        break;
    case META_SEND_PAIR_LIMITED:
        metrics_add(m, METRICS_GRAPH_THROTTLED, 1);
        meta_pace_penalize(b->ctx->pace, it->conn, it->rate, it->to);
        send_requeue(b, i, META_PAIR_INTERVAL_MS + randombytes_uniform(3000), why);
        break;
    case META_SEND_RETRY:
        if (queue_slot_stopping(b->slot) && res->code == 0) {
            /* cut by the shutdown: Meta may have it; the lease and the status webhook settle it */
            send_done(it, NULL);
            break;
        }
        metrics_add(m, METRICS_GRAPH_RETRIED, 1);
        if (b->jobs[i].attempt >= b->jobs[i].max_attempts) {
            send_final(b, it, "failed"); /* the last attempt: failed for good, with Meta's code and title */
        } else {
            queue_slot_fail(b->slot, i, why);
            send_done(it, NULL);
        }
        break;
    case META_SEND_REJECTED:
        metrics_add(m, METRICS_GRAPH_REJECTED, 1);
        send_final(b, it, "failed");
        break;
    }
    send_step(b);
}

static void send_item_go(send_batch_t *b, size_t i)
{
    send_item_t *it = &b->items[i];
    it->state = ITEM_INFLIGHT;
    it->sent_ns = util_now_ns();
    b->busy++;
    meta_graph_send(b->ctx->http, it->phone_number_id, it->token, it->body, strlen(it->body), send_on_result,
                    send_ref(b, i));
}

typedef struct pace_call {
    send_batch_t *batch;
    size_t n;
    size_t idx[]; /* the items asked about, in order */
} pace_call_t;

static void send_on_paced(void *data, const int64_t *waits, size_t n)
{
    pace_call_t *pc = data;
    send_batch_t *b = pc->batch;
    uint64_t now = send_now_ms();
    b->busy--;
    b->pacing = 0;
    for (size_t k = 0; k < pc->n; ++k) {
        send_item_t *it = &b->items[pc->idx[k]];
        int64_t w = k < n ? waits[k] : 1000;
        if (w <= 0) {
            send_item_go(b, pc->idx[k]);
        } else {
            /* due on a SEND_PACE_TICK_MS grid, so one question asks for the sends a tick's tokens can grant */
            it->state = ITEM_WAITING;
            it->wait_until_ms = (now + (uint64_t)w + SEND_PACE_TICK_MS - 1) / SEND_PACE_TICK_MS * SEND_PACE_TICK_MS;
        }
    }
    free(pc);
    send_step(b);
}

/*
 * Asks the pace for the due waiting items of one connection, as many as its bucket's
 * burst. Returns whether it asked. One question at a time per batch: the answer says
 * how long the rest wait.
 */
static int send_ask_pace(send_batch_t *b, uint64_t now)
{
    if (b->pacing)
        return 0;
    size_t first = b->n;
    for (size_t i = 0; i < b->n && first == b->n; ++i)
        if (b->items[i].state == ITEM_WAITING && b->items[i].wait_until_ms <= now)
            first = i;
    if (first == b->n)
        return 0;
    pace_call_t *pc = util_malloc(sizeof(*pc) + sizeof(size_t) * b->n);
    pc->batch = b;
    pc->n = 0;
    const char **to = util_calloc(b->n, sizeof(char *));
    /* no more than the bucket's burst can grant: asking for more costs Redis a pair
     * bucket lookup per send that waits anyway, and holds everyone else's commands */
    size_t most = b->items[first].rate / 20 > 1 ? b->items[first].rate / 20 : 1;
    for (size_t i = first; i < b->n && pc->n < most; ++i) {
        send_item_t *it = &b->items[i];
        if (it->state == ITEM_WAITING && it->wait_until_ms <= now && it->conn == b->items[first].conn) {
            it->state = ITEM_ASKING;
            to[pc->n] = it->to;
            pc->idx[pc->n++] = i;
        }
    }
    b->busy++;
    b->pacing = 1;
    meta_pace_take(b->ctx->pace, b->items[first].conn, b->items[first].rate, to, pc->n, send_on_paced, pc);
    free(to);
    return 1;
}

/*
 * Moves the batch on: asks the pace for what is due, sleeps until the next item is
 * due, hands back what would wait too long, and records once nothing is in flight.
 */
static void send_step(send_batch_t *b)
{
    /* callbacks may run before the calls that cause them return: only the outermost call decides */
    if (b->stepping) {
        b->again = 1;
        return;
    }
    b->stepping = 1;
    do {
        b->again = 0;
        uint64_t at = send_now_ms();
        while (send_ask_pace(b, at))
            ;
    } while (b->again);
    b->stepping = 0;
    if (b->busy > 0)
        return;
    uint64_t now = send_now_ms(), next = UINT64_MAX;
    int stopping = queue_slot_stopping(b->slot);
    for (size_t i = 0; i < b->n; ++i) {
        send_item_t *it = &b->items[i];
        if (it->state != ITEM_WAITING)
            continue;
        if (stopping || it->wait_until_ms > b->deadline_ms)
            send_requeue(b, i, stopping ? 0 : (int64_t)(it->wait_until_ms - now), "waiting for the send rate");
        else if (it->wait_until_ms < next)
            next = it->wait_until_ms;
    }
    if (next != UINT64_MAX) {
        loop_timer_start(&b->timer, next > now ? next - now : 1);
        return;
    }
    send_record(b);
}

static void send_on_timer(loop_timer_t *t)
{
    send_batch_t *b = util_container_of(t, send_batch_t, timer);
    if (b->record_tries > 0)
        send_record(b); /* a retry of the record */
    else
        send_step(b);
}

/* ---- PREPARE ---- */

static char *send_dup_value(PGresult *res, int r, int c)
{
    return PQgetisnull(res, r, c) ? NULL : util_strdup(PQgetvalue(res, r, c));
}

/* Opens the connection's sealed access token. NULL when it does not open. */
static char *send_token(PGresult *res, int r, int c)
{
    char token[SECRETS_PLAIN_MAX + 1];
    size_t len;
    if (secrets_decrypt_pg("connections.access_token", PQgetvalue(res, r, c), token, sizeof(token), &len) != 0)
        return NULL;
    char *out = util_strdup(token);
    sodium_memzero(token, len);
    return out;
}

static void send_prepare_item(send_batch_t *b, PGresult *res, int r)
{
    long long i1 = strtoll(PQgetvalue(res, r, 0), NULL, 10);
    if (i1 < 1 || (size_t)i1 > b->n)
        return;
    size_t i = (size_t)i1 - 1;
    send_item_t *it = &b->items[i];
    const char *action = PQgetvalue(res, r, 1);
    if (strcmp(action, "skip") == 0) {
        send_done(it, "skip");
        return;
    }
    if (strcmp(action, "cancel") == 0) {
        send_done(it, "cancelled");
        return;
    }
    if (strcmp(action, "expand") == 0) {
        it->state = ITEM_EXPANDING;
        it->conn = strtoll(PQgetvalue(res, r, 3), NULL, 10); /* the campaign */
        return;
    }
    if (strcmp(action, "park") == 0) {
        send_requeue(b, i, -1, "its campaign is paused");
        return;
    }
    if (strcmp(action, "send") != 0) {
        snprintf(it->title, sizeof(it->title), "%s", PQgetvalue(res, r, 2));
        send_final(b, it, "failed");
        return;
    }
    it->conn = strtoll(PQgetvalue(res, r, 3), NULL, 10);
    it->phone_number_id = send_dup_value(res, r, 4);
    it->rate = (unsigned)strtoul(PQgetvalue(res, r, 6), NULL, 10);
    it->to = send_dup_value(res, r, 7);
    const char *callback = PQgetvalue(res, r, 12);
    if (!PQgetisnull(res, r, 8))
        it->body = meta_graph_text(it->to, PQgetvalue(res, r, 8), callback);
    else if (!PQgetisnull(res, r, 9))
        it->body = meta_graph_template(it->to, PQgetvalue(res, r, 9), PQgetvalue(res, r, 10),
                                       PQgetisnull(res, r, 11) ? NULL : PQgetvalue(res, r, 11), callback);
    it->token = send_token(res, r, 5);
    if (it->to == NULL || it->body == NULL) {
        snprintf(it->title, sizeof(it->title), "nothing to send");
        send_final(b, it, "failed");
    } else if (it->token == NULL) {
        snprintf(it->title, sizeof(it->title), "the connection's access token cannot be opened with ENCRYPTION_KEY");
        send_final(b, it, "failed");
    } else {
        it->state = ITEM_WAITING;
        it->wait_until_ms = 0;
    }
}

static void send_on_expanded(void *data, const pg_reply_t *reply)
{
    size_t i;
    send_batch_t *b = send_unref(data, &i);
    b->busy--;
    if (reply->error != NULL)
        queue_slot_fail(b->slot, i, reply->error);
    send_done(&b->items[i], NULL); /* campaign_expand completed its job, or queued it again for the next step */
    send_step(b);
}

/* Runs the batch's expansion steps (campaign_expand, migration 0007). */
static void send_expand(send_batch_t *b)
{
    for (size_t i = 0; i < b->n; ++i) {
        if (b->items[i].state != ITEM_EXPANDING)
            continue;
        b->busy++;
        char company[24], campaign[24], job[24], attempts[16];
        snprintf(company, sizeof(company), "%" PRId64, b->jobs[i].company);
        snprintf(campaign, sizeof(campaign), "%" PRId64, b->items[i].conn);
        snprintf(job, sizeof(job), "%" PRId64, b->jobs[i].id);
        snprintf(attempts, sizeof(attempts), "%u", config.send_attempts);
        pg_param_t p[] = {PG_TEXT(company), PG_TEXT(campaign), PG_TEXT(job), PG_TEXT(queue_slot_owner(b->slot)),
                          PG_TEXT(attempts)}; /* copied by pg_exec */
        pg_exec(queue_slot_pg(b->slot), &send_expand_stmt, p, 5, send_on_expanded, send_ref(b, i), NULL);
    }
}

static void send_on_prepared(void *data, const pg_reply_t *reply)
{
    send_batch_t *b = data;
    if (reply->error != NULL) {
        for (size_t i = 0; i < b->n; ++i)
            queue_slot_fail(b->slot, i, reply->error);
        send_finish(b);
        return;
    }
    /* jobs without a row are no longer held by this worker: nothing to do or record */
    for (int r = 0; r < PQntuples(reply->res); ++r)
        send_prepare_item(b, reply->res, r);
    b->stepping = 1; /* the expansions' callbacks may come at once: send_step decides after */
    send_expand(b);
    b->stepping = 0;
    send_step(b);
}

static void send_run(queue_slot_t *s, const queue_job_t *jobs, size_t n)
{
    send_batch_t *b = util_calloc(1, sizeof(*b));
    b->slot = s;
    b->ctx = queue_slot_context(s);
    b->jobs = jobs;
    b->n = n;
    b->items = util_calloc(n, sizeof(send_item_t));
    uint64_t wait = config.queue_lease_ms - config.meta_timeout_ms - 3000;
    b->deadline_ms = send_now_ms() + (wait < SEND_WAIT_CAP_MS ? wait : SEND_WAIT_CAP_MS);
    loop_timer_init(&b->timer, queue_slot_loop(s), send_on_timer);
    queue_slot_exec_batch(s, &send_prepare_stmt, send_on_prepared, b);
}

/* ---- the worker thread's state ---- */

static void *send_thread_start(h2o_loop_t *loop, redis_client_t *redis, metrics_shard_t *metrics)
{
    send_ctx_t *c = util_calloc(1, sizeof(*c));
    http_client_config_t hc = {.connect_timeout_ms = config.meta_connect_timeout_ms,
                               .timeout_ms = config.meta_timeout_ms,
                               .max_connections = SEND_HTTP_CONNECTIONS};
    c->http = http_client_new(loop, &hc);
    c->pace = meta_pace_new(redis);
    c->metrics = metrics;
    return c;
}

static void send_thread_stop(void *context)
{
    send_ctx_t *c = context;
    http_client_free(c->http); /* requests still in flight end as "shutting down" */
    meta_pace_free(c->pace);
    free(c);
}

const queue_def_t meta_outbound_queue = {SEND_QUEUE_REPLIES, SEND_BATCH_REPLIES, send_run, send_thread_start,
                                         send_thread_stop};
const queue_def_t meta_campaigns_queue = {SEND_QUEUE_CAMPAIGNS, SEND_BATCH_CAMPAIGNS, send_run, send_thread_start,
                                          send_thread_stop};
