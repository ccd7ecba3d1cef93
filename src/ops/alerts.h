/*
 * alerts.h - the process watching itself: rules over its own metrics, evaluated by one
 * thread every ALERT_INTERVAL_MS over a sliding ALERT_WINDOW_SECONDS window.
 *
 * Rules (thresholds from config.h): mean and p95 response time, memory against the
 * process's limit, 5xx responses per minute, cache hit rate (once there are enough
 * lookups to judge), the age of the oldest job waiting, and PostgreSQL or Redis down.
 * A rule fires once its condition has held for ALERT_FOR_SECONDS, resolves when it
 * clears, and while firing is repeated at most every ALERT_REPEAT_SECONDS. Each firing,
 * repeat and resolution is a log line "[ALERT][LEVEL] message" and, with
 * ALERT_WEBHOOK_URL set, a Slack-compatible POST sent by a second thread with
 * retries, so a slow receiver never delays evaluation or a request.
 *
 * Figures are this process's; with several processes each alerts on its own (the
 * Prometheus rules in deploy/ see them all).
 */
#ifndef CONVERSA_OPS_ALERTS_H
#define CONVERSA_OPS_ALERTS_H

#include "core/util.h"

/** Starts the evaluator and notifier threads (and the alerts_* metric families). */
void alerts_start(void);

/** Stops both threads; notices still queued get one attempt each, bounded by their timeout. */
void alerts_stop(void);

/** Appends {"active":[…],"recent":[…],"rules":[…]} as JSON. Any thread. */
void alerts_render_json(strbuf_t *out);

#endif
