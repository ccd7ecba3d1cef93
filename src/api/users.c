/*
 * /api/v1/users: the people of the caller's company, for showing who a conversation
 * is assigned to (and who sent a reply) by name, and for assigning it to a colleague.
 *
 *   GET /api/v1/users    {"data":[{"id","name","email","role"}…]}, by id
 *
 * Any agent may read it: assigning to a colleague needs their ids. A company has a
 * handful of agents, so there is no paging; USERS_MAX bounds the answer all the same.
 * Password hashes never leave the database: the item names its four columns.
 * Not cached: one walk of the users primary key under the company costs less than a
 * Redis round trip would save, and the browser reads it once per screen.
 */
#include "api/db.h"
#include "api/routes.h"

#define USERS_MAX "1000"

static pg_stmt_t users_list_stmt = {
    "SELECT json_build_object('data', coalesce(json_agg(json_build_object('id', u.id, 'name', u.name, 'email',"
    " u.email, 'role', u.role) ORDER BY u.id), '[]'::json))::text"
    " FROM (SELECT id, name, email, role FROM users WHERE company_id = $1 ORDER BY id LIMIT " USERS_MAX ") u",
    1};

void api_users_list(http_request_t *r)
{
    pg_param_t p[] = {api_db_i64(r, r->auth.company_id)};
    api_db_reply(r, &users_list_stmt, p, 1, 200, "users");
}
