/*
 * Integration tests of the browser app's serving (src/http/web.c) and of its build
 * (scripts/web-build.sh): the app as `make` built it beside the binary, served by the
 * real binary over real sockets.
 */
#include <criterion/criterion.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(web, .timeout = 120);

/* The built app beside the binary under test, where conversa looks by default. */
static void web_root(char *out, size_t cap)
{
    char bin[PATH_MAX];
    snprintf(bin, sizeof(bin), "%s", getenv("CONVERSA_BIN"));
    snprintf(out, cap, "%s/web", dirname(bin));
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void assert_header(const hs_response_t *r, const char *name, const char *want)
{
    char *v = hs_header(r, name);
    cr_assert_not_null(v, "no %s header", name);
    cr_assert_str_eq(v, want, "%s: %s, want %s", name, v, want);
    free(v);
}

static void assert_header_has(const hs_response_t *r, const char *name, const char *part)
{
    char *v = hs_header(r, name);
    cr_assert_not_null(v, "no %s header", name);
    cr_assert_not_null(strstr(v, part), "%s: %s, want it to contain %s", name, v, part);
    free(v);
}

/* The next "/assets/…" reference in s after *pos, copied into out; 0 at the end. */
static int next_asset(const char *s, const char **pos, char *out, size_t cap)
{
    const char *p = strstr(*pos, "\"/assets/");
    if (p == NULL)
        return 0;
    const char *end = strchr(p + 1, '"');
    cr_assert_not_null(end);
    snprintf(out, cap, "%.*s", (int)(end - p - 1), p + 1);
    *pos = end + 1;
    return 1;
}

Test(web, index_is_served_with_its_headers_on_every_app_route)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    const char *paths[] = {"/", "/campaigns", "/ops", "/c/42", "/index.html"};
    for (size_t i = 0; i != sizeof(paths) / sizeof(paths[0]); ++i) {
        hs_response_t r = hs_get(s.port, paths[i]);
        cr_assert_eq(r.status, 200, "GET %s: %ld %s", paths[i], r.status, r.body);
        assert_header(&r, "content-type", "text/html; charset=utf-8");
        assert_header(&r, "cache-control", "no-cache");
        assert_header_has(&r, "content-security-policy", "default-src 'self'");
        assert_header(&r, "x-content-type-options", "nosniff");
        cr_assert_not_null(strstr(r.body, "/assets/"), "GET %s: no asset referenced", paths[i]);
        hs_response_free(&r);
    }
    hs_response_t r = hs_request(s.port, "HEAD", "/", NULL, 0, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.len, 0, "HEAD sent a body");
    hs_response_free(&r);
    hs_server_stop(&s);
}

Test(web, the_api_keeps_json_errors_and_other_methods_are_not_the_page)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    const char *paths[] = {"/api", "/api/", "/api/nope", "/api/v1/nope"};
    for (size_t i = 0; i != sizeof(paths) / sizeof(paths[0]); ++i) {
        hs_response_t r = hs_get(s.port, paths[i]);
        cr_assert_eq(r.status, 404, "GET %s: %ld", paths[i], r.status);
        assert_header(&r, "content-type", "application/json");
        hs_response_free(&r);
    }
    hs_response_t r = hs_request(s.port, "POST", "/", "x", 1, NULL);
    cr_assert_eq(r.status, 404, "POST /: %ld", r.status);
    assert_header(&r, "content-type", "application/json");
    hs_response_free(&r);
    /* a path that only looks like /api is the app's */
    r = hs_get(s.port, "/apix");
    cr_assert_eq(r.status, 200);
    hs_response_free(&r);
    hs_server_stop(&s);
}

Test(web, assets_are_hashed_immutable_and_exactly_the_built_bytes)
{
    char root[PATH_MAX], path[PATH_MAX * 2], ref[512], out[256];
    web_root(root, sizeof(root));
    hs_server_t s;
    hs_server_start(&s, NULL);
    hs_response_t page = hs_get(s.port, "/");
    cr_assert_eq(page.status, 200);
    const char *pos = page.body;
    int n = 0, scripts = 0, styles = 0;
    while (next_asset(page.body, &pos, ref, sizeof(ref))) {
        ++n;
        hs_response_t r = hs_get(s.port, ref);
        cr_assert_eq(r.status, 200, "GET %s: %ld", ref, r.status);
        assert_header(&r, "cache-control", "public, max-age=31536000, immutable");
        assert_header(&r, "x-content-type-options", "nosniff");
        char *type = hs_header(&r, "content-type");
        cr_assert_not_null(type);
        if (strstr(ref, ".js") != NULL) {
            cr_assert_not_null(strstr(type, "javascript"), "%s is %s", ref, type);
            ++scripts;
        } else if (strstr(ref, ".css") != NULL) {
            cr_assert_not_null(strstr(type, "text/css"), "%s is %s", ref, type);
            ++styles;
        }
        free(type);
        size_t len;
        snprintf(path, sizeof(path), "%s%s", root, ref);
        char *disk = read_file(path, &len);
        cr_assert_eq(r.len, len, "%s: %zu bytes served, %zu built", ref, r.len, len);
        cr_assert(memcmp(r.body, disk, len) == 0, "%s: served bytes differ from the build", ref);
        free(disk);
        /* the name carries the first 16 hex digits of the content's SHA-256 */
        cr_assert_eq(hs_sh(out, sizeof(out), "sha256sum '%s' | cut -c1-16", path), 0);
        cr_assert_not_null(strstr(ref, out), "%s is not named after its hash %s", ref, out);
        hs_response_free(&r);
    }
    cr_assert(n >= 2 && scripts >= 1 && styles >= 1, "index refers to %d assets (%d scripts, %d styles)", n, scripts,
              styles);
    hs_response_free(&page);
    hs_server_stop(&s);
}

