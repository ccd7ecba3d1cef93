/*
 * sql_files.h - the SQL shipped inside the binary: numbered migrations (up and down)
 * and the demo seed. Generated at build time from migrations/ and seed/ by
 * scripts/embed-sql.sh; versions are ascending.
 */
#ifndef CONVERSA_STORE_SQL_FILES_H
#define CONVERSA_STORE_SQL_FILES_H

#include <stddef.h>

typedef struct sql_migration {
    unsigned version;
    const char *name;
    const char *up;
    const char *down;
} sql_migration_t;

extern const sql_migration_t sql_migrations[];
extern const size_t sql_nmigrations;
extern const char sql_seed_demo[];

#endif
