#include "meta/webhook.h"
#include "core/util.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>

/* ---- signatures ---- */

static void meta_hmac(const char *secret, size_t secret_len, const void *body, size_t len,
                      unsigned char mac[crypto_auth_hmacsha256_BYTES])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, secret_len);
    crypto_auth_hmacsha256_update(&st, body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof(st));
}

int meta_signature_ok(const char *secret, size_t secret_len, const void *body, size_t len, const char *header)
{
    static const char prefix[] = "sha256=";
    if (header == NULL || strncmp(header, prefix, sizeof(prefix) - 1) != 0)
        return 0;
    const char *hex = header + sizeof(prefix) - 1;
    if (strlen(hex) != 2 * crypto_auth_hmacsha256_BYTES)
        return 0;
    unsigned char given[crypto_auth_hmacsha256_BYTES], mac[crypto_auth_hmacsha256_BYTES];
    size_t n = 0;
    if (sodium_hex2bin(given, sizeof(given), hex, strlen(hex), NULL, &n, NULL) != 0 || n != sizeof(given))
        return 0;
    meta_hmac(secret, secret_len, body, len, mac);
    int ok = sodium_memcmp(given, mac, sizeof(mac)) == 0;
    sodium_memzero(mac, sizeof(mac));
    return ok;
}

void meta_signature(const char *secret, size_t secret_len, const void *body, size_t len, char out[72])
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    meta_hmac(secret, secret_len, body, len, mac);
    memcpy(out, "sha256=", 7);
    sodium_bin2hex(out + 7, 65, mac, sizeof(mac));
}

/* ---- splitting by contact ---- */

/*
 * The contact an item concerns: "from" of a message, "recipient_id" of a status; none
 * for statuses when they are set apart (see webhook.h).
 */
