/*
 * apply.h - the worker side of Meta webhooks: the 'webhooks' queue.
 *
 * Each job is applied by webhook_apply (migration 0006), which writes contacts,
 * conversations, messages, notifications and statuses and completes the job in the
 * same transaction. A slot runs up to META_BATCH jobs (of different contacts) in one
 * statement, webhook_apply_batch: one commit for all, each job in a subtransaction so
 * that a failing job undoes only its own writes and is retried alone. What it changed comes back as JSON and becomes
 * cache generation bumps: the company's counts when a conversation was opened, its lists when a message arrived, each
 * touched conversation's messages and each notified agent's notifications. A worker
 * applies one batch per company at a time and holds the others itself (apply.c: the
 * gate), so they do not wait inside PostgreSQL.
 */
#ifndef CONVERSA_META_APPLY_H
#define CONVERSA_META_APPLY_H

#include "queue/worker.h"

#define META_QUEUE "webhooks"
#define META_BATCH 32

/** The queue definition the worker runs. */
extern const queue_def_t meta_webhooks_queue;

#endif
