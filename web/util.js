/*
 * Shared helpers for every screen: the app's namespace, building DOM, icons,
 * formatting, a small event bus and the toasts that report errors.
 *
 * Every script of the app is a classic script wrapped in an IIFE that adds to the
 * one global `window.conversa`; index.html loads them in dependency order (defer).
 * User data only ever reaches the page as text (textContent, attribute values),
 * never as markup.
 */
(function (cv) {
    'use strict';

    /* ---- DOM ---- */

    /* Properties set as properties, not attributes, so that they reflect live state. */
    const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'indeterminate']);

    /*
     * el('button', {class: 'btn', text: 'Send', testid: 'send', on: {click: fn}}, children)
     * Attribute values null, undefined and false are left out; true is an empty attribute.
     */
    function el(tag, attrs, children) {
        const node = document.createElement(tag);
        if (attrs) {
            for (const [key, value] of Object.entries(attrs)) {
                if (value === undefined || value === null || value === false) continue;
                if (key === 'class') node.className = value;
                else if (key === 'text') node.textContent = String(value);
                else if (key === 'testid') node.setAttribute('data-testid', value);
                else if (key === 'on') for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
                else if (PROPS.has(key)) node[key] = value;
                else node.setAttribute(key, value === true ? '' : String(value));
            }
        }
        append(node, children);
        return node;
    }

    function append(node, children) {
        if (children === undefined || children === null || children === false) return node;
        if (Array.isArray(children)) {
            for (const c of children) append(node, c);
        } else if (children instanceof Node) {
            node.appendChild(children);
        } else {
            node.appendChild(document.createTextNode(String(children)));
        }
        return node;
    }

    function clear(node) {
        while (node.firstChild) node.removeChild(node.firstChild);
        return node;
    }

    /* Replaces node's children with the given ones. */
    function replace(node, children) {
        clear(node);
        return append(node, children);
    }

    /* A data table: a caption for assistive technology, column headers, and its body. */
    function table(caption, columns, body) {
        return el('table', {class: 'table'}, [
            el('caption', {class: 'sr-only', text: caption}),
            el(
                'thead',
                null,
                el(
                    'tr',
                    null,
                    columns.map((c) => el('th', {scope: 'col', text: c})),
                ),
            ),
            body,
        ]);
    }

    /*
     * Runs render(), which may rebuild part of `container`, and puts the keyboard focus
     * back where it was: on the control with the same data-testid in the row with the
     * same data-id, else on `fallback` (when given). Live screens redraw while people
     * use them; without this a redraw would drop the focus to the page's start.
     */
    function keepFocus(container, render, fallback) {
        const active = document.activeElement;
        const inside = active && active !== container && container.contains(active);
        const row = inside ? active.closest('[data-id]') : null;
        const key = inside
            ? {testid: active.getAttribute('data-testid'), id: row && row.getAttribute('data-id')}
            : null;
        render();
        if (!key || container.contains(document.activeElement)) return;
        const match = Array.from(container.querySelectorAll('[data-testid="' + key.testid + '"]')).find((e) => {
            const r = e.closest('[data-id]');
            return !key.id || (r && r.getAttribute('data-id') === key.id);
        });
        const target = match || (typeof fallback === 'function' ? fallback() : fallback);
        if (target) target.focus();
    }

    /* ---- icons: stroked 24×24 paths, drawn with currentColor ---- */

    const ICONS = {
        bell: ['M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9', 'M13.7 21a2 2 0 0 1-3.4 0'],
        check: ['M20 6 9 17l-5-5'],
        checks: ['M17 6 6.5 16.5 2 12', 'M22 7 11.5 17.5 10 16'],
        clock: ['M12 2a10 10 0 1 0 0 20 10 10 0 1 0 0-20z', 'M12 6v6l4 2'],
        alert: ['M12 2a10 10 0 1 0 0 20 10 10 0 1 0 0-20z', 'M12 8v4', 'M12 16h.01'],
        back: ['M19 12H5', 'M12 19l-7-7 7-7'],
        send: ['M22 2 11 13', 'M22 2l-7 20-4-9-9-4 20-7z'],
        inbox: [
            'M22 12h-6l-2 3h-4l-2-3H2',
            'M5.5 5.1 2 12v6a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2v-6l-3.5-6.9A2 2 0 0 0 16.8 4H7.2a2 2 0 0 0-1.7 1.1z',
        ],
        users: [
            'M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2',
            'M9 3a4 4 0 1 0 0 8 4 4 0 1 0 0-8z',
            'M23 21v-2a4 4 0 0 0-3-3.9',
            'M16 3.1a4 4 0 0 1 0 7.8',
        ],
        megaphone: ['M3 11l18-5v12L3 14v-3z', 'M11.6 16.8a3 3 0 1 1-5.8-1.6'],
        activity: ['M22 12h-4l-3 9L9 3l-3 9H2'],
        logout: ['M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4', 'M16 17l5-5-5-5', 'M21 12H9'],
        search: ['M11 3a8 8 0 1 0 0 16 8 8 0 1 0 0-16z', 'M21 21l-4.3-4.3'],
        close: ['M18 6 6 18', 'M6 6l12 12'],
        user: ['M20 21v-2a4 4 0 0 0-4-4H8a4 4 0 0 0-4 4v2', 'M12 3a4 4 0 1 0 0 8 4 4 0 1 0 0-8z'],
    };

    const SVG_NS = 'http://www.w3.org/2000/svg';

    /* A decorative icon: hidden from assistive technology, the control carries the label. */
    function icon(name, cls) {
        const svg = document.createElementNS(SVG_NS, 'svg');
        svg.setAttribute('viewBox', '0 0 24 24');
        svg.setAttribute('aria-hidden', 'true');
        svg.setAttribute('focusable', 'false');
        svg.setAttribute('class', 'icon' + (cls ? ' ' + cls : ''));
        for (const d of ICONS[name] || []) {
            const path = document.createElementNS(SVG_NS, 'path');
            path.setAttribute('d', d);
            svg.appendChild(path);
        }
        return svg;
    }

    /* ---- formatting ---- */

    const timeFmt = new Intl.DateTimeFormat(undefined, {hour: '2-digit', minute: '2-digit'});
    const dayFmt = new Intl.DateTimeFormat(undefined, {day: 'numeric', month: 'short'});
    const yearFmt = new Intl.DateTimeFormat(undefined, {day: 'numeric', month: 'short', year: 'numeric'});
    const fullFmt = new Intl.DateTimeFormat(undefined, {dateStyle: 'medium', timeStyle: 'short'});
    const longDayFmt = new Intl.DateTimeFormat(undefined, {weekday: 'long', day: 'numeric', month: 'long'});
    const numFmt = new Intl.NumberFormat();

    function sameDay(a, b) {
        return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
    }

    const fmt = {
        /* A list's timestamp: the time today, the day this year, the full date before. */
        when(iso) {
            if (!iso) return '';
            const d = new Date(iso),
                now = new Date();
            if (sameDay(d, now)) return timeFmt.format(d);
            if (d.getFullYear() === now.getFullYear()) return dayFmt.format(d);
            return yearFmt.format(d);
        },
        time(iso) {
            return iso ? timeFmt.format(new Date(iso)) : '';
        },
        full(iso) {
            return iso ? fullFmt.format(new Date(iso)) : '';
        },
        day(iso) {
            const d = new Date(iso),
                now = new Date();
            if (sameDay(d, now)) return 'Today';
            const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
            if (sameDay(d, yesterday)) return 'Yesterday';
            return longDayFmt.format(d);
        },
        relative(iso) {
            if (!iso) return '';
            const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
            if (s < 45) return 'just now';
            if (s < 3600) return Math.round(s / 60) + ' min ago';
            if (s < 86400) return Math.round(s / 3600) + ' h ago';
            return Math.round(s / 86400) + ' d ago';
        },
        /* Stored numbers are E.164 digits without '+'. */
        phone(digits) {
            return digits ? '+' + digits : '';
        },
        number(n) {
            return n === null || n === undefined || Number.isNaN(n) ? '–' : numFmt.format(n);
        },
        /* n with at most `digits` decimals, '–' when unknown. */
        decimal(n, digits) {
            if (n === null || n === undefined || !Number.isFinite(n)) return '–';
            return new Intl.NumberFormat(undefined, {maximumFractionDigits: digits}).format(n);
        },
        duration(seconds) {
            if (!Number.isFinite(seconds)) return '–';
            const s = Math.floor(seconds);
            if (s < 60) return s + ' s';
            if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
            if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
            return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
        },
        /* Megabytes as the health check reports them. */
        megabytes(mb) {
            if (!Number.isFinite(mb)) return '–';
            return mb >= 1024 ? fmt.decimal(mb / 1024, 1) + ' GB' : fmt.decimal(mb, 1) + ' MB';
        },
    };

    function initials(name) {
        const parts = String(name || '')
            .trim()
            .split(/\s+/)
            .filter(Boolean);
        if (parts.length === 0) return '#';
        return (parts[0][0] + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
    }

    function debounce(fn, ms) {
        let timer = null;
        const wrapped = function (...args) {
            clearTimeout(timer);
            timer = setTimeout(() => fn.apply(this, args), ms);
        };
        wrapped.cancel = () => clearTimeout(timer);
        return wrapped;
    }

    /* ---- events between screens ---- */

    const listeners = new Map();

    /* Subscribes; returns the function that unsubscribes. */
    function on(name, fn) {
        if (!listeners.has(name)) listeners.set(name, new Set());
        listeners.get(name).add(fn);
        return () => listeners.get(name).delete(fn);
    }

    function emit(name, detail) {
        for (const fn of Array.from(listeners.get(name) || [])) {
            try {
                fn(detail);
            } catch (err) {
                console.error(err);
            }
        }
    }

    /* ---- toasts ---- */

    const TOAST_MS = {error: 10000, info: 4000};

    /* Shows a message in the toast region; the same text twice restarts the first one's timer. */
    function toast(message, kind) {
        kind = kind || 'error';
        const region = document.getElementById('toasts');
        if (!region) return;
        for (const existing of region.children) {
            if (existing.dataset.message === message) {
                existing.restart();
                return;
            }
        }
        let timer = null;
        const close = () => {
            clearTimeout(timer);
            node.remove();
        };
        const node = el(
            'div',
            {
                class: 'toast toast-' + kind,
                role: kind === 'error' ? 'alert' : 'status',
                testid: 'toast',
                'data-kind': kind,
            },
            [
                el('span', {class: 'toast-text', text: message}),
                el(
                    'button',
                    {type: 'button', class: 'icon-btn toast-close', 'aria-label': 'Dismiss', on: {click: close}},
                    icon('close'),
                ),
            ],
        );
        node.dataset.message = message;
        node.restart = () => {
            clearTimeout(timer);
            timer = setTimeout(close, TOAST_MS[kind] || TOAST_MS.error);
        };
        node.restart();
        region.appendChild(node);
    }

    /*
     * Reports a failed action. A 401 is not reported: the app is already back at the
     * sign-in form, which says why.
     */
    function reportError(err, what) {
        if (err && err.name === 'AbortError') return;
        if (err && err.status === 401) return;
        const message = err && err.message ? err.message : String(err);
        toast(what ? what + ': ' + message : message, 'error');
        if (!(err && err.status)) console.error(err);
    }

    Object.assign(cv, {
        el,
        append,
        clear,
        replace,
        table,
        keepFocus,
        icon,
        fmt,
        initials,
        debounce,
        on,
        emit,
        toast,
        reportError,
    });
})((window.conversa = window.conversa || {}));