/* GET path with Accept-Encoding `enc`: must answer `want` encoding with the bytes of file `disk`. */
static void assert_variant(int port, const char *path, const char *enc, const char *want, const char *disk)
{
    char accept[64];
    snprintf(accept, sizeof(accept), "Accept-Encoding: %s", enc);
    const char *headers[] = {accept, NULL};
    hs_response_t r = hs_request(port, "GET", path, NULL, 0, headers);
    cr_assert_eq(r.status, 200, "GET %s (%s): %ld", path, enc, r.status);
    if (want == NULL) {
        cr_assert_null(hs_header(&r, "content-encoding"), "%s (%s) came encoded", path, enc);
    } else {
        assert_header(&r, "content-encoding", want);
    }
    assert_header_has(&r, "vary", "ccept-encoding");
    size_t len;
    char *bytes = read_file(disk, &len);
    cr_assert_eq(r.len, len, "%s (%s): %zu bytes served, %s has %zu", path, enc, r.len, disk, len);
    cr_assert(memcmp(r.body, bytes, len) == 0, "%s (%s) differs from %s", path, enc, disk);
    free(bytes);
    hs_response_free(&r);
}

Test(web, precompressed_variants_follow_accept_encoding)
{
    char root[PATH_MAX], disk[PATH_MAX * 2], ref[512];
    web_root(root, sizeof(root));
    hs_server_t s;
    hs_server_start(&s, NULL);

    snprintf(disk, sizeof(disk), "%s/index.html.br", root);
    assert_variant(s.port, "/", "gzip, deflate, br", "br", disk);
    snprintf(disk, sizeof(disk), "%s/index.html.gz", root);
    assert_variant(s.port, "/inbox", "gzip", "gzip", disk);
    snprintf(disk, sizeof(disk), "%s/index.html", root);
    assert_variant(s.port, "/", "identity", NULL, disk);

    hs_response_t page = hs_get(s.port, "/");
    const char *pos = page.body;
    while (next_asset(page.body, &pos, ref, sizeof(ref))) {
        if (strstr(ref, ".js") == NULL && strstr(ref, ".css") == NULL)
            continue;
        snprintf(disk, sizeof(disk), "%s%s.br", root, ref);
        assert_variant(s.port, ref, "br", "br", disk);
        snprintf(disk, sizeof(disk), "%s%s.gz", root, ref);
        assert_variant(s.port, ref, "gzip", "gzip", disk);
        snprintf(disk, sizeof(disk), "%s%s", root, ref);
        assert_variant(s.port, ref, "", NULL, disk);
    }
    hs_response_free(&page);
    hs_server_stop(&s);
}

Test(web, nothing_outside_the_assets_is_reachable)
{
    hs_server_t s;
    hs_server_start(&s, NULL);
    const char *paths[] = {"/assets/../../../../etc/passwd",
                           "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                           "/assets/..%2f..%2f..%2fetc%2fpasswd",
                           "/assets/missing.0123456789abcdef.js",
                           "/assets/index.html",
                           "/assets/"};
    for (size_t i = 0; i != sizeof(paths) / sizeof(paths[0]); ++i) {
        hs_response_t r = hs_get(s.port, paths[i]);
        cr_assert(r.status != 0 && r.status != 500, "GET %s: %ld", paths[i], r.status);
        cr_assert_null(strstr(r.body, "root:"), "GET %s leaked a system file", paths[i]);
        if (r.status == 404) {
            /* an error is never cached for a year, and keeps the API's shape */
            char *cc = hs_header(&r, "cache-control");
            cr_assert(cc == NULL || strstr(cc, "immutable") == NULL, "GET %s: 404 cached as %s", paths[i], cc);
            free(cc);
            json_t *j = hs_json(&r);
            cr_assert_not_null(j, "GET %s: 404 is not JSON: %s", paths[i], r.body);
            json_decref(j);
        }
        /* the page itself may answer (a normalised path outside /assets); an asset may not */
        if (r.status == 200)
            cr_assert_not_null(strstr(r.body, "<html"), "GET %s: 200 with something else", paths[i]);
        hs_response_free(&r);
    }
    hs_server_stop(&s);
}

