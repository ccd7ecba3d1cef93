/*
 * One conversation: its header (contact, status, assignee), its messages with their
 * delivery state, and the reply box.
 *
 * Assignees and senders are named from the company's users (users.js); the header
 * assigns to the signed-in user or to a colleague chosen from them. Opening a
 * conversation with unread messages marks it read (POST …/read), and so does a new
 * customer message arriving while it is open and shown: the agent is reading it.
 *
 * Messages are read newest first, 50 at a time, and shown oldest first. The newest
 * page is polled every LIVE_MS (a cached read): it brings new messages and the
 * statuses Meta reported for recent outbound ones (sent, delivered, read, failed), so
 * the ticks move without reloading. New messages are appended to the log, older ones
 * ("Load earlier") prepended; a message whose state changed is redrawn in place.
 */
(function (cv) {
    'use strict';
    const {el} = cv;
    const PAGE = 50;
    const HEADER_EVERY = 10; /* polls between re-reads of the conversation itself */
    const NEAR_BOTTOM_PX = 80;

    const STATUS = {
        pending: {icon: 'clock', label: 'Sending'},
        sent: {icon: 'check', label: 'Sent'},
        delivered: {icon: 'checks', label: 'Delivered'},
        read: {icon: 'checks', label: 'Read'},
        failed: {icon: 'alert', label: 'Failed'},
    };

    const WINDOW_CLOSED = 131047; /* Meta: outside the customer's 24 h window */

    function assigneeText(conv, me) {
        if (conv.assignee_id === null || conv.assignee_id === undefined) return 'Unassigned';
        if (me && conv.assignee_id === me.id) return 'Assigned to you';
        const u = cv.users.get(conv.assignee_id);
        return 'Assigned to ' + (u ? u.name : 'agent #' + conv.assignee_id);
    }

    function senderText(m, me) {
        if (m.direction !== 'outbound') return null;
        if (m.sender_id === null || m.sender_id === undefined) return 'Automatic';
        return cv.users.label(m.sender_id, me);
    }

    /* What a bubble shows; changes when any of it changes. */
    function signature(m) {
        return [m.status, m.error_code, m.error_title, m.body].join('\u0000');
    }

    function tick(m) {
        const info = STATUS[m.status];
        if (m.direction !== 'outbound' || !info) return null;
        return el(
            'span',
            {
                class: 'tick tick-' + m.status,
                role: 'img',
                'aria-label': info.label,
                title: info.label,
                testid: 'message-status',
                'data-status': m.status,
            },
            cv.icon(info.icon),
        );
    }

    function failure(m) {
        if (m.status !== 'failed') return null;
        const code = m.error_code ? '(' + m.error_code + ') ' : '';
        const why = m.error_title || 'Meta did not deliver it';
        const hint =
            Number(m.error_code) === WINDOW_CLOSED
                ? ' The customer has not written in the last 24 hours: only a template can reach them now.'
                : '';
        return el('p', {
            class: 'msg-error',
            testid: 'message-error',
            text: 'Not delivered: ' + code + why + '.' + hint,
        });
    }

    function bubble(m, me) {
        const sender = senderText(m, me);
        const text =
            m.body !== null && m.body !== undefined && m.body !== ''
                ? el('p', {class: 'msg-body', text: m.body})
                : el('p', {class: 'msg-body msg-placeholder', text: '[' + (m.type || 'message') + ']'});
        return el(
            'div',
            {
                class:
                    'msg ' +
                    (m.direction === 'outbound' ? 'msg-out' : 'msg-in') +
                    (m.status === 'failed' ? ' msg-failed' : ''),
                testid: 'message',
                'data-id': m.id,
                'data-direction': m.direction,
                'data-status': m.status,
            },
            [
                text,
                el('div', {class: 'msg-meta'}, [
                    sender ? el('span', {class: 'msg-sender', text: sender}) : null,
                    el('time', {
                        datetime: m.created_at,
                        title: cv.fmt.full(m.created_at),
                        text: cv.fmt.time(m.created_at),
                    }),
                    tick(m),
                ]),
                failure(m),
            ],
        );
    }

    function daySeparator(iso) {
        return el('div', {class: 'day-sep', role: 'separator'}, el('span', {text: cv.fmt.day(iso)}));
    }

    function dayKey(iso) {
        const d = new Date(iso);
        return d.getFullYear() + '-' + d.getMonth() + '-' + d.getDate();
    }

    /*
     * mount(pane, id, {backHref}) shows conversation `id` in pane; returns {unmount()}.
     */
    function mount(pane, id, opts) {
        const me = cv.api.user();
        const messages = new Map(); /* id -> message */
        const nodes = new Map(); /* id -> its bubble */
        let conv = null,
            maxId = 0,
            minId = Infinity,
            lastDay = null,
            hasOlder = false,
            polls = 0,
            gone = false;

        const back = el(
            'a',
            {
                class: 'icon-btn thread-back',
                href: opts.backHref,
                'aria-label': 'Back to conversations',
                testid: 'thread-back',
            },
            cv.icon('back'),
        );
        const title = el('h2', {id: 'thread-title', class: 'thread-title', testid: 'thread-title'});
        const subtitle = el('p', {class: 'thread-sub'});
        const statusSelect = el(
            'select',
            {id: 'thread-status', class: 'select-small', testid: 'thread-status'},
            ['open', 'pending', 'resolved'].map((s) => el('option', {value: s, text: s[0].toUpperCase() + s.slice(1)})),
        );
        const assignBtn = el('button', {type: 'button', class: 'btn btn-small', testid: 'thread-assign'});
        const assignee = el('span', {class: 'thread-assignee', testid: 'thread-assignee'});
        /* a colleague to hand it to: chosen, then confirmed with the button (arrow keys move a select) */
        const colleague = el('select', {id: 'thread-colleague', class: 'select-small', testid: 'thread-colleague'});
        const handOver = el('button', {
            type: 'button',
            class: 'btn btn-small',
            testid: 'thread-hand-over',
            disabled: true,
            text: 'Assign',
        });
        const handOverGroup = el('span', {class: 'thread-hand-over', hidden: true}, [
            el('label', {for: 'thread-colleague', class: 'sr-only', text: 'Assign to a colleague'}),
            colleague,
            handOver,
        ]);
        const older = el('button', {
            type: 'button',
            class: 'btn btn-link older',
            hidden: true,
            testid: 'thread-older',
            text: 'Load earlier messages',
        });
        const log = el('div', {class: 'msg-list'});
        const scroller = el(
            'div',
            {
                class: 'messages',
                role: 'log',
                'aria-live': 'polite',
                'aria-label': 'Messages',
                testid: 'messages',
                tabindex: '0',
            },
            [older, log],
        );
        const textarea = el('textarea', {
            id: 'reply-text',
            class: 'reply-text',
            rows: '1',
            maxlength: '4096',
            placeholder: 'Write a reply…',
            title: 'Enter sends; Shift+Enter starts a new line',
            testid: 'reply-text',
        });
        const send = el('button', {type: 'submit', class: 'btn btn-primary reply-send', testid: 'reply-send'}, [
            cv.icon('send'),
            el('span', {text: 'Send'}),
        ]);
        const form = el('form', {class: 'reply', testid: 'reply-form'}, [
            el('label', {for: 'reply-text', class: 'sr-only', text: 'Reply'}),
            textarea,
            send,
        ]);
        const section = el('section', {class: 'thread', testid: 'thread', 'aria-labelledby': 'thread-title'}, [
            el('header', {class: 'thread-head'}, [
                back,
                el('div', {class: 'avatar', 'aria-hidden': 'true'}),
                el('div', {class: 'thread-who'}, [title, subtitle]),
                el('div', {class: 'thread-actions'}, [
                    assignee,
                    assignBtn,
                    handOverGroup,
                    el('label', {for: 'thread-status', class: 'sr-only', text: 'Status'}),
                    statusSelect,
                ]),
            ]),
            scroller,
            form,
        ]);
        cv.replace(pane, el('div', {class: 'thread-loading', role: 'status', text: 'Loading conversation…'}));

        function renderHeader() {
            const name = conv.contact.name || cv.fmt.phone(conv.contact.phone_number);
            title.textContent = name;
            subtitle.textContent = cv.fmt.phone(conv.contact.phone_number);
            section.querySelector('.avatar').textContent = cv.initials(conv.contact.name || '#');
            statusSelect.value = conv.status;
            statusSelect.dataset.value = conv.status;
            const mine = me && conv.assignee_id === me.id;
            assignBtn.textContent = mine ? 'Unassign' : 'Assign to me';
            assignBtn.dataset.action = mine ? 'unassign' : 'assign';
            assignee.textContent = assigneeText(conv, me);
            textarea.setAttribute('aria-label', 'Reply to ' + name);
            renderColleagues();
        }

        /* Everyone but the signed-in user and the current assignee; hidden when nobody is left. */
        function renderColleagues() {
            const others = cv.users.list().filter((u) => (!me || u.id !== me.id) && u.id !== conv.assignee_id);
            const chosen = colleague.value;
            cv.replace(colleague, [
                el('option', {value: '', text: 'Assign to…'}),
                ...others.map((u) =>
                    el('option', {value: String(u.id), text: u.name + (u.role === 'admin' ? ' (admin)' : '')}),
                ),
            ]);
            colleague.value = others.some((u) => String(u.id) === chosen) ? chosen : '';
            handOver.disabled = colleague.value === '';
            handOverGroup.hidden = others.length === 0;
        }

        /*
         * Marks the conversation read when it has unread messages (or, with `arrived`,
         * when the poll just brought the customer's), so the list's badge clears here and
         * for every other agent. One request at a time; a failure is shown, and a later
         * poll tries again.
         */
        let reading = false;
        async function markRead(arrived) {
            if (reading || gone || !conv || !(arrived || conv.unread_count > 0)) return;
            reading = true;
            try {
                const res = await cv.api.post('/api/v1/conversations/' + id + '/read');
                if (gone) return;
                conv = res.data;
                renderHeader();
                cv.emit('conversation-changed', conv);
            } catch (err) {
                if (!gone && err.status !== 404) cv.reportError(err, 'Could not mark the conversation read');
            } finally {
                reading = false;
            }
        }

        function nearBottom() {
            return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
        }

        function scrollToBottom() {
            scroller.scrollTop = scroller.scrollHeight;
        }

        /* Newer messages than any shown, in id order, at the end of the log. */
        function appendNew(list) {
            list.sort((a, b) => a.id - b.id);
            const stick = nearBottom();
            for (const m of list) {
                if (messages.has(m.id)) continue;
                const day = dayKey(m.created_at);
                if (day !== lastDay) {
                    log.appendChild(daySeparator(m.created_at));
                    lastDay = day;
                }
                const node = bubble(m, me);
                messages.set(m.id, m);
                nodes.set(m.id, node);
                log.appendChild(node);
                maxId = Math.max(maxId, m.id);
                minId = Math.min(minId, m.id);
            }
            if (stick) scrollToBottom();
        }

        /* Older messages: the log is rebuilt (a user's action, rare), keeping the view where it was. */
        function prependOld(list) {
            for (const m of list) {
                messages.set(m.id, m);
                minId = Math.min(minId, m.id);
            }
            const fromBottom = scroller.scrollHeight - scroller.scrollTop;
            cv.clear(log);
            nodes.clear();
            lastDay = null;
            const all = Array.from(messages.values()).sort((a, b) => a.id - b.id);
            messages.clear();
            appendNew(all);
            scroller.scrollTop = scroller.scrollHeight - fromBottom;
        }

        function updateKnown(m) {
            const old = messages.get(m.id);
            if (!old || signature(old) === signature(m)) return;
            messages.set(m.id, m);
            const node = bubble(m, me);
            nodes.get(m.id).replaceWith(node);
            nodes.set(m.id, node);
        }

        /* Takes a page (newest first): updates what is shown, appends what is new. */
        function merge(page) {
            const fresh = [];
            for (const m of page) {
                if (messages.has(m.id)) updateKnown(m);
                else if (m.id > maxId) fresh.push(m);
            }
            if (fresh.length) appendNew(fresh);
            return fresh;
        }

        async function loadConversation() {
            const res = await cv.api.get('/api/v1/conversations/' + id);
            conv = res.data;
            renderHeader();
        }

        async function loadInitial() {
            try {
                const [, page] = await Promise.all([
                    loadConversation(),
                    cv.api.get('/api/v1/conversations/' + id + '/messages', {limit: PAGE}),
                    /* names for the header and the bubbles; without them, "Agent #id" */
                    cv.users.load().catch(() => null),
                ]);
                if (gone) return;
                renderHeader();
                cv.replace(pane, section);
                hasOlder = page.pagination.count === PAGE;
                older.hidden = !hasOlder;
                merge(page.data);
                scrollToBottom();
                startPolling();
                markRead(false);
            } catch (err) {
                if (gone) return;
                if (err.status === 404) {
                    cv.replace(
                        pane,
                        el('div', {class: 'placeholder', role: 'status', testid: 'thread-missing'}, [
                            el('p', {text: 'This conversation does not exist, or belongs to another company.'}),
                            el('a', {href: opts.backHref, class: 'btn', text: 'Back to conversations'}),
                        ]),
                    );
                    return;
                }
                cv.replace(
                    pane,
                    el('div', {class: 'placeholder', role: 'status'}, [
                        el('p', {text: 'The conversation could not be loaded: ' + err.message}),
                        el('button', {type: 'button', class: 'btn', text: 'Try again', on: {click: loadInitial}}),
                    ]),
                );
                cv.reportError(err, 'Could not load the conversation');
            }
        }

        let poller = null;
        function startPolling() {
            poller = cv.poll.every(
                async () => {
                    const page = await cv.api.get('/api/v1/conversations/' + id + '/messages', {limit: PAGE});
                    if (gone) return;
                    const known = page.data.some((m) => messages.has(m.id));
                    const fresh = merge(page.data);
                    /* more than a page arrived since the last poll: fetch the gap, oldest first */
                    if (!known && page.data.length === PAGE) await catchUp();
                    if (++polls % HEADER_EVERY === 0) await loadConversation();
                    /* the customer wrote while the agent has it open: read as it arrives */
                    if (fresh.some((m) => m.direction === 'inbound')) await markRead(true);
                    else if (polls % HEADER_EVERY === 0) await markRead(false);
                },
                cv.poll.LIVE_MS,
                {immediate: false},
            );
        }

        async function catchUp() {
            let after = maxId;
            for (;;) {
                const res = await cv.api.get('/api/v1/conversations/' + id + '/messages', {after, limit: 100});
                if (gone || res.data.length === 0) return;
                merge(res.data);
                after = res.pagination.next_after;
                if (res.data.length < 100) return;
            }
        }

        older.addEventListener('click', async () => {
            older.disabled = true;
            try {
                const page = await cv.api.get('/api/v1/conversations/' + id + '/messages', {
                    before: minId,
                    limit: PAGE,
                });
                prependOld(page.data);
                hasOlder = page.pagination.count === PAGE;
                older.hidden = !hasOlder;
            } catch (err) {
                cv.reportError(err, 'Could not load earlier messages');
            } finally {
                older.disabled = false;
            }
        });

        async function patch(body, what) {
            try {
                const res = await cv.api.patch('/api/v1/conversations/' + id, body);
                conv = res.data;
                renderHeader();
                cv.emit('conversation-changed', conv);
            } catch (err) {
                renderHeader();
                cv.reportError(err, what);
            }
        }

        statusSelect.addEventListener('change', () => {
            patch({status: statusSelect.value}, 'Could not change the status');
        });

        assignBtn.addEventListener('click', async () => {
            assignBtn.disabled = true;
            await patch(
                {assignee_id: assignBtn.dataset.action === 'assign' ? me.id : null},
                'Could not change the assignee',
            );
            assignBtn.disabled = false;
        });

        colleague.addEventListener('change', () => {
            handOver.disabled = colleague.value === '';
        });

        handOver.addEventListener('click', async () => {
            const to = Number(colleague.value);
            if (!to) return;
            handOver.disabled = true;
            colleague.value = '';
            await patch({assignee_id: to}, 'Could not change the assignee');
            handOver.disabled = colleague.value === '';
        });

        function autosize() {
            textarea.style.height = 'auto';
            textarea.style.height = Math.min(textarea.scrollHeight, 160) + 'px';
        }
        textarea.addEventListener('input', autosize);
        textarea.addEventListener('keydown', (ev) => {
            if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
                ev.preventDefault();
                form.requestSubmit();
            }
        });

        form.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            const text = textarea.value;
            if (text.trim() === '' || send.disabled) return;
            send.disabled = true;
            try {
                const res = await cv.api.post('/api/v1/conversations/' + id + '/messages', {text});
                if (textarea.value === text) textarea.value = '';
                autosize();
                appendNew([res.data]);
                scrollToBottom();
                cv.emit('conversation-changed', {id: Number(id)});
            } catch (err) {
                cv.reportError(
                    err,
                    err.code === 'no_connection'
                        ? 'This conversation has no WhatsApp number to reply from'
                        : 'The reply was not sent',
                );
            } finally {
                send.disabled = false;
                textarea.focus();
            }
        });

        loadInitial();

        return {
            unmount() {
                gone = true;
                if (poller) poller.stop();
            },
        };
    }

    cv.thread = {mount};
})((window.conversa = window.conversa || {}));
