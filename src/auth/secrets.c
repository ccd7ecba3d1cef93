/*
 * secrets.c - key derivation, sealing and opening of secrets at rest, and masks.
 *
 * Why this shape: the key is derived once (the old platform re-hashed it on every use
 * and logged a warning each time); values carry their key id so two keys can be live
 * during a rotation; the AEAD's associated data binds the key id and the column, so
 * bytes moved between columns or relabelled with another key id fail to open.
 *
 * The keys live in one static, mlock'ed (best effort) structure written only by
 * secrets_init() and secrets_shutdown(), both called before or after the threads that
 * read it. Every temporary that held key material or plaintext is wiped.
 */
#include "auth/secrets.h"
#include "core/utf8.h"
#include "core/log.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>

#define SECRETS_HEADER (1 + SECRETS_KEY_ID_BYTES) /* version + key id: the start of the AD */

typedef struct secrets_keys {
    unsigned char key[2][SECRETS_KEY_BYTES]; /* [SECRETS_KEY_CURRENT], [SECRETS_KEY_PREVIOUS] */
    unsigned char id[2][SECRETS_KEY_ID_BYTES];
    int present[2];
    int locked;
} secrets_keys_t;

static secrets_keys_t secrets_keys;
static int secrets_warned[2]; /* the hashing warning, once per process per key */

/*
 * Turns key text into 32 bytes: hex of 32 bytes, then base64 of 32 bytes in any of
 * libsodium's four variants, each accepted only when it is the whole text; anything
 * else is hashed. Returns 1 when the text was hashed, 0 when used as it is.
 */
static int secrets_derive(const char *text, unsigned char out[SECRETS_KEY_BYTES])
{
    size_t n = strlen(text), bin_len = 0;
    const char *end = NULL;
    if (n == 2 * SECRETS_KEY_BYTES && sodium_hex2bin(out, SECRETS_KEY_BYTES, text, n, NULL, &bin_len, &end) == 0 &&
        bin_len == SECRETS_KEY_BYTES && end == text + n)
        return 0;
    static const int variants[] = {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                                   sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    if (n == 43 || n == 44)
        for (size_t i = 0; i != sizeof(variants) / sizeof(variants[0]); ++i) {
            end = NULL;
            if (sodium_base642bin(out, SECRETS_KEY_BYTES, text, n, NULL, &bin_len, &end, variants[i]) == 0 &&
                bin_len == SECRETS_KEY_BYTES && end == text + n)
                return 0;
        }
    crypto_hash_sha256(out, (const unsigned char *)text, n);
    return 1;
}

static void secrets_set(secrets_key_t which, const char *text, const char *name)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    int hashed = secrets_derive(text, secrets_keys.key[which]);
    crypto_hash_sha256(digest, secrets_keys.key[which], SECRETS_KEY_BYTES);
    memcpy(secrets_keys.id[which], digest, SECRETS_KEY_ID_BYTES);
    sodium_memzero(digest, sizeof(digest));
    secrets_keys.present[which] = 1;
    if (hashed && !__atomic_exchange_n(&secrets_warned[which], 1, __ATOMIC_SEQ_CST))
        log_warn("secrets",
                 "%s was hashed to 32 bytes: it is neither 64 hex characters nor base64 of 32 bytes; a random key "
                 "is better (conversa keys generate)",
                 name);
}

int secrets_init(const char *key_text, const char *previous_text)
{
    if (key_text == NULL || *key_text == '\0' || sodium_init() < 0)
        return -1;
    if (!secrets_keys.locked)
        secrets_keys.locked = sodium_mlock(&secrets_keys, sizeof(secrets_keys)) == 0;
    int locked = secrets_keys.locked;
    sodium_memzero(&secrets_keys, sizeof(secrets_keys));
    secrets_keys.locked = locked;
    secrets_set(SECRETS_KEY_CURRENT, key_text, "ENCRYPTION_KEY");
    if (previous_text != NULL && *previous_text != '\0')
        secrets_set(SECRETS_KEY_PREVIOUS, previous_text, "ENCRYPTION_KEY_PREVIOUS");
    return 0;
}

