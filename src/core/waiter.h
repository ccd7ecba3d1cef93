/*
 * waiter.h - the link between a request and the asynchronous operations it waits on.
 *
 * An operation (a query, a Redis command, a shared health probe) that will call back
 * into a request embeds a waiter_t and links it into the request's list. When the
 * operation completes it unlinks itself before calling back. When the request is
 * disposed first (the client hung up, the server is stopping), the request calls
 * cancel() on every waiter still linked: the operation must then never touch the
 * request again. The operation itself stays owned by its module (it may still be on
 * the wire) and is freed there.
 */
#ifndef CONVERSA_CORE_WAITER_H
#define CONVERSA_CORE_WAITER_H

#include <h2o/linklist.h>

typedef struct waiter waiter_t;

struct waiter {
    h2o_linklist_t link;
    void (*cancel)(waiter_t *w);
};

/** Links w into owner (when owner is not NULL). */
static inline void waiter_attach(waiter_t *w, h2o_linklist_t *owner)
{
    if (owner != NULL)
        h2o_linklist_insert(owner, &w->link);
}

/** Unlinks w from its owner, if linked. */
static inline void waiter_detach(waiter_t *w)
{
    if (h2o_linklist_is_linked(&w->link))
        h2o_linklist_unlink(&w->link);
}

/** Cancels every waiter in owner; each is unlinked first. */
static inline void waiter_cancel_all(h2o_linklist_t *owner)
{
    while (!h2o_linklist_is_empty(owner)) {
        waiter_t *w = H2O_STRUCT_FROM_MEMBER(waiter_t, link, owner->next);
        h2o_linklist_unlink(&w->link);
        w->cancel(w);
    }
}

#endif
