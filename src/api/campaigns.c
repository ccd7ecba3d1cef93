/*
 * /api/v1/campaigns: template broadcasts through a connection.
 *
 *   GET  /api/v1/campaigns                 list, newest first: limit, before (an id)
 *   POST /api/v1/campaigns                 create a draft (admin)
 *   GET  /api/v1/campaigns/:id             one campaign with its progress
 *   POST /api/v1/campaigns/trigger         {"campaign_id"}: start it (admin); idempotent
 *   POST /api/v1/campaigns/:id/pause       (admin)
 *   POST /api/v1/campaigns/:id/resume      (admin)
 *   POST /api/v1/campaigns/:id/cancel      (admin)
 *
 * Triggering marks the campaign running and queues its expansion: the sending worker
 * turns the audience into one campaign_recipients row and one job of the 'campaigns'
 * queue per contact, set-based, 10,000 contacts a step (campaign_start and
 * campaign_expand, migration 0007), so a trigger answers at once whatever the audience's
 * size. A second trigger finds the campaign no longer a draft and changes nothing, so
 * nobody is messaged twice; total counts the recipients made so far. Progress counts come from campaign_counts,
 * kept by triggers as recipients move (pending, sent, delivered, read, failed,
 * cancelled), so reading them costs the same at 100 or 100,000 recipients.
 */
#include "api/db.h"
#include "api/input.h"
#include "api/routes.h"
#include "core/config.h"
#include "core/util.h"
#include "http/reply.h"

#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define CAMP_NAME_MAX      200
#define CAMP_TEMPLATE_MAX  512
#define CAMP_PARAMS_MAX    20
#define CAMP_PARAM_LEN_MAX 1024
#define CAMP_IDS_MAX       100000
#define CAMP_LABELS_MAX    20
#define CAMP_LABEL_LEN_MAX 64
#define CAMP_LIMIT_DEFAULT 20
#define CAMP_LIMIT_MAX     100

#define CAMP_ITEM                                                                                                      \
    "json_build_object('id', c.id, 'name', c.name, 'connection_id', c.connection_id, 'status', c.status,"              \
    " 'template', json_build_object('name', c.template_name, 'language', c.template_language, 'parameters',"           \
    " c.template_params), 'audience', c.audience, 'total', c.total, 'progress', (SELECT json_build_object("            \
    "'pending', coalesce(sum(n) FILTER (WHERE status = 'pending'), 0),"                                                \
    " 'sent', coalesce(sum(n) FILTER (WHERE status = 'sent'), 0),"                                                     \
    " 'delivered', coalesce(sum(n) FILTER (WHERE status = 'delivered'), 0),"                                           \
    " 'read', coalesce(sum(n) FILTER (WHERE status = 'read'), 0),"                                                     \
    " 'failed', coalesce(sum(n) FILTER (WHERE status = 'failed'), 0),"                                                 \
    " 'cancelled', coalesce(sum(n) FILTER (WHERE status = 'cancelled'), 0))"                                           \
    " FROM campaign_counts cc WHERE cc.company_id = c.company_id AND cc.campaign_id = c.id),"                          \
    " 'created_by', c.created_by, 'created_at', c.created_at, 'started_at', c.started_at,"                             \
    " 'completed_at', c.completed_at, 'updated_at', c.updated_at)"

/* ---- GET ---- */

static pg_stmt_t camp_list_stmt = {
    "SELECT json_build_object('data', coalesce(json_agg(item ORDER BY id DESC), '[]'::json),"
    " 'next_before', CASE WHEN count(*) = $2 THEN min(id) END)::text"
    " FROM (SELECT " CAMP_ITEM " AS item, c.id FROM campaigns c"
    " WHERE c.company_id = $1 AND c.id < $3 ORDER BY c.id DESC LIMIT $2) page",
    3};

void api_campaigns_list(http_request_t *r)
{
    int64_t limit, before;
    if (api_query_int(r, "limit", CAMP_LIMIT_DEFAULT, 1, CAMP_LIMIT_MAX, 1, &limit) != 0 ||
        api_query_int(r, "before", INT64_MAX, 1, INT64_MAX, 0, &before) != 0)
        return;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, limit), api_db_i64(r, before)};
    api_db_reply(r, &camp_list_stmt, p, 3, 200, "campaigns");
}

static pg_stmt_t camp_get_stmt = {"SELECT json_build_object('data', " CAMP_ITEM ")::text FROM campaigns c"
                                  " WHERE c.company_id = $1 AND c.id = $2",
                                  2};

void api_campaigns_get(http_request_t *r)
{
    int64_t id;
    if (api_param_id(r, "id", &id) != 0)
        return;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, id)};
    api_db_reply(r, &camp_get_stmt, p, 2, 200, "campaign");
}

/* ---- POST: create ---- */

/* A template's name as Meta allows it: lowercase letters, digits and underscores. */
static int camp_template_name_ok(const char *s)
{
    return *s != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(s);
}

