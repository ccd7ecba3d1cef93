/*
 * Operations (admins): health, live charts from /api/metrics, then the alerts
 * (ops-alerts.js) and the job queues with their dead letters (ops-queues.js).
 *
 * /api/metrics and /api/health are public routes, limited per client address
 * (RATE_LIMIT_PUBLIC, 100 a minute by default, shared with sign-ins from the same
 * address), so this page reads them sparingly: metrics every 3 s (a chart point),
 * health every 10 s. Charts derive rates from consecutive scrapes (metrics.js).
 */
(function (cv) {
    'use strict';
    const {el} = cv;
    const METRICS_MS = 3000;
    const SLOW_MS = 10000;

    function figure(testid, unit) {
        const value = el('span', {class: 'figure-value', testid, text: '–'});
        return {
            node: el('span', {class: 'figure'}, [value, unit ? el('span', {class: 'figure-unit', text: unit}) : null]),
            set(v, digits) {
                value.textContent = cv.fmt.decimal(v, digits);
                value.dataset.value = v === null || v === undefined || !Number.isFinite(v) ? '' : String(v);
            },
        };
    }

    function chartCard(title, figures, canvas, series, extra) {
        return el('article', {class: 'card chart-card'}, [
            el('div', {class: 'chart-head'}, [el('h3', {text: title}), el('div', {class: 'figures'}, figures)]),
            canvas,
            el('div', {class: 'chart-foot'}, [cv.charts.legend(series), extra || null]),
        ]);
    }

    function healthItem(label, testid) {
        const value = el('dd', {testid, text: '–'});
        const detail = el('span', {class: 'muted'});
        return {node: el('div', {class: 'health-item'}, [el('dt', {text: label}), value, detail]), value, detail};
    }

    function mount(root) {
        if (!cv.api.isAdmin()) {
            cv.replace(
                root,
                el('section', {class: 'page'}, [
                    el('h1', {text: 'Operations'}),
                    el('p', {
                        class: 'card',
                        testid: 'ops-forbidden',
                        text: 'Only an admin of the company can see this page.',
                    }),
                ]),
            );
            return {unmount() {}};
        }

        /* ---- health ---- */

        const overall = el('span', {class: 'status-pill', testid: 'ops-health-status', text: 'checking…'});
        const db = healthItem('Database', 'ops-db');
        const redis = healthItem('Redis', 'ops-redis');
        const memory = healthItem('Memory', 'ops-memory');
        const uptime = healthItem('Uptime', 'ops-uptime');
        const version = healthItem('Version', 'ops-version');
        const healthCard = el(
            'section',
            {class: 'card health', testid: 'ops-health', 'aria-labelledby': 'ops-health-title'},
            [
                el('div', {class: 'section-head'}, [el('h2', {id: 'ops-health-title', text: 'Health'}), overall]),
                el('dl', {class: 'health-grid'}, [db.node, redis.node, memory.node, uptime.node, version.node]),
            ],
        );

        function renderHealth(h) {
            overall.textContent = h.status;
            overall.dataset.status = h.status;
            overall.className = 'status-pill status-' + h.status;
            const up = (part) => part.status === 'up';
            db.value.textContent = h.database.status;
            db.value.dataset.status = h.database.status;
            db.detail.textContent = up(h.database) ? cv.fmt.decimal(h.database.responseTime, 2) + ' ms' : '';
            redis.value.textContent = h.redis.status;
            redis.value.dataset.status = h.redis.status;
            redis.detail.textContent = up(h.redis) ? cv.fmt.decimal(h.redis.responseTime, 2) + ' ms' : '';
            memory.value.textContent = cv.fmt.megabytes(h.memory.used);
            memory.detail.textContent = h.memory.total
                ? 'of ' + cv.fmt.megabytes(h.memory.total) + ' (' + cv.fmt.decimal(h.memory.percentage, 1) + ' %)'
                : '';
            uptime.value.textContent = cv.fmt.duration(h.uptime);
            uptime.value.dataset.seconds = String(h.uptime);
            version.value.textContent = h.version;
        }

        const health = cv.poll.every(async () => {
            try {
                renderHealth(await cv.api.get('/api/health', null, {anonymous: true}));
            } catch (err) {
                /* a 503 (the database is down) still carries the report of what is down */
                if (err.status !== 503 || !err.body || !err.body.database) throw err;
                renderHealth(err.body);
            }
        }, SLOW_MS);

        /* ---- charts ---- */

        const canvases = {
            rate: el('canvas', {class: 'chart', testid: 'ops-chart-rate'}),
            latency: el('canvas', {class: 'chart', testid: 'ops-chart-latency'}),
            cache: el('canvas', {class: 'chart', testid: 'ops-chart-cache'}),
            queue: el('canvas', {class: 'chart', testid: 'ops-chart-queue'}),
        };
        const fig = {
            rate: figure('ops-rate', 'req/s'),
            p50: figure('ops-p50', 'ms p50'),
            p95: figure('ops-p95', 'ms p95'),
            p99: figure('ops-p99', 'ms p99'),
            hit: figure('ops-hit-rate', '%'),
            queued: figure('ops-queued', 'queued'),
            running: figure('ops-running', 'running'),
        };
        const errorsLine = el('span', {class: 'muted', testid: 'ops-errors'});
        const series = {
            rate: [{key: 'rate', label: 'requests per second'}],
            latency: [
                {key: 'p50', label: 'p50'},
                {key: 'p95', label: 'p95'},
                {key: 'p99', label: 'p99'},
            ],
            cache: [{key: 'hitRate', label: 'hit rate'}],
            queue: [
                {key: 'queued', label: 'queued'},
                {key: 'running', label: 'running'},
                {key: 'dead', label: 'failed'},
            ],
        };
        const charts = {
            rate: new cv.charts.LineChart(canvases.rate, {
                title: 'Request rate',
                series: series.rate,
                format: (v) => cv.fmt.decimal(v, 1),
            }),
            latency: new cv.charts.LineChart(canvases.latency, {
                title: 'Latency percentiles (ms)',
                series: series.latency,
                format: (v) => cv.fmt.decimal(v, 1),
            }),
            cache: new cv.charts.LineChart(canvases.cache, {
                title: 'Cache hit rate (%)',
                series: series.cache,
                max: 100,
                format: (v) => cv.fmt.decimal(v, 0),
            }),
            queue: new cv.charts.LineChart(canvases.queue, {
                title: 'Queue depth (jobs)',
                series: series.queue,
                integer: true,
                format: (v) => cv.fmt.decimal(v, 0),
            }),
        };
        const chartsSection = el(
            'section',
            {class: 'charts', testid: 'ops-charts', 'aria-labelledby': 'ops-charts-title'},
            [
                el('h2', {id: 'ops-charts-title', class: 'sr-only', text: 'Live figures'}),
                chartCard('Request rate', [fig.rate.node], canvases.rate, series.rate, errorsLine),
                chartCard('Latency', [fig.p50.node, fig.p95.node, fig.p99.node], canvases.latency, series.latency),
                chartCard('Cache hit rate', [fig.hit.node], canvases.cache, series.cache),
                chartCard('Queue depth', [fig.queued.node, fig.running.node], canvases.queue, series.queue),
            ],
        );

        let previous = null;
        const metrics = cv.poll.every(async () => {
            const text = await cv.api.text('/api/metrics', {anonymous: true});
            const snap = cv.metrics.snapshot(text, Date.now());
            const first = previous === null;
            if (previous) {
                const d = cv.metrics.derive(previous, snap);
                fig.rate.set(d.rate, 1);
                fig.p50.set(d.p50, 1);
                fig.p95.set(d.p95, 1);
                fig.p99.set(d.p99, 1);
                fig.hit.set(d.hitRate, 0);
                fig.queued.set(d.queued, 0);
                fig.running.set(d.running, 0);
                errorsLine.textContent =
                    d.errorsPerMinute === null ? '' : cv.fmt.decimal(d.errorsPerMinute, 1) + ' server errors a minute';
                for (const [name, chart] of Object.entries(charts)) {
                    const values = {};
                    for (const s of series[name]) values[s.key] = d[s.key];
                    chart.push(d.at, values);
                }
            }
            previous = snap;
            /* the first figures need two scrapes: take the second one soon */
            if (first) setTimeout(() => metrics.now(), 1000);
        }, METRICS_MS);

        const alerts = cv.opsAlerts.create();
        const queues = cv.opsQueues.create();

        cv.replace(
            root,
            el('section', {class: 'page ops', testid: 'ops-page'}, [
                el('div', {class: 'page-head'}, [el('h1', {text: 'Operations'})]),
                healthCard,
                chartsSection,
                el('div', {class: 'ops-grid'}, [alerts.node, queues.node]),
            ]),
        );

        return {
            unmount() {
                for (const p of [health, metrics, alerts, queues]) p.stop();
                for (const c of Object.values(charts)) c.destroy();
            },
        };
    }

    cv.ops = {mount};
})((window.conversa = window.conversa || {}));
