/*
 * The operations page's job queues (the company's jobs, GET /api/v1/queues every
 * 10 s: every queue conversa runs) and a queue's dead letters: each with its attempts
 * and last error, retried one by one or all at once. Redraws keep the keyboard focus
 * where it was.
 */
(function (cv) {
    'use strict';
    const {el} = cv;
    const EVERY_MS = 10000;
    const FAILED_PAGE = 20;

    const path = (queue, rest) => '/api/v1/queues/' + encodeURIComponent(queue) + rest;

    /* What each queue carries, under its name; a queue not named here shows its name alone. */
    const ABOUT = {
        webhooks: "Meta's deliveries: messages and statuses",
        outbound: "Agents' replies",
        campaigns: 'Campaign messages',
    };

    function queueRow(q, open, onToggle) {
        const toggle = el('button', {
            type: 'button',
            class: 'btn btn-small',
            testid: 'ops-show-failed',
            'aria-expanded': String(open),
            'aria-controls': 'failed-jobs',
            text: open ? 'Hide failed jobs' : 'Failed jobs',
            on: {click: () => onToggle(q.name)},
        });
        const waiting = q.oldest_waiting_seconds ? cv.fmt.duration(q.oldest_waiting_seconds) : '–';
        return el('tr', {testid: 'ops-queue', 'data-name': q.name, 'data-id': q.name}, [
            el('th', {scope: 'row'}, [
                el('span', {class: 'queue-name', text: q.name}),
                ABOUT[q.name] ? el('span', {class: 'queue-about muted', text: ABOUT[q.name]}) : null,
            ]),
            el('td', {text: cv.fmt.number(q.queued)}),
            el('td', {text: cv.fmt.number(q.running)}),
            el('td', {testid: 'ops-queue-failed', text: cv.fmt.number(q.failed)}),
            el('td', {text: waiting}),
            el('td', null, toggle),
        ]);
    }

    function failedJob(j, onRetry) {
        const retry = el('button', {
            type: 'button',
            class: 'btn btn-small',
            testid: 'ops-retry',
            'aria-label': 'Retry job ' + j.id,
            text: 'Retry',
        });
        retry.addEventListener('click', () => onRetry(j, retry));
        const facts = [j.key, j.attempts + ' of ' + j.max_attempts + ' attempts', 'failed ' + cv.fmt.full(j.failed_at)];
        return el('li', {class: 'failed-job', testid: 'ops-failed-job', 'data-id': j.id}, [
            el('div', null, [
                el('strong', {text: 'Job ' + j.id}),
                el('span', {class: 'muted', text: ' · ' + facts.join(' · ')}),
                el('pre', {class: 'job-error', text: j.last_error || 'no error recorded'}),
            ]),
            retry,
        ]);
    }

    /* The section, polling; {node, stop()}. */
    function create() {
        const body = el('tbody');
        const failedHost = el('div', {class: 'failed-host'});
        const node = el('section', {class: 'card', testid: 'ops-queues', 'aria-labelledby': 'ops-queues-title'}, [
            el('h2', {id: 'ops-queues-title', text: 'Job queues'}),
            cv.table(
                'Job queues of this company',
                ['Queue', 'Queued', 'Running', 'Failed', 'Oldest waiting', ''],
                body,
            ),
            failedHost,
        ]);
        let open = null; /* the queue whose dead letters are shown */
        let shownSig = null;

        function toggle(name) {
            open = open === name ? null : name;
            poller.now();
        }

        /* POSTs a retry; the lists are read again at once. */
        async function act(button, url, done) {
            button.disabled = true;
            try {
                done(await cv.api.post(url));
                poller.now();
            } catch (err) {
                cv.reportError(err, 'Could not retry');
                button.disabled = false;
            }
        }

        function renderFailed(name, page) {
            const retryAll = el('button', {
                type: 'button',
                class: 'btn btn-small',
                testid: 'ops-retry-all',
                disabled: page.data.length === 0,
                text: 'Retry all',
            });
            retryAll.addEventListener('click', () =>
                act(retryAll, path(name, '/failed/retry_all'), (r) => {
                    const n = r.data.retried;
                    cv.toast(n + ' job' + (n === 1 ? '' : 's') + ' queued again.', 'info');
                }),
            );
            const onRetry = (j, button) =>
                act(button, path(name, '/failed/' + j.id + '/retry'), () =>
                    cv.toast('Job ' + j.id + ' queued again.', 'info'),
                );
            const title = 'Failed jobs of ' + name + ' (' + cv.fmt.number(page.pagination.total) + ')';
            cv.replace(
                failedHost,
                el('div', {id: 'failed-jobs', class: 'failed-jobs', testid: 'ops-failed'}, [
                    el('div', {class: 'section-head'}, [el('h3', {tabindex: '-1', text: title}), retryAll]),
                    page.data.length
                        ? el(
                              'ul',
                              {class: 'failed-list'},
                              page.data.map((j) => failedJob(j, onRetry)),
                          )
                        : el('p', {class: 'muted', text: 'No failed job: every job ran or is waiting its turn.'}),
                ]),
            );
        }

        async function loadFailed() {
            if (!open) {
                shownSig = null;
                cv.clear(failedHost);
                return;
            }
            const name = open;
            const page = await cv.api.get(path(name, '/failed'), {limit: FAILED_PAGE});
            const sig = JSON.stringify([name, page]);
            if (name !== open || sig === shownSig) return; /* unchanged: leave the buttons (and the focus) alone */
            shownSig = sig;
            cv.keepFocus(
                failedHost,
                () => renderFailed(name, page),
                () => failedHost.querySelector('h3'),
            );
        }

        const poller = cv.poll.every(async () => {
            const res = await cv.api.get('/api/v1/queues');
            cv.keepFocus(body, () =>
                cv.replace(
                    body,
                    res.data.map((q) => queueRow(q, q.name === open, toggle)),
                ),
            );
            await loadFailed();
        }, EVERY_MS);

        return {node, stop: () => poller.stop()};
    }

    cv.opsQueues = {create};
})((window.conversa = window.conversa || {}));
