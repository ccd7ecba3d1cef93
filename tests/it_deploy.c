/*
 * Checks of the operator's kit in deploy/: the Prometheus configuration, the alerting
 * rules and their unit tests pass promtool, and every rule has a case that fires; every
 * metric the rules and the Grafana dashboard name is one the real server exports; the
 * dashboard's queries parse; the nginx example passes `nginx -t` with a throw-away
 * certificate; the systemd units pass `systemd-analyze verify` and say what conversa
 * needs; the environment example names only variables conversa reads.
 *
 * Needs promtool (prometheus), nginx (nginx-light), openssl and systemd-analyze (systemd).
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

TestSuite(deploy, .timeout = 120);

#define RULES       "deploy/prometheus/rules.yml"
#define RULES_TEST  "deploy/prometheus/rules.test.yml"
#define DASHBOARD   "deploy/grafana/conversa.json"
#define NGINX_CONF  "deploy/nginx/conversa.conf"
#define UNIT        "deploy/systemd/conversa.service"
#define UNIT_TMPL   "deploy/systemd/conversa@.service"
#define ENV_EXAMPLE "deploy/systemd/conversa.env.example"

/* The alerts of rules.yml: the ones conversa evaluates itself, plus a process down. */
static const char *const alert_names[] = {
    "ConversaResponseTimeHigh",    "ConversaResponseTimeP95High", "ConversaMemoryHigh",   "ConversaErrorRateHigh",
    "ConversaCacheHitRateLow",     "ConversaQueueBacklog",        "ConversaPostgresDown", "ConversaRedisDown",
    "ConversaRateLimiterFallback", "ConversaInstanceDown",
};
#define NALERTS (sizeof(alert_names) / sizeof(alert_names[0]))

/* Identifiers with these prefixes in a query are conversa's metric names. */
static const char *const metric_prefixes[] = {"http_",  "cache_",   "queue_",     "db_",
                                              "redis_", "process_", "ratelimit_", "alerts_"};

/* ---- small helpers ---- */

/* The whole file, NUL-terminated (caller frees); fails the test when it cannot be read. */
static char *slurp(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s (the tests run from the repository root)", path);
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap + 1);
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    fclose(f);
    buf[len] = '\0';
    if (len_out != NULL)
        *len_out = len;
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* A fresh directory for one test's files: under STACK_DIR (tests/run.sh removes it), else /tmp. */
static void make_tmpdir(char *out, size_t cap)
{
    const char *base = getenv("STACK_DIR");
    snprintf(out, cap, "%s/deploy-XXXXXX", base != NULL && *base != '\0' ? base : "/tmp");
    cr_assert_not_null(mkdtemp(out), "mkdtemp %s", out);
}

static void remove_tmpdir(const char *dir)
{
    hs_sh(NULL, 0, "rm -rf '%s'", dir);
}

static int has_command(const char *name)
{
    return hs_sh(NULL, 0, "command -v '%s' >/dev/null 2>&1", name) == 0;
}

static size_t count_of(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        ++n;
    return n;
}

/* s with every `from` replaced by `to` (caller frees). */
static char *replace_all(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = count_of(s, from);
    char *out = malloc(strlen(s) + n * tl + 1), *o = out;
    for (const char *p = s, *q; *p != '\0'; p = q + fl) {
        q = strstr(p, from);
        if (q == NULL) {
            strcpy(o, p);
            return out;
        }
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, tl);
        o += tl;
    }
    *o = '\0';
    return out;
}

/* Blanks YAML comments: from a '#' to the end of its line (PromQL has no '#'). */
static void strip_comments(char *text)
{
    for (char *p = text; *p != '\0'; ++p)
        if (*p == '#')
            for (; *p != '\0' && *p != '\n'; ++p)
                *p = ' ';
}

/* ---- metric names ---- */

typedef struct names {
    char *v[256];
    size_t n;
} names_t;

static void names_add(names_t *ns, const char *s, size_t len)
{
    for (size_t i = 0; i != ns->n; ++i)
        if (strlen(ns->v[i]) == len && strncmp(ns->v[i], s, len) == 0)
            return;
    cr_assert(ns->n < sizeof(ns->v) / sizeof(ns->v[0]), "too many metric names");
    ns->v[ns->n++] = strndup(s, len);
}

