/*
 * fuzz_secret.c - the stored-secret format (src/auth/secrets.c): values read back from
 * PostgreSQL, as bytes (secrets_decrypt, secrets_value_key_id) and as bytea text
 * (secrets_decrypt_pg), the masks shown in responses (secrets_mask), and the key text
 * of ENCRYPTION_KEY (secrets_init). Keys are fixed test keys, current and previous.
 *
 * Checked, per secrets.h:
 *   - the input as a stored value opens for at most one context; when it opens, the
 *     plaintext is its length less SECRETS_OVERHEAD and NUL-terminated, and the value
 *     with any byte changed or one byte less does not open; when it does not, out is
 *     zeroed; the same holds for its bytea text form;
 *   - the input as a plaintext (up to SECRETS_PLAIN_MAX) seals to secrets_sealed_len()
 *     bytes naming the current key, and opens to itself from bytes and from bytea
 *     text, for its context only; a changed byte or a byte less does not open;
 *   - a mask is at most SECRETS_MASK_MAX bytes of UTF-8, the full mask or four bullets
 *     and the input's last four characters (then the input is valid text of at least
 *     SECRETS_MASK_MIN_CHARS characters);
 *   - key text becomes the key secrets.h describes: 64 hex characters or base64 of 32
 *     bytes as they are, anything else through SHA-256; its id is SHA-256 of the key.
 */
#include "auth/secrets.h"
#include "core/log.h"
#include "fake.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_KEY      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define SECRET_PREVIOUS "previous test key, hashed to 32 bytes"

static const char *const secret_contexts[] = {"connections.access_token", "connections.app_secret",
                                              "connections.verify_token"};
#define SECRET_NCONTEXTS (sizeof(secret_contexts) / sizeof(secret_contexts[0]))

/*
 * Whether all n bytes at p are zero: the first is, and each equals the next. One memcmp,
 * not a loop: the buffers are SECRETS_PLAIN_MAX + 1 bytes, checked up to six times per
 * input, and a loop built with coverage instrumentation made three callbacks per byte
 * (five sixths of the target's time); sodium_is_zero, constant time, is not much faster.
 */
static int secret_zero(const char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* "\x" and lowercase hex of in, as PostgreSQL sends a bytea; the caller frees it. */
static char *secret_pg_text(const unsigned char *in, size_t n)
{
    char *t = malloc(2 * n + 3);
    FUZZ_CHECK(t != NULL);
    memcpy(t, "\\x", 2);
    sodium_bin2hex(t + 2, 2 * n + 1, in, n);
    return t;
}

/*
 * Opens in (n bytes) for each context; returns the index of the one that opened it
 * (its plaintext in out, *len bytes), or -1. Checks the output either way.
 */
static int secret_open_any(const unsigned char *in, size_t n, char out[SECRETS_PLAIN_MAX + 1], size_t *len)
{
    char tmp[SECRETS_PLAIN_MAX + 1];
    size_t tmp_len = 0;
    int opened = -1;
    for (size_t c = 0; c != SECRET_NCONTEXTS; ++c) {
        secrets_key_t which;
        if (secrets_decrypt(secret_contexts[c], in, n, tmp, sizeof(tmp), &tmp_len, &which) != 0) {
            FUZZ_CHECK(secret_zero(tmp, sizeof(tmp)));
            continue;
        }
        FUZZ_CHECK(opened == -1); /* the context is bound: one at most */
        FUZZ_CHECK(n >= SECRETS_OVERHEAD && tmp_len == n - SECRETS_OVERHEAD && tmp[tmp_len] == '\0');
        FUZZ_CHECK(which == SECRETS_KEY_CURRENT || which == SECRETS_KEY_PREVIOUS);
        memcpy(out, tmp, tmp_len + 1);
        *len = tmp_len;
        opened = (int)c;
    }
    return opened;
}

/* A value that opened for context c must not open with byte at changed, nor a byte short. */
static void secret_tamper(const char *context, const unsigned char *in, size_t n, size_t at)
{
    char out[SECRETS_PLAIN_MAX + 1];
    size_t len;
    unsigned char *copy = malloc(n);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, in, n);
    copy[at % n] ^= 1 + (unsigned char)(at % 255);
    FUZZ_CHECK(secrets_decrypt(context, copy, n, out, sizeof(out), &len, NULL) != 0);
    FUZZ_CHECK(secrets_decrypt(context, in, n - 1, out, sizeof(out), &len, NULL) != 0);
    free(copy);
}

/* The input as a stored value, in bytes and in bytea text. */
static void secret_stored(const uint8_t *data, size_t size)
{
    char out[SECRETS_PLAIN_MAX + 1];
    size_t len;
    int c = secret_open_any(data, size, out, &len);
    if (c >= 0)
        secret_tamper(secret_contexts[c], data, size, size * 7 + 3);

    char id[SECRETS_KEY_ID_TEXT], want[SECRETS_KEY_ID_TEXT];
    if (secrets_value_key_id(data, size, id) == 0) {
        FUZZ_CHECK(size >= SECRETS_OVERHEAD && data[0] == SECRETS_VERSION);
        sodium_bin2hex(want, sizeof(want), data + 1, SECRETS_KEY_ID_BYTES);
        FUZZ_CHECK(strcmp(id, want) == 0);
    } else {
        FUZZ_CHECK(id[0] == '\0');
    }

    /* the input as bytea text, as it comes from a result */
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    if (secrets_decrypt_pg(secret_contexts[0], text, out, sizeof(out), &len) == 0)
        FUZZ_CHECK(strncmp(text, "\\x", 2) == 0 && out[len] == '\0');
    else
        FUZZ_CHECK(secret_zero(out, sizeof(out)));
    free(text);
}

