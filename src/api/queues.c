/*
 * /api/v1/queues: the job queues as an admin sees them, for the caller's company.
 *
 *   GET  /api/v1/queues                              per queue: queued, running, failed,
 *                                                    age of the oldest waiting job
 *   GET  /api/v1/queues/:name/failed                 the dead letters, newest first, with
 *                                                    their last error (page, limit)
 *   POST /api/v1/queues/:name/failed/:id/retry       queues a failed job again (attempts
 *                                                    start over)
 *   POST /api/v1/queues/:name/failed/retry_all       queues every failed job of the queue
 *
 * :name is any queue conversa runs: webhooks (Meta's deliveries, meta/apply.h),
 * outbound (agents' replies) and campaigns (campaign recipients, meta/send.h); the
 * list names them in that order. Another name is 404.
 *
 * Only the company's own jobs are visible or retried: another company's job is 404
 * like an unknown one. A retried job wakes the workers (NOTIFY) at once. Payloads are
 * not shown (they may hold customers' messages); their size is.
 *
 * Retrying a sending job cannot message anyone twice, for the reason a job taken back
 * after a crash cannot: the rows, not the job, say what was sent. The retried job runs
 * outbound_prepare (migration 0007) again, which skips a reply or recipient that has
 * its wamid or is no longer pending, and the wamid of a send whose answer was lost is
 * recorded from Meta's status webhook through biz_opaque_callback_data. A dead letter
 * was last tried at least a lease ago, long after that status normally arrived. A
 * campaign's expansion job resumes after the last contact it expanded and makes no
 * recipient twice (campaign_expand). The only send a retry can repeat is one a lease
 * expiry would repeat too: Meta took it, its answer was lost and its status never came.
 */
#include "api/db.h"
#include "api/input.h"
#include "api/routes.h"
#include "http/reply.h"
#include "meta/apply.h"
#include "meta/send.h"

#include <string.h>

#define QUEUES_LIMIT_DEFAULT 20
#define QUEUES_LIMIT_MAX     100
#define QUEUES_PAGE_MAX      1000000

static const char *const queues_known[] = {META_QUEUE, SEND_QUEUE_REPLIES, SEND_QUEUE_CAMPAIGNS, NULL};

/* The same names as a text[] literal for the list, in the same order. */
#define QUEUES_ARRAY "{" META_QUEUE "," SEND_QUEUE_REPLIES "," SEND_QUEUE_CAMPAIGNS "}"

/* The queue named by the path, or NULL after replying 404. */
static const char *queues_name(http_request_t *r)
{
    h2o_iovec_t v = http_params_get(&r->params, "name");
    for (size_t i = 0; queues_known[i] != NULL; ++i)
        if (h2o_memis(v.base, v.len, queues_known[i], strlen(queues_known[i])))
            return queues_known[i];
    http_reply_error(r, 404, "not_found", "no such queue");
    return NULL;
}

/*
 * The queue's statements are planned at each call (replan in store/pg.h): the job
 * table is empty one hour and holds 200,000 rows the next.
 *
 * One pass over the company's live jobs, grouped by queue (the company's rows are one
 * range of the primary key, whatever the queue), joined to the names so that a queue
 * without jobs is listed with zeros.
 */
static pg_stmt_t queues_list_stmt = {
    "SELECT json_build_object('data', json_agg(json_build_object('name', k.queue, 'queued', coalesce(s.queued, 0),"
    " 'running', coalesce(s.running, 0), 'failed', coalesce(s.failed, 0), 'oldest_waiting_seconds',"
    " coalesce(s.oldest, 0)) ORDER BY k.i))::text"
    " FROM unnest($2::text[]) WITH ORDINALITY AS k (queue, i) LEFT JOIN (SELECT j.queue,"
    " count(*) FILTER (WHERE j.status = 'queued') AS queued, count(*) FILTER (WHERE j.status = 'running') AS running,"
    " count(*) FILTER (WHERE j.status = 'failed') AS failed,"
    " round(extract(epoch FROM now() - min(j.created_at) FILTER (WHERE j.status = 'queued')), 3) AS oldest"
    " FROM jobs j WHERE j.company_id = $1 AND j.queue = ANY ($2::text[])"
    " AND j.status IN ('queued', 'running', 'failed') GROUP BY j.queue) s ON s.queue = k.queue",
    2, .replan = 1};

