/*
 * A small time-series line chart on a canvas, for the operations page.
 *
 * The chart keeps its own points (one per scrape) and draws the last `span` ms of
 * them, so it scrolls as samples arrive. Colours come from the CSS custom properties
 * --series-1 … --series-4 of the canvas, so the style sheet owns the palette. The
 * canvas is an image to assistive technology: its label carries the latest values,
 * and the legend beside it is text.
 */
(function (cv) {
    'use strict';

    const PAD = {left: 44, right: 10, top: 10, bottom: 20};

    /* A round upper bound for the y axis: 1, 2, 2.5 or 5 times a power of ten. */
    function niceMax(v) {
        if (!(v > 0)) return 1;
        const p = Math.pow(10, Math.floor(Math.log10(v)));
        for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
        return 10 * p;
    }

    class LineChart {
        /*
         * series: [{key, label}], format(v) for axis and label text, span: ms shown,
         * max: a fixed top of the y axis (e.g. 100 for a percentage), or computed.
         */
        constructor(canvas, opts) {
            this.canvas = canvas;
            this.series = opts.series;
            this.format = opts.format || ((v) => cv.fmt.decimal(v, 1));
            this.span = opts.span || 5 * 60 * 1000;
            this.max = opts.max || null;
            this.integer = !!opts.integer; /* counts: the axis steps by whole numbers */
            this.title = opts.title || '';
            this.points = [];
            canvas.setAttribute('role', 'img');
            this.observer = new ResizeObserver(() => this.draw());
            this.observer.observe(canvas);
            this.describe();
        }

        /* values: {key: number|null}; null leaves a gap in that line. */
        push(t, values) {
            this.points.push({t, values});
            const cutoff = t - this.span - 60000;
            while (this.points.length && this.points[0].t < cutoff) this.points.shift();
            this.draw();
            this.describe();
        }

        describe() {
            const last = this.points[this.points.length - 1];
            const parts = this.series.map((s) => {
                const v = last ? last.values[s.key] : null;
                return s.label + ' ' + (v === null || v === undefined ? 'no data' : this.format(v));
            });
            this.canvas.setAttribute('aria-label', this.title + ': ' + parts.join(', '));
            this.canvas.dataset.samples = String(this.points.length);
        }

        destroy() {
            this.observer.disconnect();
        }

        draw() {
            const c = this.canvas,
                dpr = window.devicePixelRatio || 1;
            const w = c.clientWidth,
                h = c.clientHeight;
            if (w === 0 || h === 0) return;
            if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
                c.width = Math.round(w * dpr);
                c.height = Math.round(h * dpr);
            }
            const g = c.getContext('2d');
            g.setTransform(dpr, 0, 0, dpr, 0, 0);
            g.clearRect(0, 0, w, h);
            const style = getComputedStyle(c);
            const grid = style.getPropertyValue('--chart-grid').trim() || '#e5e7eb';
            const ink = style.getPropertyValue('--chart-text').trim() || '#5b6675';
            const colors = [1, 2, 3, 4].map((i) => style.getPropertyValue('--series-' + i).trim() || '#0b7a5f');

            const x0 = PAD.left,
                x1 = w - PAD.right,
                y0 = h - PAD.bottom,
                y1 = PAD.top;
            const now = this.points.length ? this.points[this.points.length - 1].t : Date.now();
            const from = now - this.span;
            let top = 0;
            for (const p of this.points) {
                if (p.t < from) continue;
                for (const s of this.series) {
                    const v = p.values[s.key];
                    if (Number.isFinite(v) && v > top) top = v;
                }
            }
            top = this.max || niceMax(top * 1.1);
            if (this.integer) top = Math.max(4, Math.ceil(top / 4) * 4);

            g.font = '11px system-ui, sans-serif';
            g.lineWidth = 1;
            g.strokeStyle = grid;
            g.fillStyle = ink;
            g.textAlign = 'right';
            g.textBaseline = 'middle';
            for (let i = 0; i <= 4; i++) {
                const y = y0 - ((y0 - y1) * i) / 4;
                g.beginPath();
                g.moveTo(x0, Math.round(y) + 0.5);
                g.lineTo(x1, Math.round(y) + 0.5);
                g.stroke();
                g.fillText(this.format((top * i) / 4), x0 - 6, y);
            }
            g.textAlign = 'left';
            g.textBaseline = 'alphabetic';
            g.fillText(Math.round(this.span / 60000) + ' min ago', x0, h - 5);
            g.textAlign = 'right';
            g.fillText('now', x1, h - 5);

            const xOf = (t) => x0 + ((x1 - x0) * (t - from)) / this.span;
            const yOf = (v) => y0 - ((y0 - y1) * Math.min(v, top)) / top;
            g.lineWidth = 2;
            g.lineJoin = 'round';
            this.series.forEach((s, k) => {
                g.strokeStyle = colors[k % colors.length];
                g.beginPath();
                let drawing = false;
                for (const p of this.points) {
                    const v = p.values[s.key];
                    if (!Number.isFinite(v) || p.t < from - 60000) {
                        drawing = false;
                        continue;
                    }
                    const x = xOf(p.t),
                        y = yOf(v);
                    if (drawing) g.lineTo(x, y);
                    else g.moveTo(x, y);
                    drawing = true;
                }
                g.stroke();
            });
        }
    }

    /* The legend: one swatch (coloured by CSS class) and label per series. */
    function legend(series) {
        return cv.el(
            'ul',
            {class: 'chart-legend'},
            series.map((s, k) =>
                cv.el('li', null, [cv.el('span', {class: 'swatch swatch-' + (k + 1), 'aria-hidden': 'true'}), s.label]),
            ),
        );
    }

    cv.charts = {LineChart, legend, niceMax};
})((window.conversa = window.conversa || {}));
