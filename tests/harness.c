#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* libcurl's global set-up is not thread-safe: done once before any test runs. */
__attribute__((constructor)) static void hs_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

double hs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void hs_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int hs_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
              getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
    int port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

static const char *hs_env(const char *name)
{
    const char *v = getenv(name);
    cr_assert(v != NULL && *v != '\0', "%s is not set: run the tests through tests/run.sh", name);
    return v;
}

void hs_server_spawn(hs_server_t *s, const char *const *argv, const char *const *env)
{
    static int seq;
    const char *bin = hs_env("CONVERSA_BIN");
    snprintf(s->log_path, sizeof(s->log_path), "%s/serve-%d-%d.log", hs_env("STACK_DIR"), (int)getpid(), ++seq);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* a test that dies must not leave its server behind */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        char port[16];
        snprintf(port, sizeof(port), "%d", s->port);
        setenv("PORT", port, 1);
        setenv("HOST", "127.0.0.1", 1);
        if (getenv("THREADS") == NULL)
            setenv("THREADS", "2", 1);
        for (size_t i = 0; env != NULL && env[i] != NULL; ++i)
            putenv((char *)env[i]);
        const char *args[16] = {bin};
        size_t n = 1;
        for (size_t i = 0; argv != NULL && argv[i] != NULL && n < 15; ++i)
            args[n++] = argv[i];
        args[n] = NULL;
        execv(bin, (char *const *)args);
        _exit(127);
    }
    s->pid = pid;
}

void hs_server_start(hs_server_t *s, const char *const *env)
{
    static const char *const serve[] = {"serve", NULL};
    s->port = hs_free_port();
    hs_server_spawn(s, serve, env);
    double deadline = hs_now_ms() + 10000;
    while (hs_now_ms() < deadline) {
        hs_response_t r = hs_get(s->port, "/api/health/live");
        long status = r.status;
        hs_response_free(&r);
        if (status == 200)
            return;
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            char *log = hs_server_log(s);
            cr_assert_fail("conversa exited at start (status %d); log:\n%s", st, log);
        }
        hs_sleep_ms(20);
    }
    cr_assert_fail("conversa did not answer /api/health/live within 10 s");
}

int hs_server_wait(hs_server_t *s, int timeout_ms)
{
    double deadline = hs_now_ms() + timeout_ms;
    int st;
    while (hs_now_ms() < deadline) {
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid) {
            s->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        hs_sleep_ms(10);
    }
    return -1;
}

int hs_server_stop(hs_server_t *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    int st = hs_server_wait(s, 20000);
    if (st < 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    return st;
}

char *hs_server_log(const hs_server_t *s)
{
    FILE *f = fopen(s->log_path, "r");
    if (f == NULL)
        return strdup("");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

typedef struct hs_buf {
    char *data;
    size_t len;
} hs_buf_t;

static size_t hs_write(char *p, size_t size, size_t n, void *arg)
{
    hs_buf_t *b = arg;
    size_t add = size * n;
    b->data = realloc(b->data, b->len + add + 1);
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

hs_response_t hs_request(int port, const char *method, const char *path, const char *body, size_t len,
                         const char *const *headers)
{
    hs_response_t r = {0};
    hs_buf_t b = {calloc(1, 1), 0}, h = {calloc(1, 1), 0};
    CURL *c = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hs_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, hs_write);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; headers != NULL && headers[i] != NULL; ++i)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    double t0 = hs_now_ms();
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    r.seconds = (hs_now_ms() - t0) / 1e3;
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    r.body = b.data;
    r.len = b.len;
    r.headers = h.data;
    return r;
}

hs_response_t hs_get(int port, const char *path)
{
    return hs_request(port, "GET", path, NULL, 0, NULL);
}

char *hs_header(const hs_response_t *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = r->headers; line != NULL && *line; line = strchr(line, '\n')) {
        if (*line == '\n')
            ++line;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                ++v;
            size_t len = strcspn(v, "\r\n");
            return strndup(v, len);
        }
    }
    return NULL;
}

json_t *hs_json(const hs_response_t *r)
{
    json_error_t err;
    return r->body != NULL ? json_loadb(r->body, r->len, 0, &err) : NULL;
}

void hs_response_free(hs_response_t *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}