static int names_has(const names_t *ns, const char *name)
{
    for (size_t i = 0; i != ns->n; ++i)
        if (strcmp(ns->v[i], name) == 0)
            return 1;
    return 0;
}

static void names_free(names_t *ns)
{
    for (size_t i = 0; i != ns->n; ++i)
        free(ns->v[i]);
    ns->n = 0;
}

static int ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == ':';
}

/* Adds every identifier of text that starts with one of conversa's metric prefixes. */
static void collect_metric_names(names_t *ns, const char *text)
{
    for (const char *p = text; *p != '\0';) {
        if (!ident_char(*p)) {
            ++p;
            continue;
        }
        size_t len = 0;
        while (ident_char(p[len]))
            ++len;
        for (size_t i = 0; i != sizeof(metric_prefixes) / sizeof(metric_prefixes[0]); ++i) {
            size_t pl = strlen(metric_prefixes[i]);
            if (len > pl && strncmp(p, metric_prefixes[i], pl) == 0) {
                names_add(ns, p, len);
                break;
            }
        }
        p += len;
    }
}

/* Whether the exposition declares `name`, or the histogram whose series `name` is. */
static int exported(const char *body, const char *name)
{
    char key[256];
    snprintf(key, sizeof(key), "\n# TYPE %s ", name);
    if (strstr(body, key) != NULL)
        return 1;
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    size_t len = strlen(name);
    for (size_t i = 0; i != sizeof(suffixes) / sizeof(suffixes[0]); ++i) {
        size_t sl = strlen(suffixes[i]);
        if (len > sl && strcmp(name + len - sl, suffixes[i]) == 0) {
            snprintf(key, sizeof(key), "\n# TYPE %.*s histogram\n", (int)(len - sl), name);
            if (strstr(body, key) != NULL)
                return 1;
            snprintf(key, sizeof(key), "\n# TYPE %.*s summary\n", (int)(len - sl), name);
            return strstr(body, key) != NULL;
        }
    }
    return 0;
}

/* ---- Prometheus ---- */

Test(deploy, prometheus_config_passes_promtool)
{
    char out[8192];
    int rc = hs_sh(out, sizeof(out), "promtool check config deploy/prometheus/prometheus.yml 2>&1");
    cr_assert_eq(rc, 0, "promtool check config: %s", out);
    cr_assert(strstr(out, "is valid prometheus config file syntax") != NULL, "%s", out);
    cr_assert(strstr(out, "SUCCESS: 1 rule files found") != NULL, "rules.yml should be loaded: %s", out);

    char *cfg = slurp("deploy/prometheus/prometheus.yml", NULL);
    cr_assert(strstr(cfg, "job_name: conversa") != NULL);
    cr_assert(strstr(cfg, "metrics_path: /api/metrics") != NULL);
    cr_assert(strstr(cfg, "127.0.0.1:5001") != NULL && strstr(cfg, "127.0.0.1:5002") != NULL);
    free(cfg);
}

Test(deploy, rules_pass_promtool)
{
    char out[8192], want[64];
    int rc = hs_sh(out, sizeof(out), "promtool check rules " RULES " 2>&1");
    cr_assert_eq(rc, 0, "promtool check rules: %s", out);
    snprintf(want, sizeof(want), "SUCCESS: %zu rules found", NALERTS);
    cr_assert(strstr(out, want) != NULL, "expected \"%s\": %s", want, out);

    char *rules = slurp(RULES, NULL);
    cr_assert_eq(count_of(rules, "- alert: "), NALERTS);
    for (size_t i = 0; i != NALERTS; ++i) {
        char line[128];
        snprintf(line, sizeof(line), "- alert: %s\n", alert_names[i]);
        cr_assert(strstr(rules, line) != NULL, "%s has no rule %s", RULES, alert_names[i]);
    }
    cr_assert(strstr(rules, "severity: critical") != NULL && strstr(rules, "severity: warning") != NULL);
    free(rules);
}

