#include "api/routes.h"
#include "core/util.h"

const http_route_t api_routes[] = {
    {"GET", "/api/health", api_health_get},
    {"GET", "/api/health/live", api_health_live},
    {"GET", "/api/metrics", api_metrics_get},
    {"POST", "/api/v1/auth/login", api_auth_login},
    {"DELETE", "/api/v1/auth/token", api_auth_logout, HTTP_AUTH},
    {"GET", "/api/v1/connections", api_connections_list, HTTP_AUTH},
    {"POST", "/api/v1/connections", api_connections_create, HTTP_ADMIN},
    {"GET", "/api/v1/connections/:id", api_connections_get, HTTP_AUTH},
    {"PATCH", "/api/v1/connections/:id", api_connections_patch, HTTP_ADMIN},
    {"DELETE", "/api/v1/connections/:id", api_connections_delete, HTTP_ADMIN},
    {"GET", "/api/v1/conversations", api_conversations_list, HTTP_AUTH},
    {"GET", "/api/v1/conversations/status", api_conversations_status, HTTP_AUTH},
    {"GET", "/api/v1/conversations/:id", api_conversations_get, HTTP_AUTH},
    {"PATCH", "/api/v1/conversations/:id", api_conversations_patch, HTTP_AUTH},
    {"GET", "/api/v1/conversations/:id/messages", api_conversations_messages, HTTP_AUTH},
    {"POST", "/api/v1/conversations/:id/messages", api_conversations_send, HTTP_AUTH},
    {"GET", "/api/v1/contacts", api_contacts_list, HTTP_AUTH},
    {"POST", "/api/v1/contacts", api_contacts_create, HTTP_AUTH},
    {"GET", "/api/v1/contacts/lookup", api_contacts_lookup, HTTP_AUTH},
    {"GET", "/api/v1/contacts/:id", api_contacts_get, HTTP_AUTH},
    {"PATCH", "/api/v1/contacts/:id", api_contacts_patch, HTTP_AUTH},
    {"GET", "/api/v1/notifications", api_notifications_list, HTTP_AUTH},
    {"GET", "/api/v1/notifications/unread_count", api_notifications_unread_count, HTTP_AUTH},
    {"POST", "/api/v1/notifications/read_all", api_notifications_read_all, HTTP_AUTH},
    {"POST", "/api/v1/notifications/:id/read", api_notifications_read, HTTP_AUTH},
    {"GET", "/api/v1/queues", api_queues_list, HTTP_ADMIN},
    {"GET", "/api/v1/queues/:name/failed", api_queues_failed, HTTP_ADMIN},
    {"POST", "/api/v1/queues/:name/failed/retry_all", api_queues_retry_all, HTTP_ADMIN},
    {"POST", "/api/v1/queues/:name/failed/:id/retry", api_queues_retry, HTTP_ADMIN},
    {"GET", "/api/webhooks/meta/:slug", api_webhooks_verify},
    {"POST", "/api/webhooks/meta/:slug", api_webhooks_receive},
};

const size_t api_nroutes = UTIL_ARRAY_SIZE(api_routes);
