/*
 * The company's users (GET /api/v1/users), for naming assignees and senders and for
 * offering assignment to a colleague. A company has a handful of them and they rarely
 * change, so the list is read once and kept for FRESH_MS; screens ask for it when they
 * open, and concurrent asks share one request. It belongs to the session: another
 * sign-in reads it again.
 */
(function (cv) {
    'use strict';
    const FRESH_MS = 5 * 60 * 1000;

    let byId = new Map();
    let loadedFor = null; /* the token the list was read with */
    let loadedAt = 0;
    let pending = null;

    /* Resolves with the users (id -> user) once read; rejects with the API's error. */
    function load() {
        const token = cv.api.token();
        if (token === loadedFor && Date.now() - loadedAt < FRESH_MS) return Promise.resolve(byId);
        if (pending && pending.token === token) return pending.promise;
        const promise = cv.api
            .get('/api/v1/users')
            .then((res) => {
                if (cv.api.token() === token) {
                    byId = new Map(res.data.map((u) => [u.id, u]));
                    loadedFor = token;
                    loadedAt = Date.now();
                }
                return byId;
            })
            .finally(() => {
                if (pending && pending.promise === promise) pending = null;
            });
        pending = {token, promise};
        return promise;
    }

    /* The user with this id, or null (not read yet, or not a user of the company). */
    function get(id) {
        return loadedFor === cv.api.token() ? byId.get(id) || null : null;
    }

    /* Every user, by name. */
    function list() {
        if (loadedFor !== cv.api.token()) return [];
        return Array.from(byId.values()).sort((a, b) => a.name.localeCompare(b.name) || a.id - b.id);
    }

    /* How to name user `id` to the signed-in user `me`: "You", the name, or "Agent #id" when unknown. */
    function label(id, me) {
        if (me && id === me.id) return 'You';
        const u = get(id);
        return u ? u.name : 'Agent #' + id;
    }

    cv.users = {load, get, list, label};
})((window.conversa = window.conversa || {}));
