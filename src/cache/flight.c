#include "cache/flight.h"
#include "core/util.h"
#include "core/waiter.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FLIGHT_BUCKETS 256

/*
 * Locking: one mutex guards the table, every flight's list of waits, and each wait's
 * `posted` flag. A wait belongs to its thread: only that thread frees it, either when
 * it is cancelled or expires before being posted (it is then unlinked under the lock),
 * or when its posted message arrives.
 */
struct flight {
    flight_t *next; /* bucket chain */
    uint64_t hash;
    h2o_linklist_t waits;
    size_t keylen;
    char key[];
};

typedef struct flight_wait {
    h2o_multithread_message_t msg;
    waiter_t waiter; /* in the request */
    h2o_timeout_entry_t expiry;
    h2o_linklist_t link; /* in flight->waits, until posted */
    flight_thread_t *thread;
    flight_cb cb;
    void *data;
    flight_result_t *result;
    int posted;    /* under the lock */
    int cancelled; /* thread-local: the request went away after the result was posted */
} flight_wait_t;

struct flight_thread {
    h2o_loop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_timeout_t timeout;
    size_t outstanding; /* waits of this thread not yet freed */
};

static pthread_mutex_t flight_lock = PTHREAD_MUTEX_INITIALIZER;
static flight_t *flight_table[FLIGHT_BUCKETS];
static size_t flight_n;

static void flight_wait_free(flight_wait_t *w)
{
    if (h2o_timeout_is_linked(&w->expiry))
        h2o_timeout_unlink(&w->expiry);
    if (w->result != NULL)
        flight_result_release(w->result);
    --w->thread->outstanding;
    free(w);
}

/* Takes w out of its flight unless its result was posted already; says which. */
static int flight_wait_withdraw(flight_wait_t *w)
{
    pthread_mutex_lock(&flight_lock);
    int posted = w->posted;
    if (!posted)
        h2o_linklist_unlink(&w->link);
    pthread_mutex_unlock(&flight_lock);
    return !posted;
}

/* On the wait's thread: the request went away. */
static void flight_wait_cancel(waiter_t *waiter)
{
    flight_wait_t *w = H2O_STRUCT_FROM_MEMBER(flight_wait_t, waiter, waiter);
    if (flight_wait_withdraw(w))
        flight_wait_free(w);
    else
        w->cancelled = 1; /* freed when its message arrives */
}

/* On the wait's thread: no result within wait_ms. */
static void flight_wait_expire(h2o_timeout_entry_t *entry)
{
    flight_wait_t *w = H2O_STRUCT_FROM_MEMBER(flight_wait_t, expiry, entry);
    if (!flight_wait_withdraw(w))
        return; /* the result is on its way */
    waiter_detach(&w->waiter);
    flight_cb cb = w->cb;
    void *data = w->data;
    flight_wait_free(w);
    cb(data, NULL);
}

static void flight_on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        flight_wait_t *w = H2O_STRUCT_FROM_MEMBER(flight_wait_t, msg.link, messages->next);
        h2o_linklist_unlink(&w->msg.link);
        if (!w->cancelled) {
            waiter_detach(&w->waiter);
            w->cb(w->data, w->result);
        }
        flight_wait_free(w);
    }
}

flight_thread_t *flight_thread_new(h2o_loop_t *loop, h2o_multithread_queue_t *queue, unsigned wait_ms)
{
    flight_thread_t *t = util_calloc(1, sizeof(*t));
    t->loop = loop;
    t->queue = queue;
    h2o_timeout_init(loop, &t->timeout, wait_ms);
    h2o_multithread_register_receiver(queue, &t->receiver, flight_on_messages);
    return t;
}

void flight_thread_free(flight_thread_t *t, unsigned timeout_ms)
{
    uint64_t deadline = util_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (t->outstanding != 0 && util_now_ns() < deadline)
        h2o_evloop_run(t->loop, 10);
    if (t->outstanding != 0)
        util_fatal("cache fills did not finish within %u ms", timeout_ms);
    h2o_multithread_unregister_receiver(t->queue, &t->receiver);
    h2o_timeout_dispose(t->loop, &t->timeout);
    free(t);
}

flight_t *flight_join(flight_thread_t *t, const char *key, size_t keylen, flight_cb cb, void *data,
                      h2o_linklist_t *waiters)
{
    flight_wait_t *w = util_calloc(1, sizeof(*w));
    w->thread = t;
    w->cb = cb;
    w->data = data;
    w->waiter.cancel = flight_wait_cancel;
    w->expiry.cb = flight_wait_expire;
    ++t->outstanding;

    uint64_t h = util_hash(key, keylen);
    flight_t *started = NULL, *f;
    pthread_mutex_lock(&flight_lock);
    for (f = flight_table[h % FLIGHT_BUCKETS]; f != NULL; f = f->next)
        if (f->hash == h && f->keylen == keylen && memcmp(f->key, key, keylen) == 0)
            break;
    if (f == NULL) {
        f = util_malloc(sizeof(*f) + keylen + 1);
        f->hash = h;
        f->keylen = keylen;
        memcpy(f->key, key, keylen);
        f->key[keylen] = '\0';
        h2o_linklist_init_anchor(&f->waits);
        f->next = flight_table[h % FLIGHT_BUCKETS];
        flight_table[h % FLIGHT_BUCKETS] = f;
        ++flight_n;
        started = f;
    }
    h2o_linklist_insert(&f->waits, &w->link);
    pthread_mutex_unlock(&flight_lock);

    waiter_attach(&w->waiter, waiters);
    if (started == NULL)
        h2o_timeout_link(t->loop, &t->timeout, &w->expiry);
    return started;
}

flight_result_t *flight_result_new(int status, const char *code, const char *body, size_t len)
{
    flight_result_t *res = util_malloc(sizeof(*res) + len + 1);
    res->refs = 1;
    res->status = status;
    res->code = code;
    res->len = len;
    if (len != 0)
        memcpy(res->body, body, len);
    res->body[len] = '\0';
    return res;
}

void flight_result_release(flight_result_t *res)
{
    if (__atomic_sub_fetch(&res->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(res);
}

void flight_finish(flight_t *f, flight_result_t *res)
{
    h2o_linklist_t waits;
    h2o_linklist_init_anchor(&waits);
    pthread_mutex_lock(&flight_lock);
    flight_t **pp = &flight_table[f->hash % FLIGHT_BUCKETS];
    while (*pp != f)
        pp = &(*pp)->next;
    *pp = f->next;
    --flight_n;
    while (!h2o_linklist_is_empty(&f->waits)) {
        flight_wait_t *w = H2O_STRUCT_FROM_MEMBER(flight_wait_t, link, f->waits.next);
        h2o_linklist_unlink(&w->link);
        w->posted = 1;
        __atomic_add_fetch(&res->refs, 1, __ATOMIC_RELAXED);
        w->result = res;
        h2o_linklist_insert(&waits, &w->link);
    }
    pthread_mutex_unlock(&flight_lock);
    free(f);
    /* Once posted, a wait may be freed by its thread at any moment: read next first. */
    for (h2o_linklist_t *l = waits.next, *next; l != &waits; l = next) {
        next = l->next;
        flight_wait_t *w = H2O_STRUCT_FROM_MEMBER(flight_wait_t, link, l);
        w->link.next = w->link.prev = NULL;
        h2o_multithread_send_message(&w->thread->receiver, &w->msg);
    }
    flight_result_release(res);
}

size_t flight_count(void)
{
    pthread_mutex_lock(&flight_lock);
    size_t n = flight_n;
    pthread_mutex_unlock(&flight_lock);
    return n;
}
