/*
 * tokens.h - bearer tokens and passwords.
 *
 * A token is "cv_" followed by 43 base64url characters (32 random bytes). Only its
 * SHA-256 is stored; the token itself is shown once. Passwords are Argon2id strings
 * (libsodium, interactive limits); verification is slow on purpose and runs on the
 * worker pool, never on an event loop.
 */
#ifndef CONVERSA_AUTH_TOKENS_H
#define CONVERSA_AUTH_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#define TOKENS_TEXT_MAX   48 /* "cv_" + 43 characters + NUL, rounded up */
#define TOKENS_HASH_BYTES 32

/** Makes a new token into out (at least TOKENS_TEXT_MAX bytes) and its hash. */
void tokens_new(char *out, uint8_t hash[TOKENS_HASH_BYTES]);

/** Hashes a presented token. */
void tokens_hash(const char *token, size_t len, uint8_t hash[TOKENS_HASH_BYTES]);

/**
 * Extracts the token from an Authorization header value ("Bearer <token>", scheme
 * case-insensitive). Returns 0 and sets tok and len, or -1 when the header is not that.
 */
int tokens_from_header(const char *value, size_t n, const char **tok, size_t *len);

/** Argon2id hash of a password into out (crypto_pwhash_STRBYTES). Returns 0 or -1. */
int tokens_password_hash(char *out, const char *password, size_t len);

/**
 * Checks a password against a stored Argon2id string. With stored NULL it spends the
 * same time against a fixed hash and fails, so unknown emails cannot be told apart
 * by timing. Returns 1 on a match.
 */
int tokens_password_verify(const char *stored, const char *password, size_t len);

#endif
