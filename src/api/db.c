#include "api/db.h"
#include "api/input.h"
#include "core/log.h"
#include "http/reply.h"

#include <string.h>

typedef struct api_db_step {
    http_request_t *r;
    api_db_next next;
    int ok_status;
    const char *what;
} api_db_step_t;

void api_db_describe(const http_request_t *r, const pg_reply_t *reply, int *status, const char **code,
                     const char **message)
{
    const char *state = reply->sqlstate != NULL ? reply->sqlstate : "";
    if (strcmp(state, "23505") == 0) {
        *status = 409, *code = "conflict", *message = "that already exists";
    } else if (strcmp(state, "23503") == 0) {
        *status = 404, *code = "not_found", *message = "a referenced record does not exist";
    } else if (strncmp(state, "22", 2) == 0 || strcmp(state, "23514") == 0) {
        *status = 400, *code = "invalid", *message = "a value was refused by the database";
    } else if (strcmp(state, "CVNOC") == 0) {
        *status = 409, *code = "no_connection",
        *message = "the conversation has no WhatsApp connection to send through";
    } else if (strcmp(state, "57014") == 0) {
        *status = 503, *code = "timeout", *message = "the database took too long";
    } else {
        if (*state != '\0')
            log_warn("api", "request %s: database error %s: %.*s", r != NULL ? r->id : "-", state,
                     (int)strcspn(reply->error, "\n"), reply->error);
        *status = 503, *code = "unavailable", *message = "the database is unavailable; try again shortly";
    }
}

void api_db_error(http_request_t *r, const pg_reply_t *reply)
{
    int status;
    const char *code, *message;
    api_db_describe(r, reply, &status, &code, &message);
    http_reply_error(r, status, code, "%s", message);
}

static void api_db_on_result(void *data, const pg_reply_t *reply)
{
    api_db_step_t *step = data;
    http_request_t *r = step->r;
    if (reply->error != NULL) {
        api_db_error(r, reply);
        return;
    }
    if (step->next != NULL) {
        step->next(r, reply->res);
        return;
    }
    PGresult *res = reply->res;
    if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        http_reply_error(r, 404, "not_found", "%s not found", step->what);
        return;
    }
    http_reply_copy(r, step->ok_status, "application/json", PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
}

static void api_db_run(http_request_t *r, pg_stmt_t *stmt, const pg_param_t *params, size_t n, api_db_next next,
                       int ok_status, const char *what)
{
    api_db_step_t *step = h2o_mem_alloc_pool(&r->req->pool, sizeof(*step));
    *step = (api_db_step_t){r, next, ok_status, what};
    pg_exec(r->thread->pg, stmt, params, n, api_db_on_result, step, &r->waiters);
}

void api_db_call(http_request_t *r, pg_stmt_t *stmt, const pg_param_t *params, size_t n, api_db_next next)
{
    api_db_run(r, stmt, params, n, next, 200, NULL);
}

void api_db_reply(http_request_t *r, pg_stmt_t *stmt, const pg_param_t *params, size_t n, int ok_status,
                  const char *what)
{
    api_db_run(r, stmt, params, n, NULL, ok_status, what);
}

pg_param_t api_db_i64(http_request_t *r, int64_t v)
{
    return PG_TEXT(api_i64(r, v));
}

pg_param_t api_db_bytes(const void *p, size_t n)
{
    return (pg_param_t){p, n, 1};
}
