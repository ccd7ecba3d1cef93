/*
 * Integration tests of `conversa migrate` and `conversa seed` on a database of their
 * own (created and dropped here), so the shared test database is left alone.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char db_url[512];
static char db_name[64];

static void make_db(void)
{
    const char *base = getenv("DATABASE_URL");
    cr_assert_not_null(base);
    snprintf(db_name, sizeof(db_name), "conversa_mig_%d", (int)getpid());
    const char *slash = strrchr(base, '/');
    snprintf(db_url, sizeof(db_url), "%.*s/%s", (int)(slash - base), base, db_name);
    cr_assert_eq(hs_sh(NULL, 0, "psql -X -q '%s' -c 'CREATE DATABASE %s' 2>&1", base, db_name), 0);
}

static void drop_db(void)
{
    hs_sh(NULL, 0, "psql -X -q '%s' -c 'DROP DATABASE IF EXISTS %s WITH (FORCE)' 2>&1", getenv("DATABASE_URL"),
          db_name);
}

TestSuite(migrate, .init = make_db, .fini = drop_db, .timeout = 120);

static int conversa(char *out, size_t cap, const char *args)
{
    return hs_sh(out, cap, "DATABASE_URL='%s' DB_WAIT_SECONDS=2 '%s' %s 2>&1", db_url, getenv("CONVERSA_BIN"), args);
}

static int psql_value(const char *sql, char *out, size_t cap)
{
    int rc = hs_sh(out, cap, "psql -X -qtA '%s' -c \"%s\" 2>&1", db_url, sql);
    out[strcspn(out, "\n")] = '\0';
    return rc;
}

Test(migrate, up_status_down_up)
{
    char out[8192], v[256];
    cr_assert_eq(conversa(out, sizeof(out), "migrate status"), 0, "%s", out);
    cr_assert(strstr(out, "0001_core") && strstr(out, "pending"), "%s", out);
    cr_assert_eq(conversa(out, sizeof(out), "migrate up"), 0, "%s", out);
    cr_assert_eq(conversa(out, sizeof(out), "migrate status"), 0);
    cr_assert(strstr(out, "applied") && !strstr(out, "pending"), "%s", out);
    /* a second up is a no-op */
    cr_assert_eq(conversa(out, sizeof(out), "migrate up"), 0);
    cr_assert(strstr(out, "up to date"), "%s", out);

    /* one step back, then all the way down */
    cr_assert_eq(conversa(out, sizeof(out), "migrate down"), 0, "%s", out);
    cr_assert_eq(conversa(out, sizeof(out), "migrate status"), 0);
    cr_assert(strstr(out, "applied") && strstr(out, "pending"), "%s", out);
    cr_assert_eq(conversa(out, sizeof(out), "migrate down 100"), 0, "%s", out);
    psql_value("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'", v,
               sizeof(v));
    cr_assert_str_eq(v, "0", "tables left after down: %s", v);
    cr_assert_eq(conversa(out, sizeof(out), "migrate up"), 0, "%s", out);
    psql_value("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", v, sizeof(v));
    cr_assert_eq(atoi(v), 16, "tables: %s", v);
}

Test(migrate, concurrent_runs_take_turns)
{
    char out[8192];
    /* four at once: the advisory lock serialises them and each finishes cleanly */
    char cmd[1600];
    snprintf(cmd, sizeof(cmd),
             "for i in 1 2 3 4; do DATABASE_URL='%s' '%s' migrate up >/dev/null 2>&1 & done; "
             "fail=0; for j in 1 2 3 4; do wait -n || fail=1; done; exit $fail",
             db_url, getenv("CONVERSA_BIN"));
    cr_assert_eq(hs_sh(out, sizeof(out), "bash -c \"%s\"", cmd), 0, "%s", out);
    char v[64];
    psql_value("SELECT count(*) FROM schema_migrations", v, sizeof(v));
    char status[8192];
    cr_assert_eq(conversa(status, sizeof(status), "migrate status"), 0);
    int known = 0;
    for (const char *p = status; (p = strstr(p, "applied")) != NULL; ++p)
        ++known;
    cr_assert_eq(atoi(v), known, "%s migrations recorded, %d known", v, known);
}

