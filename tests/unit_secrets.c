/*
 * Unit tests of src/auth/secrets.c: key derivation (hex, base64, hashed, and the
 * warning logged once), sealing and opening (round trip, every byte tampered, every
 * truncation, wrong key, wrong context, rotation between two keys) and masks.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/secrets.h"

#define HEX_KEY "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define CTX     "connections.access_token"

static void key_bytes(unsigned char key[32])
{
    for (int i = 0; i != 32; ++i)
        key[i] = (unsigned char)i;
}

/* The id secrets.c must give a key: hex of the first 4 bytes of SHA-256(key). */
static void expected_id(const unsigned char key[32], char out[SECRETS_KEY_ID_TEXT])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, key, 32);
    sodium_bin2hex(out, SECRETS_KEY_ID_TEXT, d, 4);
}

static void init_or_fail(const char *key, const char *previous)
{
    cr_assert_eq(secrets_init(key, previous), 0);
}

static size_t seal(const char *plain, unsigned char *out, size_t cap)
{
    size_t n = 0;
    cr_assert_eq(secrets_encrypt(CTX, plain, strlen(plain), out, cap, &n), 0);
    cr_assert_eq(n, strlen(plain) + SECRETS_OVERHEAD);
    return n;
}

Test(secrets, refuses_no_key)
{
    cr_assert_eq(secrets_init(NULL, NULL), -1);
    cr_assert_eq(secrets_init("", NULL), -1);
    cr_assert_not(secrets_ready());
    unsigned char out[128];
    size_t n;
    cr_assert_eq(secrets_encrypt(CTX, "x", 1, out, sizeof(out), &n), -1);
}

Test(secrets, round_trip)
{
    init_or_fail(HEX_KEY, NULL);
    cr_assert(secrets_ready());
    cr_assert_not(secrets_has_previous());
    const char *plain = "EAAG-some-long-access-token-0123456789";
    unsigned char a[256], b[256];
    size_t na = seal(plain, a, sizeof(a)), nb = seal(plain, b, sizeof(b));
    cr_assert_eq(a[0], SECRETS_VERSION);
    /* fresh nonce each time: the same plaintext never seals to the same bytes */
    cr_assert_eq(na, nb);
    cr_assert_neq(memcmp(a, b, na), 0);
    cr_assert_null(memmem(a, na, plain, strlen(plain)));
    char out[256];
    size_t n = 0;
    secrets_key_t which = SECRETS_KEY_PREVIOUS;
    cr_assert_eq(secrets_decrypt(CTX, a, na, out, sizeof(out), &n, &which), 0);
    cr_assert_eq(n, strlen(plain));
    cr_assert_str_eq(out, plain);
    cr_assert_eq(which, SECRETS_KEY_CURRENT);
    /* the empty secret is a value too */
    cr_assert_eq(secrets_encrypt(CTX, "", 0, a, sizeof(a), &na), 0);
    cr_assert_eq(na, (size_t)SECRETS_OVERHEAD);
    cr_assert_eq(secrets_decrypt(CTX, a, na, out, sizeof(out), &n, NULL), 0);
    cr_assert_eq(n, 0);
    cr_assert_str_eq(out, "");
    /* the stored value names the current key */
    char id[SECRETS_KEY_ID_TEXT], want[SECRETS_KEY_ID_TEXT];
    unsigned char key[32];
    key_bytes(key);
    expected_id(key, want);
    cr_assert_eq(secrets_value_key_id(b, nb, id), 0);
    cr_assert_str_eq(id, want);
    secrets_key_id(SECRETS_KEY_CURRENT, id);
    cr_assert_str_eq(id, want);
    secrets_key_id(SECRETS_KEY_PREVIOUS, id);
    cr_assert_str_eq(id, "");
}

Test(secrets, every_tampered_byte_fails)
{
    init_or_fail(HEX_KEY, NULL);
    unsigned char v[128];
    size_t n = seal("app-secret-0123456789abcdef", v, sizeof(v));
    char out[128];
    size_t len;
    for (size_t i = 0; i != n; ++i)
        for (int bit = 0; bit != 8; ++bit) {
            v[i] ^= (unsigned char)(1u << bit);
            cr_assert_eq(secrets_decrypt(CTX, v, n, out, sizeof(out), &len, NULL), -1, "byte %zu bit %d", i, bit);
            for (size_t k = 0; k != sizeof(out); ++k)
                cr_assert_eq(out[k], 0, "output not wiped after a failure");
            v[i] ^= (unsigned char)(1u << bit);
        }
    cr_assert_eq(secrets_decrypt(CTX, v, n, out, sizeof(out), &len, NULL), 0);
}

