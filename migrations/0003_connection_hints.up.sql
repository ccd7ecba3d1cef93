-- 0003_connection_hints: every connection secret encrypted, and shown only masked.
--
-- Secrets are sealed by the application (src/auth/secrets.h: version 1, key id,
-- nonce, XChaCha20-Poly1305 ciphertext and tag; 45 bytes more than the plaintext).
-- The database never sees a key or a plaintext.
--
-- verify_token_enc: the webhook verify token, sealed like the other two. The column
-- verify_token (plaintext, from 0001) is no longer written by the API: a value set
-- there is moved into verify_token_enc by `conversa seed --demo` and by
-- `conversa keys rotate`, which then clear it.
--
-- *_hint: the masked form the API shows (four bullets U+2022 and the last 4
-- characters, or eight bullets for a secret under 12 characters), written together
-- with the sealed value.
-- Why stored rather than computed from a decryption at read time: the API's JSON is
-- built by PostgreSQL in one query like every other endpoint, reads need no key and
-- never hold a plaintext, a read cannot fail because a value was sealed under a key
-- since retired, and rotation leaves masks alone. A hint holds exactly what any
-- member of the company sees through the API, never more than 4 characters of a
-- secret of 12 or more (checked below).

ALTER TABLE connections
    ADD COLUMN verify_token_enc  bytea,
    ADD COLUMN access_token_hint text,
    ADD COLUMN app_secret_hint   text,
    ADD COLUMN verify_token_hint text,
    ADD CONSTRAINT connections_secrets_sealed_check CHECK (
        (access_token_enc IS NULL OR octet_length(access_token_enc) > 45) AND
        (app_secret_enc IS NULL OR octet_length(app_secret_enc) > 45) AND
        (verify_token_enc IS NULL OR octet_length(verify_token_enc) > 45)),
    ADD CONSTRAINT connections_secret_hints_check CHECK (
        (access_token_hint IS NULL OR char_length(access_token_hint) = 8) AND
        (app_secret_hint IS NULL OR char_length(app_secret_hint) = 8) AND
        (verify_token_hint IS NULL OR char_length(verify_token_hint) = 8));
