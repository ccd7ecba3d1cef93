/*
 * The notifications bell in the top bar: the caller's unread count (polled), and a
 * panel with their notifications, each markable read, and "mark all read".
 *
 * The unread count is a cached read, polled every LIVE_MS; the list is read when the
 * panel opens and again whenever the count changes while it is open.
 */
(function (cv) {
    'use strict';
    const {el} = cv;
    const PAGE = 20;

    function mount(host) {
        let unread = null,
            open = false,
            page = 1,
            total = 0,
            items = [];

        const badge = el('span', {class: 'badge', testid: 'notifications-count', hidden: true});
        const bell = el(
            'button',
            {
                type: 'button',
                class: 'icon-btn bell',
                testid: 'notifications-button',
                'aria-haspopup': 'dialog',
                'aria-expanded': 'false',
                'aria-controls': 'notifications-panel',
                'aria-label': 'Notifications',
            },
            [cv.icon('bell'), badge],
        );

        const list = el('ul', {class: 'notif-list', testid: 'notifications-list', 'aria-label': 'Notifications'});
        const more = el('button', {type: 'button', class: 'btn btn-link', hidden: true, text: 'Show older'});
        const readAll = el('button', {
            type: 'button',
            class: 'btn btn-small',
            testid: 'notifications-read-all',
            text: 'Mark all read',
        });
        const panel = el(
            'div',
            {
                id: 'notifications-panel',
                class: 'notif-panel',
                role: 'dialog',
                'aria-modal': 'false',
                'aria-labelledby': 'notifications-title',
                testid: 'notifications-panel',
                hidden: true,
                tabindex: '-1',
            },
            [
                el('div', {class: 'notif-head'}, [
                    el('h2', {id: 'notifications-title', text: 'Notifications'}),
                    readAll,
                ]),
                list,
                more,
            ],
        );
        const wrap = el('div', {class: 'notif'}, [bell, panel]);
        host.appendChild(wrap);

        function setUnread(n) {
            const changed = n !== unread;
            unread = n;
            badge.textContent = n > 99 ? '99+' : String(n);
            badge.hidden = n === 0;
            badge.dataset.count = String(n);
            bell.setAttribute('aria-label', n === 0 ? 'Notifications, none unread' : 'Notifications, ' + n + ' unread');
            readAll.disabled = n === 0;
            return changed;
        }

        function renderItem(n) {
            const convId = n.data && n.data.conversation_id;
            const title = convId
                ? el('a', {class: 'notif-title', href: '#/inbox/open/' + convId, text: n.title || 'Notification'})
                : el('span', {class: 'notif-title', text: n.title || 'Notification'});
            if (convId) {
                title.addEventListener('click', () => {
                    if (!n.is_read) markRead(n);
                    toggle(false, false);
                });
            }
            const action = n.is_read
                ? el('span', {class: 'notif-state', text: 'Read'})
                : el('button', {
                      type: 'button',
                      class: 'btn btn-small btn-ghost',
                      testid: 'notification-read',
                      'aria-label': 'Mark “' + (n.title || 'notification') + '” read',
                      text: 'Mark read',
                      on: {click: () => markRead(n)},
                  });
            return el(
                'li',
                {
                    class: 'notif-item' + (n.is_read ? '' : ' is-unread'),
                    testid: 'notification',
                    'data-id': n.id,
                    'data-read': n.is_read ? 'true' : 'false',
                },
                [
                    el('div', {class: 'notif-main'}, [
                        title,
                        n.body ? el('p', {class: 'notif-body', text: n.body}) : null,
                        el('time', {
                            class: 'notif-time',
                            datetime: n.created_at,
                            title: cv.fmt.full(n.created_at),
                            text: cv.fmt.relative(n.created_at),
                        }),
                    ]),
                    action,
                ],
            );
        }

        function render() {
            cv.replace(
                list,
                items.length ? items.map(renderItem) : el('li', {class: 'empty', text: 'No notifications yet.'}),
            );
            more.hidden = items.length >= total;
        }

        async function load(reset) {
            if (reset) page = 1;
            const res = await cv.api.get('/api/v1/notifications', {page, limit: PAGE});
            items = reset ? res.data : items.concat(res.data);
            total = res.pagination.total;
            setUnread(res.unread_count);
            render();
        }

        async function markRead(n) {
            try {
                const res = await cv.api.post('/api/v1/notifications/' + n.id + '/read');
                const hadFocus = list.contains(document.activeElement);
                Object.assign(n, res.data);
                render();
                if (hadFocus) panel.focus(); /* its button is gone */
                poller.now();
            } catch (err) {
                cv.reportError(err, 'Could not mark the notification read');
            }
        }

        readAll.addEventListener('click', async () => {
            readAll.disabled = true;
            try {
                await cv.api.post('/api/v1/notifications/read_all');
                for (const n of items) n.is_read = true;
                setUnread(0);
                render();
                panel.focus(); /* the button it was on is disabled now */
                poller.now();
            } catch (err) {
                readAll.disabled = false;
                cv.reportError(err, 'Could not mark notifications read');
            }
        });

        more.addEventListener('click', () => {
            page++;
            load(false).catch((err) => cv.reportError(err, 'Could not load notifications'));
        });

        function toggle(show, restoreFocus) {
            open = show;
            panel.hidden = !show;
            bell.setAttribute('aria-expanded', String(show));
            if (show) {
                load(true).catch((err) => cv.reportError(err, 'Could not load notifications'));
                panel.focus();
            } else if (restoreFocus !== false) {
                bell.focus();
            }
        }

        bell.addEventListener('click', () => toggle(!open));
        function onEscape(ev) {
            if (open && ev.key === 'Escape')
                toggle(false, wrap.contains(document.activeElement) || document.activeElement === document.body);
        }
        function onOutside(ev) {
            if (open && !wrap.contains(ev.target)) toggle(false, false);
        }
        document.addEventListener('keydown', onEscape);
        document.addEventListener('pointerdown', onOutside);

        const poller = cv.poll.every(async () => {
            const res = await cv.api.get('/api/v1/notifications/unread_count');
            if (setUnread(res.data.unread_count) && open) await load(true);
        }, cv.poll.LIVE_MS);

        return {
            unmount() {
                poller.stop();
                document.removeEventListener('pointerdown', onOutside);
                document.removeEventListener('keydown', onEscape);
                wrap.remove();
            },
        };
    }

    cv.notifications = {mount};
})((window.conversa = window.conversa || {}));
