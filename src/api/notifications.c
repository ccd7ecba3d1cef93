/*
 * /api/v1/notifications: each agent's own inbox of notifications.
 *
 *   GET  /api/v1/notifications                 newest first: unread=true|false, page, limit
 *   GET  /api/v1/notifications/unread_count    the caller's unread count
 *   POST /api/v1/notifications/read_all        marks every unread notification read
 *   POST /api/v1/notifications/:id/read        marks one read (idempotent)
 *
 * A notification belongs to (company_id, user_id), and both always come from the
 * caller's token: someone else's notification, including another agent's of the same
 * company, is 404 exactly like an unknown id. unread=true lists unread ones only;
 * false (the default) lists all.
 *
 * Counts come from notification_counts, kept by triggers in the same transaction as
 * every insert, read and delete, so totals and unread counts are exact without
 * counting rows; a list reads its page and its counts in one statement, so they agree.
 * read_at is set once, when a notification first becomes read; the counters change
 * only on that transition (their trigger compares old and new rows under the row
 * lock), so concurrent read and read_all never count a notification twice.
 * Lists use notifications_user_read_idx (unread) and notifications_user_created_idx
 * (all) in their index order, (created_at, id) descending.
 */
#include "api/cache.h"
#include "api/db.h"
#include "api/input.h"
#include "api/routes.h"
#include "core/util.h"
#include "http/reply.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define NOTIF_LIMIT_DEFAULT 20
#define NOTIF_LIMIT_MAX     50
#define NOTIF_PAGE_MAX      1000000

#define NOTIF_ITEM                                                                                                     \
    "json_build_object('id', n.id, 'type', n.type, 'title', n.title, 'body', n.body, 'data', n.data, 'is_read', "      \
    "n.is_read, 'created_at', n.created_at, 'read_at', n.read_at)"

/* $1 company, $2 user, $3 limit, $4 page; `filter` narrows to unread, `total` names the count column. */
#define NOTIF_LIST_SQL(filter, total)                                                                                  \
    "WITH page AS (SELECT " NOTIF_ITEM " AS item, n.created_at, n.id FROM notifications n"                             \
    " WHERE n.company_id = $1 AND n.user_id = $2" filter " ORDER BY n.created_at DESC, n.id DESC"                      \
    " LIMIT $3 OFFSET ($4::bigint - 1) * $3),"                                                                         \
    " cnt AS (SELECT coalesce(sum(total), 0) AS total, coalesce(sum(unread), 0) AS unread"                             \
    " FROM notification_counts WHERE company_id = $1 AND user_id = $2)"                                                \
    " SELECT json_build_object('data', coalesce((SELECT json_agg(item ORDER BY created_at DESC, id DESC) FROM page),"  \
    " '[]'::json), 'pagination', json_build_object('page', $4::bigint, 'limit', $3::int, 'total', cnt." total "),"     \
    " 'unread_count', cnt.unread, 'cached', false)::text FROM cnt"

static pg_stmt_t notif_list_all_stmt = {NOTIF_LIST_SQL("", "total"), 4};
static pg_stmt_t notif_list_unread_stmt = {NOTIF_LIST_SQL(" AND n.is_read = false", "unread"), 4};

void api_notifications_list(http_request_t *r)
{
    static const char *const flags[] = {"true", "false", NULL};
    const char *unread;
    int64_t page, limit;
    if (api_query_enum(r, "unread", flags, "false", &unread) != 0 ||
        api_query_int(r, "page", 1, 1, NOTIF_PAGE_MAX, 0, &page) != 0 ||
        api_query_int(r, "limit", NOTIF_LIMIT_DEFAULT, 1, NOTIF_LIMIT_MAX, 1, &limit) != 0)
        return;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, r->auth.user_id), api_db_i64(r, limit),
                      api_db_i64(r, page)};
    char variant[80];
    util_fmt_t f = util_fmt_on(variant, sizeof(variant)); /* "r=<unread>:p=<page>:l=<limit>" */
    util_fmt_lit(&f, "r=");
    util_fmt_str(&f, unread);
    util_fmt_lit(&f, ":p=");
    util_fmt_i64(&f, page);
    util_fmt_lit(&f, ":l=");
    util_fmt_i64(&f, limit);
    api_cache_reply(r, CACHE_NOTIFICATIONS, r->auth.user_id, variant,
                    strcmp(unread, "true") == 0 ? &notif_list_unread_stmt : &notif_list_all_stmt, p, 4, "page");
}

static pg_stmt_t notif_unread_stmt = {
    "SELECT json_build_object('data', json_build_object('unread_count', coalesce((SELECT unread FROM"
    " notification_counts WHERE company_id = $1 AND user_id = $2), 0)), 'cached', false)::text",
    2};

void api_notifications_unread_count(http_request_t *r)
{
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, r->auth.user_id)};
    api_cache_reply(r, CACHE_UNREAD, r->auth.user_id, "count", &notif_unread_stmt, p, 2, "count");
}

/*
 * A read that changed something (column 1) changes the caller's lists and unread
 * count: bump them before answering. One that changed nothing (the notifications were
 * read already) leaves every cached body right, and bumps nothing.
 */
static void notif_on_written(http_request_t *r, PGresult *res)
{
    const cache_gen_t gen = {CACHE_SCOPE_NOTIFICATIONS, r->auth.user_id};
    api_cache_bump_reply_if_changed(r, res, &gen, "notification");
}

/*
 * The row is locked first (prev), which waits for a concurrent reader and then sees
 * its committed version, so exactly one of two concurrent reads reports the change
 * (column 1) and the answer is always the row's latest version. A repeated read
 * changes nothing: read_at keeps its first value and is_read stays true, so the
 * counters (their trigger fires only when is_read changes, migration 0005) and the
 * cache see no change.
 *
 * The row is found through the primary key (company_id, id); user_id is compared with
 * IS NOT DISTINCT FROM, which no index can serve, so the generic plan cannot choose
 * notifications_user_created_idx and walk every notification of the user to find id.
 */
static pg_stmt_t notif_read_stmt = {
    "WITH prev AS MATERIALIZED (SELECT n.id, n.is_read FROM notifications n"
    " WHERE n.company_id = $1 AND n.id = $3 AND n.user_id IS NOT DISTINCT FROM $2 FOR UPDATE)"
    " UPDATE notifications n SET is_read = true, read_at = coalesce(n.read_at, now())"
    " FROM prev WHERE n.company_id = $1 AND n.id = prev.id"
    " RETURNING json_build_object('data', " NOTIF_ITEM ")::text, NOT prev.is_read",
    3};

void api_notifications_read(http_request_t *r)
{
    int64_t id;
    if (api_param_id(r, "id", &id) != 0)
        return;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, r->auth.user_id), api_db_i64(r, id)};
    api_db_call(r, &notif_read_stmt, p, 3, notif_on_written);
}

static pg_stmt_t notif_read_all_stmt = {
    "WITH upd AS (UPDATE notifications SET is_read = true, read_at = now()"
    " WHERE company_id = $1 AND user_id = $2 AND is_read = false RETURNING 1)"
    " SELECT json_build_object('data', json_build_object('updated', (SELECT count(*) FROM upd)))::text,"
    " EXISTS (SELECT 1 FROM upd)",
    2};

void api_notifications_read_all(http_request_t *r)
{
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, r->auth.user_id)};
    api_db_call(r, &notif_read_all_stmt, p, 2, notif_on_written);
}
