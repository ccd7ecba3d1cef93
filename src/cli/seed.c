/*
 * conversa seed --demo - loads the demo company (idempotent), sets the demo users'
 * passwords (Argon2id) when they have none, and issues a fresh API token for the
 * demo admin. Tokens are shown once: only their SHA-256 is stored. With ENCRYPTION_KEY
 * set, the demo connection's secrets are sealed with it (only where none is stored).
 * `seed --scale` (generated data at scale) lives in seed_scale.c.
 */
#include "auth/secrets.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "store/migrate.h"
#include "store/sql_files.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED_ADMIN            "admin@demo.conversa.dev"
#define SEED_AGENT            "agent@demo.conversa.dev"
#define SEED_DEFAULT_PASSWORD "conversa-demo"

static void seed_usage(FILE *out)
{
    fprintf(out, "usage: conversa seed --demo\n"
                 "       conversa seed --scale [options]   (options: conversa seed --scale --help)\n\n"
                 "Loads the demo company (company 'demo', an admin and an agent, contacts,\n"
                 "conversations, messages, notifications). Safe to run again: existing data\n"
                 "is kept. Demo users without a password get DEMO_PASSWORD (default\n"
                 "'" SEED_DEFAULT_PASSWORD "'). Prints a new API token for the demo admin.\n");
}

static int seed_set_password(PGconn *db, const char *email, const char *password)
{
    char hash[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(hash, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        log_error("seed", "password hashing ran out of memory");
        return -1;
    }
    const char *params[] = {hash, email};
    PGresult *res = PQexecParams(db,
                                 "UPDATE users SET password_hash = $1, updated_at = now()"
                                 " WHERE lower(email) = lower($2) AND password_hash IS NULL",
                                 2, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        log_error("seed", "setting the password of %s failed: %s", email, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

/* Issues a token "cv_" + 43 base64url characters; stores SHA-256 of the whole string. */
static int seed_issue_token(PGconn *db, const char *email, char *token, size_t cap)
{
    unsigned char raw[32], digest[crypto_hash_sha256_BYTES];
    char b64[sodium_base64_ENCODED_LEN(sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(token, cap, "cv_%s", b64);
    crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
    const char *params[] = {(const char *)digest, email};
    int lengths[] = {sizeof(digest), 0};
    int formats[] = {1, 0};
    PGresult *res = PQexecParams(db,
                                 "INSERT INTO api_tokens (company_id, user_id, token_hash, name, kind)"
                                 " SELECT company_id, id, $1, 'demo', 'api' FROM users WHERE lower(email) = lower($2)",
                                 2, NULL, params, lengths, formats, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdTuples(res), "1") == 0;
    if (!ok)
        log_error("seed", "issuing a token for %s failed: %s", email, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

/* Seals value for the demo connection's column `col` unless it has one. Returns 0 or -1. */
static int seed_demo_secret(PGconn *db, const char *col, const char *value, int clear_plaintext)
{
    char context[64], sql[512], hint[SECRETS_MASK_MAX];
    unsigned char sealed[SECRETS_OVERHEAD + 256];
    size_t len = strlen(value), sealed_len;
    snprintf(context, sizeof(context), "connections.%s", col);
    if (len > 256 || secrets_encrypt(context, value, len, sealed, sizeof(sealed), &sealed_len) != 0 ||
        secrets_mask(value, len, hint, sizeof(hint)) == 0) {
        log_error("seed", "sealing the demo %s failed", col);
        return -1;
    }
    snprintf(sql, sizeof(sql),
             "UPDATE connections SET %s_enc = $1, %s_hint = $2%s WHERE slug = 'demo' AND %s_enc IS NULL"
             " AND company_id = (SELECT id FROM companies WHERE slug = 'demo')",
             col, col, clear_plaintext ? ", verify_token = NULL" : "", col);
    const char *params[] = {(const char *)sealed, hint};
    int lengths[] = {(int)sealed_len, 0};
    int formats[] = {1, 0};
    PGresult *res = PQexecParams(db, sql, 2, NULL, params, lengths, formats, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        log_error("seed", "storing the demo %s failed: %s", col, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

/*
 * The demo connection's secrets, sealed with ENCRYPTION_KEY: an access token and an
 * app secret where it has none, and its verify token, which seed/demo.sql writes in
 * the legacy plaintext column, moved into verify_token_enc. Without a key they stay
 * as they are, with a warning.
 */
static int seed_demo_secrets(PGconn *db)
{
    if (config.encryption_key == NULL) {
        log_warn("seed", "ENCRYPTION_KEY is not set: the demo connection's secrets are left empty");
        return 0;
    }
    if (secrets_init(config.encryption_key, config.encryption_key_previous) != 0) {
        log_error("seed", "the encryption key could not be set up");
        return -1;
    }
    int rc = seed_demo_secret(db, "access_token", "demo-access-token", 0);
    if (rc == 0)
        rc = seed_demo_secret(db, "app_secret", "demo-app-secret", 0);
    PGresult *res = NULL;
    if (rc == 0) {
        res =
            PQexec(db, "SELECT verify_token FROM connections WHERE slug = 'demo' AND verify_token IS NOT NULL"
                       " AND verify_token_enc IS NULL AND company_id = (SELECT id FROM companies WHERE slug = 'demo')");
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            log_error("seed", "reading the demo verify token failed: %s", PQresultErrorMessage(res));
            rc = -1;
        } else if (PQntuples(res) == 1) {
            rc = seed_demo_secret(db, "verify_token", PQgetvalue(res, 0, 0), 1);
            sodium_memzero(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
        }
        PQclear(res);
    }
    secrets_shutdown();
    return rc;
}

int cli_seed(int argc, char **argv)
{
    for (int i = 1; i < argc; ++i)
        if (strcmp(argv[i], "--scale") == 0)
            return cli_seed_scale(argc, argv);
    if (cli_wants_help(argc, argv)) {
        seed_usage(stdout);
        fputc('\n', stdout);
        return cli_seed_scale(argc, argv); /* prints its own usage: argv holds --help */
    }
    if (argc != 2 || strcmp(argv[1], "--demo") != 0) {
        seed_usage(stderr);
        return 2;
    }
    if (config_load() != 0)
        return 2;
    if (sodium_init() < 0) {
        log_error("seed", "libsodium failed to initialise");
        return 1;
    }
    const char *password = getenv("DEMO_PASSWORD");
    if (password == NULL || *password == '\0')
        password = SEED_DEFAULT_PASSWORD;
    PGconn *db = migrate_connect(config.database_url, config.db_wait_s);
    if (db == NULL)
        return 1;
    char token[64];
    int rc = migrate_exec_script(db, "demo seed", sql_seed_demo);
    if (rc == 0)
        rc = seed_demo_secrets(db);
    if (rc == 0)
        rc = seed_set_password(db, SEED_ADMIN, password);
    if (rc == 0)
        rc = seed_set_password(db, SEED_AGENT, password);
    if (rc == 0)
        rc = seed_issue_token(db, SEED_ADMIN, token, sizeof(token));
    PQfinish(db);
    if (rc != 0)
        return 1;
    printf("demo company 'demo' is ready\n"
           "  sign in:   %s / %s (agent: %s)\n"
           "  api token: %s\n",
           SEED_ADMIN, password, SEED_AGENT, token);
    return 0;
}
