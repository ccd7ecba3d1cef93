/*
 * /api/v1/conversations: the inbox.
 *
 *   GET   /api/v1/conversations                 list: status, assignee, page or cursor, limit
 *   GET   /api/v1/conversations/status          counts per status, mine, unassigned
 *   GET   /api/v1/conversations/:id             one conversation
 *   PATCH /api/v1/conversations/:id             status and/or assignee
 *   POST  /api/v1/conversations/:id/read        marks it read: unread_count 0 (idempotent)
 *   GET   /api/v1/conversations/:id/messages    a conversation's messages, newest first
 *   POST  /api/v1/conversations/:id/messages    an agent's reply {"text"}, stored as pending
 *
 * Lists are ordered by (updated_at, id), newest first. `page` is the plan's offset
 * paging; `cursor` (a page's next_cursor) is keyset paging on the same order, constant
 * cost at any depth and stable while conversations arrive. Totals and counts come from
 * conversation_counts, kept by triggers in the same transaction as every change, so
 * they are exact without counting rows at read time.
 *
 * Each filter combination is its own prepared statement, so every one gets a plan
 * that uses the index made for it (see migrations 0001 and 0002).
 */
#include "api/cache.h"
#include "api/db.h"
#include "api/input.h"
#include "api/routes.h"
#include "core/config.h"
#include "core/util.h"
#include "http/reply.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONV_LIMIT_DEFAULT 20
#define CONV_LIMIT_MAX     50
#define CONV_PAGE_MAX      1000000

/* The item shape, shared by the list and the single read. */
#define CONV_ITEM                                                                                                      \
    "json_build_object('id', c.id, 'status', c.status, 'assignee_id', c.assignee_id, 'unread_count', "                 \
    "c.unread_count, 'last_message_at', c.last_message_at, 'last_message_preview', c.last_message_preview, "           \
    "'created_at', c.created_at, 'updated_at', c.updated_at, 'contact', json_build_object('id', ct.id, 'name', "       \
    "ct.name, 'phone_number', ct.phone_number))"

enum { CONV_ASSIGNEE_ALL, CONV_ASSIGNEE_ME, CONV_ASSIGNEE_NONE, CONV_ASSIGNEE_N };
enum { CONV_BY_PAGE, CONV_BY_CURSOR, CONV_MODE_N };

/* [status filtered][assignee][mode] */
static pg_stmt_t conv_list_stmts[2][CONV_ASSIGNEE_N][CONV_MODE_N];
static char conv_list_sql[2][CONV_ASSIGNEE_N][CONV_MODE_N][4096];
static pthread_once_t conv_list_once = PTHREAD_ONCE_INIT;

/*
 * Parameters, in order: $1 company, then $k status (if filtered), then the user (if
 * "me"), then limit, page number (page mode) or cursor time and id (cursor mode).
 * The cursor is "<updated_at in microseconds since the epoch>.<id>".
 */
