// The Prometheus text parser the operations page ships (web/metrics.js), run in the
// browser on the format's corners: escaped label values, +Inf, NaN, exponents,
// timestamps, comments; percentiles interpolated inside their bucket as Prometheus'
// histogram_quantile() does; rates between two scrapes, and a counter reset.

import {check, checkEqual, isMain, runScenarios} from './lib.mjs';

const TEXT = String.raw`# HELP x_total A counter, with "quotes" and \\ in its help
# TYPE x_total counter
x_total{path="/a\"b\\c",method="GET"} 3 1700000000000
x_total{path="/n\nl"} 4
# TYPE h histogram
h_bucket{route="/a",le="0.1"} 1
h_bucket{route="/a",le="0.5"} 3
h_bucket{route="/a",le="+Inf"} 4
h_bucket{route="/b",le="0.1"} 0
h_bucket{route="/b",le="0.5"} 0
h_bucket{route="/b",le="+Inf"} 0
h_count 4
g NaN
e 1.5e3
`;

export default async function metrics(t) {
    const page = await t.admin();
    const r = await page.evaluate((text) => {
        const m = window.conversa.metrics;
        const p = m.parse(text);
        const b = m.buckets(p, 'h');
        let bad = null;
        try {
            m.parse('ok 1\nbroken{le="1} 2\n');
        } catch (err) {
            bad = err.message;
        }
        const at = (requests, buckets, hits, misses, ms) => ({
            at: ms,
            requests,
            errors: 0,
            latency: buckets,
            hits,
            misses,
            queued: 2,
            running: 1,
            dead: 0,
            rss: 1,
        });
        const b0 = [
            {le: 0.01, count: 10},
            {le: 0.1, count: 20},
            {le: Infinity, count: 20},
        ];
        const b1 = [
            {le: 0.01, count: 10},
            {le: 0.1, count: 80},
            {le: Infinity, count: 80},
        ];
        const d = m.derive(at(100, b0, 50, 50, 0), at(160, b1, 80, 60, 3000));
        const reset = m.derive(at(100, b0, 50, 50, 0), at(5, b0, 1, 1, 3000));
        return {
            sum: m.sum(p, 'x_total'),
            labels: p.byName.get('x_total').map((s) => s.labels.path),
            nan: Number.isNaN(p.byName.get('g')[0].value),
            e: m.sum(p, 'e'),
            type: p.types.h,
            buckets: b.map((x) => [x.le === Infinity ? 'inf' : x.le, x.count]),
            q50: m.quantile(0.5, b),
            q10: m.quantile(0.1, b),
            q99: m.quantile(0.99, b),
            empty: Number.isNaN(m.quantile(0.5, [{le: Infinity, count: 0}])),
            bad,
            d: [d.rate, d.p50, d.hitRate, d.queued],
            reset: [reset.rate, reset.p50],
        };
    }, TEXT);

    checkEqual(r.sum, 7, 'sum of x_total');
    checkEqual(r.labels, ['/a"b\\c', '/n\nl'], 'escaped label values');
    check(r.nan, 'NaN is not read as NaN');
    checkEqual(r.e, 1500, 'an exponent');
    checkEqual(r.type, 'histogram', 'a TYPE line');
    checkEqual(
        r.buckets,
        [
            [0.1, 1],
            [0.5, 3],
            ['inf', 4],
        ],
        'buckets summed over series',
    );
    check(Math.abs(r.q50 - 0.3) < 1e-9, `p50 inside its bucket: ${r.q50} (want 0.3)`);
    check(Math.abs(r.q10 - 0.04) < 1e-9, `p10 in the first bucket: ${r.q10} (want 0.04)`);
    checkEqual(r.q99, 0.5, 'a rank in +Inf answers the highest finite bound');
    check(r.empty, 'a histogram without observations has no quantile');
    check(/line 2/.test(r.bad || ''), `a malformed line is reported with its number: ${r.bad}`);
    // 60 requests in 3 s, all between 10 and 100 ms (p50: halfway, 55 ms); 30 hits, 10 misses
    checkEqual(r.d[0], 20, 'requests per second');
    check(Math.abs(r.d[1] - 55) < 1e-9, `p50 in ms over the interval: ${r.d[1]} (want 55)`);
    checkEqual(r.d[2], 75, 'hit rate over the interval');
    checkEqual(r.d[3], 2, 'queue gauge');
    checkEqual(r.reset, [null, null], 'figures across a counter reset');
}

if (isMain(import.meta.url)) await runScenarios([['metrics', metrics]]);