int secrets_ready(void)
{
    return secrets_keys.present[SECRETS_KEY_CURRENT];
}

int secrets_has_previous(void)
{
    return secrets_keys.present[SECRETS_KEY_PREVIOUS];
}

static void secrets_id_hex(const unsigned char id[SECRETS_KEY_ID_BYTES], char out[SECRETS_KEY_ID_TEXT])
{
    sodium_bin2hex(out, SECRETS_KEY_ID_TEXT, id, SECRETS_KEY_ID_BYTES);
}

void secrets_key_id(secrets_key_t which, char out[SECRETS_KEY_ID_TEXT])
{
    out[0] = '\0';
    if ((which == SECRETS_KEY_CURRENT || which == SECRETS_KEY_PREVIOUS) && secrets_keys.present[which])
        secrets_id_hex(secrets_keys.id[which], out);
}

size_t secrets_sealed_len(size_t plain_len)
{
    return plain_len + SECRETS_OVERHEAD;
}

/* The associated data: version, key id, context. Returns its length, or 0 when the context is unusable. */
static size_t secrets_ad(unsigned char *ad, const unsigned char header[SECRETS_HEADER], const char *context)
{
    if (context == NULL)
        return 0;
    size_t n = strlen(context);
    if (n == 0 || n > SECRETS_CONTEXT_MAX)
        return 0;
    memcpy(ad, header, SECRETS_HEADER);
    memcpy(ad + SECRETS_HEADER, context, n);
    return SECRETS_HEADER + n;
}

int secrets_encrypt(const char *context, const void *plain, size_t len, unsigned char *out, size_t cap, size_t *out_len)
{
    if (!secrets_ready() || out == NULL || out_len == NULL || (plain == NULL && len != 0) || len > SECRETS_PLAIN_MAX ||
        cap < secrets_sealed_len(len))
        return -1;
    unsigned char ad[SECRETS_HEADER + SECRETS_CONTEXT_MAX];
    out[0] = SECRETS_VERSION;
    memcpy(out + 1, secrets_keys.id[SECRETS_KEY_CURRENT], SECRETS_KEY_ID_BYTES);
    size_t ad_len = secrets_ad(ad, out, context);
    if (ad_len == 0)
        return -1;
    unsigned char *nonce = out + SECRETS_HEADER;
    randombytes_buf(nonce, SECRETS_NONCE_BYTES);
    unsigned long long clen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + SECRETS_NONCE_BYTES, &clen, plain, len, ad, ad_len, NULL,
                                                   nonce, secrets_keys.key[SECRETS_KEY_CURRENT]) != 0)
        return -1;
    *out_len = SECRETS_HEADER + SECRETS_NONCE_BYTES + (size_t)clen;
    return 0;
}

/* Tries one key; 0 when it opened the value. */
static int secrets_open(secrets_key_t which, const unsigned char *in, size_t len, const unsigned char *ad,
                        size_t ad_len, char *out)
{
    if (!secrets_keys.present[which] || sodium_memcmp(in + 1, secrets_keys.id[which], SECRETS_KEY_ID_BYTES) != 0)
        return -1;
    const unsigned char *nonce = in + SECRETS_HEADER;
    unsigned long long mlen = 0;
    return crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)out, &mlen, NULL, nonce + SECRETS_NONCE_BYTES,
                                                      len - SECRETS_HEADER - SECRETS_NONCE_BYTES, ad, ad_len, nonce,
                                                      secrets_keys.key[which]);
}