static void conv_list_build(void)
{
    for (int s = 0; s != 2; ++s)
        for (int a = 0; a != CONV_ASSIGNEE_N; ++a)
            for (int m = 0; m != CONV_MODE_N; ++m) {
                char where[512], total[256];
                int k = 2;
                int ns = snprintf(where, sizeof(where), "c.company_id = $1");
                int nt = snprintf(total, sizeof(total), "company_id = $1");
                if (s) {
                    ns += snprintf(where + ns, sizeof(where) - (size_t)ns, " AND c.status = $%d", k);
                    nt += snprintf(total + nt, sizeof(total) - (size_t)nt, " AND status = $%d", k);
                    ++k;
                }
                if (a == CONV_ASSIGNEE_ME) {
                    ns += snprintf(where + ns, sizeof(where) - (size_t)ns, " AND c.assignee_id = $%d", k);
                    nt += snprintf(total + nt, sizeof(total) - (size_t)nt, " AND assignee_id = $%d", k);
                    ++k;
                } else if (a == CONV_ASSIGNEE_NONE) {
                    ns += snprintf(where + ns, sizeof(where) - (size_t)ns, " AND c.assignee_id IS NULL");
                    nt += snprintf(total + nt, sizeof(total) - (size_t)nt, " AND assignee_id = 0");
                }
                int limit = k++;
                char tail[256];
                const char *page_expr;
                char page_buf[32];
                if (m == CONV_BY_PAGE) {
                    int page = k++;
                    snprintf(tail, sizeof(tail), "LIMIT $%d OFFSET ($%d::bigint - 1) * $%d", limit, page, limit);
                    snprintf(page_buf, sizeof(page_buf), "$%d::bigint", page);
                    page_expr = page_buf;
                } else {
                    int ts = k++, id = k++;
                    snprintf(
                        where + ns, sizeof(where) - (size_t)ns,
                        " AND (c.updated_at, c.id) < ('epoch'::timestamptz + $%d::bigint * interval '1 microsecond',"
                        " $%d::bigint)",
                        ts, id);
                    snprintf(tail, sizeof(tail), "LIMIT $%d", limit);
                    page_expr = "NULL::bigint";
                }
                snprintf(conv_list_sql[s][a][m], sizeof(conv_list_sql[s][a][m]),
                         /* the page's keys first (an index walk: nothing is built for rows an
                          * OFFSET skips), then only those rows are joined and built */
                         "WITH keys AS (SELECT c.id, c.updated_at FROM conversations c"
                         " WHERE %s ORDER BY c.updated_at DESC, c.id DESC %s),"
                         " page AS (SELECT " CONV_ITEM " AS item, c.updated_at, c.id FROM keys"
                         " JOIN conversations c ON c.company_id = $1 AND c.id = keys.id"
                         " JOIN contacts ct ON ct.company_id = c.company_id AND ct.id = c.contact_id)"
                         " SELECT json_build_object('data', coalesce((SELECT json_agg(item ORDER BY updated_at DESC, "
                         "id DESC)"
                         " FROM page), '[]'::json), 'pagination', json_build_object('page', %s, 'limit', $%d::int,"
                         " 'total', (SELECT coalesce(sum(n), 0) FROM conversation_counts WHERE %s),"
                         " 'next_cursor', (SELECT CASE WHEN count(*) OVER () = $%d THEN"
                         " (extract(epoch FROM updated_at) * 1000000)::bigint || '.' || id END FROM keys"
                         " ORDER BY updated_at, id LIMIT 1)), 'cached', false)::text",
                         where, tail, page_expr, limit, total, limit);
                conv_list_stmts[s][a][m] = (pg_stmt_t){conv_list_sql[s][a][m], k - 1, 0};
            }
}

static const char *const conv_statuses[] = {"open", "pending", "resolved", NULL};

/* Parses "<micros>.<id>" strictly; micros must fit in int64 (19 digits may not: checked before they overflow). */
static int conv_parse_cursor(const char *s, int64_t *ts, int64_t *id)
{
    const char *dot = strchr(s, '.');
    if (dot == NULL || dot == s || dot[1] == '\0' || dot - s > 19 || strlen(dot + 1) > 18)
        return -1;
    int64_t a = 0, b = 0;
    int neg = *s == '-';
    for (const char *p = s + neg; p != dot; ++p) {
        if (*p < '0' || *p > '9' || a > (INT64_MAX - (*p - '0')) / 10)
            return -1;
        a = a * 10 + (*p - '0');
    }
    for (const char *p = dot + 1; *p; ++p) {
        if (*p < '0' || *p > '9')
            return -1;
        b = b * 10 + (*p - '0');
    }
    if (b < 1 || (neg && dot == s + 1))
        return -1;
    *ts = neg ? -a : a;
    *id = b;
    return 0;
}

