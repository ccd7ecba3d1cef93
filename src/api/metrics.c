/* GET /api/metrics - the Prometheus exposition. */
#include "api/routes.h"
#include "http/reply.h"
#include "ops/metrics.h"

void api_metrics_get(http_request_t *r)
{
    strbuf_t b;
    strbuf_init(&b);
    metrics_render(&b);
    http_reply_copy(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    strbuf_free(&b);
}
