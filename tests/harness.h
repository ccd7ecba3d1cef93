/*
 * harness.h - what the integration tests share: starting the real conversa binary on
 * a free port against the throw-away servers of tests/run.sh, real HTTP requests with
 * libcurl, stopping and starting those servers, and polling with a deadline.
 *
 * Environment (set by tests/run.sh): CONVERSA_BIN, STACK_DIR, DATABASE_URL, REDIS_URL.
 */
#ifndef CONVERSA_TESTS_HARNESS_H
#define CONVERSA_TESTS_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct hs_server {
    pid_t pid;
    int port;
    char log_path[512];
} hs_server_t;

typedef struct hs_response {
    long status; /* 0 when the request failed at the transport level */
    char *body;  /* NUL-terminated */
    size_t len;
    char *headers; /* raw header block, lower-cased names */
    double seconds;
} hs_response_t;

/** A TCP port free on 127.0.0.1 right now. */
int hs_free_port(void);

/** A TCP connection to 127.0.0.1:port (the test fails when it cannot connect). */
int hs_dial(int port);

/**
 * Reads fd until the server closes it or timeout_ms pass (*closed says which), then
 * closes fd. Returns what came, NUL-terminated (caller frees).
 */
char *hs_read_all(int fd, int timeout_ms, int *closed);

/**
 * Sends raw bytes on a new connection and reads until the server closes it or
 * timeout_ms pass; *closed says which. Returns what came, NUL-terminated (caller frees).
 */
char *hs_exchange(int port, const char *data, size_t len, int timeout_ms, int *closed);

/**
 * Starts `conversa serve` with the test environment plus `env` ("K=V" strings, NULL
 * terminated, may be NULL) and waits until /api/health/live answers (10 s at most).
 */
void hs_server_start(hs_server_t *s, const char *const *env);

/** Like hs_server_start() but does not wait; for processes expected to exit. */
void hs_server_spawn(hs_server_t *s, const char *const *argv, const char *const *env);

/** Sends SIGTERM and waits; returns the exit status (128+signal when killed). */
int hs_server_stop(hs_server_t *s);

/** Waits for the process to exit by itself within timeout_ms; returns its status or -1. */
int hs_server_wait(hs_server_t *s, int timeout_ms);

/** The server's log so far (caller frees). */
char *hs_server_log(const hs_server_t *s);

/** One HTTP request to 127.0.0.1:port. headers is NULL-terminated "Name: value" or NULL. */
hs_response_t hs_request(int port, const char *method, const char *path, const char *body, size_t len,
                         const char *const *headers);

/**
 * One API call: with Authorization: Bearer token (none when token is NULL),
 * Content-Type: application/json, and body (none when NULL).
 */
hs_response_t hs_call(int port, const char *method, const char *path, const char *token, const char *body);

/** hs_call() that must answer `want` with a JSON body; returns it parsed (caller decrefs). */
json_t *hs_call_json(int port, const char *method, const char *path, const char *token, const char *body, long want);

/** GET shorthand. */
hs_response_t hs_get(int port, const char *path);

/** The value of a response header (caller frees), or NULL. */
char *hs_header(const hs_response_t *r, const char *name);

/** Parses the body as JSON (caller decrefs); NULL when it is not JSON. */
json_t *hs_json(const hs_response_t *r);

void hs_response_free(hs_response_t *r);

/**
 * Runs a shell command; its standard output (trailing newlines removed) goes to out
 * when given. Returns the exit status.
 */
int hs_sh(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/**
 * Runs SQL through psql on DATABASE_URL (tuples only, unaligned, '|' between fields);
 * the output (trailing newline removed) goes to out. Returns psql's exit status.
 */
int hs_sql(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/**
 * Creates a company of a test's own: slug, name, and two users, admin@<slug>.test
 * (admin) and agent@<slug>.test (agent), with the demo password. Fails the test
 * otherwise. The test deletes it (DELETE FROM companies WHERE slug = …: everything it
 * owns goes with it).
 */
void hs_company(const char *slug, const char *name);

/** Logs in with the demo password and returns the token (caller frees); fails the test otherwise. */
char *hs_login(int port, const char *email);

/** "Authorization: Bearer <token>" in a static buffer per call site's choice. */
void hs_bearer(char *out, size_t cap, const char *token);

/** Runs scripts/stack.sh CMD $STACK_DIR; returns its exit status. */
int hs_stack(const char *cmd);

/** Milliseconds on a monotonic clock. */
double hs_now_ms(void);

/** Sleeps ms milliseconds (only inside polling loops). */
void hs_sleep_ms(int ms);

#endif