void api_conversations_list(http_request_t *r)
{
    pthread_once(&conv_list_once, conv_list_build);
    static const char *const assignees[] = {"all", "me", "unassigned", NULL};
    const char *status, *assignee, *cursor;
    int64_t page, limit, ts = 0, cid = 0;
    if (api_query_enum(r, "status", conv_statuses, NULL, &status) != 0 ||
        api_query_enum(r, "assignee", assignees, "all", &assignee) != 0 ||
        api_query_int(r, "page", 1, 1, CONV_PAGE_MAX, 0, &page) != 0 ||
        api_query_int(r, "limit", CONV_LIMIT_DEFAULT, 1, CONV_LIMIT_MAX, 1, &limit) != 0 ||
        api_query_string(r, "cursor", 64, &cursor) != 0)
        return;
    if (cursor != NULL && *cursor != '\0' && conv_parse_cursor(cursor, &ts, &cid) != 0) {
        http_reply_invalid(r, "cursor", "cursor must be a next_cursor returned by this endpoint");
        return;
    }
    int by_cursor = cursor != NULL && *cursor != '\0';
    int a = strcmp(assignee, "me") == 0           ? CONV_ASSIGNEE_ME
            : strcmp(assignee, "unassigned") == 0 ? CONV_ASSIGNEE_NONE
                                                  : CONV_ASSIGNEE_ALL;
    pg_param_t p[7];
    size_t n = 0;
    p[n++] = api_db_i64(r, r->auth.company_id);
    if (status != NULL)
        p[n++] = PG_TEXT(status);
    if (a == CONV_ASSIGNEE_ME)
        p[n++] = api_db_i64(r, r->auth.user_id);
    p[n++] = api_db_i64(r, limit);
    if (by_cursor) {
        p[n++] = api_db_i64(r, ts);
        p[n++] = api_db_i64(r, cid);
    } else {
        p[n++] = api_db_i64(r, page);
    }
    char variant[160];
    snprintf(variant, sizeof(variant), "s=%s:a=%s:u=%" PRId64 ":p=%" PRId64 ":l=%" PRId64 ":c=%s",
             status != NULL ? status : "*", assignee, a == CONV_ASSIGNEE_ME ? r->auth.user_id : 0, by_cursor ? 0 : page,
             limit, by_cursor ? cursor : "-");
    api_cache_reply(r, CACHE_CONVERSATIONS, 0, variant, &conv_list_stmts[status != NULL][a][by_cursor], p, n, "page");
}

static pg_stmt_t conv_status_stmt = {
    "SELECT json_build_object('data', json_build_object("
    "'open', coalesce(sum(n) FILTER (WHERE status = 'open'), 0),"
    " 'pending', coalesce(sum(n) FILTER (WHERE status = 'pending'), 0),"
    " 'resolved', coalesce(sum(n) FILTER (WHERE status = 'resolved'), 0),"
    " 'mine', coalesce(sum(n) FILTER (WHERE assignee_id = $2 AND status <> 'resolved'), 0),"
    " 'unassigned', coalesce(sum(n) FILTER (WHERE assignee_id = 0 AND status <> 'resolved'), 0),"
    " 'total', coalesce(sum(n), 0)), 'cached', false)::text"
    " FROM conversation_counts WHERE company_id = $1",
    2};

void api_conversations_status(http_request_t *r)
{
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, r->auth.user_id)};
    char variant[32];
    util_fmt_t f = util_fmt_on(variant, sizeof(variant)); /* "u=<user>" */
    util_fmt_lit(&f, "u=");
    util_fmt_i64(&f, r->auth.user_id);
    api_cache_reply(r, CACHE_STATUS, 0, variant, &conv_status_stmt, p, 2, "counts");
}

static pg_stmt_t conv_get_stmt = {"SELECT json_build_object('data', " CONV_ITEM ")::text FROM conversations c"
                                  " JOIN contacts ct ON ct.company_id = c.company_id AND ct.id = c.contact_id"
                                  " WHERE c.company_id = $1 AND c.id = $2",
                                  2};

void api_conversations_get(http_request_t *r)
{
    int64_t id;
    if (api_param_id(r, "id", &id) != 0)
        return;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, id)};
    api_db_reply(r, &conv_get_stmt, p, 2, 200, "conversation");
}

/*
 * PATCH: $3 status or NULL (unchanged), $4 whether the assignee changes, $5 the new
 * assignee or NULL (unassign). An assignee must be a user of the same company; the
 * update is skipped (and reported) when it is not.
 */
static pg_stmt_t conv_patch_stmt = {
    "WITH ok AS (SELECT NOT $4::bool OR $5::bigint IS NULL"
    " OR EXISTS (SELECT 1 FROM users WHERE company_id = $1 AND id = $5::bigint) AS assignee_ok),"
    " upd AS (UPDATE conversations c SET status = coalesce($3::text, c.status),"
    " assignee_id = CASE WHEN $4::bool THEN $5::bigint ELSE c.assignee_id END, updated_at = now()"
    " FROM ok WHERE ok.assignee_ok AND c.company_id = $1 AND c.id = $2 RETURNING c.*)"
    " SELECT (SELECT assignee_ok FROM ok), (SELECT json_build_object('data', " CONV_ITEM ")::text FROM upd c"
    " JOIN contacts ct ON ct.company_id = c.company_id AND ct.id = c.contact_id)",
    5};

