/*
 * send.h - the worker side of sending: agents' replies ('outbound' queue) and campaign
 * recipients ('campaigns' queue), through the Graph API client at Meta's pace.
 *
 * A batch is run as a small state machine:
 *   PREPARE  outbound_prepare (migration 0007) says, per job, send / skip (already
 *            sent) / park (campaign paused) / cancel / fail (no usable connection) /
 *            expand (a campaign's next 10,000 contacts become recipients and jobs,
 *            campaign_expand; the job goes back to the queue until the audience is done);
 *   PACE     meta/pace.h grants sends per connection and recipient; the others wait on
 *            a timer, or go back to the queue (without counting an attempt) when the
 *            wait would be long or the worker is stopping;
 *   SEND     meta/graph.h, all granted sends of the batch at once; a throttled send
 *            penalizes the bucket and is paced again, a pair-limited one goes back to
 *            the queue for META_PAIR_INTERVAL_MS, a passing failure is a counted
 *            attempt (backoff), and on the last attempt a failure for good;
 *   RECORD   outbound_record writes wamids, failures with Meta's code and title,
 *            campaign progress, and completes the jobs, in one transaction; then the
 *            changed conversations' caches are bumped and the batch ends.
 * A send whose outcome is unknown because the worker is stopping is neither recorded
 * nor retried: its lease expires and the job runs again, and by then Meta's status
 * webhook has normally named its wamid (biz_opaque_callback_data), so it is skipped.
 */
#ifndef CONVERSA_META_SEND_H
#define CONVERSA_META_SEND_H

#include "queue/worker.h"

#define SEND_QUEUE_REPLIES   "outbound"
#define SEND_QUEUE_CAMPAIGNS "campaigns"
#define SEND_BATCH_REPLIES   16
#define SEND_BATCH_CAMPAIGNS 100

extern const queue_def_t meta_outbound_queue;
extern const queue_def_t meta_campaigns_queue;

#endif
