/*
 * The inbox: status tabs with their counts, the conversation list (infinite scroll on
 * the cursor API) and, beside it or instead of it on a phone, the open conversation.
 *
 * The API lists one status (and optionally one assignee filter) at a time. "Mine" and
 * "Unassigned" count open and pending conversations, so their lists merge two cursor
 * streams, open and pending (feed.js).
 *
 * Live updates: every LIVE_MS the counts and the first page of each stream are read
 * again (both cached reads). Page one is the whole truth down to its last item, so
 * in that range conversations are added, updated, and dropped when they left the tab;
 * further down the list keeps what was loaded until the tab is opened again.
 */
(function (cv) {
    'use strict';
    const {el} = cv;
    const {Feed, compare, PAGE} = cv.feed;

    const TABS = [
        {key: 'open', label: 'Open', queries: [{status: 'open'}]},
        {key: 'pending', label: 'Pending', queries: [{status: 'pending'}]},
        {key: 'resolved', label: 'Resolved', queries: [{status: 'resolved'}]},
        {
            key: 'mine',
            label: 'Mine',
            queries: [
                {status: 'open', assignee: 'me'},
                {status: 'pending', assignee: 'me'},
            ],
        },
        {
            key: 'unassigned',
            label: 'Unassigned',
            queries: [
                {status: 'open', assignee: 'unassigned'},
                {status: 'pending', assignee: 'unassigned'},
            ],
        },
    ];
    const TAB_BY_KEY = new Map(TABS.map((t) => [t.key, t]));

    function matchesTab(conv, tabKey, me) {
        const active = conv.status === 'open' || conv.status === 'pending';
        switch (tabKey) {
            case 'mine':
                return active && !!me && conv.assignee_id === me.id;
            case 'unassigned':
                return active && (conv.assignee_id === null || conv.assignee_id === undefined);
            default:
                return conv.status === tabKey;
        }
    }

    /* "Unassigned", "You", or the colleague's name (users.js; "Agent #id" until it is known). */
    function assigneeLabel(conv, me) {
        if (conv.assignee_id === null || conv.assignee_id === undefined) return 'Unassigned';
        return cv.users.label(conv.assignee_id, me);
    }

    function mount(root, params) {
        const me = cv.api.user();
        let tab = TAB_BY_KEY.get(params.tab) || TABS[0];
        let selected = params.id ? Number(params.id) : null;
        let feed = null,
            generation = 0,
            loading = false,
            loadFailed = false,
            ready = false,
            thread = null;
        const shown = new Map(); /* id -> conversation */
        const nodes = new Map(); /* id -> {li, sig} */
        const dropped = new Set(); /* left the tab after a refresh: stale copies in the feed are ignored */

        /* ---- the frame ---- */

        const tabButtons = new Map();
        const counts = new Map();
        const tablist = el(
            'div',
            {class: 'tabs', role: 'tablist', 'aria-label': 'Conversation filters', testid: 'inbox-tabs'},
            TABS.map((t) => {
                const count = el('span', {class: 'tab-count', testid: 'tab-count-' + t.key, text: '–'});
                const b = el(
                    'button',
                    {
                        type: 'button',
                        class: 'tab',
                        role: 'tab',
                        id: 'tab-' + t.key,
                        testid: 'tab-' + t.key,
                        'aria-controls': 'conversation-panel',
                        'data-tab': t.key,
                        on: {click: () => go(t.key)},
                    },
                    [el('span', {text: t.label}), count],
                );
                tabButtons.set(t.key, b);
                counts.set(t.key, count);
                return b;
            }),
        );
        tablist.addEventListener('keydown', onTabKey);

        const list = el('ul', {
            class: 'conv-list',
            testid: 'conversation-list',
            'aria-label': 'Conversations (arrow keys move between them)',
        });
        const status = el('p', {class: 'list-status', role: 'status', testid: 'conversation-list-status'});
        const sentinel = el('div', {class: 'sentinel', 'aria-hidden': 'true'});
        const scroller = el('div', {class: 'conv-scroll', id: 'conversation-panel', role: 'tabpanel'}, [
            list,
            status,
            sentinel,
        ]);
        const listPane = el('div', {class: 'inbox-list'}, [
            el('h1', {class: 'sr-only', text: 'Inbox'}),
            tablist,
            scroller,
        ]);
        const threadPane = el('div', {class: 'inbox-thread', testid: 'thread-pane'});
        const section = el('section', {class: 'inbox', testid: 'inbox'}, [listPane, threadPane]);
        cv.replace(root, section);

        const observer = new IntersectionObserver(
            (entries) => {
                if (entries.some((e) => e.isIntersecting)) loadMore();
            },
            {root: scroller, rootMargin: '200px'},
        );
        observer.observe(sentinel);

        /* ---- navigation ---- */

        function go(tabKey) {
            location.hash = '#/inbox/' + tabKey + (selected ? '/' + selected : '');
        }

        function onTabKey(ev) {
            const i = TABS.indexOf(tab);
            const next = {ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1}[ev.key];
            if (next === undefined) return;
            ev.preventDefault();
            const t = TABS[(next + TABS.length) % TABS.length];
            go(t.key);
            tabButtons.get(t.key).focus();
        }

        function renderTabs() {
            for (const t of TABS) {
                const b = tabButtons.get(t.key),
                    on = t === tab;
                b.setAttribute('aria-selected', String(on));
                b.tabIndex = on ? 0 : -1;
            }
            scroller.setAttribute('aria-labelledby', 'tab-' + tab.key);
        }

        /* ---- the list ---- */

        function itemHref(c) {
            return '#/inbox/' + tab.key + '/' + c.id;
        }

        function renderItem(c) {
            const name = c.contact.name || cv.fmt.phone(c.contact.phone_number);
            const when = c.last_message_at || c.updated_at;
            const top = el('span', {class: 'conv-top'}, [
                el('span', {class: 'conv-name', testid: 'conversation-name', text: name}),
                el('time', {class: 'conv-time', datetime: when, title: cv.fmt.full(when), text: cv.fmt.when(when)}),
            ]);
            const preview = el('span', {
                class: 'conv-preview',
                testid: 'conversation-preview',
                text: c.last_message_preview || 'No messages yet',
            });
            const unread =
                c.unread_count > 0
                    ? el('span', {class: 'unread', testid: 'conversation-unread', 'data-count': c.unread_count}, [
                          String(c.unread_count),
                          el('span', {class: 'sr-only', text: ' unread'}),
                      ])
                    : null;
            const tags = el('span', {class: 'conv-tags'}, [
                el('span', {class: 'chip chip-' + c.status, text: c.status}),
                el('span', {class: 'conv-assignee', testid: 'conversation-assignee', text: assigneeLabel(c, me)}),
                unread,
            ]);
            const link = el(
                'a',
                {class: 'conv-link', href: itemHref(c), 'aria-current': c.id === selected ? 'true' : null},
                [
                    el('span', {class: 'avatar', 'aria-hidden': 'true', text: cv.initials(c.contact.name || '#')}),
                    el('span', {class: 'conv-main'}, [top, preview, tags]),
                ],
            );
            return el(
                'li',
                {class: 'conv-item', testid: 'conversation-item', 'data-id': c.id, 'data-status': c.status},
                link,
            );
        }

        /* Brings the DOM in line with `shown`, touching only the rows that changed or moved. */
        function render() {
            const order = Array.from(shown.values()).sort(compare);
            for (const [id, n] of nodes) {
                if (!shown.has(id)) {
                    n.li.remove();
                    nodes.delete(id);
                }
            }
            const rows = order.map((c) => {
                const sig = JSON.stringify([
                    c.updated_at,
                    c.status,
                    assigneeLabel(c, me),
                    c.unread_count,
                    c.last_message_preview,
                    c.contact.name,
                    c.id === selected,
                    tab.key,
                ]);
                let n = nodes.get(c.id);
                if (!n || n.sig !== sig) {
                    const li = renderItem(c);
                    if (n) n.li.replaceWith(li);
                    n = {li, sig};
                    nodes.set(c.id, n);
                }
                return n.li;
            });
            let cursor = list.firstChild;
            for (const li of rows) {
                if (li !== cursor) list.insertBefore(li, cursor);
                else cursor = cursor.nextSibling;
            }
            rove();
            const state = loadFailed
                ? 'error'
                : !ready
                  ? 'loading'
                  : order.length === 0
                    ? 'empty'
                    : loading
                      ? 'more'
                      : 'ready';
            if (status.dataset.state !== state) {
                status.dataset.state = state;
                cv.replace(
                    status,
                    state === 'error'
                        ? [
                              'The conversations could not be loaded. ',
                              el('button', {
                                  type: 'button',
                                  class: 'btn btn-link',
                                  text: 'Try again',
                                  on: {click: loadMore},
                              }),
                          ]
                        : {
                              loading: 'Loading conversations…',
                              empty: 'No ' + tab.label.toLowerCase() + ' conversations.',
                              more: 'Loading more…',
                              ready: '',
                          }[state],
                );
            }
        }

        /*
         * The list is one stop of the Tab key (the link last focused, else the open
         * conversation, else the first); the arrow keys move within it. A long inbox
         * would otherwise stand between the keyboard and the reply box.
         */
        let focusId = null;

        function rove() {
            const links = list.querySelectorAll('.conv-link');
            const want = [focusId, selected].find((id) => id !== null && nodes.has(id));
            links.forEach((a, i) => {
                const id = Number(a.parentElement.dataset.id);
                a.tabIndex = (want === undefined ? i === 0 : id === want) ? 0 : -1;
            });
        }

        list.addEventListener('focusin', (ev) => {
            const li = ev.target.closest('.conv-item');
            if (li) {
                focusId = Number(li.dataset.id);
                rove();
            }
        });

        list.addEventListener('keydown', (ev) => {
            const links = Array.from(list.querySelectorAll('.conv-link'));
            const i = links.indexOf(document.activeElement);
            if (i < 0) return;
            const next = {ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: links.length - 1}[ev.key];
            if (next === undefined) return;
            ev.preventDefault();
            const target = links[Math.max(0, Math.min(links.length - 1, next))];
            target.focus();
            target.scrollIntoView({block: 'nearest'});
        });

        function sentinelVisible() {
            const a = sentinel.getBoundingClientRect(),
                b = scroller.getBoundingClientRect();
            return a.top < b.bottom + 200;
        }

        async function loadMore() {
            if (loading || !feed || feed.exhausted) return;
            loading = true;
            loadFailed = false;
            const gen = generation;
            try {
                do {
                    const batch = await feed.next();
                    if (gen !== generation) return;
                    for (const c of batch) {
                        /* the live refresh may hold a newer copy, or know it left the tab */
                        if (!shown.has(c.id) && !dropped.has(c.id)) shown.set(c.id, c);
                    }
                    ready = true;
                    render();
                } while (!feed.exhausted && sentinelVisible());
            } catch (err) {
                if (gen === generation) {
                    loadFailed = true;
                    cv.reportError(err, 'Could not load conversations');
                }
            } finally {
                if (gen === generation) {
                    loading = false;
                    render();
                }
            }
        }

        function resetList() {
            generation++;
            loading = false;
            loadFailed = false;
            ready = false;
            feed = new Feed(tab.queries);
            shown.clear();
            dropped.clear();
            for (const n of nodes.values()) n.li.remove();
            nodes.clear();
            scroller.scrollTop = 0;
            render();
            loadMore();
        }

        /* Page one of every stream again: the truth for everything down to its last item. */
        async function refreshTop() {
            if (!ready) return;
            const gen = generation;
            const pages = await Promise.all(
                tab.queries.map((q) => cv.api.get('/api/v1/conversations', Object.assign({limit: PAGE}, q))),
            );
            if (gen !== generation) return;
            let bound = null; /* the last item of a full page that comes first in list order */
            const fresh = new Map();
            for (const p of pages) {
                for (const c of p.data) fresh.set(c.id, c);
                if (p.data.length === PAGE) {
                    const last = p.data[p.data.length - 1];
                    if (!bound || compare(last, bound) < 0) bound = last;
                }
            }
            const covered = (c) => !bound || compare(c, bound) <= 0;
            for (const [id, c] of shown) {
                if (!fresh.has(id) && covered(c)) {
                    shown.delete(id);
                    dropped.add(id);
                }
            }
            for (const [id, c] of fresh) {
                if (covered(c) || shown.has(id)) {
                    shown.set(id, c);
                    dropped.delete(id);
                }
            }
            render();
        }

        async function loadCounts() {
            const res = await cv.api.get('/api/v1/conversations/status');
            for (const t of TABS) {
                const n = res.data[t.key];
                const node = counts.get(t.key);
                node.textContent = cv.fmt.number(n);
                node.dataset.count = String(n);
                tabButtons.get(t.key).setAttribute('aria-label', t.label + ', ' + n + ' conversations');
            }
        }

        /* A change made here (status, assignee, a reply): show it before the next poll. */
        const offChanged = cv.on('conversation-changed', (conv) => {
            if (conv && conv.contact) {
                if (matchesTab(conv, tab.key, me)) shown.set(conv.id, conv);
                else if (shown.delete(conv.id)) dropped.add(conv.id);
                render();
            }
            poller.now();
        });

        const poller = cv.poll.every(() => Promise.all([loadCounts(), refreshTop()]), cv.poll.LIVE_MS);

        /* ---- the conversation pane ---- */

        function showThread() {
            if (thread) thread.unmount();
            thread = null;
            section.dataset.mode = selected ? 'thread' : 'list';
            if (selected) {
                thread = cv.thread.mount(threadPane, selected, {backHref: '#/inbox/' + tab.key});
            } else {
                cv.replace(
                    threadPane,
                    el('div', {class: 'placeholder'}, [
                        cv.icon('inbox', 'icon-large'),
                        el('p', {text: 'Choose a conversation to read it and reply.'}),
                    ]),
                );
            }
        }

        function update(p) {
            const nextTab = TAB_BY_KEY.get(p.tab) || TABS[0];
            const nextSel = p.id ? Number(p.id) : null;
            const tabChanged = nextTab !== tab,
                selChanged = nextSel !== selected;
            tab = nextTab;
            selected = nextSel;
            renderTabs();
            if (tabChanged) resetList();
            else if (selChanged) render();
            if (selChanged || !thread !== !selected) showThread();
            if (tabChanged) {
                const back = threadPane.querySelector('[data-testid="thread-back"]');
                if (back) back.setAttribute('href', '#/inbox/' + tab.key);
                poller.now();
            }
        }

        renderTabs();
        resetList();
        showThread();
        /* names for the assignees: the rows redraw once they are known (their signature holds the name) */
        let live = true;
        cv.users
            .load()
            .then(() => live && render())
            .catch(() => {
                /* names are a nicety: the rows keep "Agent #id" */
            });

        return {
            update,
            unmount() {
                live = false;
                generation++;
                poller.stop();
                offChanged();
                observer.disconnect();
                if (thread) thread.unmount();
            },
        };
    }

    cv.inbox = {mount, TABS};
})((window.conversa = window.conversa || {}));