/* A language code: "en", "pt_BR", "es_419"... */
static int camp_language_ok(const char *s)
{
    size_t n = strlen(s), a = strspn(s, "abcdefghijklmnopqrstuvwxyz");
    if (a < 2 || a > 3)
        return 0;
    if (a == n)
        return 1;
    const char *rest = s + a;
    if (*rest != '_' || n - a - 1 < 2 || n - a - 1 > 4)
        return 0;
    return strspn(rest + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == n - a - 1;
}

/* Every element of array v a string of 1..max characters (valid UTF-8). */
static int camp_strings_ok(json_t *v, size_t max_items, size_t max_len)
{
    if (!json_is_array(v) || json_array_size(v) > max_items)
        return 0;
    size_t i, chars;
    json_t *e;
    json_array_foreach (v, i, e) {
        if (!json_is_string(e) || json_string_length(e) == 0 ||
            !api_utf8_valid(json_string_value(e), json_string_length(e), &chars) || chars > max_len)
            return 0;
    }
    return 1;
}

/* The template: {"name", "language", "parameters"?}. Returns 0 or -1 after replying. */
static int camp_read_template(http_request_t *r, json_t *t)
{
    if (!json_is_object(t)) {
        http_reply_invalid(r, "template", "template must be an object with name, language and parameters");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach (t, key, v) {
        if (strcmp(key, "name") != 0 && strcmp(key, "language") != 0 && strcmp(key, "parameters") != 0) {
            http_reply_invalid(r, "template", "unknown field template.%.*s", (int)api_utf8_prefix(key, 64), key);
            return -1;
        }
    }
    const char *name = json_string_value(json_object_get(t, "name"));
    if (name == NULL || strlen(name) > CAMP_TEMPLATE_MAX || !camp_template_name_ok(name)) {
        http_reply_invalid(r, "template.name", "template.name must be 1 to %d characters of a-z, 0-9 and _",
                           CAMP_TEMPLATE_MAX);
        return -1;
    }
    const char *lang = json_string_value(json_object_get(t, "language"));
    if (lang == NULL || !camp_language_ok(lang)) {
        http_reply_invalid(r, "template.language", "template.language must be a language code such as en_US");
        return -1;
    }
    json_t *params = json_object_get(t, "parameters");
    if (params != NULL && !camp_strings_ok(params, CAMP_PARAMS_MAX, CAMP_PARAM_LEN_MAX)) {
        http_reply_invalid(r, "template.parameters", "template.parameters must be at most %d non-empty strings",
                           CAMP_PARAMS_MAX);
        return -1;
    }
    return 0;
}

/*
 * The audience: {"all": true}, {"contact_ids": [ids]}, or {"phone_prefix": "digits",
 * "labels": [strings]} (either or both). Returns 0 or -1 after replying.
 */
static int camp_read_audience(http_request_t *r, json_t *a)
{
    static const char why[] = "audience must be {\"all\": true}, {\"contact_ids\": [...]} or"
                              " {\"phone_prefix\": \"...\", \"labels\": [...]}";
    if (!json_is_object(a) || json_object_size(a) == 0) {
        http_reply_invalid(r, "audience", "%s", why);
        return -1;
    }
    json_t *all = json_object_get(a, "all"), *ids = json_object_get(a, "contact_ids");
    json_t *prefix = json_object_get(a, "phone_prefix"), *labels = json_object_get(a, "labels");
    size_t known = (all != NULL) + (ids != NULL) + (prefix != NULL) + (labels != NULL);
    if (known != json_object_size(a) || (all != NULL && known != 1) || (ids != NULL && known != 1)) {
        http_reply_invalid(r, "audience", "%s", why);
        return -1;
    }
    if (all != NULL && !json_is_true(all)) {
        http_reply_invalid(r, "audience.all", "audience.all must be true");
        return -1;
    }
    if (ids != NULL) {
        size_t i;
        json_t *e;
        if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > CAMP_IDS_MAX) {
            http_reply_invalid(r, "audience.contact_ids", "audience.contact_ids must be 1 to %d contact ids",
                               CAMP_IDS_MAX);
            return -1;
        }
        json_array_foreach (ids, i, e) {
            if (!json_is_integer(e) || json_integer_value(e) < 1) {
                http_reply_invalid(r, "audience.contact_ids", "audience.contact_ids must hold positive integers");
                return -1;
            }
        }
    }
    if (prefix != NULL) {
        const char *p = json_string_value(prefix);
        if (p == NULL || *p == '\0' || strlen(p) > 15 || strspn(p, "0123456789") != strlen(p) || *p == '0') {
            http_reply_invalid(r, "audience.phone_prefix",
                               "audience.phone_prefix must be 1 to 15 digits, without + and not starting with 0");
            return -1;
        }
    }
    if (labels != NULL &&
        (!camp_strings_ok(labels, CAMP_LABELS_MAX, CAMP_LABEL_LEN_MAX) || json_array_size(labels) == 0)) {
        http_reply_invalid(r, "audience.labels", "audience.labels must be 1 to %d non-empty strings", CAMP_LABELS_MAX);
        return -1;
    }
    return 0;
}

static pg_stmt_t camp_create_stmt = {
    "WITH c AS (INSERT INTO campaigns (company_id, connection_id, name, template_name, template_language,"
    " template_params, audience, created_by)"
    " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8) RETURNING *)"
    " SELECT json_build_object('data', " CAMP_ITEM ")::text, c.id FROM c",
    8};

static void camp_on_created(http_request_t *r, PGresult *res)
{
    char location[64];
    snprintf(location, sizeof(location), "/api/v1/campaigns/%s", PQgetvalue(res, 0, 1));
    http_reply_header(r, "location", location);
    http_reply_copy(r, 201, "application/json", PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
}

void api_campaigns_create(http_request_t *r)
{
    static const char *const fields[] = {"name", "connection_id", "template", "audience", NULL};
    json_t *body = api_body_object(r, fields);
    if (body == NULL)
        return;
    const char *name;
    int64_t conn;
    int is_null = 0, present = 0;
    json_t *tpl = json_object_get(body, "template"), *aud = json_object_get(body, "audience");
    if (api_json_string(r, body, "name", 1, 1, CAMP_NAME_MAX, &name) != 0 ||
        api_json_nullable_id(r, body, "connection_id", &conn, &is_null, &present) != 0) {
        json_decref(body);
        return;
    }
    if (!present || is_null) {
        json_decref(body);
        http_reply_invalid(r, "connection_id", "connection_id is required");
        return;
    }
    if (camp_read_template(r, tpl) != 0 || camp_read_audience(r, aud) != 0) {
        json_decref(body);
        return;
    }
    json_t *params = json_object_get(tpl, "parameters");
    char *params_text = params != NULL ? json_dumps(params, JSON_COMPACT) : util_strdup("[]");
    char *aud_text = json_dumps(aud, JSON_COMPACT);
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id),
                      api_db_i64(r, conn),
                      PG_TEXT(name),
                      PG_TEXT(json_string_value(json_object_get(tpl, "name"))),
                      PG_TEXT(json_string_value(json_object_get(tpl, "language"))),
                      PG_TEXT(params_text),
                      PG_TEXT(aud_text),
                      api_db_i64(r, r->auth.user_id)};
    api_db_call(r, &camp_create_stmt, p, 8, camp_on_created); /* parameters are copied here */
    free(params_text);
    free(aud_text);
    json_decref(body);
}

