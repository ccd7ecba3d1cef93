/* conversa migrate up|down [N]|status */
#include "cli/cli.h"
#include "core/config.h"
#include "store/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void migrate_usage(FILE *out)
{
    fprintf(out, "usage: conversa migrate up | down [STEPS] | status\n\n"
                 "  up       apply every pending migration, in order\n"
                 "  down     revert the most recent STEPS migrations (default 1)\n"
                 "  status   list migrations as applied or pending\n\n"
                 "Connects to DATABASE_URL, waiting up to DB_WAIT_SECONDS for it to come up.\n"
                 "Runs under an advisory lock, so concurrent runs take turns.\n");
}

int cli_migrate(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        migrate_usage(stdout);
        return 0;
    }
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[1], "down") != 0)) {
        migrate_usage(stderr);
        return 2;
    }
    unsigned steps = 1;
    if (argc == 3) {
        char *end;
        long n = strtol(argv[2], &end, 10);
        if (*end != '\0' || n < 1 || n > 10000) {
            fprintf(stderr, "conversa migrate down: STEPS must be a positive integer\n");
            return 2;
        }
        steps = (unsigned)n;
    }
    if (strcmp(argv[1], "up") != 0 && strcmp(argv[1], "down") != 0 && strcmp(argv[1], "status") != 0) {
        migrate_usage(stderr);
        return 2;
    }
    if (config_load() != 0)
        return 2;
    PGconn *db = migrate_connect(config.database_url, config.db_wait_s);
    if (db == NULL)
        return 1;
    int rc = strcmp(argv[1], "up") == 0     ? migrate_up(db)
             : strcmp(argv[1], "down") == 0 ? migrate_down(db, steps)
                                            : migrate_status(db);
    PQfinish(db);
    return rc == 0 ? 0 : 1;
}
