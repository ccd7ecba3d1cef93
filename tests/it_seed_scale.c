/*
 * Integration tests of `conversa seed --scale` on a database of its own (created,
 * migrated and dropped here): exact row counts at a small scale, counter tables equal
 * to COUNT(*), skew between companies, no reference across companies, data that
 * agrees with itself (previews, unread counts, timestamps), a second run that changes
 * nothing, --replace that seeds the same again, and bad flags refused with status 2.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define SMALL_SCALE "--companies 20 --contacts 20000 --conversations 20000 --messages 100000 --notifications 20000"

static char db_url[512];
static char db_name[64];

static int conversa(char *out, size_t cap, const char *args)
{
    return hs_sh(out, cap, "DATABASE_URL='%s' DB_WAIT_SECONDS=2 '%s' %s 2>&1", db_url, getenv("CONVERSA_BIN"), args);
}

static void make_db(void)
{
    const char *base = getenv("DATABASE_URL");
    cr_assert_not_null(base);
    cr_assert_not_null(getenv("CONVERSA_BIN"));
    snprintf(db_name, sizeof(db_name), "conversa_scale_%d", (int)getpid());
    const char *slash = strrchr(base, '/');
    snprintf(db_url, sizeof(db_url), "%.*s/%s", (int)(slash - base), base, db_name);
    cr_assert_eq(hs_sh(NULL, 0, "psql -X -q '%s' -c 'CREATE DATABASE %s' 2>&1", base, db_name), 0);
    char out[8192];
    cr_assert_eq(conversa(out, sizeof(out), "migrate up"), 0, "%s", out);
}

static void drop_db(void)
{
    hs_sh(NULL, 0, "psql -X -q '%s' -c 'DROP DATABASE IF EXISTS %s WITH (FORCE)' 2>&1", getenv("DATABASE_URL"),
          db_name);
}

TestSuite(seed_scale, .init = make_db, .fini = drop_db, .timeout = 120);

/* The first line of a query's result. */
static void psql_value(const char *sql, char *out, size_t cap)
{
    int rc = hs_sh(out, cap, "psql -X -qtA -v ON_ERROR_STOP=1 '%s' -c \"%s\" 2>&1", db_url, sql);
    out[strcspn(out, "\n")] = '\0';
    cr_assert_eq(rc, 0, "%s: %s", sql, out);
}

static void expect(const char *sql, const char *want)
{
    char v[1024];
    psql_value(sql, v, sizeof(v));
    cr_assert_str_eq(v, want, "%s", sql);
}

static const char COUNTS[] = "SELECT (SELECT count(*) FROM companies) || ',' || (SELECT count(*) FROM users) || ','"
                             " || (SELECT count(*) FROM contacts) || ',' || (SELECT count(*) FROM conversations) || ','"
                             " || (SELECT count(*) FROM messages) || ',' || (SELECT count(*) FROM notifications)";
static const char COUNTS_SMALL[] = "20,100,20000,20000,100000,20000";

/* Every counter row equals COUNT(*) over its table, both ways round. */
static void expect_counters_exact(void)
{
    /* per company and status, summed over assignees */
    expect("SELECT count(*) FROM (SELECT company_id, status, count(*) AS n FROM conversations GROUP BY 1, 2) x"
           " FULL JOIN (SELECT company_id, status, sum(n) AS n FROM conversation_counts GROUP BY 1, 2"
           " HAVING sum(n) <> 0) y USING (company_id, status) WHERE x.n IS DISTINCT FROM y.n",
           "0");
    /* and per assignee */
    expect("SELECT count(*) FROM (SELECT company_id, coalesce(assignee_id, 0) AS assignee_id, status, count(*) AS n"
           " FROM conversations GROUP BY 1, 2, 3) x FULL JOIN (SELECT * FROM conversation_counts WHERE n <> 0) y"
           " USING (company_id, assignee_id, status) WHERE x.n IS DISTINCT FROM y.n",
           "0");
    expect("SELECT count(*) FROM (SELECT company_id, count(*) AS n FROM contacts GROUP BY 1) x"
           " FULL JOIN (SELECT * FROM contact_counts WHERE n <> 0) y USING (company_id) WHERE x.n IS DISTINCT FROM y.n",
           "0");
    expect(
        "SELECT count(*) FROM (SELECT company_id, user_id, count(*) AS total,"
        " count(*) FILTER (WHERE NOT is_read) AS unread FROM notifications GROUP BY 1, 2) x"
        " FULL JOIN (SELECT * FROM notification_counts WHERE total <> 0 OR unread <> 0) y USING (company_id, user_id)"
        " WHERE x.total IS DISTINCT FROM y.total OR x.unread IS DISTINCT FROM y.unread",
        "0");
}

