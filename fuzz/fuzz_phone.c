/*
 * fuzz_phone.c - phone_normalize() (src/core/phone.c) on any bytes.
 *
 * Numbers come from request bodies (contacts' phone_number), query strings
 * (/api/v1/contacts/lookup?phone=) and Meta's payloads. Checked, per phone.h:
 *   - a refusal leaves out empty; so does anything over PHONE_INPUT_MAX bytes;
 *   - an accepted number is 7 to 15 ASCII digits, NUL-terminated, not starting with 0,
 *     made of the input's digits in order, less a leading "00" when there was no '+';
 *   - normalising is idempotent, and "+<result>" and "00<result>" give the result back,
 *     so a stored number looks itself up.
 */
#include "core/phone.h"
#include "fake.h"

#include <stdint.h>
#include <string.h>

/* Normalises s and checks that it gives want. */
static void phone_expect(const char *s, const char *want)
{
    char out[PHONE_E164_SIZE];
    FUZZ_CHECK(phone_normalize(s, strlen(s), out) == 0);
    FUZZ_CHECK(strcmp(out, want) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[PHONE_E164_SIZE + 8];
    memset(out, 'x', sizeof(out));
    int rc = phone_normalize((const char *)data, size, out);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1 && out[0] == '\0');
        return 0;
    }
    FUZZ_CHECK(rc == 0 && size <= PHONE_INPUT_MAX);
    size_t n = strnlen(out, PHONE_E164_SIZE);
    FUZZ_CHECK(n < PHONE_E164_SIZE && n >= 7 && n <= 15 && out[0] != '0');
    FUZZ_CHECK(strspn(out, "0123456789") == n);
    FUZZ_CHECK(out[PHONE_E164_SIZE] == 'x'); /* nothing written past the room phone.h promises */

    /* the input's digits in order; at most PHONE_INPUT_MAX of them */
    char digits[PHONE_INPUT_MAX + 1];
    size_t nd = 0;
    for (size_t i = 0; i != size; ++i)
        if (data[i] >= '0' && data[i] <= '9')
            digits[nd++] = (char)data[i];
    digits[nd] = '\0';
    int plus = memchr(data, '+', size) != NULL;
    FUZZ_CHECK(strcmp(out, digits) == 0 ||
               (!plus && nd == n + 2 && memcmp(digits, "00", 2) == 0 && strcmp(out, digits + 2) == 0));

    char again[PHONE_E164_SIZE + 2];
    phone_expect(out, out);
    again[0] = '+';
    memcpy(again + 1, out, n + 1);
    phone_expect(again, out);
    memcpy(again, "00", 2);
    memcpy(again + 2, out, n + 1);
    phone_expect(again, out);
    return 0;
}
