/*
 * phone.h - phone numbers as people type them, turned into what WhatsApp uses: E.164
 * digits without the '+' ("5511987654321"), the form contacts.phone_number stores and
 * Meta sends as wa_id.
 *
 * Why here: the API accepts numbers typed by people and pasted from anywhere; one
 * strict normaliser means a number is stored, searched and looked up in one form, so
 * "+55 (11) 98765-4321" and "0055 11 98765 4321" are the same contact.
 *
 * Contract: accepted are digits with single separators (space, '-', '.'), at most one
 * pair of parentheses around digits, surrounding spaces, and one international prefix
 * at the start: '+' or "00". The result has 7 to 15 digits and does not start with 0
 * (a national trunk prefix like "011 ..." is refused, not guessed at). Anything else
 * (letters, other punctuation, NUL bytes, a '+' in the middle, "--", an unclosed
 * parenthesis, more than PHONE_INPUT_MAX bytes) is refused. Pure function: no
 * allocation, no locale, safe on any bytes.
 */
#ifndef CONVERSA_CORE_PHONE_H
#define CONVERSA_CORE_PHONE_H

#include <stddef.h>

/** Longest input considered; longer is refused without being read further. */
#define PHONE_INPUT_MAX 64

/** Room for the result: at most 15 digits and the terminating NUL. */
#define PHONE_E164_SIZE 16

/**
 * Normalises the len bytes at `in` (need not be NUL-terminated) into out as E.164
 * digits without '+', NUL-terminated. Returns 0, or -1 (out is then the empty
 * string) when the input is not a phone number in a format described above.
 */
int phone_normalize(const char *in, size_t len, char out[PHONE_E164_SIZE]);

#endif
