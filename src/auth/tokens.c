#include "auth/tokens.h"
#include "core/util.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>

void tokens_new(char *out, uint8_t hash[TOKENS_HASH_BYTES])
{
    unsigned char raw[32];
    char b64[sodium_base64_ENCODED_LEN(sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    memcpy(out, "cv_", 3);
    memcpy(out + 3, b64, strlen(b64) + 1);
    tokens_hash(out, strlen(out), hash);
    sodium_memzero(raw, sizeof(raw));
}

void tokens_hash(const char *token, size_t len, uint8_t hash[TOKENS_HASH_BYTES])
{
    crypto_hash_sha256(hash, (const unsigned char *)token, len);
}

int tokens_from_header(const char *value, size_t n, const char **tok, size_t *len)
{
    if (n < 8 || strncasecmp(value, "bearer ", 7) != 0)
        return -1;
    const char *p = value + 7, *end = value + n;
    while (p < end && *p == ' ')
        ++p;
    while (end > p && end[-1] == ' ')
        --end;
    if (end == p || (size_t)(end - p) > 256)
        return -1;
    for (const char *c = p; c != end; ++c)
        if (*c <= ' ' || *c >= 0x7f)
            return -1;
    *tok = p;
    *len = (size_t)(end - p);
    return 0;
}

int tokens_password_hash(char *out, const char *password, size_t len)
{
    return crypto_pwhash_str(out, password, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                             crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0
               ? 0
               : -1;
}

static char tokens_dummy[crypto_pwhash_STRBYTES];
static pthread_once_t tokens_dummy_once = PTHREAD_ONCE_INIT;

static void tokens_make_dummy(void)
{
    char pw[33];
    randombytes_buf(pw, 32);
    if (tokens_password_hash(tokens_dummy, pw, 32) != 0)
        util_fatal("cannot hash the timing-equaliser password");
}

int tokens_password_verify(const char *stored, const char *password, size_t len)
{
    if (stored == NULL || strncmp(stored, "$argon2id$", 10) != 0) {
        pthread_once(&tokens_dummy_once, tokens_make_dummy);
        int same = crypto_pwhash_str_verify(tokens_dummy, password, len) == 0;
        return same && 0; /* always a failure; the work above is what matters */
    }
    return crypto_pwhash_str_verify(stored, password, len) == 0;
}
