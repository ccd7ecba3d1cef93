/*
 * conversa token create - an API token for an integration (a CRM, a script): acts as
 * the given user of the given company on every /api/v1 route, does not expire, and is
 * revoked like any token (DELETE /api/v1/auth/token with it).
 *
 * Contract: the token is random (src/auth/tokens.h), printed once on stdout (and
 * nothing else there, so TOKEN=$(conversa token create ...) works), stored only as its
 * SHA-256, and wiped from memory after printing. --company takes an id or a slug,
 * --user an id or an email; a user of another company is refused. Exit status: 0
 * created, 1 unknown company or user, user of another company, database failure;
 * 2 usage or configuration error.
 */
#include "api/input.h"
#include "auth/tokens.h"
#include "cli/cli.h"
#include "core/config.h"
#include "store/migrate.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_NAME_MAX 100
#define TOKEN_ARG_MAX  254 /* longest id, slug or email accepted */

static void token_usage(FILE *out)
{
    fprintf(out,
            "usage: conversa token create --company <id|slug> --user <id|email> [--name NAME]\n\n"
            "Creates an API token for an integration: it acts as that user of that company on\n"
            "every /api/v1 route and does not expire (revoke it with DELETE /api/v1/auth/token).\n"
            "The token is printed once on stdout; only its SHA-256 is stored. NAME (default\n"
            "'cli', up to %d characters) says what it is for.\n",
            TOKEN_NAME_MAX);
}

/* Whether s is a positive decimal id that fits a bigint. */
static int token_is_id(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 18 && s[strspn(s, "0123456789")] == '\0' && strspn(s, "0") != n;
}

/* One row of a query with text parameters, or NULL (nothing printed when there is no row). */
static PGresult *token_query(PGconn *db, const char *sql, int n, const char *const *params, int *failed)
{
    PGresult *res = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
    *failed = PQresultStatus(res) != PGRES_TUPLES_OK;
    if (*failed)
        fprintf(stderr, "conversa token create: the database refused a query: %s", PQresultErrorMessage(res));
    if (*failed || PQntuples(res) != 1) {
        PQclear(res);
        return NULL;
    }
    return res;
}

static int token_create(PGconn *db, const char *company, const char *user, const char *name)
{
    int failed;
    const char *cp[] = {token_is_id(company) ? company : NULL, company};
    PGresult *c = token_query(db,
                              "SELECT id::text, slug FROM companies WHERE id = $1::bigint OR slug = $2"
                              " ORDER BY id = $1::bigint DESC NULLS LAST LIMIT 1",
                              2, cp, &failed);
    if (c == NULL) {
        if (!failed)
            fprintf(stderr, "conversa token create: no company with id or slug '%s'\n", company);
        return 1;
    }
    const char *up[] = {token_is_id(user) ? user : NULL, token_is_id(user) ? NULL : user, PQgetvalue(c, 0, 0)};
    PGresult *u = token_query(db,
                              "SELECT company_id::text, id::text, email FROM users"
                              " WHERE id = $1::bigint OR lower(email) = lower($2)"
                              " ORDER BY company_id = $3::bigint DESC LIMIT 1",
                              3, up, &failed);
    if (u == NULL) {
        if (!failed)
            fprintf(stderr, "conversa token create: no user with id or email '%s'\n", user);
        PQclear(c);
        return 1;
    }
    if (strcmp(PQgetvalue(u, 0, 0), PQgetvalue(c, 0, 0)) != 0) {
        fprintf(stderr, "conversa token create: user '%s' belongs to another company, not to '%s'\n", user,
                PQgetvalue(c, 0, 1));
        PQclear(u);
        PQclear(c);
        return 1;
    }
    char token[TOKENS_TEXT_MAX];
    uint8_t hash[TOKENS_HASH_BYTES];
    tokens_new(token, hash);
    const char *ip[] = {PQgetvalue(c, 0, 0), PQgetvalue(u, 0, 1), (const char *)hash, name};
    int lengths[] = {0, 0, TOKENS_HASH_BYTES, 0};
    int formats[] = {0, 0, 1, 0};
    PGresult *res = PQexecParams(db,
                                 "INSERT INTO api_tokens (company_id, user_id, token_hash, name, kind)"
                                 " VALUES ($1, $2, $3, $4, 'api') RETURNING id::text",
                                 4, NULL, ip, lengths, formats, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok) {
        printf("%s\n", token);
        fflush(stdout);
        fprintf(stderr, "API token %s ('%s') for %s of company '%s': shown once, only its hash is stored\n",
                PQgetvalue(res, 0, 0), name, PQgetvalue(u, 0, 2), PQgetvalue(c, 0, 1));
    } else {
        fprintf(stderr, "conversa token create: storing the token failed: %s", PQresultErrorMessage(res));
    }
    sodium_memzero(token, sizeof(token));
    PQclear(res);
    PQclear(u);
    PQclear(c);
    return ok ? 0 : 1;
}

/* Reads "--opt VALUE" or "--opt=VALUE" at argv[*i]; returns 1 when it was opt (value or NULL in *out). */
static int token_opt(int argc, char **argv, int *i, const char *opt, const char **out)
{
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *out = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    *out = *i + 1 < argc ? argv[++*i] : NULL;
    return 1;
}

int cli_token(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        token_usage(stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "create") != 0) {
        token_usage(stderr);
        return 2;
    }
    const char *company = NULL, *user = NULL, *name = "cli";
    for (int i = 2; i < argc; ++i) {
        const char *v = NULL, *opt = argv[i];
        const char **slot = token_opt(argc, argv, &i, "--company", &v) ? &company
                            : token_opt(argc, argv, &i, "--user", &v)  ? &user
                            : token_opt(argc, argv, &i, "--name", &v)  ? &name
                                                                       : NULL;
        if (slot == NULL) {
            fprintf(stderr, "conversa token create: unknown argument '%s'\n", opt);
            return 2;
        }
        if (v == NULL || *v == '\0') {
            fprintf(stderr, "conversa token create: %s needs a value\n", opt);
            return 2;
        }
        *slot = v;
    }
    if (company == NULL || user == NULL) {
        fprintf(stderr, "conversa token create: --company and --user are required\n");
        token_usage(stderr);
        return 2;
    }
    size_t chars = 0;
    if (strlen(company) > TOKEN_ARG_MAX || strlen(user) > TOKEN_ARG_MAX ||
        !api_utf8_valid(company, strlen(company), NULL) || !api_utf8_valid(user, strlen(user), NULL)) {
        fprintf(stderr, "conversa token create: --company and --user must be UTF-8 of at most %d bytes\n",
                TOKEN_ARG_MAX);
        return 2;
    }
    if (!api_utf8_valid(name, strlen(name), &chars) || chars > TOKEN_NAME_MAX) {
        fprintf(stderr, "conversa token create: --name must be 1 to %d characters of UTF-8\n", TOKEN_NAME_MAX);
        return 2;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; ++p)
        if (*p < 0x20 || *p == 0x7f) {
            fprintf(stderr, "conversa token create: --name must not contain control characters\n");
            return 2;
        }
    if (config_load() != 0)
        return 2;
    if (sodium_init() < 0) {
        fprintf(stderr, "conversa token create: libsodium failed to initialise\n");
        return 1;
    }
    PGconn *db = migrate_connect(config.database_url, config.db_wait_s);
    if (db == NULL)
        return 1;
    int rc = token_create(db, company, user, name);
    PQfinish(db);
    return rc;
}
