#include "http/client.h"
#include "core/log.h"
#include "core/timer.h"
#include "core/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define CLIENT_BODY_MAX (1024 * 1024) /* a larger response is cut: nothing we call answers more */

/* One socket curl asked us to watch: a dup() of it under h2o. */
typedef struct client_watch {
    http_client_t *client;
    curl_socket_t fd;
    h2o_socket_t *sock;
    int what; /* CURL_POLL_* curl wants */
    int write_armed;
    int in_action; /* curl is being told about this socket: freeing waits */
    int removed;
    h2o_linklist_t link;
} client_watch_t;

typedef struct client_req {
    http_client_t *client;
    CURL *easy;
    struct curl_slist *headers;
    strbuf_t body;
    http_client_cb cb;
    void *data;
    uint64_t start_ns;
    h2o_linklist_t link;
} client_req_t;

struct http_client {
    h2o_loop_t *loop;
    CURLM *multi;
    http_client_config_t cfg;
    loop_timer_t timer;
    h2o_linklist_t watches;
    h2o_linklist_t reqs;
    size_t pending;
    int closing;
};

static pthread_once_t client_once = PTHREAD_ONCE_INIT;

static void client_global_init(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        util_fatal("http client: curl_global_init failed");
}

void http_client_global_init(void)
{
    pthread_once(&client_once, client_global_init);
}

static void client_watch_free(client_watch_t *w)
{
    h2o_linklist_unlink(&w->link);
    if (w->sock != NULL)
        h2o_socket_close(w->sock); /* our dup(); curl closes its own */
    free(w);
}

/* Completed transfers: their callbacks run here, never inside a curl callback. */
static void client_reap(http_client_t *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        client_req_t *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode rc = msg->data.result;
        http_client_response_t res = {.rtt_ns = util_now_ns() - r->start_ns};
        if (rc == CURLE_OK) {
            curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
        } else {
            res.error = curl_easy_strerror(rc);
        }
        res.body = r->body.data != NULL ? r->body.data : "";
        res.len = r->body.len;
        curl_multi_remove_handle(c->multi, r->easy);
        curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->headers);
        h2o_linklist_unlink(&r->link);
        c->pending--;
        r->cb(r->data, &res);
        strbuf_free(&r->body);
        free(r);
    }
}

static void client_action(http_client_t *c, curl_socket_t fd, int ev)
{
    int running;
    curl_multi_socket_action(c->multi, fd, ev, &running);
    client_reap(c);
}

static void client_on_readable(h2o_socket_t *sock, const char *err);
static void client_on_writable(h2o_socket_t *sock, const char *err);

static void client_watch_update(client_watch_t *w)
{
    if (w->what & CURL_POLL_IN) {
        if (!h2o_socket_is_reading(w->sock))
            h2o_socket_read_start(w->sock, client_on_readable);
    } else if (h2o_socket_is_reading(w->sock)) {
        h2o_socket_read_stop(w->sock);
    }
    if ((w->what & CURL_POLL_OUT) && !w->write_armed) {
        w->write_armed = 1;
        h2o_socket_notify_write(w->sock, client_on_writable);
    }
}

static void client_on_event(client_watch_t *w, int ev)
{
    http_client_t *c = w->client;
    w->in_action = 1;
    client_action(c, w->fd, ev);
    w->in_action = 0;
    if (w->removed)
        client_watch_free(w);
    else
        client_watch_update(w); /* curl does not repeat what it already asked for */
}

static void client_on_readable(h2o_socket_t *sock, const char *err)
{
    (void)err;
    client_on_event(sock->data, CURL_CSELECT_IN);
}

static void client_on_writable(h2o_socket_t *sock, const char *err)
{
    client_watch_t *w = sock->data;
    w->write_armed = 0;
    client_on_event(w, err != NULL ? CURL_CSELECT_ERR : CURL_CSELECT_OUT);
}

static int client_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    http_client_t *c = userp;
    client_watch_t *w = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (w != NULL) {
            curl_multi_assign(c->multi, fd, NULL);
            if (w->in_action)
                w->removed = 1;
            else
                client_watch_free(w);
        }
        return 0;
    }
    if (w == NULL) {
        int dupfd = dup(fd);
        if (dupfd < 0) {
            log_warn("http-client", "dup: %s", strerror(errno));
            return -1;
        }
        w = util_calloc(1, sizeof(*w));
        w->client = c;
        w->fd = fd;
        w->sock = h2o_evloop_socket_create(c->loop, dupfd, H2O_SOCKET_FLAG_DONT_READ);
        w->sock->data = w;
        h2o_linklist_insert(&c->watches, &w->link);
        curl_multi_assign(c->multi, fd, w);
    }
    w->what = what;
    client_watch_update(w);
    return 0;
}

