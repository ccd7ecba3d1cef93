/* GET /api/v1/alerts - the alerts this process has firing now and its recent firings and resolutions. */
#include "api/routes.h"
#include "http/reply.h"
#include "ops/alerts.h"

void api_alerts_list(http_request_t *r)
{
    strbuf_t b;
    strbuf_init(&b);
    alerts_render_json(&b);
    http_reply_json(r, 200, b.data, b.len);
    strbuf_free(&b);
}
