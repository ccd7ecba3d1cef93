/*
 * webhook.h - what arrives from Meta: signed payloads of messages and statuses.
 *
 * Meta signs the exact bytes it sends (X-Hub-Signature-256: sha256=<hex of
 * HMAC-SHA256(app secret, body)>), and escapes some characters in them, so a
 * signature is checked over the bytes received and never over re-serialised JSON.
 *
 * A payload may batch updates for many contacts (up to 1,000). The queue runs the
 * jobs of one contact one at a time and in order, so a payload is split by contact:
 * a payload that concerns one contact (the usual case) is kept byte for byte; one that
 * concerns several becomes one document per contact, each with that contact's
 * messages and profile under the same entry, change and metadata, and one more part
 * without a contact holding every status and the changes of other kinds. Statuses
 * need no order (each only moves its message forward, failed is terminal: they
 * commute), and applied together they cost a few statements for hundreds (migration
 * 0007) instead of a job each.
 */
#ifndef CONVERSA_META_WEBHOOK_H
#define CONVERSA_META_WEBHOOK_H

#include <jansson.h>
#include <stddef.h>

/** Whether header (the X-Hub-Signature-256 value, NUL-terminated) signs body with secret. Constant time. */
int meta_signature_ok(const char *secret, size_t secret_len, const void *body, size_t len, const char *header);

/** Writes "sha256=<64 lowercase hex>" (72 bytes with the NUL) for body; used by tests and tools. */
void meta_signature(const char *secret, size_t secret_len, const void *body, size_t len, char out[72]);

/* Meta batches at most 1,000 updates (messages and statuses) in one payload. */
#define META_MAX_ITEMS 1000

/** One part of a split payload. */
typedef struct meta_part {
    char *contact;     /* the contact's WhatsApp id, or NULL for a part without one */
    const char *bytes; /* the payload: the original body, or `owned` */
    size_t len;
    char *owned; /* a re-built document, or NULL */
} meta_part_t;

/**
 * Splits the parsed payload root (whose bytes are body/len) by contact, in the order
 * contacts first appear. Returns the number of parts (at least 1) and sets *parts, to
 * be released with meta_parts_free(); -1 when root is not a JSON object, -2 when it
 * holds more than META_MAX_ITEMS messages and statuses.
 */
int meta_split(json_t *root, const char *body, size_t len, meta_part_t **parts);

void meta_parts_free(meta_part_t *parts, size_t n);

#endif
