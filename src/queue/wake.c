#include "queue/wake.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WAKE_RETRY_MS 1000

/*
 * Two locks: `life` orders the thread's start and stop (subscribe and unsubscribe
 * hold it throughout, the join included), `subs` guards the list and is held by the
 * thread while it calls subscribers, so that unsubscribing waits for a call in
 * progress. The thread never takes `life`, so joining under it cannot deadlock.
 */
static pthread_mutex_t wake_life = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t wake_subs = PTHREAD_MUTEX_INITIALIZER;
static queue_wake_sub_t *wake_list; /* the thread runs while it is not empty */
static pthread_t wake_tid;
static int wake_stop_fd = -1;
static atomic_int wake_stopping;

/* Calls the subscribers of queue, or all of them when queue is NULL. */
static void wake_dispatch(const char *queue)
{
    pthread_mutex_lock(&wake_subs);
    for (queue_wake_sub_t *s = wake_list; s != NULL; s = s->next)
        if (queue == NULL || strcmp(s->queue, queue) == 0)
            s->fn(s->data);
    pthread_mutex_unlock(&wake_subs);
}

static PGconn *wake_connect(void)
{
    char name[48]; /* which process listens, for pg_stat_activity */
    snprintf(name, sizeof(name), "conversa-listen:%ld", (long)getpid());
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {config.database_url, "2", name, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        log_debug("queue", "notification connection failed: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PGresult *res = PQexec(c, "LISTEN " QUEUE_WAKE_CHANNEL);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok || PQsetnonblocking(c, 1) != 0) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static void *wake_main(void *arg)
{
    (void)arg;
    util_thread_name("queue-listen");
    PGconn *conn = NULL;
    while (!atomic_load(&wake_stopping)) {
        if (conn == NULL && (conn = wake_connect()) != NULL)
            wake_dispatch(NULL); /* what was inserted while nobody listened */
        struct pollfd fds[2] = {{.fd = wake_stop_fd, .events = POLLIN},
                                {.fd = conn != NULL ? PQsocket(conn) : -1, .events = POLLIN}};
        int n = poll(fds, 2, conn != NULL ? -1 : WAKE_RETRY_MS);
        if (n < 0 && errno != EINTR)
            util_fatal("queue: poll on the notification connection failed: %s", strerror(errno));
        if (n <= 0 || fds[0].revents != 0 || conn == NULL || fds[1].revents == 0)
            continue;
        if (PQconsumeInput(conn) == 0) {
            log_info("queue", "notification connection lost; workers poll until it is back");
            PQfinish(conn);
            conn = NULL;
            continue;
        }
        PGnotify *note;
        while ((note = PQnotifies(conn)) != NULL) {
            wake_dispatch(note->extra);
            PQfreemem(note);
        }
    }
    PQfinish(conn);
    log_thread_done();
    return NULL;
}

void queue_wake_subscribe(queue_wake_sub_t *sub)
{
    pthread_mutex_lock(&wake_life);
    pthread_mutex_lock(&wake_subs);
    int first = wake_list == NULL;
    sub->next = wake_list;
    wake_list = sub;
    pthread_mutex_unlock(&wake_subs);
    if (first) {
        atomic_store(&wake_stopping, 0);
        wake_stop_fd = eventfd(0, EFD_CLOEXEC);
        if (wake_stop_fd < 0 || pthread_create(&wake_tid, NULL, wake_main, NULL) != 0)
            util_fatal("queue: cannot start the notification listener");
    }
    pthread_mutex_unlock(&wake_life);
}

void queue_wake_unsubscribe(queue_wake_sub_t *sub)
{
    pthread_mutex_lock(&wake_life);
    pthread_mutex_lock(&wake_subs);
    for (queue_wake_sub_t **p = &wake_list; *p != NULL; p = &(*p)->next)
        if (*p == sub) {
            *p = sub->next;
            break;
        }
    int last = wake_list == NULL;
    pthread_mutex_unlock(&wake_subs);
    if (last) {
        atomic_store(&wake_stopping, 1);
        uint64_t one = 1;
        if (write(wake_stop_fd, &one, sizeof(one)) != sizeof(one))
            util_fatal("queue: cannot stop the notification listener");
        pthread_join(wake_tid, NULL);
        close(wake_stop_fd);
        wake_stop_fd = -1;
    }
    pthread_mutex_unlock(&wake_life);
}

void queue_wake_local(const char *queue)
{
    wake_dispatch(queue);
}
