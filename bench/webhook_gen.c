/*
 * webhook-gen - signed Meta webhook payloads for bench/webhooks.sh.
 *
 * usage: webhook-gen SECRET PHONE_NUMBER_ID COUNT CONTACTS PREFIX
 *
 * Writes COUNT lines "<X-Hub-Signature-256 value> <payload>": one inbound text message
 * each, shaped like Meta's documented sample, from CONTACTS contacts in turn, with
 * wamids PREFIX.<n> (unique, so each one is a new message), signed with SECRET over
 * exactly the bytes written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta/webhook.h"

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: webhook-gen SECRET PHONE_NUMBER_ID COUNT CONTACTS PREFIX\n\n"
               "Writes COUNT lines \"<X-Hub-Signature-256> <payload>\": inbound text webhooks from\n"
               "CONTACTS contacts in turn, wamids PREFIX.<n>, signed with SECRET (bench/webhooks.sh).\n");
        return 0;
    }
    if (argc != 6) {
        fprintf(stderr, "usage: webhook-gen SECRET PHONE_NUMBER_ID COUNT CONTACTS PREFIX (--help for more)\n");
        return 2;
    }
    const char *secret = argv[1], *phone = argv[2], *prefix = argv[5];
    long count = strtol(argv[3], NULL, 10), contacts = strtol(argv[4], NULL, 10);
    if (count < 1 || contacts < 1 || contacts > 99999999) {
        fprintf(stderr, "webhook-gen: COUNT and CONTACTS must be positive\n");
        return 2;
    }
    char body[2048], sig[72];
    for (long i = 0; i < count; ++i) {
        long c = i % contacts;
        int n = snprintf(body, sizeof(body),
                         "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"102290129340398\",\"changes\":"
                         "[{\"value\":{\"messaging_product\":\"whatsapp\",\"metadata\":{\"display_phone_number\":"
                         "\"15550783881\",\"phone_number_id\":\"%s\"},\"contacts\":[{\"profile\":{\"name\":\"Bench "
                         "Contact %ld\"},\"wa_id\":\"5511%08ld\"}],\"messages\":[{\"from\":\"5511%08ld\",\"id\":"
                         "\"wamid.%s.%ld\",\"timestamp\":\"1750000000\",\"type\":\"text\",\"text\":{\"body\":"
                         "\"Message %ld: does it come in another color?\"}}]},\"field\":\"messages\"}]}]}",
                         phone, c, c, c, prefix, i, i);
        meta_signature(secret, strlen(secret), body, (size_t)n, sig);
        printf("%s %s\n", sig, body);
    }
    return ferror(stdout) ? 1 : 0;
}
