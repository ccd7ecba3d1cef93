/*
 * The Prometheus text exposition format (version 0.0.4), as /api/metrics serves it,
 * and the figures the operations page derives from two scrapes: counters become rates
 * over the time between them, histograms become percentiles as Prometheus'
 * histogram_quantile() computes them.
 */
(function (cv) {
    'use strict';

    function parseValue(s) {
        if (s === '+Inf' || s === 'Inf') return Infinity;
        if (s === '-Inf') return -Infinity;
        if (s === 'NaN') return NaN;
        const v = Number(s);
        if (s === '' || Number.isNaN(v)) throw new Error('bad sample value "' + s + '"');
        return v;
    }

    /* Reads {name="value",...} starting at text[i] === '{'; returns [labels, index after '}']. */
    function parseLabels(line, i) {
        const labels = {};
        i++;
        for (;;) {
            while (line[i] === ' ' || line[i] === ',') i++;
            if (line[i] === '}') return [labels, i + 1];
            const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
            if (!m) throw new Error('bad label name');
            const name = m[0];
            i += name.length;
            while (line[i] === ' ') i++;
            if (line[i] !== '=' || line[i + 1] !== '"') throw new Error('bad label ' + name);
            i += 2;
            let value = '';
            for (;;) {
                const c = line[i];
                if (c === undefined) throw new Error('unterminated label value');
                if (c === '"') {
                    i++;
                    break;
                }
                if (c === '\\') {
                    const n = line[i + 1];
                    value += n === 'n' ? '\n' : n;
                    i += 2;
                } else {
                    value += c;
                    i++;
                }
            }
            labels[name] = value;
        }
    }

    /*
     * parse(text) -> {samples: [{name, labels, value}], types: {family: type}, byName: Map}
     * Comments other than TYPE are ignored; a malformed line throws with its number.
     */
    function parse(text) {
        const samples = [],
            types = {},
            byName = new Map();
        const lines = text.split('\n');
        for (let n = 0; n < lines.length; n++) {
            const line = lines[n].trim();
            if (line === '') continue;
            if (line[0] === '#') {
                const m = /^#\s*TYPE\s+(\S+)\s+(\S+)/.exec(line);
                if (m) types[m[1]] = m[2];
                continue;
            }
            try {
                const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
                if (!m) throw new Error('bad metric name');
                const name = m[0];
                let i = name.length,
                    labels = {};
                if (line[i] === '{') [labels, i] = parseLabels(line, i);
                const rest = line.slice(i).trim().split(/\s+/);
                const sample = {name, labels, value: parseValue(rest[0])};
                samples.push(sample);
                if (!byName.has(name)) byName.set(name, []);
                byName.get(name).push(sample);
            } catch (err) {
                throw new Error('metrics line ' + (n + 1) + ': ' + err.message);
            }
        }
        return {samples, types, byName};
    }

    /* The sum of every series of `name` (whose labels pass `filter`, if given); null when absent. */
    function sum(parsed, name, filter) {
        const list = parsed.byName.get(name);
        if (!list) return null;
        let total = 0;
        for (const s of list) if (!filter || filter(s.labels)) total += s.value;
        return total;
    }

    /* A histogram's cumulative buckets summed over all its series: [{le, count}] by le. */
    function buckets(parsed, name, filter) {
        const byLe = new Map();
        for (const s of parsed.byName.get(name + '_bucket') || []) {
            if (filter && !filter(s.labels)) continue;
            const le = parseValue(s.labels.le);
            byLe.set(le, (byLe.get(le) || 0) + s.value);
        }
        return Array.from(byLe, ([le, count]) => ({le, count})).sort((a, b) => a.le - b.le);
    }

    /* cur - prev, bucket by bucket (the increase over the interval); null after a counter reset. */
    function bucketsIncrease(cur, prev) {
        const before = new Map(prev.map((b) => [b.le, b.count]));
        const out = [];
        for (const b of cur) {
            const d = b.count - (before.get(b.le) || 0);
            if (d < 0) return null;
            out.push({le: b.le, count: d});
        }
        return out;
    }

    /*
     * The q-quantile of cumulative buckets, interpolated linearly inside its bucket as
     * histogram_quantile() does; NaN without observations. A rank in the +Inf bucket
     * answers the highest finite bound.
     */
    function quantile(q, list) {
        if (!list || list.length === 0) return NaN;
        const total = list[list.length - 1].count;
        if (!(total > 0)) return NaN;
        const rank = q * total;
        let i = 0;
        while (i < list.length - 1 && list[i].count < rank) i++;
        const b = list[i];
        if (b.le === Infinity) return i > 0 ? list[i - 1].le : NaN;
        const lowerBound = i > 0 ? list[i - 1].le : 0;
        const lowerCount = i > 0 ? list[i - 1].count : 0;
        if (b.count === lowerCount) return b.le;
        return lowerBound + ((b.le - lowerBound) * (rank - lowerCount)) / (b.count - lowerCount);
    }

    /* The raw readings a scrape gives, kept to compare with the next one. */
    function snapshot(text, at) {
        const p = parse(text);
        return {
            at,
            requests: sum(p, 'http_request_duration_seconds_count'),
            errors: sum(p, 'http_request_duration_seconds_count', (l) => Number(l.status) >= 500),
            latency: buckets(p, 'http_request_duration_seconds'),
            hits: sum(p, 'cache_hits_total'),
            misses: sum(p, 'cache_misses_total'),
            queued: sum(p, 'queue_jobs_queued'),
            running: sum(p, 'queue_jobs_running'),
            dead: sum(p, 'queue_jobs_dead'),
            rss: sum(p, 'process_resident_memory_bytes'),
        };
    }

    /*
     * The figures between two snapshots: requests per second, latency percentiles (ms)
     * over the requests of the interval, cache hit rate (%) over its lookups, and the
     * queue gauges as they are now. A rate is null when it cannot be known (a restart
     * reset the counters, or nothing happened to measure).
     */
    function derive(prev, cur) {
        const seconds = (cur.at - prev.at) / 1000;
        const out = {
            at: cur.at,
            rate: null,
            errorsPerMinute: null,
            p50: null,
            p95: null,
            p99: null,
            hitRate: null,
            queued: cur.queued,
            running: cur.running,
            dead: cur.dead,
            rss: cur.rss,
        };
        if (!(seconds > 0) || cur.requests === null || prev.requests === null) return out;
        const requests = cur.requests - prev.requests;
        if (requests < 0) return out;
        out.rate = requests / seconds;
        out.errorsPerMinute = Math.max(0, ((cur.errors - prev.errors) / seconds) * 60);
        const inc = bucketsIncrease(cur.latency, prev.latency);
        if (inc && requests > 0) {
            out.p50 = quantile(0.5, inc) * 1000;
            out.p95 = quantile(0.95, inc) * 1000;
            out.p99 = quantile(0.99, inc) * 1000;
        }
        const hits = cur.hits - prev.hits,
            misses = cur.misses - prev.misses;
        if (hits >= 0 && misses >= 0 && hits + misses > 0) out.hitRate = (100 * hits) / (hits + misses);
        return out;
    }

    cv.metrics = {parse, sum, buckets, bucketsIncrease, quantile, snapshot, derive};
})((window.conversa = window.conversa || {}));
