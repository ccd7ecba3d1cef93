/*
 * The API client: fetch with the bearer token, JSON in and out, and one error type.
 *
 * The session (token and the signed-in user) lives in sessionStorage: it ends with the
 * tab, and another tab signs in on its own. A 401 on an authenticated request means
 * the token expired or was revoked: the session is dropped and 'unauthorized' is
 * emitted, which takes the app back to the sign-in form.
 */
(function (cv) {
    'use strict';

    const TOKEN_KEY = 'conversa.token';
    const USER_KEY = 'conversa.user';

    /* Every failure, whatever raised it: the server's {"error":{code,message,field}}, HTTP or the network. */
    class ApiError extends Error {
        constructor(status, code, message, field, retryAfter) {
            super(message);
            this.name = 'ApiError';
            this.status = status;
            this.code = code;
            this.field = field || null;
            this.retryAfter = retryAfter || 0;
        }
    }

    function token() {
        return sessionStorage.getItem(TOKEN_KEY);
    }

    function user() {
        try {
            return JSON.parse(sessionStorage.getItem(USER_KEY) || 'null');
        } catch (e) {
            return null;
        }
    }

    function isAdmin() {
        const u = user();
        return !!u && u.role === 'admin';
    }

    function clearSession() {
        sessionStorage.removeItem(TOKEN_KEY);
        sessionStorage.removeItem(USER_KEY);
    }

    function buildUrl(path, query) {
        if (!query) return path;
        const params = new URLSearchParams();
        for (const [k, v] of Object.entries(query)) {
            if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
        }
        const qs = params.toString();
        return qs ? path + '?' + qs : path;
    }

    /*
     * request('GET', '/api/v1/conversations', {query, body, signal, text, anonymous})
     * Resolves with the parsed JSON (or the text with {text: true}, or null for 204);
     * rejects with an ApiError.
     */
    async function request(method, path, opts) {
        opts = opts || {};
        const headers = {Accept: opts.text ? 'text/plain' : 'application/json'};
        const bearer = opts.anonymous ? null : token();
        if (bearer) headers.Authorization = 'Bearer ' + bearer;
        let body;
        if (opts.body !== undefined) {
            headers['Content-Type'] = 'application/json';
            body = JSON.stringify(opts.body);
        }
        let res;
        try {
            res = await fetch(buildUrl(path, opts.query), {
                method,
                headers,
                body,
                signal: opts.signal,
                cache: 'no-store',
                credentials: 'omit',
            });
        } catch (err) {
            if (err.name === 'AbortError') throw err;
            throw new ApiError(0, 'network', 'Cannot reach the server. Check the connection.');
        }
        if (res.status === 204) return null;
        const text = await res.text();
        if (res.ok) {
            if (opts.text) return text;
            try {
                return text ? JSON.parse(text) : null;
            } catch (err) {
                throw new ApiError(res.status, 'bad_response', 'The server sent an answer that is not JSON.');
            }
        }
        let parsed = null;
        try {
            parsed = JSON.parse(text);
        } catch (err) {
            /* a proxy's HTML error page: reported by status below */
        }
        const detail = parsed && typeof parsed.error === 'object' ? parsed.error : null;
        const retryAfter = parseInt(res.headers.get('Retry-After') || '0', 10) || 0;
        const message =
            detail && detail.message
                ? detail.message.charAt(0).toUpperCase() + detail.message.slice(1)
                : 'The server answered ' + res.status + (res.statusText ? ' ' + res.statusText : '');
        const err = new ApiError(
            res.status,
            (detail && detail.code) || 'http_' + res.status,
            message,
            detail && detail.field,
            retryAfter,
        );
        err.body = parsed;
        if (res.status === 401 && bearer && bearer === token()) {
            clearSession();
            cv.emit('unauthorized', err);
        }
        throw err;
    }

    async function login(email, password) {
        const res = await request('POST', '/api/v1/auth/login', {body: {email, password}, anonymous: true});
        sessionStorage.setItem(TOKEN_KEY, res.token);
        sessionStorage.setItem(USER_KEY, JSON.stringify(res.user));
        return res.user;
    }

    /* Revokes the token on the server too; the session is dropped here whatever the answer. */
    async function logout() {
        try {
            if (token()) await request('DELETE', '/api/v1/auth/token');
        } catch (err) {
            /* an expired token or an unreachable server: nothing more to revoke from here */
        } finally {
            clearSession();
        }
    }

    cv.api = {
        ApiError,
        request,
        get: (path, query, opts) => request('GET', path, Object.assign({query}, opts)),
        post: (path, body, opts) => request('POST', path, Object.assign({body}, opts)),
        patch: (path, body, opts) => request('PATCH', path, Object.assign({body}, opts)),
        text: (path, opts) => request('GET', path, Object.assign({text: true}, opts)),
        login,
        logout,
        token,
        user,
        isAdmin,
        hasSession: () => !!token() && !!user(),
    };
})((window.conversa = window.conversa || {}));
