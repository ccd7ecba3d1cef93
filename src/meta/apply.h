/*
 * apply.h - the worker side of Meta webhooks: the 'webhooks' queue.
 *
 * Each job is applied by one statement (webhook_apply, migration 0006) that writes
 * contacts, conversations, messages, notifications and statuses and completes the job
 * in the same transaction. What it changed comes back as JSON and becomes cache
 * generation bumps: the company's counts when a conversation was opened, its lists
 * when a message arrived, each touched conversation's messages and each notified
 * agent's notifications.
 */
#ifndef CONVERSA_META_APPLY_H
#define CONVERSA_META_APPLY_H

#include "queue/worker.h"

#define META_QUEUE "webhooks"

/** The queue definition the worker runs. */
extern const queue_def_t meta_webhooks_queue;

#endif
