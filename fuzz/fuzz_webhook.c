/*
 * fuzz_webhook.c - what Meta POSTs to /api/webhooks/meta/:slug, through the steps of
 * webhook_accept() (src/api/webhooks.c): the signature over the raw bytes
 * (meta_signature_ok), the depth check (api_json_depth_ok), jansson, and the split by
 * contact (meta_split, src/meta/webhook.c). The input is the body.
 *
 * Checked:
 *   - the body's own signature is accepted; one with a changed digit, a missing or an
 *     extra character, another prefix, or none is refused; and the input's first bytes
 *     taken as a header are accepted only if they are that signature;
 *   - meta_split: -1 exactly for a non-object; otherwise at least one part; a single
 *     part is the body itself, byte for byte; several are re-built documents, each a
 *     JSON object, contacts distinct and first, at most one part without a contact and
 *     last; every message and status of the payload is in exactly one part; a
 *     contact's part holds only its messages and its profiles, the other part no
 *     message that names a sender and no profile; splitting a part again gives one
 *     part, for the same contact when it had one.
 */
#include "api/input.h"
#include "fake.h"
#include "meta/webhook.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char webhook_secret[] = "fuzz-app-secret";

static int webhook_sig_ok(const uint8_t *body, size_t len, const char *header)
{
    return meta_signature_ok(webhook_secret, sizeof(webhook_secret) - 1, body, len, header);
}

static void webhook_signatures(const uint8_t *data, size_t size)
{
    char sig[72], bad[80];
    meta_signature(webhook_secret, sizeof(webhook_secret) - 1, data, size, sig);
    FUZZ_CHECK(strlen(sig) == 71 && strncmp(sig, "sha256=", 7) == 0);
    FUZZ_CHECK(webhook_sig_ok(data, size, sig));
    FUZZ_CHECK(!webhook_sig_ok(data, size, NULL));

    /* one hex digit changed, at a place the input picks */
    size_t at = 7 + size % 64;
    memcpy(bad, sig, sizeof(sig));
    bad[at] = bad[at] == '0' ? '1' : '0';
    FUZZ_CHECK(!webhook_sig_ok(data, size, bad));
    /* a digit short, a character more, another prefix */
    memcpy(bad, sig, sizeof(sig));
    bad[70] = '\0';
    FUZZ_CHECK(!webhook_sig_ok(data, size, bad));
    memcpy(bad, sig, sizeof(sig));
    memcpy(bad + 71, "0", 2);
    FUZZ_CHECK(!webhook_sig_ok(data, size, bad));
    memcpy(bad, sig, sizeof(sig));
    memcpy(bad, "sha1=", 5);
    FUZZ_CHECK(!webhook_sig_ok(data, size, bad));

    /* the input's first bytes as a header: only the real signature may pass */
    size_t n = size < sizeof(bad) - 1 ? size : sizeof(bad) - 1;
    memcpy(bad, data, n);
    bad[n] = '\0';
    if (webhook_sig_ok(data, size, bad))
        FUZZ_CHECK(strcasecmp(bad, sig) == 0);
}

static json_t *webhook_array(json_t *obj, const char *name)
{
    json_t *a = json_object_get(obj, name);
    return json_is_array(a) ? a : NULL;
}

/*
 * Counts the messages and statuses of a payload as meta_split() walks it and, for a
 * part (check), that its items and profiles belong to it (contact NULL: the part without).
 */
static size_t webhook_items(json_t *root, int check, const char *contact)
{
    size_t total = 0, i, j, k;
    json_t *entry, *change, *item;
    json_array_foreach (webhook_array(root, "entry"), i, entry) {
        json_array_foreach (webhook_array(entry, "changes"), j, change) {
            json_t *value = json_object_get(change, "value");
            json_array_foreach (webhook_array(value, "messages"), k, item) {
                const char *from = json_string_value(json_object_get(item, "from"));
                if (check)
                    FUZZ_CHECK(contact == NULL ? from == NULL : from != NULL && strcmp(from, contact) == 0);
                ++total;
            }
            json_array_foreach (webhook_array(value, "statuses"), k, item) {
                FUZZ_CHECK(!check || contact == NULL);
                ++total;
            }
            if (!check)
                continue;
            json_array_foreach (webhook_array(value, "contacts"), k, item) {
                const char *wa_id = json_string_value(json_object_get(item, "wa_id"));
                FUZZ_CHECK(contact != NULL && wa_id != NULL && strcmp(wa_id, contact) == 0);
            }
        }
    }
    return total;
}

/*
 * Splits one part again (root: its bytes parsed, which meta_split only reads): it must
 * stay one part, for the same contact when it had one.
 */
static void webhook_resplit(const meta_part_t *part, json_t *root)
{
    FUZZ_CHECK(json_is_object(root));
    meta_part_t *again;
    int n = meta_split(root, part->bytes, part->len, &again);
    FUZZ_CHECK(n == 1 && again[0].bytes == part->bytes && again[0].len == part->len);
    if (part->contact != NULL)
        FUZZ_CHECK(again[0].contact != NULL && strcmp(again[0].contact, part->contact) == 0);
    meta_parts_free(again, (size_t)n);
}

static void webhook_split(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    if (!api_json_depth_ok(body, size))
        return; /* refused before parsing, as webhook_accept() does */
    json_t *root = json_loadb(body, size, 0, NULL);
    if (root == NULL)
        return;
    meta_part_t *parts = NULL;
    int n = meta_split(root, body, size, &parts);
    if (!json_is_object(root)) {
        FUZZ_CHECK(n == -1);
        json_decref(root);
        return;
    }
    if (n == -2) {
        json_decref(root);
        return; /* over META_MAX_ITEMS: refused whole */
    }
    FUZZ_CHECK(n >= 1 && parts != NULL);
    if (n == 1) {
        FUZZ_CHECK(parts[0].bytes == body && parts[0].len == size && parts[0].owned == NULL);
    } else {
        size_t items = 0;
        for (int i = 0; i < n; ++i) {
            const meta_part_t *p = &parts[i];
            FUZZ_CHECK(p->owned != NULL && p->bytes == p->owned && p->len == strlen(p->owned));
            /* contacts first, each once; the part without a contact, if any, last */
            FUZZ_CHECK(p->contact != NULL || i == n - 1);
            for (int j = 0; p->contact != NULL && j < i; ++j)
                FUZZ_CHECK(strcmp(parts[j].contact, p->contact) != 0);
            json_t *doc = json_loadb(p->bytes, p->len, 0, NULL);
            FUZZ_CHECK(json_is_object(doc));
            items += webhook_items(doc, 1, p->contact);
            webhook_resplit(p, doc); /* the same bytes: parsed once for both */
            json_decref(doc);
        }
        FUZZ_CHECK(items == webhook_items(root, 0, NULL));
    }
    meta_parts_free(parts, (size_t)n);
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    webhook_signatures(data, size);
    webhook_split(data, size);
    return 0;
}