Test(secrets, truncated_and_extended_fail)
{
    init_or_fail(HEX_KEY, NULL);
    unsigned char v[128];
    size_t n = seal("verify-token-value", v, sizeof(v));
    char out[128];
    size_t len;
    for (size_t k = 0; k != n; ++k)
        cr_assert_eq(secrets_decrypt(CTX, v, k, out, sizeof(out), &len, NULL), -1, "length %zu", k);
    v[n] = 0;
    cr_assert_eq(secrets_decrypt(CTX, v, n + 1, out, sizeof(out), &len, NULL), -1);
    cr_assert_eq(secrets_decrypt(CTX, NULL, n, out, sizeof(out), &len, NULL), -1);
    /* an output buffer without room for the plaintext and its NUL */
    cr_assert_eq(secrets_decrypt(CTX, v, n, out, n - SECRETS_OVERHEAD, &len, NULL), -1);
    cr_assert_eq(secrets_decrypt(CTX, v, n, out, n - SECRETS_OVERHEAD + 1, &len, NULL), 0);
    /* and sealing into too little room */
    cr_assert_eq(secrets_encrypt(CTX, "abc", 3, v, 3 + SECRETS_OVERHEAD - 1, &len), -1);
}

Test(secrets, wrong_key_context_or_version_fails)
{
    init_or_fail(HEX_KEY, NULL);
    unsigned char v[128], w[128];
    size_t n = seal("a-value-sealed-with-the-first-key", v, sizeof(v));
    char out[128];
    size_t len;
    /* another column's context */
    cr_assert_eq(secrets_decrypt("connections.app_secret", v, n, out, sizeof(out), &len, NULL), -1);
    cr_assert_eq(secrets_decrypt(NULL, v, n, out, sizeof(out), &len, NULL), -1);
    cr_assert_eq(secrets_decrypt("", v, n, out, sizeof(out), &len, NULL), -1);
    /* a key id naming a key that is not configured */
    memcpy(w, v, n);
    w[1] ^= 0xff;
    cr_assert_eq(secrets_decrypt(CTX, w, n, out, sizeof(out), &len, NULL), -1);
    /* another version */
    memcpy(w, v, n);
    w[0] = 2;
    cr_assert_eq(secrets_decrypt(CTX, w, n, out, sizeof(out), &len, NULL), -1);
    cr_assert_eq(secrets_value_key_id(w, n, (char[SECRETS_KEY_ID_TEXT]){0}), -1);
    /* another key altogether */
    init_or_fail("a different key entirely, hashed", NULL);
    cr_assert_eq(secrets_decrypt(CTX, v, n, out, sizeof(out), &len, NULL), -1);
    /* the right key id but another key behind it: the tag check refuses it */
    char id[SECRETS_KEY_ID_TEXT];
    unsigned char raw[SECRETS_KEY_ID_BYTES];
    secrets_key_id(SECRETS_KEY_CURRENT, id);
    cr_assert_eq(sodium_hex2bin(raw, sizeof(raw), id, 8, NULL, NULL, NULL), 0);
    memcpy(w, v, n);
    memcpy(w + 1, raw, SECRETS_KEY_ID_BYTES);
    cr_assert_eq(secrets_decrypt(CTX, w, n, out, sizeof(out), &len, NULL), -1);
}

Test(secrets, rotation_between_two_keys)
{
    init_or_fail("old passphrase for the tests", NULL);
    unsigned char v[128];
    size_t n = seal("sealed-under-the-old-key", v, sizeof(v));
    char old_id[SECRETS_KEY_ID_TEXT], id[SECRETS_KEY_ID_TEXT];
    secrets_key_id(SECRETS_KEY_CURRENT, old_id);

    init_or_fail(HEX_KEY, "old passphrase for the tests");
    cr_assert(secrets_has_previous());
    secrets_key_id(SECRETS_KEY_PREVIOUS, id);
    cr_assert_str_eq(id, old_id);
    char out[128];
    size_t len;
    secrets_key_t which = SECRETS_KEY_CURRENT;
    cr_assert_eq(secrets_decrypt(CTX, v, n, out, sizeof(out), &len, &which), 0);
    cr_assert_eq(which, SECRETS_KEY_PREVIOUS);
    cr_assert_str_eq(out, "sealed-under-the-old-key");
    /* re-sealed, it is under the new key */
    unsigned char w[128];
    size_t m = seal(out, w, sizeof(w));
    cr_assert_eq(secrets_decrypt(CTX, w, m, out, sizeof(out), &len, &which), 0);
    cr_assert_eq(which, SECRETS_KEY_CURRENT);

    /* without the previous key, the old value no longer opens; the new one does */
    init_or_fail(HEX_KEY, NULL);
    cr_assert_eq(secrets_decrypt(CTX, v, n, out, sizeof(out), &len, NULL), -1);
    cr_assert_eq(secrets_decrypt(CTX, w, m, out, sizeof(out), &len, NULL), 0);

    secrets_shutdown();
    cr_assert_not(secrets_ready());
    cr_assert_eq(secrets_decrypt(CTX, w, m, out, sizeof(out), &len, NULL), -1);
}