/* Whether the unit tests expect `alert` to fire at some evaluation (a non-empty exp_alerts). */
static int fires_in_tests(const char *tests, const char *alert)
{
    char key[128];
    snprintf(key, sizeof(key), "alertname: %s\n", alert);
    for (const char *p = strstr(tests, key); p != NULL; p = strstr(p + 1, key)) {
        const char *q = p + strlen(key);
        q += strspn(q, " ");
        if (strncmp(q, "exp_alerts:", 11) != 0)
            continue;
        q += 11;
        q += strspn(q, " \n");
        if (*q == '-')
            return 1;
    }
    return 0;
}

Test(deploy, rules_unit_tests_pass_and_every_rule_fires)
{
    char out[16384];
    int rc = hs_sh(out, sizeof(out), "promtool test rules " RULES_TEST " 2>&1");
    cr_assert_eq(rc, 0, "promtool test rules: %s", out);
    cr_assert(strstr(out, "SUCCESS") != NULL, "%s", out);

    char *tests = slurp(RULES_TEST, NULL);
    for (size_t i = 0; i != NALERTS; ++i)
        cr_assert(fires_in_tests(tests, alert_names[i]), "%s has no case where %s fires", RULES_TEST, alert_names[i]);
    /* and cases next to them that must stay quiet */
    cr_assert_geq(count_of(tests, "exp_alerts: []"), 5);
    free(tests);
}

/* ---- the dashboard, and the names it and the rules use ---- */

/* Writes every query of the dashboard as a recording rule, with Grafana's variables filled in. */
static size_t dashboard_exprs_as_rules(json_t *panels, names_t *ns, const char *path)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("groups:\n  - name: dashboard\n    rules:\n", f);
    size_t i, nexpr = 0;
    json_t *panel;
    json_array_foreach (panels, i, panel) {
        const char *title = json_string_value(json_object_get(panel, "title"));
        cr_assert(title != NULL && *title != '\0', "panel %zu has no title", i);
        const char *type = json_string_value(json_object_get(panel, "type"));
        cr_assert_not_null(type, "panel %s has no type", title);
        if (strcmp(type, "row") == 0)
            continue;
        json_t *ds = json_object_get(panel, "datasource");
        cr_assert_str_eq(json_string_value(json_object_get(ds, "uid")), "${DS_PROMETHEUS}", "panel %s", title);
        json_t *targets = json_object_get(panel, "targets"), *t;
        size_t j, with_expr = 0;
        cr_assert(json_is_array(targets) && json_array_size(targets) > 0, "panel %s has no targets", title);
        json_array_foreach (targets, j, t) {
            const char *expr = json_string_value(json_object_get(t, "expr"));
            if (expr == NULL || *expr == '\0')
                continue;
            ++with_expr;
            collect_metric_names(ns, expr);
            char *a = replace_all(expr, "$__rate_interval", "1m");
            char *b = replace_all(a, "$instance", ".*");
            char *c = replace_all(b, "\n", "\n          ");
            fprintf(f, "      - record: dashboard:expr_%zu\n        expr: |\n          %s\n", ++nexpr, c);
            free(a);
            free(b);
            free(c);
        }
        cr_assert_gt(with_expr, 0, "panel %s has no target with an expr", title);
    }
    fclose(f);
    return nexpr;
}