int hs_stack(const char *cmd)
{
    char line[1024];
    snprintf(line, sizeof(line), "scripts/stack.sh %s '%s' >/dev/null 2>&1", cmd, hs_env("STACK_DIR"));
    int st = system(line);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int hs_sql(char *out, size_t cap, const char *fmt, ...)
{
    char sql[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    char path[512];
    snprintf(path, sizeof(path), "%s/sql-%d.sql", hs_env("STACK_DIR"), (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(sql, f);
    fclose(f);
    return hs_sh(out, cap, "psql -X -qtA -v ON_ERROR_STOP=1 '%s' -f '%s' 2>&1", hs_env("DATABASE_URL"), path);
}

static int hs_vsh(char *out, size_t cap, const char *fmt, va_list ap)
{
    char cmd[8192];
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = 0, r;
    char buf[4096];
    while ((r = fread(buf, 1, sizeof(buf), p)) > 0)
        if (out != NULL && n + r < cap) {
            memcpy(out + n, buf, r);
            n += r;
        }
    if (out != NULL) {
        while (n > 0 && out[n - 1] == '\n')
            --n;
        out[n] = '\0';
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int hs_sh(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = hs_vsh(out, cap, fmt, ap);
    va_end(ap);
    return rc;
}

void hs_company(const char *slug, const char *name)
{
    char out[512];
    int rc = hs_sql(out, sizeof(out),
                    "INSERT INTO companies (slug, name) VALUES ('%s', '%s');"
                    "INSERT INTO users (company_id, email, name, role, password_hash)"
                    " SELECT c.id, v.role || '@' || c.slug || '.test', c.name || ' ' || v.role, v.role, d.password_hash"
                    " FROM companies c, (VALUES ('admin'), ('agent')) v (role), users d"
                    " WHERE c.slug = '%s' AND lower(d.email) = 'admin@demo.conversa.dev'",
                    slug, name, slug);
    cr_assert_eq(rc, 0, "creating company %s: %s", slug, out);
}

char *hs_login(int port, const char *email)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"conversa-demo\"}", email);
    hs_response_t r = hs_request(port, "POST", "/api/v1/auth/login", body, (size_t)n, NULL);
    cr_assert_eq(r.status, 200, "login %s: %ld %s", email, r.status, r.body);
    json_t *j = hs_json(&r);
    const char *tok = json_string_value(json_object_get(j, "token"));
    cr_assert(tok != NULL && strncmp(tok, "cv_", 3) == 0, "%s", r.body);
    char *out = strdup(tok);
    json_decref(j);
    hs_response_free(&r);
    return out;
}

hs_response_t hs_call(int port, const char *method, const char *path, const char *token, const char *body)
{
    char auth[320];
    const char *with_token[] = {auth, "Content-Type: application/json", NULL};
    const char *without[] = {"Content-Type: application/json", NULL};
    hs_bearer(auth, sizeof(auth), token != NULL ? token : "");
    return hs_request(port, method, path, body, body != NULL ? strlen(body) : 0, token != NULL ? with_token : without);
}

json_t *hs_call_json(int port, const char *method, const char *path, const char *token, const char *body, long want)
{
    hs_response_t r = hs_call(port, method, path, token, body);
    cr_assert_eq(r.status, want, "%s %s: %ld %s", method, path, r.status, r.body);
    json_t *j = hs_json(&r);
    cr_assert_not_null(j, "%s %s: not JSON: %s", method, path, r.body);
    hs_response_free(&r);
    return j;
}

void hs_bearer(char *out, size_t cap, const char *token)
{
    snprintf(out, cap, "Authorization: Bearer %s", token);
}

int hs_dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s", strerror(errno));
    return fd;
}

char *hs_read_all(int fd, int timeout_ms, int *closed)
{
    size_t cap = 65536, n = 0;
    char *out = calloc(1, cap + 1);
    *closed = 0;
    double t0 = hs_now_ms();
    while (hs_now_ms() - t0 < timeout_ms) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t k = recv(fd, out + n, cap - n, 0);
        if (k <= 0) {
            *closed = 1;
            break;
        }
        n += (size_t)k;
        if (n == cap)
            break;
    }
    close(fd);
    return out;
}

char *hs_exchange(int port, const char *data, size_t len, int timeout_ms, int *closed)
{
    int fd = hs_dial(port);
    size_t off = 0;
    while (off < len) {
        ssize_t k = send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (k <= 0)
            break; /* refused before we finished: fine, read the answer */
        off += (size_t)k;
    }
    return hs_read_all(fd, timeout_ms, closed);
}
