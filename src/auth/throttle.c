#include "auth/throttle.h"
#include "core/util.h"

#include <pthread.h>
#include <string.h>

#define THROTTLE_SLOTS   8192
#define THROTTLE_PROBES  16
#define THROTTLE_KEY_MAX 128

typedef struct throttle_slot {
    char key[THROTTLE_KEY_MAX];
    size_t len;
    uint64_t window_start_ns;
    unsigned count;
} throttle_slot_t;

static pthread_mutex_t throttle_lock = PTHREAD_MUTEX_INITIALIZER;
static throttle_slot_t throttle_slots[THROTTLE_SLOTS];

unsigned throttle_hit(const char *key, size_t len, unsigned limit, unsigned window_s)
{
    if (len > THROTTLE_KEY_MAX)
        len = THROTTLE_KEY_MAX;
    uint64_t now = util_now_ns(), window = (uint64_t)window_s * 1000000000u;
    size_t h = (size_t)(util_hash(key, len) % THROTTLE_SLOTS);
    unsigned wait = 0;
    pthread_mutex_lock(&throttle_lock);
    throttle_slot_t *slot = NULL, *oldest = NULL;
    for (size_t i = 0; i != THROTTLE_PROBES; ++i) {
        throttle_slot_t *s = &throttle_slots[(h + i) % THROTTLE_SLOTS];
        if (s->len == len && memcmp(s->key, key, len) == 0) {
            slot = s;
            break;
        }
        if (oldest == NULL || s->window_start_ns < oldest->window_start_ns)
            oldest = s;
    }
    if (slot == NULL) {
        slot = oldest;
        memcpy(slot->key, key, len);
        slot->len = len;
        slot->window_start_ns = now;
        slot->count = 0;
    }
    if (now - slot->window_start_ns >= window) {
        slot->window_start_ns = now;
        slot->count = 0;
    }
    if (++slot->count > limit)
        wait = (unsigned)((slot->window_start_ns + window - now + 999999999u) / 1000000000u);
    pthread_mutex_unlock(&throttle_lock);
    return wait;
}

void throttle_reset(void)
{
    pthread_mutex_lock(&throttle_lock);
    memset(throttle_slots, 0, sizeof(throttle_slots));
    pthread_mutex_unlock(&throttle_lock);
}
