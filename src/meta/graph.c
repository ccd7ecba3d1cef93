#include "meta/graph.h"
#include "core/config.h"
#include "core/util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct graph_call {
    meta_graph_cb cb;
    void *data;
} graph_call_t;

static int graph_code_throttled(int code)
{
    return code == 130429 || code == 80007 || code == 4 || code == 613;
}

static void graph_copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src != NULL ? src : "");
}

void meta_graph_classify(long status, const char *transport_error, const char *body, size_t len,
                         meta_send_result_t *out)
{
    memset(out, 0, sizeof(*out));
    if (status == 0) {
        out->kind = META_SEND_RETRY;
        graph_copy(out->title, sizeof(out->title), transport_error != NULL ? transport_error : "no response");
        return;
    }
    json_t *root = body != NULL && len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *err = json_object_get(root, "error");
    if (status >= 200 && status < 300 && err == NULL) {
        const char *wamid =
            json_string_value(json_object_get(json_array_get(json_object_get(root, "messages"), 0), "id"));
        if (wamid != NULL && *wamid != '\0' && strlen(wamid) < sizeof(out->wamid)) {
            out->kind = META_SEND_ACCEPTED;
            graph_copy(out->wamid, sizeof(out->wamid), wamid);
        } else {
            /* a 2xx without a wamid: we cannot tell what happened; Meta's status webhook settles it */
            out->kind = META_SEND_RETRY;
            graph_copy(out->title, sizeof(out->title), "answer without messages[0].id");
        }
        json_decref(root);
        return;
    }
    json_t *code = json_object_get(err, "code");
    out->code = json_is_integer(code) && json_integer_value(code) > -1000000000 && json_integer_value(code) < 1000000000
                    ? (int)json_integer_value(code)
                    : 0;
    const char *title = json_string_value(json_object_get(err, "message"));
    if (title == NULL)
        title = json_string_value(json_object_get(err, "title"));
    if (title == NULL) {
        char buf[64];
        snprintf(buf, sizeof(buf), "HTTP %ld", status);
        graph_copy(out->title, sizeof(out->title), buf);
    } else {
        graph_copy(out->title, sizeof(out->title), title);
    }
    json_decref(root);
    if (graph_code_throttled(out->code))
        out->kind = META_SEND_THROTTLED;
    else if (out->code == 131056)
        out->kind = META_SEND_PAIR_LIMITED;
    else if (out->code == 131057 || status >= 500 || status == 429 || status == 408)
        out->kind = META_SEND_RETRY;
    else
        out->kind = META_SEND_REJECTED;
}

static char *graph_dump(json_t *msg, const char *to, const char *callback)
{
    json_object_set_new(msg, "messaging_product", json_string("whatsapp"));
    json_object_set_new(msg, "recipient_type", json_string("individual"));
    json_object_set_new(msg, "to", json_string(to));
    if (callback != NULL)
        json_object_set_new(msg, "biz_opaque_callback_data", json_string(callback));
    char *out = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    return out;
}

char *meta_graph_text(const char *to, const char *text, const char *callback)
{
    if (to == NULL || text == NULL)
        return NULL;
    json_t *msg = json_pack("{s:s, s:{s:b, s:s}}", "type", "text", "text", "preview_url", 0, "body", text);
    return msg != NULL ? graph_dump(msg, to, callback) : NULL;
}

char *meta_graph_template(const char *to, const char *name, const char *language, const char *params_json,
                          const char *callback)
{
    if (to == NULL || name == NULL || language == NULL)
        return NULL;
    json_t *tpl = json_pack("{s:s, s:{s:s}}", "name", name, "language", "code", language);
    if (tpl == NULL)
        return NULL;
    json_t *params = params_json != NULL ? json_loads(params_json, 0, NULL) : NULL;
    if (json_is_array(params) && json_array_size(params) > 0) {
        json_t *list = json_array();
        size_t i;
        json_t *p;
        json_array_foreach (params, i, p) {
            if (json_is_string(p))
                json_array_append_new(list, json_pack("{s:s, s:O}", "type", "text", "text", p));
        }
        json_t *components = json_array();
        json_array_append_new(components, json_pack("{s:s, s:o}", "type", "body", "parameters", list));
        json_object_set_new(tpl, "components", components);
    }
    json_decref(params);
    json_t *msg = json_pack("{s:s, s:o}", "type", "template", "template", tpl);
    return msg != NULL ? graph_dump(msg, to, callback) : NULL;
}

static void graph_on_response(void *data, const http_client_response_t *res)
{
    graph_call_t *call = data;
    meta_send_result_t out;
    meta_graph_classify(res->status, res->error, res->body, res->len, &out);
    call->cb(call->data, &out);
    free(call);
}

void meta_graph_send(http_client_t *c, const char *phone_number_id, const char *token, const char *body, size_t len,
                     meta_graph_cb cb, void *data)
{
    size_t n = phone_number_id != NULL ? strlen(phone_number_id) : 0;
    if (n == 0 || n > 64 || strspn(phone_number_id, "0123456789") != n) {
        meta_send_result_t out = {.kind = META_SEND_REJECTED};
        graph_copy(out.title, sizeof(out.title), "the connection's phone_number_id is not a number");
        cb(data, &out);
        return;
    }
    char url[768];
    snprintf(url, sizeof(url), "%s/%s/%s/messages", config.meta_graph_url, config.meta_graph_version, phone_number_id);
    size_t auth_cap = strlen(token) + 32;
    char *auth = util_malloc(auth_cap);
    snprintf(auth, auth_cap, "Authorization: Bearer %s", token);
    const char *headers[] = {auth, "Content-Type: application/json"};
    graph_call_t *call = util_malloc(sizeof(*call));
    call->cb = cb;
    call->data = data;
    http_client_post(c, url, headers, 2, body, len, graph_on_response, call);
    sodium_memzero(auth, auth_cap);
    free(auth);
}