Test(deploy, dashboard_and_rules_use_only_exported_metrics)
{
    json_error_t err;
    json_t *dash = json_load_file(DASHBOARD, 0, &err);
    cr_assert_not_null(dash, "%s: line %d: %s", DASHBOARD, err.line, err.text);
    cr_assert_geq(json_integer_value(json_object_get(dash, "schemaVersion")), 36);
    cr_assert(json_is_string(json_object_get(dash, "title")) && json_is_string(json_object_get(dash, "uid")));
    json_t *vars = json_object_get(json_object_get(dash, "templating"), "list"), *v;
    size_t i;
    int ds_var = 0;
    json_array_foreach (vars, i, v) {
        const char *name = json_string_value(json_object_get(v, "name"));
        const char *type = json_string_value(json_object_get(v, "type"));
        ds_var |= name != NULL && type != NULL && strcmp(name, "DS_PROMETHEUS") == 0 && strcmp(type, "datasource") == 0;
    }
    cr_assert(ds_var, "the dashboard needs a datasource variable DS_PROMETHEUS");
    json_t *panels = json_object_get(dash, "panels");
    cr_assert(json_is_array(panels) && json_array_size(panels) >= 8, "too few panels");

    /* every query parses as PromQL */
    char dir[512], path[600], out[8192], want[64];
    make_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/dashboard-rules.yml", dir);
    names_t dash_names = {0};
    size_t nexpr = dashboard_exprs_as_rules(panels, &dash_names, path);
    int rc = hs_sh(out, sizeof(out), "promtool check rules '%s' 2>&1", path);
    cr_assert_eq(rc, 0, "a dashboard query does not parse: %s", out);
    snprintf(want, sizeof(want), "SUCCESS: %zu rules found", nexpr);
    cr_assert(strstr(out, want) != NULL, "%s", out);
    remove_tmpdir(dir);

    /* the panels asked for are there */
    char *text = slurp(DASHBOARD, NULL);
    static const char *const wanted[] = {"histogram_quantile(0.5,", "histogram_quantile(0.95,",
                                         "histogram_quantile(0.99,", "status=~\\\"5..\\\""};
    for (i = 0; i != sizeof(wanted) / sizeof(wanted[0]); ++i)
        cr_assert(strstr(text, wanted[i]) != NULL, "the dashboard has no %s", wanted[i]);
    free(text);
    static const char *const metrics[] = {
        "http_request_duration_seconds_count",
        "http_request_duration_seconds_bucket",
        "cache_hits_total",
        "cache_misses_total",
        "queue_jobs_queued",
        "queue_jobs_running",
        "queue_jobs_dead",
        "queue_oldest_waiting_seconds",
        "process_resident_memory_bytes",
        "process_memory_limit_bytes",
        "ratelimit_requests_total",
        "alerts_firing",
    };
    for (i = 0; i != sizeof(metrics) / sizeof(metrics[0]); ++i)
        cr_assert(names_has(&dash_names, metrics[i]), "the dashboard does not show %s", metrics[i]);

    /* the rules and their test data name metrics too */
    names_t all = {0};
    for (i = 0; i != dash_names.n; ++i)
        names_add(&all, dash_names.v[i], strlen(dash_names.v[i]));
    static const char *const yaml[] = {RULES, RULES_TEST};
    for (i = 0; i != 2; ++i) {
        char *y = slurp(yaml[i], NULL);
        strip_comments(y);
        collect_metric_names(&all, y);
        free(y);
    }
    cr_assert_geq(all.n, 15, "only %zu metric names found", all.n);

    /* ... and the real server exports each of them */
    hs_server_t s;
    hs_server_start(&s, NULL);
    hs_response_t m = hs_get(s.port, "/api/metrics");
    cr_assert_eq(m.status, 200);
    char missing[4096] = "";
    size_t nmissing = 0;
    for (i = 0; i != all.n; ++i)
        if (!exported(m.body, all.v[i])) {
            ++nmissing;
            strncat(missing, " ", sizeof(missing) - strlen(missing) - 1);
            strncat(missing, all.v[i], sizeof(missing) - strlen(missing) - 1);
        }
    hs_response_free(&m);
    cr_assert_eq(hs_server_stop(&s), 0);
    cr_assert_eq(nmissing, 0, "not in /api/metrics (no # TYPE line):%s", missing);
    names_free(&all);
    names_free(&dash_names);
    json_decref(dash);
}

/* ---- nginx ---- */

