/*
 * A tab's conversations as one list, page by page, from one or more cursor streams of
 * GET /api/v1/conversations merged in the API's order: (updated_at, id), newest first.
 *
 * An item is handed out only while every stream that could still hold something newer
 * has a page buffered, so the merged order is the order of a single list.
 */
(function (cv) {
    'use strict';
    const PAGE = 20;

    /*
     * updated_at in microseconds since the epoch: the API orders by the database's
     * microsecond timestamps, finer than a JS Date, so the fraction is read by hand.
     */
    function micros(iso) {
        const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$/.exec(iso || '');
        if (!m) return 0;
        const seconds = Date.parse(m[1] + m[3]) / 1000;
        return seconds * 1e6 + Number((m[2] || '').padEnd(6, '0').slice(0, 6));
    }

    /* List order: newest first, then the larger id first. */
    function compare(a, b) {
        return micros(b.updated_at) - micros(a.updated_at) || b.id - a.id;
    }

    class Feed {
        constructor(queries) {
            this.streams = queries.map((query) => ({query, cursor: null, buffer: [], done: false}));
        }

        get exhausted() {
            return this.streams.every((s) => s.done && s.buffer.length === 0);
        }

        async fetch(s) {
            const res = await cv.api.get(
                '/api/v1/conversations',
                Object.assign({limit: PAGE, cursor: s.cursor || undefined}, s.query),
            );
            s.buffer.push(...res.data);
            s.cursor = res.pagination.next_cursor;
            s.done = !s.cursor;
        }

        /* The next conversations in list order; empty once every stream ran out. */
        async next() {
            await Promise.all(this.streams.filter((s) => !s.done && s.buffer.length === 0).map((s) => this.fetch(s)));
            const out = [];
            while (!this.streams.some((s) => !s.done && s.buffer.length === 0)) {
                let best = null;
                for (const s of this.streams) {
                    if (s.buffer.length && (!best || compare(s.buffer[0], best.buffer[0]) < 0)) best = s;
                }
                if (!best) break;
                out.push(best.buffer.shift());
            }
            return out;
        }
    }

    cv.feed = {Feed, compare, micros, PAGE};
})((window.conversa = window.conversa || {}));
