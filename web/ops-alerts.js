/*
 * The operations page's alerts: what fires in this process now (GET /api/v1/alerts,
 * every 10 s), and its recent firings and resolutions.
 */
(function (cv) {
    'use strict';
    const {el} = cv;
    const EVERY_MS = 10000;
    const RECENT = 10;

    function activeRow(a) {
        return el('tr', {testid: 'ops-alert', 'data-rule': a.rule}, [
            el('td', null, el('span', {class: 'chip chip-' + a.level.toLowerCase(), text: a.level})),
            el('td', {text: a.message}),
            el('td', {text: cv.fmt.decimal(a.value, 1)}),
            el('td', {text: cv.fmt.decimal(a.threshold, 1)}),
            el('td', {text: cv.fmt.full(a.since)}),
        ]);
    }

    function recentItem(e) {
        const kind = e.state === 'resolved' ? 'ok' : e.level.toLowerCase();
        return el('li', null, [
            el('span', {class: 'chip chip-' + kind, text: e.state || e.level}),
            ' ' + e.message + ' ',
            el('time', {class: 'muted', datetime: e.at, text: cv.fmt.full(e.at)}),
        ]);
    }

    /* The section, polling; {node, stop()}. */
    function create() {
        const body = el('tbody');
        const recent = el('ul', {class: 'recent-alerts', testid: 'ops-alerts-recent'});
        const none = el('p', {class: 'ok-note', testid: 'ops-no-alerts', hidden: true, text: 'No alert is firing.'});
        const table = cv.table('Firing alerts', ['Level', 'Alert', 'Value', 'Threshold', 'Since'], body);
        table.dataset.testid = 'ops-alerts-active';
        const node = el('section', {class: 'card', testid: 'ops-alerts', 'aria-labelledby': 'ops-alerts-title'}, [
            el('h2', {id: 'ops-alerts-title', text: 'Alerts'}),
            none,
            table,
            el('h3', {text: 'Recent'}),
            recent,
        ]);

        function render(a) {
            none.hidden = a.active.length > 0;
            table.hidden = a.active.length === 0;
            cv.replace(body, a.active.map(activeRow));
            cv.replace(
                recent,
                a.recent.length
                    ? a.recent.slice(0, RECENT).map(recentItem)
                    : el('li', {class: 'muted', text: 'Nothing has fired since the server started.'}),
            );
        }

        const poller = cv.poll.every(async () => render(await cv.api.get('/api/v1/alerts')), EVERY_MS);
        return {node, stop: () => poller.stop()};
    }

    cv.opsAlerts = {create};
})((window.conversa = window.conversa || {}));
