/*
 * Unit tests of phone_normalize(): the human formats it must accept, and everything
 * it must refuse, including inputs that are not NUL-terminated or carry NUL bytes.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/phone.h"

static void expect_ok(const char *in, const char *want)
{
    char out[PHONE_E164_SIZE];
    memset(out, 'x', sizeof(out));
    int rc = phone_normalize(in, strlen(in), out);
    cr_assert_eq(rc, 0, "'%s' should be accepted", in);
    cr_assert_str_eq(out, want, "'%s' gave '%s', expected '%s'", in, out, want);
}

static void expect_bad(const char *in)
{
    char out[PHONE_E164_SIZE];
    memset(out, 'x', sizeof(out));
    int rc = phone_normalize(in, strlen(in), out);
    cr_assert_eq(rc, -1, "'%s' should be refused (got '%s')", in, out);
    cr_assert_str_eq(out, "", "a refused input leaves out empty");
}

Test(phone, human_formats_of_one_number)
{
    static const char *const forms[] = {
        "5511987654321",           "+5511987654321",        "+55 11 98765-4321",   "+55 (11) 98765-4321",
        "0055 11 98765 4321",      "005511987654321",       "55-11-987654321",     "55.11.98765.4321",
        "(55) 11 98765-4321",      "+55(11)98765-4321",     " +55 11 98765 4321 ", "+ 55 11 98765 4321",
        "55 11 9 8 7 6 5 4 3 2 1", "00 55 (11) 98765.4321", "+(55) 11 987654321",  "55  11   98765-4321",
    };
    for (size_t i = 0; i != sizeof(forms) / sizeof(forms[0]); ++i)
        expect_ok(forms[i], "5511987654321");
}

Test(phone, other_countries_and_lengths)
{
    expect_ok("+1 (415) 555-2671", "14155552671");
    expect_ok("+44 20 7946 0958", "442079460958");
    expect_ok("0044 20 7946 0958", "442079460958");
    expect_ok("+49 30 901820", "4930901820");
    expect_ok("1234567", "1234567");                 /* 7 digits: the shortest */
    expect_ok("123456789012345", "123456789012345"); /* 15 digits: the longest */
    expect_ok("00123456789012345", "123456789012345");
    expect_ok("+123456789012345", "123456789012345");
    expect_ok("(1) 234-5678", "12345678");
}

Test(phone, refuses_letters_and_other_characters)
{
    static const char *const bad[] = {
        "+55 11 98765-432a", "call 5511987654321", "5511987654321x", "55/11/987654321",         "55_11_987654321",
        "55,11,987654321",   "+55\t11987654321",   "55#11987654321", "55*11987654321",          "５５11987654321",
        "+55 11 98765–4321", "tel:+5511987654321", "5511987654321;", "+55 11 98765-4321 ext 2",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        expect_bad(bad[i]);
}

Test(phone, refuses_wrong_lengths)
{
    expect_bad("");
    expect_bad(" ");
    expect_bad("+");
    expect_bad("00");
    expect_bad("123456"); /* 6 digits */
    expect_bad("+123456");
    expect_bad("00123456");         /* 6 after the prefix */
    expect_bad("1234567890123456"); /* 16 digits */
    expect_bad("+1234567890123456");
    expect_bad("001234567890123456");   /* 16 after the prefix */
    expect_bad("12345678901234567890"); /* long runs are cut short, not overrun */
    expect_bad("5 5 1 1 9 8 7 6 5 4 3 2 1 0 9 8 7 6 5 4 3 2 1 0 9 8 7 6 5 4");
}

Test(phone, refuses_leading_zero_after_prefixes)
{
    expect_bad("011 98765 4321"); /* a national trunk prefix */
    expect_bad("0 11 98765 4321");
    expect_bad("+0 11 98765 4321");
    expect_bad("+0055 11 98765 4321"); /* '+' and "00" together */
    expect_bad("000 55 11 98765 4321");
    expect_bad("0005511987654321");
}

Test(phone, refuses_misplaced_punctuation)
{
    static const char *const bad[] = {
        "55--11-987654321",    "-5511987654321",    "5511987654321-",     ".5511987654321",    "5511987654321.",
        "55-.11987654321",     "55+11987654321",    "++5511987654321",    "5511987654321+",    "(55 11 987654321",
        "55) 11 987654321",    "55 (11 987654321",  "()5511987654321",    "(55)(11)987654321", "((55)) 11987654321",
        "55 (11) (9)87654321", "(-55) 11987654321", "+55 11 98765-4321(", "55(11)-",           "+ - 5511987654321",
        "55 11 98765 4321 (",  "(55)11987654321)",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i)
        expect_bad(bad[i]);
}

Test(phone, refuses_nul_bytes_and_respects_len)
{
    char out[PHONE_E164_SIZE];
    static const char with_nul[] = "55119876\0"
                                   "54321";
    cr_assert_eq(phone_normalize(with_nul, sizeof(with_nul) - 1, out), -1);
    /* only len bytes are read: the tail beyond is not part of the number */
    static const char longer[] = "5511987654321garbage";
    cr_assert_eq(phone_normalize(longer, 13, out), 0);
    cr_assert_str_eq(out, "5511987654321");
    /* not NUL-terminated, exactly len bytes in a heap block (ASan checks the reads) */
    char *exact = malloc(9);
    memcpy(exact, "+4930901820", 9); /* "+49309018" */
    cr_assert_eq(phone_normalize(exact, 9, out), 0);
    cr_assert_str_eq(out, "49309018");
    free(exact);
    cr_assert_eq(phone_normalize(NULL, 5, out), -1);
    cr_assert_eq(phone_normalize("5511987654321", 0, out), -1);
}

Test(phone, refuses_inputs_over_the_limit)
{
    char in[PHONE_INPUT_MAX + 2], out[PHONE_E164_SIZE];
    memset(in, ' ', sizeof(in));
    memcpy(in, "5511987654321", 13);
    cr_assert_eq(phone_normalize(in, PHONE_INPUT_MAX, out), 0, "trailing spaces within the limit are fine");
    cr_assert_eq(phone_normalize(in, PHONE_INPUT_MAX + 1, out), -1);
}

Test(phone, every_single_byte_is_handled)
{
    /* a valid number with each possible byte appended: a space or a 14th digit keep it valid */
    char in[16], out[PHONE_E164_SIZE];
    for (int b = 0; b != 256; ++b) {
        memcpy(in, "5511987654321", 13);
        in[13] = (char)b;
        int rc = phone_normalize(in, 14, out);
        int valid = b == ' ' || (b >= '0' && b <= '9');
        cr_assert_eq(rc, valid ? 0 : -1, "byte %d", b);
        if (valid)
            cr_assert_eq(strlen(out), b == ' ' ? 13u : 14u);
    }
}
