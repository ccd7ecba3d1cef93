/*
 * fake.h - what the fuzz targets run endpoint code on: a request without a server, and
 * recorders in place of the layers a handler ends in.
 *
 * A handler's job, as far as outside bytes go, is to validate them and then either
 * reply (http/reply.h) or hand one statement to PostgreSQL (api/db.h, api/cache.h).
 * fake.c implements those three headers by recording what the handler did, so the
 * real handlers run unchanged with nothing behind them: no loop, no database, no
 * Redis. The build links fake.o instead of src/http/reply.c, src/api/db.c and
 * src/api/cache.c (see fuzz.mk); a statement's callback never runs.
 *
 * Every recorder checks the contracts the real layer relies on, and traps when one is
 * broken: one reply per request, error text (a 400's field too) is UTF-8, a
 * statement gets as many parameters as it declares, text parameters are UTF-8
 * without NUL (they reach PostgreSQL as text).
 */
#ifndef CONVERSA_FUZZ_FAKE_H
#define CONVERSA_FUZZ_FAKE_H

#include <stddef.h>
#include <stdint.h>

#include "http/server.h"
#include "store/pg.h"

/* Traps (after naming the check on stderr) when cond is false: libFuzzer keeps the input. */
#define FUZZ_CHECK(cond)                                                                                               \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            fuzz_fail(__FILE__, __LINE__, #cond);                                                                      \
    } while (0)

#define FUZZ_PARAMS_MAX 32

/** A statement parameter as the handler gave it, copied: value NULL is SQL NULL. */
typedef struct fuzz_param {
    const char *value; /* NUL-terminated copy (binary values too) */
    size_t len;
    int binary;
} fuzz_param_t;

/** What a handler did with a request. */
typedef struct fuzz_outcome {
    int replies;         /* replies and statements handed over: exactly one when the handler is done */
    int status;          /* the reply's status; 0 when a statement was handed over */
    const char *field;   /* a 400's field */
    const char *code;    /* an error's code */
    char message[512];   /* an error's message, as the real layer formats it */
    const char *variant; /* api_cache_reply's variant */
    const pg_stmt_t *stmt;
    size_t nparams;
    fuzz_param_t params[FUZZ_PARAMS_MAX];
} fuzz_outcome_t;

/** Reports a failed FUZZ_CHECK and traps. */
__attribute__((noreturn)) void fuzz_fail(const char *file, int line, const char *what);

/**
 * A request for method and path (with its query, if any) and body, each copied into
 * a buffer of exactly its size (so ASan sees a read past the end). The caller is
 * company 1, user 2, from 127.0.0.1. Release with fuzz_request_free().
 */
http_request_t *fuzz_request_new(const char *method, const void *path, size_t path_len, const void *body,
                                 size_t body_len);

void fuzz_request_free(http_request_t *r);

/** Sets path parameter name (a static string) to value (copied into the pool), as the router would. */
void fuzz_request_param(http_request_t *r, const char *name, const char *value, size_t len);

/** The request's body buffer as the handler left it (handlers of secrets wipe it). */
const unsigned char *fuzz_request_body(http_request_t *r, size_t *len);

/** What the handler did so far. */
fuzz_outcome_t *fuzz_outcome(http_request_t *r);

/**
 * Checks that the handler replied or handed over a statement exactly once; returns the
 * outcome. With FUZZ_TRACE set in the environment, prints it (replaying an input).
 */
fuzz_outcome_t *fuzz_expect_done(http_request_t *r);

/** Whether s (n bytes) is valid UTF-8 per RFC 3629; written apart from src/ to check it. */
int fuzz_utf8_ok(const void *s, size_t n);

/** Percent-encodes every byte of in into out (3 * n + 1 bytes); returns the length written. */
size_t fuzz_percent_encode(const void *in, size_t n, char *out);

#endif
