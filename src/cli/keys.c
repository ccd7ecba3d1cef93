/*
 * conversa keys - the key that seals secrets at rest (src/auth/secrets.h).
 *
 *   conversa keys rotate [--dry-run]   re-seal every stored secret with ENCRYPTION_KEY
 *   conversa keys generate             print a new random key (64 hex characters)
 *
 * Why a command: a stored value names its key by id, and serve opens values under
 * ENCRYPTION_KEY or ENCRYPTION_KEY_PREVIOUS; rotating moves every value to the current
 * key so the previous one can be dropped.
 *
 * Contract of rotate: one transaction. Every connection is locked (SELECT ... FOR
 * UPDATE), each sealed value is opened with whichever configured key its id names,
 * and values under the previous key are sealed again with the current one (values
 * already under it are left alone). A verify token still in the legacy plaintext
 * column is sealed and the column cleared. A value that neither key opens stops
 * everything: the transaction is rolled back and the connection and column (never the
 * value) are named. --dry-run does all of it and rolls back. Plaintexts are wiped as
 * soon as they are re-sealed. Exit status: 0 done, 1 failed (nothing changed), 2 usage
 * or configuration error.
 */
#include "auth/secrets.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "store/migrate.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* The sealed columns of connections, in the order of keys_select's columns 3, 4, 5. */
static const char *const keys_columns[] = {"access_token", "app_secret", "verify_token"};

/* Column 6 is the legacy plaintext verify token. */
static const char keys_select[] = "SELECT company_id::text, id::text, slug, access_token_enc, app_secret_enc,"
                                  " verify_token_enc, verify_token FROM connections ORDER BY company_id, id FOR UPDATE";

typedef struct keys_counts {
    unsigned long resealed; /* opened with the previous key, sealed with the current */
    unsigned long current;  /* already under the current key */
    unsigned long legacy;   /* plaintext verify tokens sealed */
} keys_counts_t;

static void keys_usage(FILE *out)
{
    fprintf(out, "usage: conversa keys rotate [--dry-run]\n"
                 "       conversa keys generate\n\n"
                 "rotate: re-seals every stored secret (connections' access tokens, app secrets\n"
                 "and verify tokens) with ENCRYPTION_KEY, opening each with ENCRYPTION_KEY or\n"
                 "ENCRYPTION_KEY_PREVIOUS. One transaction: a value that neither key opens rolls\n"
                 "everything back (exit 1). --dry-run checks every value and writes nothing.\n"
                 "To change keys: restart serve with ENCRYPTION_KEY=<new> and\n"
                 "ENCRYPTION_KEY_PREVIOUS=<old>, run `conversa keys rotate` with the same two,\n"
                 "then remove ENCRYPTION_KEY_PREVIOUS and restart serve.\n\n"
                 "generate: prints a new random key (64 hex characters) for ENCRYPTION_KEY.\n");
}

static int keys_generate(void)
{
    unsigned char key[SECRETS_KEY_BYTES];
    char hex[2 * SECRETS_KEY_BYTES + 1];
    if (sodium_init() < 0) {
        fprintf(stderr, "conversa keys: libsodium failed to initialise\n");
        return 1;
    }
    randombytes_buf(key, sizeof(key));
    sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
    printf("%s\n", hex);
    sodium_memzero(key, sizeof(key));
    sodium_memzero(hex, sizeof(hex));
    return 0;
}