/* ---- POST: trigger, pause, resume, cancel ---- */

/*
 * A move runs in its own statement; the campaign is read by the next one, which sees
 * what the move wrote (a statement's own reads see the state from before it started).
 */
static void camp_reply_current(http_request_t *r)
{
    int64_t *id = r->state;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, *id)};
    api_db_reply(r, &camp_get_stmt, p, 2, 200, "campaign");
}

/* Starts a draft; anything else is left as it is (a second trigger sends nobody twice). */
static pg_stmt_t camp_trigger_stmt = {"SELECT campaign_start($1, $2, $3)", 3};

static void camp_on_triggered(http_request_t *r, PGresult *res)
{
    (void)res;
    camp_reply_current(r);
}

void api_campaigns_trigger(http_request_t *r)
{
    static const char *const fields[] = {"campaign_id", NULL};
    json_t *body = api_body_object(r, fields);
    if (body == NULL)
        return;
    int64_t *id = h2o_mem_alloc_pool(&r->req->pool, sizeof(*id));
    int is_null = 0, present = 0;
    int rc = api_json_nullable_id(r, body, "campaign_id", id, &is_null, &present);
    json_decref(body);
    if (rc != 0)
        return;
    if (!present || is_null) {
        http_reply_invalid(r, "campaign_id", "campaign_id is required");
        return;
    }
    r->state = id;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, *id), api_db_i64(r, config.send_attempts)};
    api_db_call(r, &camp_trigger_stmt, p, 3, camp_on_triggered);
}

/* The new status, NULL when the move is not allowed now, no row for an unknown campaign. */
static pg_stmt_t camp_move_stmt = {"SELECT campaign_move($1, $2, $3)"
                                   " WHERE EXISTS (SELECT 1 FROM campaigns WHERE company_id = $1 AND id = $2)",
                                   3};

static void camp_on_moved(http_request_t *r, PGresult *res)
{
    if (PQntuples(res) != 1) {
        http_reply_error(r, 404, "not_found", "campaign not found");
        return;
    }
    if (PQgetisnull(res, 0, 0)) {
        http_reply_error(r, 409, "conflict", "the campaign cannot do that in its current status");
        return;
    }
    camp_reply_current(r);
}

static void camp_move(http_request_t *r, const char *action)
{
    int64_t *id = h2o_mem_alloc_pool(&r->req->pool, sizeof(*id));
    if (api_param_id(r, "id", id) != 0)
        return;
    r->state = id;
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id), api_db_i64(r, *id), PG_TEXT(action)};
    api_db_call(r, &camp_move_stmt, p, 3, camp_on_moved);
}

void api_campaigns_pause(http_request_t *r)
{
    camp_move(r, "pause");
}

void api_campaigns_resume(http_request_t *r)
{
    camp_move(r, "resume");
}

void api_campaigns_cancel(http_request_t *r)
{
    camp_move(r, "cancel");
}