Test(seed_scale, seeds_exact_skewed_consistent_data_once)
{
    char out[8192], v[1024];
    cr_assert_eq(conversa(out, sizeof(out), "seed --scale " SMALL_SCALE), 0, "%s", out);
    cr_assert(strstr(out, "seeded 20 companies, 100 users, 20,000 contacts, 20,000 conversations, 100,000 messages, "
                          "20,000 notifications in ") != NULL,
              "%s", out);
    cr_assert(strstr(out, "largest company: scale-00001 with ") != NULL, "%s", out);
    /* not a terminal: one line per table */
    cr_assert(strstr(out, "messages ") != NULL && strstr(out, "100,000 rows") != NULL, "%s", out);
    cr_assert(strchr(out, '\r') == NULL, "%s", out);

    expect(COUNTS, COUNTS_SMALL);
    expect_counters_exact();
    /* vacuumed and analysed by the seed itself, not left to autovacuum */
    expect("SELECT count(*) FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL AND last_analyze IS NOT NULL"
           " AND relname IN ('companies', 'users', 'contacts', 'conversations', 'messages', 'notifications',"
           " 'conversation_counts', 'contact_counts', 'notification_counts')",
           "9");

    /* skew: the largest company holds more than 10% of the conversations, the smallest at least one
     * of everything */
    psql_value("SELECT max(n) * 10 > sum(n), min(n) >= 1 FROM (SELECT c.id, count(v.id) AS n FROM companies c"
               " LEFT JOIN conversations v ON v.company_id = c.id GROUP BY c.id) s",
               v, sizeof(v));
    cr_assert_str_eq(v, "t|t");
    expect("SELECT count(*) FROM companies c WHERE NOT EXISTS (SELECT 1 FROM contacts k WHERE k.company_id = c.id)"
           " OR NOT EXISTS (SELECT 1 FROM notifications n WHERE n.company_id = c.id)"
           " OR (SELECT count(*) FROM users u WHERE u.company_id = c.id) <> 5",
           "0");
    expect("SELECT slug FROM companies c ORDER BY (SELECT count(*) FROM conversations v WHERE v.company_id = c.id)"
           " DESC LIMIT 1",
           "scale-00001");
    /* every conversation has a message; a few have many */
    expect("SELECT count(*) FROM conversations v WHERE NOT EXISTS (SELECT 1 FROM messages m"
           " WHERE m.company_id = v.company_id AND m.conversation_id = v.id)",
           "0");
    psql_value("SELECT max(n) >= 100 FROM (SELECT count(*) AS n FROM messages GROUP BY conversation_id) s", v,
               sizeof(v));
    cr_assert_str_eq(v, "t");

    /* nothing points at another company's rows (joined on id alone) */
    expect("SELECT count(*) FROM messages m JOIN conversations v ON v.id = m.conversation_id"
           " WHERE v.company_id <> m.company_id",
           "0");
    expect("SELECT count(*) FROM conversations v JOIN contacts k ON k.id = v.contact_id"
           " WHERE k.company_id <> v.company_id",
           "0");
    expect("SELECT count(*) FROM notifications n JOIN conversations v ON v.id = (n.data->>'conversation_id')::bigint"
           " WHERE v.company_id <> n.company_id",
           "0");

    /* the data agrees with itself */
    expect("SELECT count(*) FROM messages m JOIN conversations v ON v.company_id = m.company_id"
           " AND v.id = m.conversation_id WHERE m.created_at > v.updated_at OR m.created_at < v.created_at",
           "0");
    expect("SELECT count(*) FROM conversations v WHERE last_message_at <> updated_at"
           " OR last_message_preview IS DISTINCT FROM (SELECT left(m.body, 120) FROM messages m"
           " WHERE m.company_id = v.company_id AND m.conversation_id = v.id ORDER BY m.created_at DESC, m.id DESC"
           " LIMIT 1)",
           "0");
    expect("SELECT count(*) FROM conversations v WHERE unread_count <> (SELECT count(*) FROM messages m"
           " WHERE m.company_id = v.company_id AND m.conversation_id = v.id AND m.status = 'received')",
           "0");
    expect("SELECT count(*) FROM messages WHERE CASE direction WHEN 'inbound' THEN status NOT IN ('received', 'read')"
           " ELSE status NOT IN ('sent', 'delivered', 'read', 'failed') END",
           "0");
    expect("SELECT count(*) FROM messages WHERE wamid IS NULL OR (direction = 'inbound' AND sender_id IS NOT NULL)",
           "0");
    expect("SELECT count(*) FROM users WHERE email !~ '^(admin|agent[1-4])@scale-[0-9]{5}[.]conversa[.]dev\\$'"
           " OR password_hash IS NOT NULL",
           "0");
    /* mixes near what was asked for */
    psql_value("SELECT round(100.0 * count(*) FILTER (WHERE status = 'resolved') / count(*)) BETWEEN 45 AND 55,"
               " round(100.0 * count(*) FILTER (WHERE status = 'open') / count(*)) BETWEEN 30 AND 40,"
               " round(100.0 * count(*) FILTER (WHERE assignee_id IS NOT NULL) / count(*)) BETWEEN 65 AND 75"
               " FROM conversations",
               v, sizeof(v));
    cr_assert_str_eq(v, "t|t|t");
    psql_value("SELECT round(100.0 * count(*) FILTER (WHERE NOT is_read) / count(*)) BETWEEN 25 AND 35"
               " FROM notifications",
               v, sizeof(v));
    cr_assert_str_eq(v, "t");
    psql_value("SELECT max(updated_at) <= now() AND min(updated_at) > now() - interval '181 days'"
               " FROM conversations",
               v, sizeof(v));
    cr_assert_str_eq(v, "t");

    /* a second run without --replace changes nothing */
    char before[1024], after[1024];
    psql_value("SELECT max(id) || ',' || (SELECT max(id) FROM conversations) || ',' || (SELECT max(id) FROM "
               "companies) FROM messages",
               before, sizeof(before));
    cr_assert_eq(conversa(out, sizeof(out), "seed --scale " SMALL_SCALE), 0, "%s", out);
    cr_assert(strstr(out, "already present") != NULL, "%s", out);
    psql_value("SELECT max(id) || ',' || (SELECT max(id) FROM conversations) || ',' || (SELECT max(id) FROM "
               "companies) FROM messages",
               after, sizeof(after));
    cr_assert_str_eq(after, before);
    expect(COUNTS, COUNTS_SMALL);

    /* --replace: new rows, the same counts, counters still exact */
    psql_value("SELECT max(id) FROM companies", before, sizeof(before));
    cr_assert_eq(conversa(out, sizeof(out), "seed --scale " SMALL_SCALE " --replace"), 0, "%s", out);
    cr_assert(strstr(out, "seeded 20 companies") != NULL, "%s", out);
    expect(COUNTS, COUNTS_SMALL);
    char sql[1200];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM companies WHERE id <= %s", before);
    expect(sql, "0");
    expect_counters_exact();
    expect("SELECT count(*) FROM conversation_counts WHERE company_id NOT IN (SELECT id FROM companies)", "0");
}