Test(web, without_a_built_app_the_api_serves_alone)
{
    const char *env[] = {"WEB_ROOT=/nonexistent/conversa-web", NULL};
    hs_server_t s;
    hs_server_start(&s, env);
    hs_response_t r = hs_get(s.port, "/");
    cr_assert_eq(r.status, 404, "GET /: %ld", r.status);
    assert_header(&r, "content-type", "application/json");
    hs_response_free(&r);
    r = hs_get(s.port, "/api/health/live");
    cr_assert_eq(r.status, 200);
    hs_response_free(&r);
    hs_server_stop(&s);
    char *log = hs_server_log(&s);
    cr_assert_not_null(strstr(log, "serving the API alone"), "the log does not say why there is no app");
    free(log);
}

/* ---- the build ---- */

static char fixture[64];

static void fixture_make(const char *index)
{
    char out[1024];
    snprintf(fixture, sizeof(fixture), "/tmp/conversa-web.XXXXXX");
    cr_assert_not_null(mkdtemp(fixture));
    cr_assert_eq(hs_sh(out, sizeof(out),
                       "mkdir -p %s/src && printf '%%s' '%s' >%s/src/index.html && echo 'body{}' >%s/src/a.css &&"
                       " echo 'var a = 1;' >%s/src/a.js",
                       fixture, index, fixture, fixture, fixture),
                 0, "%s", out);
}

static int fixture_build(char *out, size_t cap)
{
    return hs_sh(out, cap, "scripts/web-build.sh %s/src %s/out 2>&1", fixture, fixture);
}

static void fixture_remove(void)
{
    char out[256];
    hs_sh(out, sizeof(out), "rm -rf %s", fixture);
}

Test(web, build_names_assets_by_content_and_drops_stale_ones)
{
    char out[2048];
    fixture_make("<html><link rel=\"stylesheet\" href=\"a.css\"><script defer src=\"a.js\"></script></html>");
    cr_assert_eq(fixture_build(out, sizeof(out)), 0, "%s", out);
    cr_assert_eq(hs_sh(out, sizeof(out),
                       "cd %s/out && ls assets | sort | tr '\\n' ' ' && grep -o '/assets/[^\"]*' "
                       "index.html | tr '\\n' ' '",
                       fixture),
                 0, "%s", out);
    /* each asset, its two variants, and index.html pointing at both */
    cr_assert_eq(hs_sh(out, sizeof(out), "cd %s/out && ls assets | wc -l && ls index.html.gz index.html.br", fixture),
                 0, "%s", out);
    cr_assert_eq(atoi(out), 6, "assets: %s", out);
    char before[256];
    cr_assert_eq(hs_sh(before, sizeof(before), "ls %s/out/assets/a.*.js | head -1", fixture), 0);
    cr_assert_eq(hs_sh(out, sizeof(out), "echo 'var a = 2;' >%s/src/a.js", fixture), 0);
    cr_assert_eq(fixture_build(out, sizeof(out)), 0, "%s", out);
    char after[256];
    cr_assert_eq(hs_sh(after, sizeof(after), "ls %s/out/assets/a.*.js", fixture), 0, "%s", after);
    cr_assert_str_neq(before, after, "a changed file kept its name");
    cr_assert_eq(hs_sh(out, sizeof(out), "ls %s/out/assets | wc -l", fixture), 0);
    cr_assert_eq(atoi(out), 6, "a stale asset survived the rebuild");
    fixture_remove();
}

Test(web, build_refuses_what_the_page_policy_or_the_tree_would_break)
{
    const char *bad[] = {
        "<html><script>alert(1)</script></html>",
        "<html><script type=\"text/javascript\">alert(1)</script></html>",
        "<html><style>body{}</style></html>",
        "<html><body onload=\"x()\"></body></html>",
        "<html><div style=\"color:red\"></div></html>",
        "<html><script defer src=\"missing.js\"></script></html>",
        "<html><link rel=\"stylesheet\" href=\"https://cdn.example.com/x.css\"></html>",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        char out[2048];
        fixture_make(bad[i]);
        cr_assert_neq(fixture_build(out, sizeof(out)), 0, "built %s", bad[i]);
        cr_assert_not_null(strstr(out, "web-build:"), "no reason given for %s: %s", bad[i], out);
        fixture_remove();
    }
}
