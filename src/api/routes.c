#include "api/routes.h"
#include "core/util.h"

const http_route_t api_routes[] = {
    {"GET", "/api/health", api_health_get},
    {"GET", "/api/health/live", api_health_live},
    {"GET", "/api/metrics", api_metrics_get},
    {"POST", "/api/v1/auth/login", api_auth_login},
    {"DELETE", "/api/v1/auth/token", api_auth_logout, HTTP_AUTH},
    {"GET", "/api/v1/conversations", api_conversations_list, HTTP_AUTH},
    {"GET", "/api/v1/conversations/status", api_conversations_status, HTTP_AUTH},
    {"GET", "/api/v1/conversations/:id", api_conversations_get, HTTP_AUTH},
    {"PATCH", "/api/v1/conversations/:id", api_conversations_patch, HTTP_AUTH},
    {"GET", "/api/v1/conversations/:id/messages", api_conversations_messages, HTTP_AUTH},
};

const size_t api_nroutes = UTIL_ARRAY_SIZE(api_routes);