Test(deploy, nginx_config_passes_nginx_t)
{
    static const char *const nginx = "/usr/sbin/nginx";
    if (access(nginx, X_OK) != 0) {
        fprintf(stderr, "deploy::nginx_config_passes_nginx_t skipped: %s is missing (apt-get install nginx-light)\n",
                nginx);
        cr_skip_test("%s is missing (apt-get install nginx-light)", nginx);
    }
    cr_assert(has_command("openssl"), "openssl is missing");

    char *conf = slurp(NGINX_CONF, NULL);
    static const char *const wanted[] = {
        "server 127.0.0.1:5001;",
        "server 127.0.0.1:5002;",
        "keepalive ",
        "listen 80;",
        "return 301 https://",
        "listen 443 ssl http2;",
        "proxy_http_version 1.1;",
        "proxy_set_header Connection \"\";",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Request-Id $request_id;",
        "client_max_body_size 3m;",
        "location = /api/metrics",
        "allow 10.0.0.0/8;",
        "deny all;",
        "TRUSTED_PROXIES",
    };
    for (size_t i = 0; i != sizeof(wanted) / sizeof(wanted[0]); ++i)
        cr_assert(strstr(conf, wanted[i]) != NULL, "%s has no \"%s\"", NGINX_CONF, wanted[i]);

    /* a copy with a throw-away certificate and logs in the temporary directory */
    char dir[512], path[600], buf[700], out[8192];
    make_tmpdir(dir, sizeof(dir));
    int rc = hs_sh(out, sizeof(out),
                   "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 -keyout '%s/key.pem' "
                   "-out '%s/cert.pem' 2>&1",
                   dir, dir);
    cr_assert_eq(rc, 0, "openssl: %s", out);
    snprintf(buf, sizeof(buf), "%s/cert.pem", dir);
    char *a = replace_all(conf, "/etc/ssl/certs/conversa.example.com.crt", buf);
    snprintf(buf, sizeof(buf), "%s/key.pem", dir);
    char *b = replace_all(a, "/etc/ssl/private/conversa.example.com.key", buf);
    snprintf(buf, sizeof(buf), "%s/", dir);
    char *c = replace_all(b, "/var/log/nginx/", buf);
    cr_assert(strstr(c, "/etc/ssl/") == NULL && strstr(c, "/var/log/") == NULL,
              "certificate or log paths other than the placeholders: %s", c);
    snprintf(path, sizeof(path), "%s/conversa.conf", dir);
    spit(path, c);
    free(a);
    free(b);
    free(c);
    free(conf);

    char wrapper[8192];
    snprintf(wrapper, sizeof(wrapper),
             "pid %1$s/nginx.pid;\n"
             "error_log %1$s/error.log;\n"
             "events {}\n"
             "http {\n"
             "    access_log %1$s/access.log;\n"
             "    client_body_temp_path %1$s/body;\n"
             "    proxy_temp_path %1$s/proxy;\n"
             "    fastcgi_temp_path %1$s/fastcgi;\n"
             "    uwsgi_temp_path %1$s/uwsgi;\n"
             "    scgi_temp_path %1$s/scgi;\n"
             "    include %1$s/conversa.conf;\n"
             "}\n",
             dir);
    snprintf(path, sizeof(path), "%s/nginx.conf", dir);
    spit(path, wrapper);
    rc = hs_sh(out, sizeof(out), "%s -t -p '%s/' -e '%s/error.log' -c '%s' 2>&1", nginx, dir, dir, path);
    cr_assert_eq(rc, 0, "nginx -t: %s", out);
    cr_assert(strstr(out, "test is successful") != NULL, "%s", out);
    remove_tmpdir(dir);
}

/* ---- systemd ---- */

/* The value of the last `key=` line of a unit (systemd's rule for single values), or NULL; caller frees. */
static char *unit_get(const char *unit, const char *key)
{
    char *found = NULL;
    size_t kl = strlen(key);
    for (const char *line = unit; *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (end == NULL)
            end = line + strlen(line);
        const char *p = line + strspn(line, " \t");
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            const char *v = p + kl + 1, *e = end;
            while (e > v && isspace((unsigned char)e[-1]))
                --e;
            free(found);
            found = strndup(v, (size_t)(e - v));
        }
        line = *end != '\0' ? end + 1 : end;
    }
    return found;
}

