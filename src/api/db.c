#include "api/db.h"
#include "api/input.h"
#include "core/log.h"
#include "http/reply.h"

#include <stdint.h>
#include <string.h>

/*
 * A statement that PostgreSQL chose as a deadlock's victim (or that failed to
 * serialize) was rolled back whole: each runs in its own implicit transaction, so
 * running it again is running it for the first time. Two requests taking the same
 * rows in different orders (an admin cancelling a campaign while its sends record
 * their results) are told apart this way instead of one of them getting a 503.
 */
#define API_DB_TRIES 3

typedef struct api_db_step {
    http_request_t *r;
    api_db_next next;
    int ok_status;
    const char *what;
    pg_stmt_t *stmt;
    pg_param_t *params; /* a copy, values included, in the request's pool */
    size_t nparams;
    unsigned tries;
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

static int api_db_retryable(const pg_reply_t *reply)
{
    return reply->sqlstate != NULL && (strcmp(reply->sqlstate, "40P01") == 0 || strcmp(reply->sqlstate, "40001") == 0);
}

static void api_db_on_result(void *data, const pg_reply_t *reply)
{
    api_db_step_t *step = data;
    http_request_t *r = step->r;
    if (reply->error != NULL && api_db_retryable(reply) && ++step->tries < API_DB_TRIES) {
        log_info("api", "request %s: %s; running the statement again", r->id,
                 strcmp(reply->sqlstate, "40P01") == 0 ? "chosen as a deadlock's victim" : "serialization failure");
        pg_exec(r->thread->pg, step->stmt, step->params, step->nparams, api_db_on_result, step, &r->waiters);
        return;
    }
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
    /* the values too: a handler may pass buffers on its stack (pg_exec copies them) */
    pg_param_t *copy = n != 0 ? h2o_mem_alloc_pool(&r->req->pool, n * sizeof(*copy)) : NULL;
    for (size_t i = 0; i != n; ++i) {
        copy[i] = params[i];
        if (params[i].value != NULL) {
            size_t len = params[i].len == SIZE_MAX ? strlen(params[i].value) : params[i].len;
            char *v = h2o_mem_alloc_pool(&r->req->pool, len + 1);
            memcpy(v, params[i].value, len);
            v[len] = '\0';
            copy[i].value = v;
            copy[i].len = len;
        }
    }
    *step = (api_db_step_t){r, next, ok_status, what, stmt, copy, n, 0};
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
