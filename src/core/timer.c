#include "core/timer.h"
#include "core/util.h"

#include <stdlib.h>

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
    if (ms == 0)
        ms = 1; /* h2o would run a 0 ms entry re-armed from its callback again and again in one pass */
    loop_timer_stop(t);
    if (!(t->initialized[t->cur] && t->ms[t->cur] == ms)) {
        int other = 1 - t->cur;
        if (t->initialized[other] && t->ms[other] != ms) {
            /* not the group being run, if any: the entry fired from group[cur] */
            h2o_timeout_dispose(t->loop, &t->group[other]);
            t->initialized[other] = 0;
        }
        if (!t->initialized[other]) {
            h2o_timeout_init(t->loop, &t->group[other], ms);
            t->ms[other] = ms;
            t->initialized[other] = 1;
        }
        t->cur = other;
    }
    h2o_timeout_link(t->loop, &t->group[t->cur], &t->entry);
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
    for (int i = 0; i != 2; ++i)
        if (t->initialized[i]) {
            h2o_timeout_dispose(t->loop, &t->group[i]);
            t->initialized[i] = 0;
        }
}

static void loop_defer_fire(h2o_timeout_entry_t *entry)
{
    loop_defer_t *d = util_container_of(entry, loop_defer_t, entry);
    d->cb(d);
}

void loop_defer_init(loop_defer_t *d, h2o_loop_t *loop, loop_defer_cb cb)
{
    *d = (loop_defer_t){.loop = loop, .cb = cb};
    d->entry.cb = loop_defer_fire;
    h2o_timeout_init(loop, &d->group, 0);
}

void loop_defer_arm(loop_defer_t *d)
{
    if (h2o_timeout_is_linked(&d->entry))
        return;
    /* empty while unarmed: re-initialising it is what moves it to the end of the list */
    h2o_timeout_dispose(d->loop, &d->group);
    h2o_timeout_init(d->loop, &d->group, 0);
    h2o_timeout_link(d->loop, &d->group, &d->entry);
}

void loop_defer_cancel(loop_defer_t *d)
{
    if (h2o_timeout_is_linked(&d->entry))
        h2o_timeout_unlink(&d->entry);
}

void loop_defer_dispose(loop_defer_t *d)
{
    loop_defer_cancel(d);
    h2o_timeout_dispose(d->loop, &d->group);
}

void loop_thread_release(void)
{
    h2o_mem_recycle_t *recycled = &h2o_socket_buffer_prototype.allocator;
    while (recycled->cnt != 0)
        free(h2o_mem_alloc_recycle(recycled, 1));
}