int secrets_decrypt_pg(const char *context, const char *pg_hex, char *out, size_t cap, size_t *out_len)
{
    unsigned char raw[SECRETS_OVERHEAD + SECRETS_PLAIN_MAX];
    size_t n = 0;
    if (pg_hex == NULL || strncmp(pg_hex, "\\x", 2) != 0 ||
        sodium_hex2bin(raw, sizeof(raw), pg_hex + 2, strlen(pg_hex + 2), NULL, &n, NULL) != 0) {
        if (out != NULL && cap > 0)
            sodium_memzero(out, cap);
        return -1;
    }
    return secrets_decrypt(context, raw, n, out, cap, out_len, NULL);
}

int secrets_decrypt(const char *context, const unsigned char *in, size_t len, char *out, size_t cap, size_t *out_len,
                    secrets_key_t *which)
{
    if (out == NULL || cap == 0)
        return -1;
    sodium_memzero(out, cap);
    if (!secrets_ready() || in == NULL || out_len == NULL || len < SECRETS_OVERHEAD ||
        len - SECRETS_OVERHEAD > SECRETS_PLAIN_MAX || cap < len - SECRETS_OVERHEAD + 1 || in[0] != SECRETS_VERSION)
        return -1;
    unsigned char ad[SECRETS_HEADER + SECRETS_CONTEXT_MAX];
    size_t ad_len = secrets_ad(ad, in, context);
    if (ad_len == 0)
        return -1;
    /* Both keys are tried when both carry this id (the same key twice, or a 1 in 2^32 clash). */
    static const secrets_key_t order[] = {SECRETS_KEY_CURRENT, SECRETS_KEY_PREVIOUS};
    for (size_t i = 0; i != 2; ++i)
        if (secrets_open(order[i], in, len, ad, ad_len, out) == 0) {
            size_t n = len - SECRETS_OVERHEAD;
            out[n] = '\0';
            *out_len = n;
            if (which != NULL)
                *which = order[i];
            return 0;
        }
    sodium_memzero(out, cap);
    return -1;
}

int secrets_value_key_id(const unsigned char *in, size_t len, char out[SECRETS_KEY_ID_TEXT])
{
    out[0] = '\0';
    if (in == NULL || len < SECRETS_OVERHEAD || in[0] != SECRETS_VERSION)
        return -1;
    secrets_id_hex(in + 1, out);
    return 0;
}

/* Length of the UTF-8 sequence starting at p (at most n bytes), 0 when invalid or a control character. */
static size_t secrets_char_len(const unsigned char *p, size_t n)
{
    uint32_t cp;
    size_t len = utf8_decode(p, n, &cp);
    if (len == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
        return 0;
    return len;
}

size_t secrets_mask(const char *secret, size_t len, char *out, size_t cap)
{
    static const char full[] = SECRETS_MASK_FULL;
    if (out == NULL || cap < SECRETS_MASK_MAX)
        return 0;
    const unsigned char *p = (const unsigned char *)secret;
    /* Walk the whole secret once: count characters and remember where each of the last 4 starts. */
    size_t chars = 0, starts[SECRETS_MASK_SHOW_CHARS] = {0};
    int valid = secret != NULL;
    for (size_t i = 0; valid && i < len;) {
        size_t n = secrets_char_len(p + i, len - i);
        if (n == 0) {
            valid = 0;
            break;
        }
        starts[chars % SECRETS_MASK_SHOW_CHARS] = i;
        ++chars;
        i += n;
    }
    if (!valid || chars < SECRETS_MASK_MIN_CHARS) {
        memcpy(out, full, sizeof(full));
        return sizeof(full) - 1;
    }
    size_t from = starts[chars % SECRETS_MASK_SHOW_CHARS]; /* the oldest of the last 4 starts */
    size_t tail = len - from, head = 4 * (sizeof(SECRETS_MASK_BULLET) - 1);
    memcpy(out, full, head);
    memcpy(out + head, secret + from, tail);
    out[head + tail] = '\0';
    return head + tail;
}

void secrets_shutdown(void)
{
    int locked = secrets_keys.locked;
    if (locked)
        sodium_munlock(&secrets_keys, sizeof(secrets_keys)); /* zeroes it too */
    sodium_memzero(&secrets_keys, sizeof(secrets_keys));
}