void api_queues_list(http_request_t *r)
{
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), PG_TEXT(QUEUES_ARRAY)};
    api_db_reply(r, &queues_list_stmt, p, 2, 200, "queues");
}

#define QUEUES_FAILED_WHERE "j.company_id = $1 AND j.queue = $2 AND j.status = 'failed'"

static pg_stmt_t queues_failed_stmt = {
    "WITH page AS (SELECT json_build_object('id', j.id, 'key', j.key, 'attempts', j.attempts, 'max_attempts',"
    " j.max_attempts, 'last_error', j.last_error, 'payload_bytes', octet_length(j.payload), 'created_at',"
    " j.created_at, 'failed_at', j.updated_at) AS item, j.id FROM jobs j WHERE " QUEUES_FAILED_WHERE
    " ORDER BY j.id DESC LIMIT $3 OFFSET ($4::bigint - 1) * $3)"
    " SELECT json_build_object('data', coalesce((SELECT json_agg(item ORDER BY id DESC) FROM page), '[]'::json),"
    " 'pagination', json_build_object('page', $4::bigint, 'limit', $3::int, 'total',"
    " (SELECT count(*) FROM jobs j WHERE " QUEUES_FAILED_WHERE ")))::text",
    4, .replan = 1};

void api_queues_failed(http_request_t *r)
{
    const char *name = queues_name(r);
    int64_t page, limit;
    if (name == NULL || api_query_int(r, "page", 1, 1, QUEUES_PAGE_MAX, 0, &page) != 0 ||
        api_query_int(r, "limit", QUEUES_LIMIT_DEFAULT, 1, QUEUES_LIMIT_MAX, 1, &limit) != 0)
        return;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), PG_TEXT(name), api_db_i64(r, limit), api_db_i64(r, page)};
    api_db_reply(r, &queues_failed_stmt, p, 4, 200, "page");
}

#define QUEUES_REQUEUE                                                                                                 \
    "UPDATE jobs j SET status = 'queued', attempts = 0, run_at = now(), locked_by = NULL, locked_until = NULL,"        \
    " updated_at = now() WHERE " QUEUES_FAILED_WHERE

static pg_stmt_t queues_retry_stmt = {
    "WITH u AS (" QUEUES_REQUEUE " AND j.id = $3 RETURNING j.id, j.key, j.status, j.attempts, j.max_attempts,"
    " j.last_error) SELECT json_build_object('data', json_build_object('id', u.id, 'key', u.key, 'status', u.status,"
    " 'attempts', u.attempts, 'max_attempts', u.max_attempts, 'last_error', u.last_error))::text"
    " FROM u, LATERAL (SELECT pg_notify('conversa_jobs', $2)) n",
    3, .replan = 1};

void api_queues_retry(http_request_t *r)
{
    const char *name = queues_name(r);
    int64_t id;
    if (name == NULL || api_param_id(r, "id", &id) != 0)
        return;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), PG_TEXT(name), api_db_i64(r, id)};
    api_db_reply(r, &queues_retry_stmt, p, 3, 200, "failed job");
}

static pg_stmt_t queues_retry_all_stmt = {
    "WITH u AS (" QUEUES_REQUEUE
    " RETURNING 1) SELECT json_build_object('data', json_build_object('retried', c.n))::text"
    " FROM (SELECT count(*) AS n FROM u) c, LATERAL (SELECT CASE WHEN c.n > 0 THEN pg_notify('conversa_jobs', $2)"
    " END) n",
    2, .replan = 1};

void api_queues_retry_all(http_request_t *r)
{
    const char *name = queues_name(r);
    if (name == NULL)
        return;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), PG_TEXT(name)};
    api_db_reply(r, &queues_retry_all_stmt, p, 2, 200, "queue");
}