static void conv_on_patched(http_request_t *r, PGresult *res)
{
    if (PQgetvalue(res, 0, 0)[0] != 't') {
        http_reply_invalid(r, "assignee_id", "assignee_id is not a user of this company");
        return;
    }
    if (PQgetisnull(res, 0, 1)) {
        http_reply_error(r, 404, "not_found", "conversation not found");
        return;
    }
    /* the status, the assignee (so "mine" and "unassigned") and the list order changed */
    const cache_gen_t gens[] = {{CACHE_SCOPE_COUNTS, 0}, {CACHE_SCOPE_CONVERSATIONS, 0}};
    api_cache_bump_reply(r, gens, 2, 200, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
}

void api_conversations_patch(http_request_t *r)
{
    static const char *const fields[] = {"status", "assignee_id", NULL};
    int64_t id, assignee;
    int is_null, present;
    const char *status;
    if (api_param_id(r, "id", &id) != 0)
        return;
    json_t *body = api_body_object(r, fields);
    if (body == NULL)
        return;
    int rc = api_json_enum(r, body, "status", 0, conv_statuses, &status);
    if (rc == 0)
        rc = api_json_nullable_id(r, body, "assignee_id", &assignee, &is_null, &present);
    json_decref(body);
    if (rc != 0)
        return;
    if (status == NULL && !present) {
        http_reply_invalid(r, "body", "nothing to change: give status and/or assignee_id");
        return;
    }
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, id), PG_TEXT(status),
                      PG_TEXT(present ? "true" : "false"),
                      present && !is_null ? api_db_i64(r, assignee) : PG_TEXT(NULL)};
    api_db_call(r, &conv_patch_stmt, p, 5, conv_on_patched);
}

/*
 * Read: the customer's messages were seen, so unread_count (counted up by every
 * inbound message, webhook_apply) goes back to 0. The row is locked first (prev), so
 * an inbound message committing meanwhile is either counted before (and cleared) or
 * after (and stays unread), and exactly one of two concurrent reads reports the
 * change (column 1). updated_at is left alone: reading is no news, and the lists'
 * order and cursors rest on it. The answer is the conversation, as PATCH gives it.
 */
static pg_stmt_t conv_read_stmt = {
    "WITH prev AS MATERIALIZED (SELECT c.id, c.unread_count FROM conversations c"
    " WHERE c.company_id = $1 AND c.id = $2 FOR UPDATE),"
    " upd AS (UPDATE conversations c SET unread_count = 0 FROM prev WHERE c.company_id = $1 AND c.id = prev.id"
    " RETURNING c.*, prev.unread_count AS was)"
    " SELECT json_build_object('data', " CONV_ITEM ")::text, c.was <> 0 FROM upd c"
    " JOIN contacts ct ON ct.company_id = c.company_id AND ct.id = c.contact_id",
    2};

/*
 * Of the cached bodies only the lists show unread_count (the status counts and the
 * messages do not; the single conversation is not cached), so a read that cleared
 * something bumps them before answering, in this process and every other, and one
 * that found nothing unread leaves every cached body right and bumps nothing.
 */
static void conv_on_read(http_request_t *r, PGresult *res)
{
    const cache_gen_t gen = {CACHE_SCOPE_CONVERSATIONS, 0};
    api_cache_bump_reply_if_changed(r, res, &gen, "conversation");
}

void api_conversations_read(http_request_t *r)
{
    int64_t id;
    if (api_param_id(r, "id", &id) != 0)
        return;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, id)};
    api_db_call(r, &conv_read_stmt, p, 2, conv_on_read);
}

/*
 * Messages, newest first. `before` (exclusive) walks back in time; `after`
 * (exclusive) fetches what is newer than a message seen, closest first, returned
 * newest first like every page. A conversation of another company is 404.
 */
#define MSG_ITEM                                                                                                       \
    "json_build_object('id', m.id, 'direction', m.direction, 'type', m.type, 'body', m.body, 'status', m.status, "     \
    "'wamid', m.wamid, 'error_code', m.error_code, 'error_title', m.error_title, 'sender_id', m.sender_id, "           \
    "'created_at', m.created_at, 'status_at', m.status_at)"

