#include "store/migrate.h"
#include "store/sql_files.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An arbitrary constant: the key every conversa process uses for the migration lock. */
#define MIGRATE_LOCK_KEY "7311920547"

static void migrate_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Server notices ("relation already exists, skipping") are for the debug log only. */
static void migrate_on_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("db", "%.*s", (int)strcspn(message, "\n"), message);
}

PGconn *migrate_connect(const char *conninfo, unsigned wait_s)
{
    unsigned backoff = 200, waited = 0;
    for (;;) {
        PGconn *db = PQconnectdb(conninfo);
        if (PQstatus(db) == CONNECTION_OK) {
            PQsetNoticeProcessor(db, migrate_on_notice, NULL);
            return db;
        }
        char err[512];
        snprintf(err, sizeof(err), "%s", PQerrorMessage(db));
        err[strcspn(err, "\n")] = '\0';
        PQfinish(db);
        if (waited >= wait_s * 1000u) {
            log_error("db", "cannot connect to the database: %s", err);
            return NULL;
        }
        log_warn("db", "database not reachable yet (%s); retrying in %u ms", err, backoff);
        migrate_sleep_ms(backoff);
        waited += backoff;
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
}

/* Runs one command; 0 when it succeeded. */
static int migrate_cmd(PGconn *db, const char *sql, const char *what)
{
    PGresult *res = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        const char *msg = PQresultErrorMessage(res);
        log_error("db", "%s failed: %.*s", what, (int)strcspn(msg, "\n"), msg);
    }
    PQclear(res);
    return ok ? 0 : -1;
}

int migrate_exec_script(PGconn *db, const char *what, const char *sql)
{
    if (migrate_cmd(db, "BEGIN", "BEGIN") != 0)
        return -1;
    if (migrate_cmd(db, sql, what) != 0) {
        migrate_cmd(db, "ROLLBACK", "ROLLBACK");
        return -1;
    }
    return migrate_cmd(db, "COMMIT", "COMMIT");
}

static int migrate_lock(PGconn *db)
{
    if (migrate_cmd(db, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", "taking the migration lock") != 0)
        return -1;
    return migrate_cmd(db,
                       "CREATE TABLE IF NOT EXISTS schema_migrations ("
                       " version integer PRIMARY KEY, name text NOT NULL,"
                       " applied_at timestamptz NOT NULL DEFAULT now())",
                       "creating schema_migrations");
}

static void migrate_unlock(PGconn *db)
{
    migrate_cmd(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", "releasing the migration lock");
}

/* The applied versions, ascending, in *out (caller frees). Returns the count or -1. */
static int migrate_applied(PGconn *db, unsigned **out)
{
    PGresult *res = PQexec(db, "SELECT version FROM schema_migrations ORDER BY version");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_error("db", "reading schema_migrations failed: %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    *out = calloc((size_t)n + 1, sizeof(unsigned));
    for (int i = 0; i != n; ++i)
        (*out)[i] = (unsigned)strtoul(PQgetvalue(res, i, 0), NULL, 10);
    PQclear(res);
    return n;
}

static int migrate_is_applied(const unsigned *applied, int n, unsigned version)
{
    for (int i = 0; i != n; ++i)
        if (applied[i] == version)
            return 1;
    return 0;
}

/* Runs a migration's SQL and records (or forgets) it, in one transaction. */
static int migrate_step(PGconn *db, const sql_migration_t *m, int up)
{
    char what[160], record[160];
    snprintf(what, sizeof(what), "migration %04u_%s (%s)", m->version, m->name, up ? "up" : "down");
    if (up)
        snprintf(record, sizeof(record), "INSERT INTO schema_migrations (version, name) VALUES (%u, '%s')", m->version,
                 m->name);
    else
        snprintf(record, sizeof(record), "DELETE FROM schema_migrations WHERE version = %u", m->version);
    if (migrate_cmd(db, "BEGIN", "BEGIN") != 0)
        return -1;
    if (migrate_cmd(db, up ? m->up : m->down, what) != 0 || migrate_cmd(db, record, what) != 0) {
        migrate_cmd(db, "ROLLBACK", "ROLLBACK");
        return -1;
    }
    if (migrate_cmd(db, "COMMIT", "COMMIT") != 0)
        return -1;
    log_info("db", "%s applied", what);
    return 0;
}

int migrate_up(PGconn *db)
{
    if (migrate_lock(db) != 0)
        return -1;
    unsigned *applied = NULL;
    int n = migrate_applied(db, &applied), rc = n < 0 ? -1 : 0, count = 0;
    for (size_t i = 0; rc == 0 && i != sql_nmigrations; ++i) {
        if (migrate_is_applied(applied, n, sql_migrations[i].version))
            continue;
        rc = migrate_step(db, &sql_migrations[i], 1);
        count += rc == 0;
    }
    free(applied);
    migrate_unlock(db);
    if (rc == 0)
        log_info("db", count == 0 ? "schema is up to date" : "schema migrated (%d applied)", count);
    return rc;
}

int migrate_down(PGconn *db, unsigned steps)
{
    if (migrate_lock(db) != 0)
        return -1;
    unsigned *applied = NULL;
    int n = migrate_applied(db, &applied), rc = n < 0 ? -1 : 0;
    for (int i = n - 1; rc == 0 && i >= 0 && steps > 0; --i, --steps) {
        const sql_migration_t *m = NULL;
        for (size_t k = 0; k != sql_nmigrations; ++k)
            if (sql_migrations[k].version == applied[i])
                m = &sql_migrations[k];
        if (m == NULL) {
            log_error("db", "migration %u is applied but unknown to this build; refusing to go down", applied[i]);
            rc = -1;
            break;
        }
        rc = migrate_step(db, m, 0);
    }
    free(applied);
    migrate_unlock(db);
    return rc;
}

int migrate_status(PGconn *db)
{
    if (migrate_lock(db) != 0)
        return -1;
    unsigned *applied = NULL;
    int n = migrate_applied(db, &applied);
    migrate_unlock(db);
    if (n < 0)
        return -1;
    for (size_t i = 0; i != sql_nmigrations; ++i)
        printf("%04u_%-30s %s\n", sql_migrations[i].version, sql_migrations[i].name,
               migrate_is_applied(applied, n, sql_migrations[i].version) ? "applied" : "pending");
    free(applied);
    return 0;
}
