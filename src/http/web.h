/*
 * web.h - the browser app's files: conversa serves the inbox it ships.
 *
 * The build (scripts/web-build.sh) leaves in the web root an index.html and an
 * assets/ folder of files whose names carry a hash of their content, each with its
 * .gz and .br beside it. Assets are served by h2o's file handler, the precompressed
 * variant chosen by Accept-Encoding, cacheable for a year: a changed file gets a new
 * name. index.html is read once at start, with its variants, and answered for GET /
 * and every other GET outside /api/ and /assets/ (the app's own routes), marked
 * no-cache so that a deploy is seen on the next load.
 *
 * Both carry the same Content-Security-Policy: the app loads nothing from anywhere
 * but this origin, and runs no inline script.
 *
 * A web root without index.html is not an error: the API serves alone, and / answers
 * the JSON 404 every unknown path gets.
 */
#ifndef CONVERSA_HTTP_WEB_H
#define CONVERSA_HTTP_WEB_H

#include <h2o.h>

#include "http/server.h"

/**
 * Reads root/index.html (and .gz, .br) and registers root/assets under /assets on
 * `host`. Called once before the loops start. root NULL means "web" beside the
 * running executable. Returns 0, or -1 after logging why (an unreadable index).
 */
int http_web_install(h2o_hostconf_t *host, const char *root);

/** Whether the app's page answers this request: GET or HEAD outside /api/, with a page loaded. */
int http_web_wants(const h2o_req_t *req);

/** Replies with index.html in the best encoding the client accepts. */
void http_web_index(http_request_t *r);

/** Frees what http_web_install() read. */
void http_web_dispose(void);

#endif
