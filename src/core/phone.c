/*
 * phone.c - the phone number normaliser (see phone.h for the accepted formats).
 *
 * One pass over the bytes with a tiny state machine: what came before decides whether
 * a separator or parenthesis may come next, so "55--11", "-55", "(55", "55)" and
 * "5(5(5))" are refused rather than silently cleaned. Digits are collected into a
 * fixed buffer that is never overrun; the international prefix is removed afterwards.
 */
#include "core/phone.h"

#include <string.h>

#define PHONE_DIGITS_MIN 7
#define PHONE_DIGITS_MAX 15

/* What the previous significant (non-space) character was. */
enum { PHONE_START, PHONE_DIGIT, PHONE_SEP, PHONE_OPEN, PHONE_CLOSE };

int phone_normalize(const char *in, size_t len, char out[PHONE_E164_SIZE])
{
    /* room for the longest digit run that can still be valid: "00" + 15 digits */
    char digits[PHONE_DIGITS_MAX + 2];
    size_t n = 0, i = 0;
    int prev = PHONE_START, open = 0, had_parens = 0, plus = 0;

    out[0] = '\0';
    if (in == NULL || len == 0 || len > PHONE_INPUT_MAX)
        return -1;
    while (i < len && in[i] == ' ')
        ++i;
    if (i < len && in[i] == '+') {
        plus = 1;
        ++i;
    }
    for (; i < len; ++i) {
        char c = in[i];
        if (c >= '0' && c <= '9') {
            if (n == sizeof(digits))
                return -1;
            digits[n++] = c;
            prev = PHONE_DIGIT;
        } else if (c == ' ') {
            continue;
        } else if (c == '-' || c == '.') {
            if (prev != PHONE_DIGIT && prev != PHONE_CLOSE)
                return -1;
            prev = PHONE_SEP;
        } else if (c == '(') {
            if (open || had_parens || prev == PHONE_CLOSE)
                return -1;
            open = had_parens = 1;
            prev = PHONE_OPEN;
        } else if (c == ')') {
            if (!open || prev != PHONE_DIGIT)
                return -1;
            open = 0;
            prev = PHONE_CLOSE;
        } else {
            return -1;
        }
    }
    if (open || (prev != PHONE_DIGIT && prev != PHONE_CLOSE))
        return -1;

    const char *d = digits;
    if (!plus && n >= 2 && d[0] == '0' && d[1] == '0') {
        d += 2;
        n -= 2;
    }
    if (n < PHONE_DIGITS_MIN || n > PHONE_DIGITS_MAX || d[0] == '0')
        return -1;
    memcpy(out, d, n);
    out[n] = '\0';
    return 0;
}
