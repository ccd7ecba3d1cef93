#include "api/routes.h"
#include "core/util.h"

const http_route_t api_routes[] = {
    {"GET", "/api/health", api_health_get},
    {"GET", "/api/health/live", api_health_live},
    {"GET", "/api/metrics", api_metrics_get},
};

const size_t api_nroutes = UTIL_ARRAY_SIZE(api_routes);
