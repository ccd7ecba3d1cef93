/*
 * secrets.h - secrets at rest (a connection's access token, app secret, verify token),
 * encrypted with ENCRYPTION_KEY.
 *
 * Why: a database dump, a backup or a read-only SQL account must not give away the
 * credentials that let anyone send WhatsApp messages as a company. The key never
 * enters the database; only values sealed with it do.
 *
 * The key is derived once, at start-up (secrets_init): 64 hex characters, or base64
 * (standard or URL-safe, padded or not) of exactly 32 bytes, are used as they are;
 * any other text is hashed with SHA-256, and the warning "ENCRYPTION_KEY was hashed to
 * 32 bytes" is logged once per process. A key's id is the first 4 bytes of SHA-256 of
 * the key; it names the key in every stored value without revealing it.
 *
 * Stored format (version 1), SECRETS_OVERHEAD bytes more than the plaintext:
 *
 *     0x01 | key id (4 bytes) | nonce (24 bytes, random) | ciphertext + tag (16 bytes)
 *
 * sealed with XChaCha20-Poly1305-IETF. The associated data is the first 5 bytes
 * (version and key id) followed by a context string naming where the value lives
 * ("connections.access_token"), so neither the key id nor the column can be changed
 * without the value failing to open: a value copied into another column does not
 * decrypt there.
 *
 * Rotation: ENCRYPTION_KEY_PREVIOUS is a second key that secrets_decrypt() also
 * accepts (chosen by key id); new values are always sealed with ENCRYPTION_KEY.
 * `conversa keys rotate` re-seals every stored value with the current key.
 *
 * Contract: secrets_init() is called once before any thread uses the others; after
 * that every function is thread-safe. Nothing here logs a secret, and no function
 * crashes on hostile input: wrong key, tampered, truncated or foreign bytes give -1.
 * Callers wipe the plaintexts they hold (sodium_memzero) as soon as they are done.
 */
#ifndef CONVERSA_AUTH_SECRETS_H
#define CONVERSA_AUTH_SECRETS_H

#include <stddef.h>

#define SECRETS_KEY_BYTES    32
#define SECRETS_KEY_ID_BYTES 4
#define SECRETS_NONCE_BYTES  24
#define SECRETS_TAG_BYTES    16
#define SECRETS_VERSION      1
/* version + key id + nonce + tag */
#define SECRETS_OVERHEAD (1 + SECRETS_KEY_ID_BYTES + SECRETS_NONCE_BYTES + SECRETS_TAG_BYTES)
/* Largest plaintext accepted (bytes); the API's limits are far below. */
#define SECRETS_PLAIN_MAX 8192
/* Longest context string (bytes). */
#define SECRETS_CONTEXT_MAX 64
/* A key id as text: 8 hex characters and a NUL. */
#define SECRETS_KEY_ID_TEXT 9

/* The mask: "••••" and the last 4 characters, or "••••••••" for short secrets. */
#define SECRETS_MASK_BULLET "\xe2\x80\xa2"
#define SECRETS_MASK_FULL                                                                                              \
    SECRETS_MASK_BULLET SECRETS_MASK_BULLET SECRETS_MASK_BULLET SECRETS_MASK_BULLET SECRETS_MASK_BULLET                \
        SECRETS_MASK_BULLET SECRETS_MASK_BULLET SECRETS_MASK_BULLET
#define SECRETS_MASK_MIN_CHARS  12 /* shorter secrets show no characters at all */
#define SECRETS_MASK_SHOW_CHARS 4
#define SECRETS_MASK_MAX        (4 * 3 + 4 * 4 + 1) /* bytes with the NUL: 4 bullets, 4 characters of up to 4 bytes */

/** Which key opened a value. */
typedef enum secrets_key { SECRETS_KEY_CURRENT = 0, SECRETS_KEY_PREVIOUS = 1 } secrets_key_t;

/**
 * Derives the current key from key_text and, when previous_text is neither NULL nor
 * empty, the previous key (see the top of this file). Logs the hashing warning once
 * per process for each of the two. May be called again (tests); the keys are then
 * replaced. Returns 0, or -1 when key_text is NULL or empty or libsodium cannot start.
 */
int secrets_init(const char *key_text, const char *previous_text);

/** Whether secrets_init() succeeded (and secrets_shutdown() was not called since). */
int secrets_ready(void);

/** Whether a previous key is configured. */
int secrets_has_previous(void);

/** The id of the current or previous key as 8 hex characters; "" when there is none. */
void secrets_key_id(secrets_key_t which, char out[SECRETS_KEY_ID_TEXT]);

/** The stored size of a plaintext of plain_len bytes. */
size_t secrets_sealed_len(size_t plain_len);

/**
 * Seals plain (len bytes, at most SECRETS_PLAIN_MAX) for `context` with the current
 * key and a fresh random nonce into out (cap bytes, at least secrets_sealed_len(len)).
 * Returns 0 and sets *out_len, or -1 (no key, bad arguments, out too small).
 */
int secrets_encrypt(const char *context, const void *plain, size_t len, unsigned char *out, size_t cap,
                    size_t *out_len);

/**
 * Opens a stored value sealed for `context`, with whichever configured key its key id
 * names. Writes the plaintext and a NUL into out (cap bytes: at least
 * len - SECRETS_OVERHEAD + 1), sets *out_len and, when which is not NULL, the key that
 * opened it. Returns 0, or -1 when the value is truncated, of another version, sealed
 * with a key that is not configured, for another context, or tampered with; out is
 * then zeroed.
 */
int secrets_decrypt(const char *context, const unsigned char *in, size_t len, char *out, size_t cap, size_t *out_len,
                    secrets_key_t *which);

/**
 * secrets_decrypt() of a value as PostgreSQL sends a bytea in text form ("\x" and hex),
 * straight from a result. Returns 0, or -1 when it is malformed or does not open.
 */
int secrets_decrypt_pg(const char *context, const char *pg_hex, char *out, size_t cap, size_t *out_len);

/**
 * The key id a stored value names, as 8 hex characters. Returns 0, or -1 when the
 * value is too short or of an unknown version.
 */
int secrets_value_key_id(const unsigned char *in, size_t len, char out[SECRETS_KEY_ID_TEXT]);

/**
 * Writes the masked form of a secret (len bytes of UTF-8) into out (cap bytes, at
 * least SECRETS_MASK_MAX): "••••" and its last 4 characters when it has at least
 * SECRETS_MASK_MIN_CHARS characters and is valid UTF-8 without control characters,
 * "••••••••" otherwise (NULL included). Returns the length written (without the NUL),
 * or 0 when cap is too small.
 */
size_t secrets_mask(const char *secret, size_t len, char *out, size_t cap);

/** Wipes the keys from memory; secrets_ready() is false afterwards. */
void secrets_shutdown(void);

#endif
