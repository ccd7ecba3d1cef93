/*
 * routes.h - the route table: every endpoint conversa serves, one line each.
 *
 * Endpoint code lives in src/api/<resource>.c, one function per route, named
 * api_<resource>_<action>. Find an endpoint by its path here, then its function.
 */
#ifndef CONVERSA_API_ROUTES_H
#define CONVERSA_API_ROUTES_H

#include <stddef.h>

#include "http/router.h"

extern const http_route_t api_routes[];
extern const size_t api_nroutes;

/* The authenticate hook and handlers (src/api/auth.c) */
void api_auth_authenticate(struct http_request *r);
void api_auth_login(struct http_request *r);
void api_auth_logout(struct http_request *r);
/* Handlers (src/api/connections.c) */
void api_connections_list(struct http_request *r);
void api_connections_create(struct http_request *r);
void api_connections_get(struct http_request *r);
void api_connections_patch(struct http_request *r);
void api_connections_delete(struct http_request *r);
/* Handlers (src/api/conversations.c) */
void api_conversations_list(struct http_request *r);
void api_conversations_status(struct http_request *r);
void api_conversations_get(struct http_request *r);
void api_conversations_patch(struct http_request *r);
void api_conversations_read(struct http_request *r);
void api_conversations_messages(struct http_request *r);
void api_conversations_send(struct http_request *r);
/* Handlers (src/api/contacts.c) */
void api_contacts_list(struct http_request *r);
void api_contacts_create(struct http_request *r);
void api_contacts_lookup(struct http_request *r);
void api_contacts_get(struct http_request *r);
void api_contacts_patch(struct http_request *r);
/* Handlers (src/api/notifications.c) */
void api_notifications_list(struct http_request *r);
void api_notifications_unread_count(struct http_request *r);
void api_notifications_read_all(struct http_request *r);
void api_notifications_read(struct http_request *r);
/* Handlers (src/api/users.c) */
void api_users_list(struct http_request *r);
/* Handlers (src/api/health.c) */
void api_health_get(struct http_request *r);
void api_health_live(struct http_request *r);
/* Handlers (src/api/alerts.c) */
void api_alerts_list(struct http_request *r);

/* Handlers (src/api/metrics.c) */
void api_metrics_get(struct http_request *r);

/* Handlers (src/api/campaigns.c) */
void api_campaigns_list(struct http_request *r);
void api_campaigns_create(struct http_request *r);
void api_campaigns_get(struct http_request *r);
void api_campaigns_trigger(struct http_request *r);
void api_campaigns_pause(struct http_request *r);
void api_campaigns_resume(struct http_request *r);
void api_campaigns_cancel(struct http_request *r);
/* Handlers (src/api/queues.c) */
void api_queues_list(struct http_request *r);
void api_queues_failed(struct http_request *r);
void api_queues_retry_all(struct http_request *r);
void api_queues_retry(struct http_request *r);
/* Handlers (src/api/webhooks.c) */
void api_webhooks_verify(struct http_request *r);
void api_webhooks_receive(struct http_request *r);

#endif