#define MSG_SQL(order)                                                                                                 \
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM conversations WHERE company_id = $1 AND id = $2) THEN"                     \
    " (WITH page AS (SELECT m.id, " MSG_ITEM " AS item FROM messages m"                                                \
    " WHERE m.company_id = $1 AND m.conversation_id = $2 AND m.id > $3 AND m.id < $4 ORDER BY m.id " order             \
    " LIMIT $5)"                                                                                                       \
    " SELECT json_build_object('data', coalesce((SELECT json_agg(item ORDER BY id DESC) FROM page), '[]'::json),"      \
    " 'pagination', json_build_object('limit', $5::int, 'count', (SELECT count(*) FROM page),"                         \
    " 'next_before', (SELECT min(id) FROM page), 'next_after', (SELECT max(id) FROM page)), 'cached', false))::text"   \
    " END"

static pg_stmt_t msg_before_stmt = {MSG_SQL("DESC"), 5};
static pg_stmt_t msg_after_stmt = {MSG_SQL("ASC"), 5};

void api_conversations_messages(http_request_t *r)
{
    int64_t id, before, after, limit;
    if (api_param_id(r, "id", &id) != 0 || api_query_int(r, "before", INT64_MAX, 1, INT64_MAX, 0, &before) != 0 ||
        api_query_int(r, "after", 0, 0, INT64_MAX - 1, 0, &after) != 0 ||
        api_query_int(r, "limit", 50, 1, 100, 1, &limit) != 0)
        return;
    int has_after = after != 0;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, id), api_db_i64(r, after), api_db_i64(r, before),
                      api_db_i64(r, limit)};
    char variant[80];
    util_fmt_t f = util_fmt_on(variant, sizeof(variant)); /* "b=<before>:a=<after>:l=<limit>" */
    util_fmt_lit(&f, "b=");
    util_fmt_i64(&f, before);
    util_fmt_lit(&f, ":a=");
    util_fmt_i64(&f, after);
    util_fmt_lit(&f, ":l=");
    util_fmt_i64(&f, limit);
    api_cache_reply(r, CACHE_MESSAGES, id, variant, has_after ? &msg_after_stmt : &msg_before_stmt, p, 5,
                    "conversation");
}

/*
 * An agent's reply: stored as an outbound text message in state `pending`, from the
 * caller, and the conversation's preview and order follow it in the same statement.
 * Sending it through the WhatsApp Cloud API (and the statuses Meta reports back) is
 * the outbound sender's job; until that runs, the message stays pending.
 */
#define MSG_TEXT_MAX 4096 /* WhatsApp's limit for a text message body */

/* The message and its sending job in one transaction (message_send, migration 0007). */
static pg_stmt_t msg_create_stmt = {"SELECT json_build_object('data', " MSG_ITEM ")::text, m.conversation_id"
                                    " FROM message_send($1, $2, $3, $4, $5) m",
                                    5};

static void msg_on_created(http_request_t *r, PGresult *res)
{
    if (PQntuples(res) != 1) {
        http_reply_error(r, 404, "not_found", "conversation not found");
        return;
    }
    int64_t conv = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    char location[96];
    snprintf(location, sizeof(location), "/api/v1/conversations/%" PRId64 "/messages", conv);
    http_reply_header(r, "location", location);
    /* the conversation's messages, and every list it appears in (preview, order) */
    const cache_gen_t gens[] = {{CACHE_SCOPE_CONVERSATIONS, 0}, {CACHE_SCOPE_MESSAGES, conv}};
    api_cache_bump_reply(r, gens, 2, 201, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
}

void api_conversations_send(http_request_t *r)
{
    static const char *const fields[] = {"text", NULL};
    int64_t id;
    const char *text;
    if (api_param_id(r, "id", &id) != 0)
        return;
    json_t *body = api_body_object(r, fields);
    if (body == NULL)
        return;
    if (api_json_string(r, body, "text", 1, 1, MSG_TEXT_MAX, &text) != 0) {
        json_decref(body);
        return;
    }
    if (text[strspn(text, " \t\r\n")] == '\0') {
        json_decref(body);
        http_reply_invalid(r, "text", "text must not be blank");
        return;
    }
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, id), PG_TEXT(text),
                      api_db_i64(r, r->auth.user_id), api_db_i64(r, config.send_attempts)};
    api_db_call(r, &msg_create_stmt, p, 5, msg_on_created); /* parameters are copied here */
    json_decref(body);
}
