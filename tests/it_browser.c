/*
 * The browser app in a real browser: the test starts conversa (serving the app it
 * was built with) and the stand-in Cloud API, then runs the Playwright scenarios of
 * tests/browser/ (run.mjs) in headless Chromium against them, in one browser and one
 * signed-in session. The run exits non-zero naming each failed scenario and why; the
 * screenshots go to $(BUILD)/test-artifacts/browser.
 *
 * The demo company of tests/run.sh's seed is the one signed into; other tests change
 * its data, so the scenarios compare what the page shows with what the API says.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static hs_server_t br_srv, br_fake;

/* The stand-in answers sends, keeps every customer's 24 h window open, and sends the
 * statuses of what it accepted to the demo connection's webhook, signed as seed made it. */
static void br_start(void)
{
    br_fake.port = hs_free_port();
    char graph[64];
    snprintf(graph, sizeof(graph), "META_GRAPH_URL=http://127.0.0.1:%d", br_fake.port);
    const char *env[] = {graph, NULL};
    hs_server_start(&br_srv, env);

    char port[16], hook[128];
    snprintf(port, sizeof(port), "%d", br_fake.port);
    snprintf(hook, sizeof(hook), "http://127.0.0.1:%d/api/webhooks/meta/demo", br_srv.port);
    const char *argv[] = {"fake-meta",       "--port",        port, "--window", "open", "--app-secret",
                          "demo-app-secret", "--webhook-url", hook, NULL};
    hs_server_spawn(&br_fake, argv, NULL);
    double deadline = hs_now_ms() + 10000;
    for (;;) {
        hs_response_t r = hs_get(br_fake.port, "/_fake/stats");
        long st = r.status;
        hs_response_free(&r);
        if (st == 200)
            break;
        cr_assert(hs_now_ms() < deadline, "fake-meta did not answer within 10 s");
        hs_sleep_ms(20);
    }
}

static void br_stop(void)
{
    if (br_fake.pid > 0)
        hs_server_stop(&br_fake);
    if (br_srv.pid > 0)
        hs_server_stop(&br_srv);
}

TestSuite(browser, .init = br_start, .fini = br_stop, .timeout = 240);

/* Runs the scenarios named (space-separated; all of them for ""); fails with the end of their output. */
static void br_run(const char *names)
{
    const char *build = getenv("BUILD") != NULL ? getenv("BUILD") : "build/release";
    size_t cap = 1 << 16;
    char *out = calloc(1, cap);
    cr_assert_not_null(out);
    int rc = hs_sh(out, cap,
                   "mkdir -p %s/test-artifacts/browser && CONVERSA_URL=http://127.0.0.1:%d "
                   "FAKE_META_URL=http://127.0.0.1:%d ADMIN_EMAIL=admin@demo.conversa.dev "
                   "AGENT_EMAIL=agent@demo.conversa.dev PASSWORD=conversa-demo "
                   "ARTIFACTS_DIR=%s/test-artifacts/browser node tests/browser/run.mjs %s 2>&1",
                   build, br_srv.port, br_fake.port, build, names);
    size_t n = strlen(out);
    const char *tail = n > 6000 ? out + n - 6000 : out;
    fprintf(stderr, "%s%s", out, n > 0 && out[n - 1] != '\n' ? "\n" : "");
    cr_assert_eq(rc, 0, "browser scenarios failed (exit %d):\n%s", rc, tail);
    free(out);
}

Test(browser, every_scenario_in_chromium)
{
    br_run("");
}