/* Whether the unit has exactly this line (e.g. "Environment=PORT=%i"). */
static int unit_has_line(const char *unit, const char *want)
{
    size_t wl = strlen(want);
    for (const char *p = strstr(unit, want); p != NULL; p = strstr(p + 1, want))
        if ((p == unit || p[-1] == '\n') && (p[wl] == '\n' || p[wl] == '\0'))
            return 1;
    return 0;
}

/* A systemd time span ("30s", "1min", "1min 30s", "500ms", "45") in seconds, or -1. */
static double timespan_s(const char *v)
{
    double total = 0;
    int any = 0;
    while (v != NULL && *v != '\0') {
        char *end;
        double x = strtod(v, &end);
        if (end == v)
            return -1;
        size_t ul = strspn(end, "abcdefghijklmnopqrstuvwxyz");
        if (ul == 0 || (ul == 1 && *end == 's') || (ul == 3 && strncmp(end, "sec", 3) == 0))
            total += x;
        else if (ul == 2 && strncmp(end, "ms", 2) == 0)
            total += x / 1000;
        else if ((ul == 3 && strncmp(end, "min", 3) == 0) || (ul == 1 && *end == 'm'))
            total += x * 60;
        else
            return -1;
        any = 1;
        v = end + ul;
        v += strspn(v, " ");
    }
    return any ? total : -1;
}

static void expect_value(const char *unit, const char *path, const char *key, const char *want)
{
    char *v = unit_get(unit, key);
    cr_assert(v != NULL && strcmp(v, want) == 0, "%s: %s=%s, want %s", path, key, v != NULL ? v : "(unset)", want);
    free(v);
}

static void check_unit_structure(const char *path)
{
    char *unit = slurp(path, NULL);
    cr_assert(strstr(unit, "\n[Service]\n") != NULL && strstr(unit, "\n[Install]\n") != NULL, "%s", path);
    expect_value(unit, path, "Type", "notify");
    expect_value(unit, path, "NotifyAccess", "main");
    expect_value(unit, path, "Restart", "always");
    expect_value(unit, path, "RestartSec", "1");
    expect_value(unit, path, "ExecStart", "/usr/local/bin/conversa serve");
    expect_value(unit, path, "EnvironmentFile", "/etc/conversa/conversa.env");
    expect_value(unit, path, "User", "conversa");
    expect_value(unit, path, "NoNewPrivileges", "yes");
    expect_value(unit, path, "ProtectSystem", "strict");
    expect_value(unit, path, "ProtectHome", "yes");
    expect_value(unit, path, "PrivateTmp", "yes");
    expect_value(unit, path, "LimitNOFILE", "65536");
    expect_value(unit, path, "WantedBy", "multi-user.target");

    char *wd = unit_get(unit, "WatchdogSec");
    cr_assert(wd != NULL && timespan_s(wd) > 0, "%s: WatchdogSec=%s", path, wd != NULL ? wd : "(unset)");
    free(wd);
    /* longer than conversa's own drain (SHUTDOWN_TIMEOUT_MS, 10 s by default), or SIGKILL cuts it short */
    char *stop = unit_get(unit, "TimeoutStopSec");
    cr_assert(stop != NULL && timespan_s(stop) > 10, "%s: TimeoutStopSec=%s must exceed 10 s", path,
              stop != NULL ? stop : "(unset)");
    free(stop);
    free(unit);
}

/* Whether systemd-analyze verify runs here at all: a plain unit passes without a word. */
static int systemd_analyze_works(const char *dir)
{
    if (!has_command("systemd-analyze"))
        return 0;
    char path[600], out[4096];
    snprintf(path, sizeof(path), "%s/probe.service", dir);
    spit(path, "[Unit]\nDescription=probe\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n");
    int rc = hs_sh(out, sizeof(out), "systemd-analyze verify --man=no '%s' 2>&1", path);
    return rc == 0 && out[0] == '\0';
}

/* Copies a unit into dir with ExecStart pointing at the built binary (verify wants it to exist). */
static void copy_unit(const char *src, const char *dir, const char *name, const char *bin)
{
    char *unit = slurp(src, NULL), path[600];
    char *copy = replace_all(unit, "/usr/local/bin/conversa", bin);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    spit(path, copy);
    free(copy);
    free(unit);
}