static int client_on_timer_set(CURLM *multi, long ms, void *userp)
{
    http_client_t *c = userp;
    (void)multi;
    if (ms < 0)
        loop_timer_stop(&c->timer);
    else
        loop_timer_start(&c->timer, (uint64_t)ms);
    return 0;
}

static void client_on_timer(loop_timer_t *t)
{
    http_client_t *c = util_container_of(t, http_client_t, timer);
    client_action(c, CURL_SOCKET_TIMEOUT, 0);
}

static size_t client_on_body(char *p, size_t size, size_t n, void *data)
{
    client_req_t *r = data;
    size_t len = size * n;
    if (r->body.len + len > CLIENT_BODY_MAX)
        return 0; /* curl fails the transfer (CURLE_WRITE_ERROR) */
    strbuf_append(&r->body, p, len);
    return len;
}

http_client_t *http_client_new(h2o_loop_t *loop, const http_client_config_t *cfg)
{
    http_client_global_init();
    http_client_t *c = util_calloc(1, sizeof(*c));
    c->loop = loop;
    c->cfg = *cfg;
    if (c->cfg.max_connections == 0)
        c->cfg.max_connections = 16;
    h2o_linklist_init_anchor(&c->watches);
    h2o_linklist_init_anchor(&c->reqs);
    loop_timer_init(&c->timer, loop, client_on_timer);
    c->multi = curl_multi_init();
    if (c->multi == NULL)
        util_fatal("http client: curl_multi_init failed");
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, client_on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, client_on_timer_set);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)c->cfg.max_connections);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->cfg.max_connections);
    return c;
}

size_t http_client_pending(const http_client_t *c)
{
    return c->pending;
}

void http_client_post(http_client_t *c, const char *url, const char *const *headers, size_t nheaders, const void *body,
                      size_t len, http_client_cb cb, void *data)
{
    client_req_t *r = util_calloc(1, sizeof(*r));
    r->client = c;
    r->cb = cb;
    r->data = data;
    r->start_ns = util_now_ns();
    strbuf_init(&r->body);
    for (size_t i = 0; i < nheaders; ++i)
        r->headers = curl_slist_append(r->headers, headers[i]);
    /* no "Expect: 100-continue" round trip before larger bodies */
    r->headers = curl_slist_append(r->headers, "Expect:");
    r->easy = curl_easy_init();
    CURLMcode mc = CURLM_OK;
    if (r->easy != NULL && !c->closing) {
        curl_easy_setopt(r->easy, CURLOPT_URL, url);
        curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)len);
        curl_easy_setopt(r->easy, CURLOPT_COPYPOSTFIELDS, len != 0 ? body : "");
        curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)c->cfg.connect_timeout_ms);
        curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)c->cfg.timeout_ms);
        curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, client_on_body);
        curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
        curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
        mc = curl_multi_add_handle(c->multi, r->easy);
    }
    if (r->easy == NULL || c->closing || mc != CURLM_OK) {
        http_client_response_t res = {.error = c->closing ? "shutting down" : "cannot start the request", .body = ""};
        if (r->easy != NULL)
            curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->headers);
        free(r);
        cb(data, &res);
        return;
    }
    h2o_linklist_insert(&c->reqs, &r->link);
    c->pending++;
}

void http_client_free(http_client_t *c)
{
    if (c == NULL)
        return;
    c->closing = 1;
    while (!h2o_linklist_is_empty(&c->reqs)) {
        client_req_t *r = H2O_STRUCT_FROM_MEMBER(client_req_t, link, c->reqs.next);
        h2o_linklist_unlink(&r->link);
        curl_multi_remove_handle(c->multi, r->easy);
        curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->headers);
        http_client_response_t res = {.error = "shutting down", .body = ""};
        c->pending--;
        r->cb(r->data, &res);
        strbuf_free(&r->body);
        free(r);
    }
    curl_multi_cleanup(c->multi);
    while (!h2o_linklist_is_empty(&c->watches))
        client_watch_free(H2O_STRUCT_FROM_MEMBER(client_watch_t, link, c->watches.next));
    loop_timer_dispose(&c->timer);
    free(c);
}
