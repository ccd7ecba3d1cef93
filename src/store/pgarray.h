/*
 * pgarray.h - one-dimensional PostgreSQL arrays in the binary wire format.
 *
 * Many rows go to the database in one statement as array parameters
 * (INSERT ... SELECT FROM unnest($1::bigint[], $2::bytea[], ...)); sent in binary,
 * bytes travel as they are: no escaping, no hex doubling, nothing for the server to
 * parse. Build one array per column, then pass pg_array_param() with binary set.
 */
#ifndef CONVERSA_STORE_PGARRAY_H
#define CONVERSA_STORE_PGARRAY_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "store/pg.h"

/* Element type OIDs (pg_type.h). */
#define PG_OID_BYTEA 17
#define PG_OID_INT8  20
#define PG_OID_TEXT  25

typedef struct pg_array {
    strbuf_t buf; /* header (filled by pg_array_param) then elements */
    uint32_t elem_oid;
    uint32_t n;
    int has_null;
} pg_array_t;

/** Starts an empty array of elem_oid elements. */
void pg_array_init(pg_array_t *a, uint32_t elem_oid);

/** Appends an element of len bytes (its binary form); p NULL appends SQL NULL. */
void pg_array_add(pg_array_t *a, const void *p, size_t len);

/** Appends a bigint (PG_OID_INT8 arrays). */
void pg_array_add_i64(pg_array_t *a, int64_t v);

/** Appends every element of src (of the same element type) to dst. */
void pg_array_concat(pg_array_t *dst, const pg_array_t *src);

/** The array as a binary parameter; valid until the array is changed or freed. */
pg_param_t pg_array_param(pg_array_t *a);

void pg_array_free(pg_array_t *a);

#endif