/* Runs a statement without rows; 0 or -1 after printing what failed. */
static int keys_exec(PGconn *db, const char *sql)
{
    PGresult *res = PQexec(db, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "conversa keys rotate: %s failed: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

/*
 * Seals plain for column col of connection (company, id) and stores it; with `legacy`
 * the plaintext verify_token column is cleared too. Returns 0 or -1.
 */
static int keys_store(PGconn *db, const char *company, const char *id, const char *col, const char *plain, size_t len,
                      int legacy)
{
    char context[64], sql[256], hint[SECRETS_MASK_MAX];
    unsigned char sealed[SECRETS_OVERHEAD + SECRETS_PLAIN_MAX];
    size_t sealed_len;
    snprintf(context, sizeof(context), "connections.%s", col);
    if (secrets_encrypt(context, plain, len, sealed, sizeof(sealed), &sealed_len) != 0) {
        fprintf(stderr, "conversa keys rotate: connection %s: sealing %s failed\n", id, col);
        return -1;
    }
    /* the mask changes only when a legacy plaintext gets its first one */
    if (legacy)
        secrets_mask(plain, len, hint, sizeof(hint));
    snprintf(sql, sizeof(sql), "UPDATE connections SET %s_enc = $3%s WHERE company_id = $1 AND id = $2", col,
             legacy ? ", verify_token_hint = $4, verify_token = NULL" : "");
    const char *params[] = {company, id, (const char *)sealed, hint};
    int lengths[] = {0, 0, (int)sealed_len, 0};
    int formats[] = {0, 0, 1, 0};
    PGresult *res = PQexecParams(db, sql, legacy ? 4 : 3, NULL, params, lengths, formats, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdTuples(res), "1") == 0;
    if (!ok)
        fprintf(stderr, "conversa keys rotate: connection %s: storing %s failed: %s", id, col,
                PQresultErrorMessage(res));
    PQclear(res);
    sodium_memzero(sealed, sizeof(sealed));
    return ok ? 0 : -1;
}

/* Opens one sealed value and re-seals it when it is under the previous key. Returns 0 or -1. */
static int keys_rotate_value(PGconn *db, PGresult *rows, int row, int col, keys_counts_t *n)
{
    const char *company = PQgetvalue(rows, row, 0), *id = PQgetvalue(rows, row, 1);
    const char *name = keys_columns[col - 3];
    const unsigned char *in = (const unsigned char *)PQgetvalue(rows, row, col);
    size_t len = (size_t)PQgetlength(rows, row, col), plain_len = 0;
    char context[64], plain[SECRETS_PLAIN_MAX + 1];
    secrets_key_t which;
    snprintf(context, sizeof(context), "connections.%s", name);
    if (secrets_decrypt(context, in, len, plain, sizeof(plain), &plain_len, &which) != 0) {
        char value_id[SECRETS_KEY_ID_TEXT], cur[SECRETS_KEY_ID_TEXT], prev[SECRETS_KEY_ID_TEXT];
        secrets_key_id(SECRETS_KEY_CURRENT, cur);
        secrets_key_id(SECRETS_KEY_PREVIOUS, prev);
        if (secrets_value_key_id(in, len, value_id) != 0)
            snprintf(value_id, sizeof(value_id), "%s", "unknown");
        fprintf(stderr,
                "conversa keys rotate: connection %s (company %s, slug '%s'): %s (key id %s) opens with neither "
                "ENCRYPTION_KEY (id %s) nor ENCRYPTION_KEY_PREVIOUS (id %s); nothing was changed\n",
                id, company, PQgetvalue(rows, row, 2), name, value_id, cur, *prev ? prev : "none");
        return -1;
    }
    int rc = 0;
    if (which == SECRETS_KEY_CURRENT) {
        ++n->current;
    } else {
        rc = keys_store(db, company, id, name, plain, plain_len, 0);
        n->resealed += rc == 0;
    }
    sodium_memzero(plain, sizeof(plain));
    return rc;
}

/* Seals a legacy plaintext verify token (or only clears it when a sealed one exists). */
static int keys_rotate_legacy(PGconn *db, PGresult *rows, int row, keys_counts_t *n)
{
    const char *company = PQgetvalue(rows, row, 0), *id = PQgetvalue(rows, row, 1);
    char *plain = PQgetvalue(rows, row, 6);
    size_t len = (size_t)PQgetlength(rows, row, 6);
    int rc;
    if (!PQgetisnull(rows, row, 5)) {
        const char *params[] = {company, id};
        PGresult *res = PQexecParams(db, "UPDATE connections SET verify_token = NULL WHERE company_id = $1 AND id = $2",
                                     2, NULL, params, NULL, NULL, 0);
        rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
        if (rc != 0)
            fprintf(stderr, "conversa keys rotate: connection %s: clearing verify_token failed: %s", id,
                    PQresultErrorMessage(res));
        PQclear(res);
    } else if (len > SECRETS_PLAIN_MAX) {
        fprintf(stderr, "conversa keys rotate: connection %s: the plaintext verify_token is too long\n", id);
        rc = -1;
    } else {
        rc = keys_store(db, company, id, "verify_token", plain, len, 1);
    }
    n->legacy += rc == 0;
    sodium_memzero(plain, len);
    return rc;
}

static int keys_rotate_all(PGconn *db, keys_counts_t *n)
{
    PGresult *rows = PQexecParams(db, keys_select, 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(rows) != PGRES_TUPLES_OK) {
        fprintf(stderr, "conversa keys rotate: reading connections failed: %s", PQresultErrorMessage(rows));
        PQclear(rows);
        return -1;
    }
    int rc = 0;
    for (int row = 0; rc == 0 && row != PQntuples(rows); ++row) {
        for (int col = 3; rc == 0 && col != 6; ++col)
            if (!PQgetisnull(rows, row, col))
                rc = keys_rotate_value(db, rows, row, col, n);
        if (rc == 0 && !PQgetisnull(rows, row, 6))
            rc = keys_rotate_legacy(db, rows, row, n);
    }
    PQclear(rows);
    return rc;
}

static int keys_rotate(int dry_run)
{
    if (config_load() != 0)
        return 2;
    if (config.encryption_key == NULL) {
        fprintf(stderr, "conversa keys rotate: ENCRYPTION_KEY is not set: it is the key to rotate to\n");
        return 2;
    }
    if (secrets_init(config.encryption_key, config.encryption_key_previous) != 0) {
        fprintf(stderr, "conversa keys rotate: the encryption key could not be set up\n");
        return 1;
    }
    char cur[SECRETS_KEY_ID_TEXT], prev[SECRETS_KEY_ID_TEXT];
    secrets_key_id(SECRETS_KEY_CURRENT, cur);
    secrets_key_id(SECRETS_KEY_PREVIOUS, prev);
    if (!secrets_has_previous())
        fprintf(stderr, "conversa keys rotate: ENCRYPTION_KEY_PREVIOUS is not set: every value must already open "
                        "with ENCRYPTION_KEY\n");
    PGconn *db = migrate_connect(config.database_url, config.db_wait_s);
    if (db == NULL) {
        secrets_shutdown();
        return 1;
    }
    keys_counts_t n = {0};
    int rc = keys_exec(db, "BEGIN");
    if (rc == 0)
        rc = keys_rotate_all(db, &n);
    if (rc == 0)
        rc = keys_exec(db, dry_run ? "ROLLBACK" : "COMMIT");
    else
        keys_exec(db, "ROLLBACK");
    PQfinish(db);
    secrets_shutdown();
    if (rc != 0)
        return 1;
    printf("keys rotate%s: %lu value(s) re-sealed from the previous key (id %s) with the current key (id %s), "
           "%lu already under the current key, %lu plaintext verify token(s) sealed%s\n",
           dry_run ? " --dry-run" : "", n.resealed, *prev ? prev : "none", cur, n.current, n.legacy,
           dry_run ? "; nothing was written" : "");
    return 0;
}

int cli_keys(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        keys_usage(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "generate") == 0)
        return keys_generate();
    if (argc >= 2 && argc <= 3 && strcmp(argv[1], "rotate") == 0) {
        if (argc == 3 && strcmp(argv[2], "--dry-run") != 0) {
            fprintf(stderr, "conversa keys rotate: unexpected argument '%s'\n", argv[2]);
            return 2;
        }
        return keys_rotate(argc == 3);
    }
    keys_usage(stderr);
    return 2;
}