Test(migrate, schema_keeps_tenants_apart)
{
    char out[8192], v[512];
    cr_assert_eq(conversa(out, sizeof(out), "migrate up"), 0, "%s", out);
    cr_assert_eq(conversa(out, sizeof(out), "seed --demo"), 0, "%s", out);
    cr_assert(strstr(out, "api token: cv_") != NULL, "%s", out);
    /* seeding again adds nothing but a new token */
    cr_assert_eq(conversa(out, sizeof(out), "seed --demo"), 0, "%s", out);
    psql_value("SELECT count(*) || ',' || (SELECT count(*) FROM conversations) || ',' || (SELECT count(*) FROM "
               "api_tokens) FROM companies",
               v, sizeof(v));
    cr_assert_str_eq(v, "1,8,2");
    psql_value("SELECT count(*) FROM users WHERE password_hash LIKE '\\$argon2id\\$%'", v, sizeof(v));
    cr_assert_str_eq(v, "2");

    /* a message of company B pointing at company A's conversation is refused by the database */
    int rc =
        hs_sh(out, sizeof(out),
              "psql -X -q -v ON_ERROR_STOP=1 '%s' -c \"INSERT INTO companies (slug, name) VALUES ('other', 'Other');"
              " INSERT INTO messages (company_id, conversation_id, direction, body, status)"
              " SELECT (SELECT id FROM companies WHERE slug = 'other'), min(id), 'inbound', 'x', 'received'"
              " FROM conversations\" 2>&1",
              db_url);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(out, "foreign key") != NULL, "%s", out);

    /* the plan's four indexes, with company_id leading */
    static const char *const idx[][2] = {
        {"conversations", "(company_id, status, updated_at DESC"},
        {"notifications", "(company_id, user_id, is_read, created_at DESC"},
        {"messages", "(company_id, conversation_id, created_at DESC"},
        {"contacts", "(company_id, phone_number)"},
    };
    for (size_t i = 0; i != 4; ++i) {
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM pg_indexes WHERE tablename = '%s' AND position('%s' in indexdef) > 0", idx[i][0],
                 idx[i][1]);
        psql_value(sql, v, sizeof(v));
        cr_assert_neq(strcmp(v, "0"), 0, "no index %s %s", idx[i][0], idx[i][1]);
    }
    psql_value("SELECT count(*) FROM pg_indexes WHERE tablename = 'messages' AND indexdef LIKE "
               "'%UNIQUE%(company_id, wamid)%'",
               v, sizeof(v));
    cr_assert_str_eq(v, "1");
}

Test(migrate, commands_explain_themselves)
{
    char out[8192];
    static const char *const cmds[] = {"--help", "serve --help", "migrate --help", "seed --help", "version --help"};
    for (size_t i = 0; i != sizeof(cmds) / sizeof(cmds[0]); ++i) {
        cr_assert_eq(conversa(out, sizeof(out), cmds[i]), 0, "%s: %s", cmds[i], out);
        cr_assert(strstr(out, "usage: conversa") != NULL, "%s: %s", cmds[i], out);
    }
    cr_assert_eq(conversa(out, sizeof(out), "migrate sideways"), 2);
    cr_assert_eq(conversa(out, sizeof(out), "frobnicate"), 2);
    cr_assert_eq(conversa(out, sizeof(out), "seed"), 2);
    cr_assert_eq(conversa(out, sizeof(out), "version"), 0);
    cr_assert(strncmp(out, "conversa ", 9) == 0);
}

Test(migrate, waits_for_a_database_then_gives_up)
{
    char out[8192];
    int port = hs_free_port();
    int rc = hs_sh(out, sizeof(out),
                   "DATABASE_URL='postgresql://conversa@127.0.0.1:%d/conversa' DB_WAIT_SECONDS=1 '%s' migrate up 2>&1",
                   port, getenv("CONVERSA_BIN"));
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "retrying") != NULL && strstr(out, "cannot connect") != NULL, "%s", out);
}