static const char *meta_item_contact(json_t *item, const char *list, int statuses_apart)
{
    int message = strcmp(list, "messages") == 0;
    if (!message && statuses_apart)
        return NULL;
    json_t *v = json_object_get(item, message ? "from" : "recipient_id");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *meta_array(json_t *obj, const char *name)
{
    json_t *a = json_object_get(obj, name);
    return json_is_array(a) ? a : NULL;
}

/*
 * Collects the distinct contacts of root, in order of first appearance; returns their
 * count, or SIZE_MAX when root holds more than META_MAX_ITEMS messages and statuses
 * (splitting is quadratic in them, so the bound is checked before anything is built).
 */
static size_t meta_contacts(json_t *root, const char ***out, int *has_other, int statuses_apart)
{
    static const char *const lists[] = {"messages", "statuses"};
    const char **seen = NULL;
    size_t n = 0, cap = 0, i, j, k, l;
    json_t *entry, *change, *item;
    *has_other = 0;
    size_t total = 0;
    json_array_foreach (meta_array(root, "entry"), i, entry) {
        json_array_foreach (meta_array(entry, "changes"), j, change) {
            json_t *value = json_object_get(change, "value");
            total += json_array_size(meta_array(value, "messages")) + json_array_size(meta_array(value, "statuses"));
        }
    }
    if (total > META_MAX_ITEMS) {
        *out = NULL;
        return SIZE_MAX;
    }
    json_array_foreach (meta_array(root, "entry"), i, entry) {
        json_array_foreach (meta_array(entry, "changes"), j, change) {
            json_t *value = json_object_get(change, "value");
            int items = 0;
            for (l = 0; l < 2; ++l) {
                json_array_foreach (meta_array(value, lists[l]), k, item) {
                    const char *c = meta_item_contact(item, lists[l], statuses_apart);
                    items = 1;
                    if (c == NULL) {
                        *has_other = 1;
                        continue;
                    }
                    size_t m;
                    for (m = 0; m < n && strcmp(seen[m], c) != 0; ++m)
                        ;
                    if (m < n)
                        continue;
                    if (n == cap) {
                        cap = cap ? 2 * cap : 8;
                        seen = util_realloc(seen, cap * sizeof(*seen));
                    }
                    seen[n++] = c;
                }
            }
            if (!items)
                *has_other = 1;
        }
    }
    *out = seen;
    return n;
}

/* Whether item belongs to contact (NULL: the part of items and changes with no contact). */
static int meta_item_is(json_t *item, const char *list, const char *contact)
{
    const char *c = meta_item_contact(item, list, 1);
    return contact == NULL ? c == NULL : (c != NULL && strcmp(c, contact) == 0);
}

/* The document of root that concerns contact only; NULL when nothing does. */
static json_t *meta_part_doc(json_t *root, const char *contact)
{
    static const char *const lists[] = {"messages", "statuses"};
    json_t *doc = json_copy(root); /* shallow: every member but "entry" kept as is */
    json_t *entries = json_array();
    size_t i, j, k, l;
    json_t *entry, *change, *item;
    json_array_foreach (meta_array(root, "entry"), i, entry) {
        json_t *changes = json_array();
        json_array_foreach (meta_array(entry, "changes"), j, change) {
            json_t *value = json_object_get(change, "value");
            json_t *nv = json_is_object(value) ? json_copy(value) : NULL;
            int any = 0, items = 0;
            for (l = 0; nv != NULL && l < 2; ++l) {
                json_t *src = meta_array(value, lists[l]);
                if (src == NULL)
                    continue;
                json_t *dst = json_array();
                json_array_foreach (src, k, item) {
                    items = 1;
                    if (meta_item_is(item, lists[l], contact))
                        json_array_append(dst, item);
                }
                any |= json_array_size(dst) > 0;
                if (json_array_size(dst) > 0)
                    json_object_set_new(nv, lists[l], dst);
                else {
                    json_decref(dst);
                    json_object_del(nv, lists[l]);
                }
            }
            if (contact == NULL && !items)
                any = 1; /* a change of another kind goes with the part without contact */
            if (!any) {
                json_decref(nv);
                continue;
            }
            json_t *profiles = nv != NULL ? meta_array(value, "contacts") : NULL;
            if (profiles != NULL) {
                json_t *keep = json_array();
                json_array_foreach (profiles, k, item) {
                    json_t *w = json_object_get(item, "wa_id");
                    if (contact != NULL && json_is_string(w) && strcmp(json_string_value(w), contact) == 0)
                        json_array_append(keep, item);
                }
                json_object_set_new(nv, "contacts", keep);
            }
            json_t *nc = json_copy(change);
            if (nv != NULL)
                json_object_set_new(nc, "value", nv);
            json_array_append_new(changes, nc);
        }
        if (json_array_size(changes) == 0) {
            json_decref(changes);
            continue;
        }
        json_t *ne = json_copy(entry);
        json_object_set_new(ne, "changes", changes);
        json_array_append_new(entries, ne);
    }
    json_object_set_new(doc, "entry", entries);
    return doc;
}

int meta_split(json_t *root, const char *body, size_t len, meta_part_t **parts)
{
    if (!json_is_object(root))
        return -1;
    const char **contacts;
    int has_other;
    size_t n = meta_contacts(root, &contacts, &has_other, 0);
    if (n == SIZE_MAX)
        return -2;
    if (n + (size_t)has_other > 1) {
        /* several contacts: the messages by contact, the statuses together (a payload
         * of statuses only stays as it came: one part without a contact) */
        free(contacts);
        n = meta_contacts(root, &contacts, &has_other, 1);
    }
    if (n + (size_t)has_other <= 1) {
        meta_part_t *p = util_calloc(1, sizeof(*p));
        p->contact = n == 1 ? util_strdup(contacts[0]) : NULL;
        p->bytes = body;
        p->len = len;
        free(contacts);
        *parts = p;
        return 1;
    }
    size_t total = n + (size_t)has_other;
    meta_part_t *p = util_calloc(total, sizeof(*p));
    for (size_t i = 0; i < total; ++i) {
        const char *c = i < n ? contacts[i] : NULL;
        json_t *doc = meta_part_doc(root, c);
        p[i].contact = c != NULL ? util_strdup(c) : NULL;
        p[i].owned = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (p[i].owned == NULL)
            util_fatal("meta_split: out of memory");
        p[i].bytes = p[i].owned;
        p[i].len = strlen(p[i].owned);
        json_decref(doc);
    }
    free(contacts);
    *parts = p;
    return (int)total;
}

void meta_parts_free(meta_part_t *parts, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        free(parts[i].contact);
        free(parts[i].owned);
    }
    free(parts);
}
