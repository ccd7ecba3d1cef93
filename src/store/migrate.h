/*
 * migrate.h - schema migrations and one-shot database work (blocking libpq).
 *
 * Used by the `migrate` and `seed` commands, never on an event loop. Every change runs
 * under a session advisory lock, so two processes migrating at once take turns; each
 * migration runs in its own transaction together with its row in schema_migrations.
 * Functions return 0 or -1 after logging what failed.
 */
#ifndef CONVERSA_STORE_MIGRATE_H
#define CONVERSA_STORE_MIGRATE_H

#include <libpq-fe.h>

/**
 * Connects, retrying with backoff (200 ms doubling to 5 s) for up to wait_s seconds
 * while the server is not up. Returns NULL after logging when it gives up.
 */
PGconn *migrate_connect(const char *conninfo, unsigned wait_s);

/** Applies every migration not yet applied, in order. */
int migrate_up(PGconn *db);

/** Reverts the `steps` most recent migrations. */
int migrate_down(PGconn *db, unsigned steps);

/** Prints each known migration with applied/pending to stdout. */
int migrate_status(PGconn *db);

/** Executes a script (several statements) in one transaction. */
int migrate_exec_script(PGconn *db, const char *what, const char *sql);

#endif
