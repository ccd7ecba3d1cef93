#include "core/timer.h"
#include "core/util.h"

static void loop_timer_fire(h2o_timeout_entry_t *entry)
{
    loop_timer_t *t = util_container_of(entry, loop_timer_t, entry);
    t->cb(t);
}

void loop_timer_init(loop_timer_t *t, h2o_loop_t *loop, loop_timer_cb cb)
{
    *t = (loop_timer_t){.loop = loop, .cb = cb};
    t->entry.cb = loop_timer_fire;
}

void loop_timer_start(loop_timer_t *t, uint64_t ms)
{
    loop_timer_stop(t);
    if (t->initialized && t->ms != ms) {
        h2o_timeout_dispose(t->loop, &t->group);
        t->initialized = 0;
    }
    if (!t->initialized) {
        h2o_timeout_init(t->loop, &t->group, ms);
        t->ms = ms;
        t->initialized = 1;
    }
    h2o_timeout_link(t->loop, &t->group, &t->entry);
}

void loop_timer_stop(loop_timer_t *t)
{
    if (h2o_timeout_is_linked(&t->entry))
        h2o_timeout_unlink(&t->entry);
}

int loop_timer_armed(const loop_timer_t *t)
{
    return h2o_timeout_is_linked((h2o_timeout_entry_t *)&t->entry);
}

void loop_timer_dispose(loop_timer_t *t)
{
    loop_timer_stop(t);
    if (t->initialized) {
        h2o_timeout_dispose(t->loop, &t->group);
        t->initialized = 0;
    }
}