Test(seed_scale, refuses_bad_flags)
{
    char out[8192];
    static const char *const bad[] = {
        "--companies 0",
        "--companies -5",
        "--companies abc",
        "--companies 12x",
        "--companies",
        "--companies 100000",
        "--messages 1000000001",
        "--contacts 10 --companies 20",
        "--companies 5 --contacts 10 --conversations 4",
        "--companies 5 --contacts 10 --conversations 10 --messages 9",
        "--companies 5 --contacts 10 --conversations 10 --messages 10 --notifications 4",
        "--bogus",
        "--companies=",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        char args[256];
        snprintf(args, sizeof(args), "seed --scale %s", bad[i]);
        cr_assert_eq(conversa(out, sizeof(out), args), 2, "%s: %s", args, out);
        cr_assert(strstr(out, "conversa seed --scale:") != NULL, "%s: %s", args, out);
    }
    expect("SELECT count(*) FROM companies", "0");

    /* the smallest valid scale, with --flag=N spelling */
    cr_assert_eq(conversa(out, sizeof(out),
                          "seed --scale --companies=1 --contacts=1 --conversations=1 --messages=1 --notifications=1"),
                 0, "%s", out);
    expect(COUNTS, "1,5,1,1,1,1");
}

Test(seed_scale, documents_its_flags)
{
    char out[8192];
    cr_assert_eq(conversa(out, sizeof(out), "seed --scale --help"), 0, "%s", out);
    static const char *const flags[] = {"--companies", "--contacts",      "--conversations",
                                        "--messages",  "--notifications", "--replace"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); ++i)
        cr_assert(strstr(out, flags[i]) != NULL, "%s missing: %s", flags[i], out);
    cr_assert_eq(conversa(out, sizeof(out), "seed --help"), 0, "%s", out);
    cr_assert(strstr(out, "--demo") != NULL && strstr(out, "--scale") != NULL && strstr(out, "--replace") != NULL, "%s",
              out);
}
