/*
 * Polling: what keeps the screens live without reloading.
 *
 * A poller runs its function, waits, and runs it again: never two runs at once, none
 * while the tab is hidden (it runs at once when the tab comes back), and after a
 * failure it waits longer each time (up to 30 s, or the server's Retry-After). While
 * pollers fail, a banner says the figures on screen may be stale.
 *
 * LIVE_MS is the period of the inbox's reads (status counts, the list's first page,
 * the open thread, the unread count): all served from the response cache, so a poll
 * costs the server a Redis round trip. A new message must be on screen within 2 s of
 * reaching the server: the wait between polls, plus the time the message takes to be
 * applied and the poll to be answered. With a 1.5 s period that left 0.5 s, which a
 * busy machine sometimes used up; 1 s leaves a second. At most four such reads per
 * period is about 240 a minute per signed-in tab, well under the per-token limit
 * (1,200 a minute).
 */
(function (cv) {
    'use strict';

    const LIVE_MS = 1000;
    const MAX_BACKOFF_MS = 30000;

    /* ---- the banner shown while polls fail ---- */

    const failing = new Set();
    let banner = null;

    function showBanner(err) {
        if (!banner) {
            banner = cv.el('div', {class: 'offline-banner', role: 'status', testid: 'offline-banner'});
            document.body.insertBefore(banner, document.body.firstChild);
        }
        banner.textContent = 'Live updates paused: ' + err.message + ' Retrying…';
        banner.hidden = false;
    }

    function hideBannerIfClear() {
        if (banner && failing.size === 0) banner.hidden = true;
    }

    /*
     * every(fn, ms) starts polling fn (an async function) every ms; returns
     * {stop(), now()}: now() runs it as soon as the current run (if any) ends.
     */
    function every(fn, ms, opts) {
        opts = opts || {};
        const id = {};
        let timer = null,
            running = false,
            stopped = false,
            again = false,
            failures = 0;

        function schedule(delay) {
            clearTimeout(timer);
            timer = setTimeout(run, delay);
        }

        async function run() {
            timer = null;
            if (stopped || document.hidden) return;
            if (running) {
                again = true;
                return;
            }
            running = true;
            let delay = ms;
            try {
                await fn();
                failures = 0;
                failing.delete(id);
                hideBannerIfClear();
            } catch (err) {
                if (err && err.name !== 'AbortError' && !stopped) {
                    failures++;
                    delay = Math.min(MAX_BACKOFF_MS, ms * Math.pow(2, Math.min(failures, 5)));
                    if (err.retryAfter) delay = Math.max(delay, err.retryAfter * 1000);
                    if (err.status !== 401) {
                        failing.add(id);
                        showBanner(err);
                    }
                }
            } finally {
                running = false;
            }
            if (stopped) return;
            schedule(again ? 0 : delay);
            again = false;
        }

        function onVisibility() {
            if (stopped) return;
            if (document.hidden) {
                clearTimeout(timer);
                timer = null;
            } else if (!running) {
                schedule(0);
            }
        }

        document.addEventListener('visibilitychange', onVisibility);
        schedule(opts.immediate === false ? ms : 0);
        return {
            stop() {
                stopped = true;
                clearTimeout(timer);
                document.removeEventListener('visibilitychange', onVisibility);
                failing.delete(id);
                hideBannerIfClear();
            },
            now() {
                if (stopped) return;
                if (running) again = true;
                else schedule(0);
            },
        };
    }

    cv.poll = {every, LIVE_MS};
})((window.conversa = window.conversa || {}));
