/*
 * graph.h - the WhatsApp Cloud API client: POST /{version}/{phone_number_id}/messages.
 *
 * Requests go through an http/client.h client on the caller's loop, to
 * META_GRAPH_URL/META_GRAPH_VERSION, with the connection's access token as bearer.
 * Bodies are built here from the message's parts (text, or a template with body
 * parameters), each carrying biz_opaque_callback_data so that Meta's status webhooks
 * name the row a message came from (see migration 0007).
 *
 * Meta advises handling errors by error.code, not by HTTP status; the answer is
 * classified as: accepted (a wamid), throttled (throughput 130429, 80007, 4, 613: slow
 * down and retry), pair-limited (131056: this recipient, later), retry (131057
 * maintenance, 5xx, network, timeouts) or rejected for good (131047 outside the 24 h
 * window, invalid numbers and any other 4xx), with Meta's code and title kept.
 */
#ifndef CONVERSA_META_GRAPH_H
#define CONVERSA_META_GRAPH_H

#include <jansson.h>
#include <stddef.h>

#include "http/client.h"

typedef enum meta_send_kind {
    META_SEND_ACCEPTED,
    META_SEND_THROTTLED,
    META_SEND_PAIR_LIMITED,
    META_SEND_RETRY,
    META_SEND_REJECTED,
} meta_send_kind_t;

#define META_WAMID_MAX 256
#define META_TITLE_MAX 256

typedef struct meta_send_result {
    meta_send_kind_t kind;
    int code; /* Meta's error.code; 0 when none (transport errors, 5xx without a body) */
    char wamid[META_WAMID_MAX];
    char title[META_TITLE_MAX];
} meta_send_result_t;

typedef void (*meta_graph_cb)(void *data, const meta_send_result_t *res);

/** Classifies an answer (status 0 with transport_error when none came). */
void meta_graph_classify(long status, const char *transport_error, const char *body, size_t len,
                         meta_send_result_t *out);

/** A text message's body (JSON, caller frees), or NULL when an argument is unusable. */
char *meta_graph_text(const char *to, const char *text, const char *callback);

/**
 * A template message's body: name, language code and the body's text parameters
 * (params_json: a JSON array of strings, or NULL/empty for none). Caller frees.
 */
char *meta_graph_template(const char *to, const char *name, const char *language, const char *params_json,
                          const char *callback);

/**
 * Sends body for phone_number_id with token. The callback runs once, on the client's
 * loop; an unusable phone_number_id is rejected without a request.
 */
void meta_graph_send(http_client_t *c, const char *phone_number_id, const char *token, const char *body, size_t len,
                     meta_graph_cb cb, void *data);

#endif
