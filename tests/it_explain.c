/*
 * The plans of the real queries on data at scale.
 *
 * A database of its own is migrated and filled by `conversa seed --scale` (a smaller
 * scale than the default, same skew), with auto_explain logging the plan of every
 * statement. The real server then serves every list and count endpoint for the
 * largest company, and each logged plan is checked: no sequential scan of a tenant
 * table, and the list queries go through the index made for them.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/tokens.h"
#include "harness.h"

static char db_name[64], db_url[512], su_url[512];

/* Tables whose rows grow with tenants: a sequential scan of one is a missing index. */
static const char *const big_tables[] = {"conversations", "messages", "contacts",    "notifications",
                                         "api_tokens",    "users",    "connections", NULL};

static void explain_setup(void)
{
    const char *base = getenv("DATABASE_URL");
    snprintf(db_name, sizeof(db_name), "conversa_explain_%d", (int)getpid());
    const char *slash = strrchr(base, '/'), *at = strchr(base, '@');
    snprintf(db_url, sizeof(db_url), "%.*s/%s", (int)(slash - base), base, db_name);
    snprintf(su_url, sizeof(su_url), "postgresql://postgres@%.*s/%s", (int)(slash - at - 1), at + 1, db_name);
    char out[8192];
    cr_assert_eq(hs_sh(out, sizeof(out), "psql -X -q '%s' -c 'CREATE DATABASE %s' 2>&1", base, db_name), 0, "%s", out);
    cr_assert_eq(hs_sh(out, sizeof(out), "DATABASE_URL='%s' '%s' migrate up 2>&1", db_url, getenv("CONVERSA_BIN")), 0,
                 "%s", out);
    cr_assert_eq(hs_sh(out, sizeof(out),
                       "DATABASE_URL='%s' '%s' seed --scale --companies 100 --contacts 60000 --conversations 60000"
                       " --messages 300000 --notifications 60000 2>&1",
                       db_url, getenv("CONVERSA_BIN")),
                 0, "%s", out);
    cr_assert_eq(hs_sh(out, sizeof(out),
                       "psql -X -q -v ON_ERROR_STOP=1 '%s' -c \"ALTER DATABASE %s SET session_preload_libraries = "
                       "'auto_explain'\" -c 'ALTER DATABASE %s SET auto_explain.log_min_duration = 0'"
                       " -c \"ALTER DATABASE %s SET auto_explain.log_format = 'json'\" 2>&1",
                       su_url, db_name, db_name, db_name),
                 0, "%s", out);
}

static void explain_teardown(void)
{
    hs_sh(NULL, 0, "psql -X -q '%s' -c 'DROP DATABASE IF EXISTS %s WITH (FORCE)' 2>&1", getenv("DATABASE_URL"),
          db_name);
}

TestSuite(explain, .init = explain_setup, .fini = explain_teardown, .timeout = 300);

typedef struct plan_facts {
    int seq_scan_big; /* a Seq Scan on one of big_tables */
    char seq_table[64];
    char indexes[1024]; /* every index name the plan uses, space separated */
} plan_facts_t;

static void walk(json_t *node, plan_facts_t *f)
{
    const char *type = json_string_value(json_object_get(node, "Node Type"));
    const char *rel = json_string_value(json_object_get(node, "Relation Name"));
    const char *idx = json_string_value(json_object_get(node, "Index Name"));
    if (type != NULL && strcmp(type, "Seq Scan") == 0 && rel != NULL)
        for (size_t i = 0; big_tables[i] != NULL; ++i)
            if (strcmp(rel, big_tables[i]) == 0) {
                f->seq_scan_big = 1;
                snprintf(f->seq_table, sizeof(f->seq_table), "%s", rel);
            }
    if (idx != NULL && strlen(f->indexes) + strlen(idx) + 2 < sizeof(f->indexes)) {
        strcat(f->indexes, idx);
        strcat(f->indexes, " ");
    }
    json_t *kids = json_object_get(node, "Plans");
    for (size_t i = 0; i < json_array_size(kids); ++i)
        walk(json_array_get(kids, i), f);
}

static hs_server_t srv;
static char auth_hdr[128];