Test(deploy, systemd_units)
{
    check_unit_structure(UNIT);
    check_unit_structure(UNIT_TMPL);
    char *tmpl = slurp(UNIT_TMPL, NULL);
    cr_assert(unit_has_line(tmpl, "Environment=PORT=%i"), "%s must set PORT=%%i", UNIT_TMPL);
    free(tmpl);

    char dir[512], out[8192];
    make_tmpdir(dir, sizeof(dir));
    if (!systemd_analyze_works(dir)) {
        fprintf(stderr, "deploy::systemd_units: systemd-analyze verify does not run here; structure checked only\n");
        remove_tmpdir(dir);
        return;
    }
    const char *bin = getenv("CONVERSA_BIN");
    cr_assert(bin != NULL && access(bin, X_OK) == 0, "CONVERSA_BIN is not set: run through tests/run.sh");
    copy_unit(UNIT, dir, "conversa.service", bin);
    copy_unit(UNIT_TMPL, dir, "conversa@.service", bin);
    /* verify exits 0 on unknown keys and bad values, so any word it says is a failure */
    static const char *const units[] = {"conversa.service", "conversa@5001.service"};
    for (size_t i = 0; i != 2; ++i) {
        int rc = hs_sh(out, sizeof(out), "cd '%s' && systemd-analyze verify --man=no './%s' 2>&1", dir, units[i]);
        cr_assert_eq(rc, 0, "systemd-analyze verify %s: %s", units[i], out);
        cr_assert_str_empty(out, "systemd-analyze verify %s: %s", units[i], out);
    }
    remove_tmpdir(dir);
}

/* Every variable the environment example sets or shows (#NAME=) is one conversa reads. */
Test(deploy, env_example_names_only_real_variables)
{
    char *env = slurp(ENV_EXAMPLE, NULL);
    const char *bin_path = getenv("CONVERSA_BIN");
    cr_assert(bin_path != NULL && *bin_path != '\0', "CONVERSA_BIN is not set: run through tests/run.sh");
    size_t bin_len;
    char *bin = slurp(bin_path, &bin_len);

    static const char *const required[] = {"DATABASE_URL", "REDIS_URL", "ENCRYPTION_KEY", "TRUSTED_PROXIES",
                                           "RATE_LIMIT_PUBLIC"};
    for (size_t i = 0; i != sizeof(required) / sizeof(required[0]); ++i) {
        char key[64];
        snprintf(key, sizeof(key), "\n%s=", required[i]);
        cr_assert(strstr(env, key) != NULL, "%s does not set %s", ENV_EXAMPLE, required[i]);
    }
    cr_assert(unit_has_line(env, "TRUSTED_PROXIES=127.0.0.1/32"));

    size_t checked = 0;
    char unknown[2048] = "";
    for (const char *line = env; *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (end == NULL)
            end = line + strlen(line);
        const char *p = line + (*line == '#');
        size_t len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        if (len > 0 && isupper((unsigned char)*p) && p[len] == '=') {
            /* the name as a string literal in the binary: a NUL after it, no identifier byte before it */
            int found = 0;
            for (const char *q = memmem(bin, bin_len, p, len); q != NULL && !found;
                 q = memmem(q + 1, bin_len - (size_t)(q + 1 - bin), p, len)) {
                size_t at = (size_t)(q - bin);
                found = at + len < bin_len && bin[at + len] == '\0' &&
                        (at == 0 || !(isupper((unsigned char)bin[at - 1]) || isdigit((unsigned char)bin[at - 1]) ||
                                      bin[at - 1] == '_'));
            }
            if (!found)
                snprintf(unknown + strlen(unknown), sizeof(unknown) - strlen(unknown), " %.*s", (int)len, p);
            ++checked;
        }
        line = *end != '\0' ? end + 1 : end;
    }
    cr_assert_geq(checked, 10);
    cr_assert_str_empty(unknown, "%s names variables conversa does not read:%s", ENV_EXAMPLE, unknown);
    free(bin);
    free(env);
}
