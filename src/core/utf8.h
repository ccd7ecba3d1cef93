/*
 * utf8.h - decoding one UTF-8 character, strictly.
 *
 * Refuses what RFC 3629 refuses: bytes that cannot start a character, truncated
 * sequences, overlong forms, surrogates and code points above U+10FFFF. What a caller
 * then accepts (NUL, control characters) is the caller's rule.
 */
#ifndef CONVERSA_CORE_UTF8_H
#define CONVERSA_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/** Decodes the character at p (n bytes available) into *cp; returns its length, or 0 when invalid. */
size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp);

#endif