/* Initialises with text and checks that the derived key is `want`. */
static void expect_key(const char *text, const unsigned char want[32])
{
    char got[SECRETS_KEY_ID_TEXT], id[SECRETS_KEY_ID_TEXT];
    init_or_fail(text, NULL);
    secrets_key_id(SECRETS_KEY_CURRENT, got);
    expected_id(want, id);
    cr_assert_str_eq(got, id, "key text '%s'", text);
}

Test(secrets, derivation_hex_base64_hashed)
{
    unsigned char key[32], hashed[32];
    key_bytes(key);
    expect_key(HEX_KEY, key);
    /* upper-case hex too */
    expect_key("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", key);
    /* base64 of the same 32 bytes, in every variant */
    char b64[64];
    static const int variants[] = {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                                   sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (size_t i = 0; i != 4; ++i) {
        sodium_bin2base64(b64, sizeof(b64), key, 32, variants[i]);
        expect_key(b64, key);
    }
    /* a key whose base64 uses '+' and '/' (or '-' and '_') */
    unsigned char k2[32];
    memset(k2, 0xfb, sizeof(k2));
    sodium_bin2base64(b64, sizeof(b64), k2, 32, sodium_base64_VARIANT_ORIGINAL);
    cr_assert(strpbrk(b64, "+/") != NULL);
    expect_key(b64, k2);
    sodium_bin2base64(b64, sizeof(b64), k2, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    expect_key(b64, k2);
    /* anything else is SHA-256 of the text: a passphrase, 63 hex digits, base64 of 31 or 33 bytes */
    static const char *const others[] = {
        "correct horse battery staple",
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g",
        " " HEX_KEY,
        HEX_KEY "\n",
        "x",
    };
    for (size_t i = 0; i != sizeof(others) / sizeof(others[0]); ++i) {
        crypto_hash_sha256(hashed, (const unsigned char *)others[i], strlen(others[i]));
        expect_key(others[i], hashed);
    }
}

/* Counts occurrences of needle in the file at path. */
static int count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, needle) != NULL)
            ++n;
    fclose(f);
    return n;
}

Test(secrets, hashing_warning_is_logged_once_per_process)
{
    char path[] = "/tmp/unit_secrets_log_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    int saved = dup(2);
    dup2(fd, 2);
    for (int i = 0; i != 5; ++i)
        secrets_init("a passphrase, not a key", "another passphrase");
    secrets_init(HEX_KEY, NULL); /* a key used as is warns about nothing */
    dup2(saved, 2);
    close(saved);
    close(fd);
    int current = count_in_file(path, "ENCRYPTION_KEY was hashed to 32 bytes");
    int previous = count_in_file(path, "ENCRYPTION_KEY_PREVIOUS was hashed to 32 bytes");
    int lines = count_in_file(path, "\"level\":\"warn\"");
    unlink(path);
    cr_assert_eq(current, 1, "warning logged %d times", current);
    cr_assert_eq(previous, 1);
    cr_assert_eq(lines, 2);
}

Test(secrets, masks)
{
    char out[SECRETS_MASK_MAX];
    cr_assert_eq(secrets_mask("EAAGabcdefghijklmnopabcd", 24, out, sizeof(out)), strlen("••••abcd"));
    cr_assert_str_eq(out, "••••abcd");
    cr_assert_eq(secrets_mask("123456789abc", 12, out, sizeof(out)), strlen("••••9abc"));
    cr_assert_str_eq(out, "••••9abc");
    /* short secrets show nothing of themselves */
    secrets_mask("12345678901", 11, out, sizeof(out));
    cr_assert_str_eq(out, "••••••••");
    secrets_mask("abc", 3, out, sizeof(out));
    cr_assert_str_eq(out, "••••••••");
    secrets_mask("", 0, out, sizeof(out));
    cr_assert_str_eq(out, "••••••••");
    secrets_mask(NULL, 0, out, sizeof(out));
    cr_assert_str_eq(out, "••••••••");
    /* the last 4 characters, not bytes */
    const char *utf8 = "senha-secreta-ção€😀";
    secrets_mask(utf8, strlen(utf8), out, sizeof(out));
    cr_assert_str_eq(out, "••••ão€😀");
    /* invalid UTF-8 or control characters: fully masked */
    secrets_mask("0123456789abcde\xff", 16, out, sizeof(out));
    cr_assert_str_eq(out, "••••••••");
    secrets_mask("0123456789abc\n", 14, out, sizeof(out));
    cr_assert_str_eq(out, "••••••••");
    secrets_mask("0123456789abc\xe2\x80", 15, out, sizeof(out));
    cr_assert_str_eq(out, "••••••••");
    /* only len bytes are read */
    secrets_mask("0123456789abcdefSECRET", 16, out, sizeof(out));
    cr_assert_str_eq(out, "••••cdef");
    /* too small an output */
    cr_assert_eq(secrets_mask("0123456789abcdef", 16, out, SECRETS_MASK_MAX - 1), 0);
    /* masks fit the database's check: 8 characters */
    cr_assert_eq(SECRETS_OVERHEAD, 45);
}
