/*
 * db.h - how endpoints talk to PostgreSQL: one query, then either the next step or
 * the reply.
 *
 * Responses are built by PostgreSQL (json_build_object, json_agg) and passed through
 * as bytes: a query behind a JSON endpoint returns one row with one text column. A
 * database failure becomes one clear error (see api_db_error) so handlers only handle
 * success. Queries are linked to the request: if the client goes away first, nothing
 * calls back.
 */
#ifndef CONVERSA_API_DB_H
#define CONVERSA_API_DB_H

#include "http/server.h"
#include "store/pg.h"

typedef void (*api_db_next)(http_request_t *r, PGresult *res);

/** Runs stmt; on success calls next(r, res) (res freed after it returns); on failure replies. */
void api_db_call(http_request_t *r, pg_stmt_t *stmt, const pg_param_t *params, size_t n, api_db_next next);

/**
 * Runs stmt and replies ok_status with the text of row 0, column 0 as the JSON body;
 * no row (or NULL) is 404 with `what` named in the message.
 */
void api_db_reply(http_request_t *r, pg_stmt_t *stmt, const pg_param_t *params, size_t n, int ok_status,
                  const char *what);

/**
 * What a failed query means for the client: 409 for duplicates, 404 for a missing
 * referenced record, 400 for values the database refused, 503 otherwise (logged, with
 * r's id when r is given). code and message are static.
 */
void api_db_describe(const http_request_t *r, const pg_reply_t *reply, int *status, const char **code,
                     const char **message);

/** Replies for a failed query, as api_db_describe() says. */
void api_db_error(http_request_t *r, const pg_reply_t *reply);

/** A bigint parameter (formatted into the request's pool). */
pg_param_t api_db_i64(http_request_t *r, int64_t v);

/** The bearer token hash of the caller, as a binary bytea parameter. */
pg_param_t api_db_bytes(const void *p, size_t n);

#endif