static void hit(const char *path, int times)
{
    const char *headers[] = {auth_hdr, NULL};
    for (int i = 0; i != times; ++i) {
        hs_response_t r = hs_request(srv.port, "GET", path, NULL, 0, headers);
        cr_assert_eq(r.status, 200, "%s: %ld %s", path, r.status, r.body);
        hs_response_free(&r);
    }
}

/* The expected index of a list query, recognised by a fragment of its text. */
static const struct {
    const char *fragment;
    const char *not_fragment;
    const char *index;
} expected[] = {
    {"c.status = $2 ORDER BY c.updated_at", NULL, "conversations_status_idx"},
    {"c.company_id = $1 ORDER BY c.updated_at", NULL, "conversations_updated_idx"},
    {"c.assignee_id = $2 ORDER BY", NULL, "conversations_assignee_updated_idx"},
    /* a third of the rows: walking the time index and filtering is as good a plan */
    {"c.assignee_id IS NULL ORDER BY", "status = $2", "conversations_assignee_updated_idx|conversations_updated_idx"},
    {"m.conversation_id = $2 AND m.id > $3", NULL, "messages_conversation_id_idx"},
    {"FROM api_tokens t", NULL, "api_tokens_token_hash_key"},
};

Test(explain, every_list_and_count_uses_an_index_at_scale)
{
    char out[8192], company[32], user[32], conv[32], cursor[64];
    cr_assert_eq(sodium_init() >= 0, 1);
    /* the largest company, one of its admins, its busiest conversation, a cursor 10,000 deep */
    hs_sh(company, sizeof(company),
          "psql -X -qtA '%s' -c 'SELECT company_id FROM conversation_counts GROUP BY 1 ORDER BY sum(n) DESC LIMIT 1'",
          db_url);
    hs_sh(user, sizeof(user), "psql -X -qtA '%s' -c \"SELECT id FROM users WHERE company_id = %s AND role = 'admin'\"",
          db_url, company);
    hs_sh(
        conv, sizeof(conv),
        "psql -X -qtA '%s' -c 'SELECT conversation_id FROM messages WHERE company_id = %s GROUP BY 1 ORDER BY count(*) "
        "DESC LIMIT 1'",
        db_url, company);
    hs_sh(cursor, sizeof(cursor),
          "psql -X -qtA '%s' -c \"SELECT (extract(epoch FROM updated_at) * 1000000)::bigint || '.' || id FROM "
          "conversations WHERE company_id = %s ORDER BY updated_at DESC, id DESC OFFSET 9999 LIMIT 1\"",
          db_url, company);
    cr_assert(atol(company) > 0 && atol(user) > 0 && atol(conv) > 0 && strchr(cursor, '.') != NULL,
              "company %s user %s conv %s cursor %s", company, user, conv, cursor);
    char token[TOKENS_TEXT_MAX], hex[2 * TOKENS_HASH_BYTES + 1];
    uint8_t hash[TOKENS_HASH_BYTES];
    tokens_new(token, hash);
    sodium_bin2hex(hex, sizeof(hex), hash, sizeof(hash));
    cr_assert_eq(
        hs_sh(out, sizeof(out),
              "psql -X -q -v ON_ERROR_STOP=1 '%s' -c \"INSERT INTO api_tokens (company_id, user_id, token_hash,"
              " kind) VALUES (%s, %s, decode('%s', 'hex'), 'api')\" 2>&1",
              db_url, company, user, hex),
        0, "%s", out);
    snprintf(auth_hdr, sizeof(auth_hdr), "Authorization: Bearer %s", token);

    char phone[32];
    hs_sh(phone, sizeof(phone),
          "psql -X -qtA '%s' -c 'SELECT phone_number FROM contacts WHERE company_id = %s LIMIT 1'", db_url, company);
    char log_path[512];
    snprintf(log_path, sizeof(log_path), "%s/pg.log", getenv("STACK_DIR"));
    struct stat st;
    cr_assert_eq(stat(log_path, &st), 0);
    off_t log_start = st.st_size;

    char env_db[600];
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", db_url);
    /* every request must reach PostgreSQL: this test reads the plans of its queries */
    const char *env[] = {env_db, "CACHE_ENABLED=0", NULL};
    hs_server_start(&srv, env);
    char path[256];
    /* seven times each: PostgreSQL may switch a prepared statement to a generic plan after five */
    hit("/api/v1/conversations?page=1&limit=20", 7);
    hit("/api/v1/conversations?page=50&limit=20", 7);
    snprintf(path, sizeof(path), "/api/v1/conversations?limit=20&cursor=%s", cursor);
    hit(path, 7);
    hit("/api/v1/conversations?status=open&limit=20", 7);
    hit("/api/v1/conversations?status=pending&assignee=me", 7);
    hit("/api/v1/conversations?assignee=me", 7);
    hit("/api/v1/conversations?assignee=unassigned", 7);
    hit("/api/v1/conversations?status=open&assignee=unassigned", 7);
    hit("/api/v1/conversations/status", 7);
    snprintf(path, sizeof(path), "/api/v1/conversations/%s", conv);
    hit(path, 7);
    snprintf(path, sizeof(path), "/api/v1/conversations/%s/messages?limit=50", conv);
    hit(path, 7);
    snprintf(path, sizeof(path), "/api/v1/conversations/%s/messages?limit=50&after=1", conv);
    hit(path, 7);
    hit("/api/v1/contacts?page=1&limit=20", 7);
    hit("/api/v1/contacts?page=20&limit=50", 7);
    hit("/api/v1/contacts?q=Ma", 7);
    hit("/api/v1/contacts?q=55", 7);
    snprintf(path, sizeof(path), "/api/v1/contacts/lookup?phone=%%2B%s", phone);
    hit(path, 7);
    hit("/api/v1/notifications?limit=20", 7);
    hit("/api/v1/notifications?unread=true&limit=20", 7);
    hit("/api/v1/notifications/unread_count", 7);
    cr_assert_eq(hs_server_stop(&srv), 0);

    /* read the plans logged since the server started */
    FILE *f = fopen(log_path, "r");
    cr_assert_not_null(f);
    fseek(f, log_start, SEEK_SET);
    size_t cap = 64 << 20, n;
    char *log = malloc(cap + 1);
    n = fread(log, 1, cap, f);
    log[n] = '\0';
    fclose(f);
    int plans = 0, matched[sizeof(expected) / sizeof(expected[0])] = {0};
    for (char *p = log; (p = strstr(p, "plan:")) != NULL;) {
        char *brace = strchr(p, '{');
        if (brace == NULL)
            break;
        json_error_t err;
        json_t *j = json_loads(brace, JSON_DISABLE_EOF_CHECK, &err);
        p = brace + 1;
        if (j == NULL)
            continue;
        const char *query = json_string_value(json_object_get(j, "Query Text"));
        json_t *plan = json_object_get(j, "Plan");
        if (query == NULL || plan == NULL || strstr(query, "pg_catalog") != NULL) {
            json_decref(j);
            continue;
        }
        plan_facts_t facts = {0};
        walk(plan, &facts);
        ++plans;
        cr_assert(!facts.seq_scan_big, "sequential scan of %s in:\n%s", facts.seq_table, query);
        for (size_t e = 0; e != sizeof(expected) / sizeof(expected[0]); ++e)
            if (strstr(query, expected[e].fragment) != NULL &&
                (expected[e].not_fragment == NULL || strstr(query, expected[e].not_fragment) == NULL)) {
                int found = 0;
                char alts[256];
                snprintf(alts, sizeof(alts), "%s", expected[e].index);
                for (char *save, *alt = strtok_r(alts, "|", &save); alt != NULL; alt = strtok_r(NULL, "|", &save))
                    found |= strstr(facts.indexes, alt) != NULL;
                cr_assert(found, "expected %s, plan used [%s] for:\n%.300s", expected[e].index, facts.indexes, query);
                ++matched[e];
            }
        json_decref(j);
    }
    free(log);
    cr_assert(plans >= 20 * 7, "only %d plans logged", plans);
    for (size_t e = 0; e != sizeof(expected) / sizeof(expected[0]); ++e)
        cr_assert(matched[e] > 0, "no query matched '%s'", expected[e].fragment);
    cr_log_info("%d plans checked", plans);
}
