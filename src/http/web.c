/*
 * web.c - serving the browser app (see web.h).
 */
#include "http/web.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <h2o/file.h>

#include "core/log.h"
#include "core/util.h"
#include "http/reply.h"

/* Where scripts may come from, and what a page may embed; the app needs nothing else. */
#define WEB_CSP                                                                                                        \
    "default-src 'self'; img-src 'self' data:; style-src 'self'; object-src 'none'; base-uri 'none'; "                 \
    "frame-ancestors 'none'; form-action 'self'"

/* index.html as built, and its precompressed variants (base NULL when absent) */
static h2o_iovec_t web_page, web_page_gz, web_page_br;

static h2o_iovec_t web_cache_name = {H2O_STRLIT("cache-control")};
static h2o_iovec_t web_csp_name = {H2O_STRLIT("content-security-policy")};
static h2o_iovec_t web_nosniff_name = {H2O_STRLIT("x-content-type-options")};
static h2o_headers_command_t web_asset_headers[] = {
    {H2O_HEADERS_CMD_SET, &web_cache_name, {H2O_STRLIT("public, max-age=31536000, immutable")}},
    {H2O_HEADERS_CMD_SET, &web_csp_name, {H2O_STRLIT(WEB_CSP)}},
    {H2O_HEADERS_CMD_SET, &web_nosniff_name, {H2O_STRLIT("nosniff")}},
    {H2O_HEADERS_CMD_NULL, NULL, {NULL, 0}},
};

/* Reads dir/name into *out; a missing file leaves it empty. */
static void web_read(const char *dir, const char *name, h2o_iovec_t *out)
{
    char path[PATH_MAX];
    *out = h2o_iovec_init(NULL, 0);
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
        return;
    *out = h2o_file_read(path);
}

/* "web" beside the running executable, so an installed tree finds its app wherever it lives */
static int web_default_root(char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    return (size_t)snprintf(out, cap, "%s/web", exe) < cap ? 0 : -1;
}

int http_web_install(h2o_hostconf_t *host, const char *root)
{
    char dflt[PATH_MAX];
    if (root == NULL) {
        if (web_default_root(dflt, sizeof(dflt)) != 0)
            return 0;
        root = dflt;
    }
    web_read(root, "index.html", &web_page);
    if (web_page.base == NULL) {
        log_info("http", "no browser app in %s (no index.html): serving the API alone", root);
        return 0;
    }
    web_read(root, "index.html.gz", &web_page_gz);
    web_read(root, "index.html.br", &web_page_br);

    char assets[PATH_MAX];
    if ((size_t)snprintf(assets, sizeof(assets), "%s/assets", root) >= sizeof(assets)) {
        log_error("http", "WEB_ROOT is too long");
        http_web_dispose();
        return -1;
    }
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/assets", 0);
    h2o_file_register(pathconf, assets, NULL, NULL, H2O_FILE_FLAG_SEND_COMPRESSED);
    /* h2o runs the filter registered last first: the headers go on, then an error's are replaced */
    http_reply_install_filter(pathconf);
    h2o_headers_register(pathconf, web_asset_headers);
    log_info("http", "serving the browser app from %s", root);
    return 0;
}

int http_web_wants(const h2o_req_t *req)
{
    if (web_page.base == NULL)
        return 0;
    if (!h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        return 0;
    h2o_iovec_t p = req->path_normalized;
    /* /api and everything under it stays JSON, a mistyped endpoint included */
    return !(p.len >= 4 && memcmp(p.base, "/api", 4) == 0 && (p.len == 4 || p.base[4] == '/'));
}

void http_web_index(http_request_t *r)
{
    int accepts = h2o_get_compressible_types(&r->req->headers);
    h2o_iovec_t body = web_page;
    if ((accepts & H2O_COMPRESSIBLE_BROTLI) && web_page_br.base != NULL) {
        body = web_page_br;
        http_reply_header(r, "content-encoding", "br");
    } else if ((accepts & H2O_COMPRESSIBLE_GZIP) && web_page_gz.base != NULL) {
        body = web_page_gz;
        http_reply_header(r, "content-encoding", "gzip");
    }
    http_reply_header(r, "vary", "accept-encoding");
    http_reply_header(r, "cache-control", "no-cache");
    http_reply_header(r, "content-security-policy", WEB_CSP);
    http_reply_header(r, "x-content-type-options", "nosniff");
    http_reply_header(r, "referrer-policy", "no-referrer");
    http_reply_iovec(r, 200, "text/html; charset=utf-8", body);
}

void http_web_dispose(void)
{
    free(web_page.base);
    free(web_page_gz.base);
    free(web_page_br.base);
    web_page = web_page_gz = web_page_br = h2o_iovec_init(NULL, 0);
}
