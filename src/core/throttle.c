#include "core/throttle.h"
#include "core/util.h"

#include <pthread.h>
#include <string.h>

#define THROTTLE_SLOTS   8192
#define THROTTLE_PROBES  16
#define THROTTLE_KEY_MAX 128

typedef struct throttle_slot {
    char key[THROTTLE_KEY_MAX];
    size_t len;
    uint64_t reset_ns; /* when the window or the block ends; 0 = free */
    unsigned count;
} throttle_slot_t;

static pthread_mutex_t throttle_lock = PTHREAD_MUTEX_INITIALIZER;
static throttle_slot_t throttle_slots[THROTTLE_SLOTS];

unsigned throttle_hit(const char *key, size_t len, unsigned limit, uint64_t window_ms, uint64_t block_ms,
                      uint64_t *ms_left)
{
    if (len > THROTTLE_KEY_MAX)
        len = THROTTLE_KEY_MAX;
    uint64_t now = util_now_ns();
    size_t h = (size_t)(util_hash(key, len) % THROTTLE_SLOTS);
    pthread_mutex_lock(&throttle_lock);
    throttle_slot_t *slot = NULL, *soonest = NULL;
    for (size_t i = 0; i != THROTTLE_PROBES; ++i) {
        throttle_slot_t *s = &throttle_slots[(h + i) % THROTTLE_SLOTS];
        if (s->len == len && memcmp(s->key, key, len) == 0) {
            slot = s;
            break;
        }
        if (soonest == NULL || s->reset_ns < soonest->reset_ns)
            soonest = s;
    }
    if (slot == NULL) {
        slot = soonest;
        memcpy(slot->key, key, len);
        slot->len = len;
        slot->reset_ns = 0;
    }
    if (now >= slot->reset_ns) {
        slot->reset_ns = now + window_ms * 1000000u;
        slot->count = 0;
    }
    unsigned count = ++slot->count;
    if (count == limit + 1 && block_ms != 0)
        slot->reset_ns = now + block_ms * 1000000u;
    *ms_left = (slot->reset_ns - now + 999999u) / 1000000u;
    pthread_mutex_unlock(&throttle_lock);
    return count;
}

void throttle_reset(void)
{
    pthread_mutex_lock(&throttle_lock);
    memset(throttle_slots, 0, sizeof(throttle_slots));
    pthread_mutex_unlock(&throttle_lock);
}