/* The input as a plaintext: seal, open, tamper. */
static void secret_round_trip(const uint8_t *data, size_t size)
{
    size_t n = size < SECRETS_PLAIN_MAX ? size : SECRETS_PLAIN_MAX;
    size_t c = size % SECRET_NCONTEXTS;
    size_t cap = secrets_sealed_len(n), sealed_len = 0, len = 0;
    unsigned char *sealed = malloc(cap);
    char out[SECRETS_PLAIN_MAX + 1], id[SECRETS_KEY_ID_TEXT], current[SECRETS_KEY_ID_TEXT];
    FUZZ_CHECK(sealed != NULL && cap == n + SECRETS_OVERHEAD);
    FUZZ_CHECK(secrets_encrypt(secret_contexts[c], data, n, sealed, cap, &sealed_len) == 0 && sealed_len == cap);
    FUZZ_CHECK(secrets_encrypt(secret_contexts[c], data, n, sealed, cap - 1, &len) != 0); /* out too small */

    FUZZ_CHECK(secrets_value_key_id(sealed, sealed_len, id) == 0);
    secrets_key_id(SECRETS_KEY_CURRENT, current);
    FUZZ_CHECK(strcmp(id, current) == 0);

    FUZZ_CHECK(secret_open_any(sealed, sealed_len, out, &len) == (int)c);
    FUZZ_CHECK(len == n && memcmp(out, data, n) == 0);
    char *text = secret_pg_text(sealed, sealed_len);
    FUZZ_CHECK(secrets_decrypt_pg(secret_contexts[c], text, out, sizeof(out), &len) == 0);
    FUZZ_CHECK(len == n && memcmp(out, data, n) == 0);
    FUZZ_CHECK(secrets_decrypt_pg(secret_contexts[(c + 1) % SECRET_NCONTEXTS], text, out, sizeof(out), &len) != 0);
    free(text);
    secret_tamper(secret_contexts[c], sealed, sealed_len, size * 13 + 1);
    free(sealed);
}

static void secret_mask(const uint8_t *data, size_t size)
{
    static const char full[] = SECRETS_MASK_FULL;
    char mask[SECRETS_MASK_MAX + 8];
    memset(mask, 'x', sizeof(mask));
    size_t n = secrets_mask((const char *)data, size, mask, SECRETS_MASK_MAX);
    FUZZ_CHECK(n != 0 && n < SECRETS_MASK_MAX && mask[n] == '\0' && mask[SECRETS_MASK_MAX] == 'x');
    FUZZ_CHECK(fuzz_utf8_ok(mask, n));
    FUZZ_CHECK(secrets_mask((const char *)data, size, mask, SECRETS_MASK_MAX - 1) == 0);
    n = secrets_mask((const char *)data, size, mask, SECRETS_MASK_MAX);
    if (n == sizeof(full) - 1 && memcmp(mask, full, n) == 0)
        return;
    size_t head = 4 * (sizeof(SECRETS_MASK_BULLET) - 1), tail = n - head, chars = 0;
    FUZZ_CHECK(n > head && memcmp(mask, full, head) == 0);
    FUZZ_CHECK(tail <= size && memcmp(mask + head, data + size - tail, tail) == 0);
    for (size_t i = head; i != n; ++i)
        chars += ((unsigned char)mask[i] & 0xc0) != 0x80;
    FUZZ_CHECK(chars == SECRETS_MASK_SHOW_CHARS && fuzz_utf8_ok(data, size));
    size_t total = 0;
    for (size_t i = 0; i != size; ++i)
        total += (data[i] & 0xc0) != 0x80;
    FUZZ_CHECK(total >= SECRETS_MASK_MIN_CHARS);
}

/* The key secrets.h says key text gives. */
static void secret_expected_key(const char *text, unsigned char key[SECRETS_KEY_BYTES])
{
    size_t n = strlen(text), len = 0;
    const char *end = NULL;
    if (n == 2 * SECRETS_KEY_BYTES && sodium_hex2bin(key, SECRETS_KEY_BYTES, text, n, NULL, &len, &end) == 0 &&
        len == SECRETS_KEY_BYTES && end == text + n)
        return;
    static const int variants[] = {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                                   sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (size_t i = 0; i != sizeof(variants) / sizeof(variants[0]); ++i)
        if (sodium_base642bin(key, SECRETS_KEY_BYTES, text, n, NULL, &len, &end, variants[i]) == 0 &&
            len == SECRETS_KEY_BYTES && end == text + n)
            return;
    crypto_hash_sha256(key, (const unsigned char *)text, n);
}

static void secret_key_text(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 128 || memchr(data, '\0', size) != NULL)
        return;
    char text[129];
    memcpy(text, data, size);
    text[size] = '\0';
    unsigned char key[SECRETS_KEY_BYTES], digest[crypto_hash_sha256_BYTES];
    char id[SECRETS_KEY_ID_TEXT], want[SECRETS_KEY_ID_TEXT];
    secret_expected_key(text, key);
    crypto_hash_sha256(digest, key, sizeof(key));
    sodium_bin2hex(want, sizeof(want), digest, SECRETS_KEY_ID_BYTES);
    FUZZ_CHECK(secrets_init(text, NULL) == 0 && secrets_ready() && !secrets_has_previous());
    secrets_key_id(SECRETS_KEY_CURRENT, id);
    FUZZ_CHECK(strcmp(id, want) == 0);
    FUZZ_CHECK(secrets_init(SECRET_KEY, SECRET_PREVIOUS) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_OFF);
    if (secrets_init(SECRET_KEY, SECRET_PREVIOUS) != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    secret_stored(data, size);
    secret_round_trip(data, size);
    secret_mask(data, size);
    secret_key_text(data, size);
    return 0;
}
