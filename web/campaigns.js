/*
 * Campaigns: template broadcasts. An admin creates a draft (a template, a WhatsApp
 * number and an audience), starts it, and can pause, resume or cancel it; everyone
 * can watch the progress counts (pending, sent, delivered, read, failed, cancelled).
 *
 * The list is re-read every 2 s while a campaign's counts move (running, or paused or
 * finished in the last minute), and every 15 s otherwise, in case someone else starts
 * one. Cards are updated in place, so a focused button keeps its focus while the
 * numbers change.
 */
(function (cv) {
    'use strict';
    const {el} = cv;
    const PAGE = 20;
    const FAST_MS = 2000;
    const SLOW_MS = 15000;
    const SETTLE_MS = 60000;

    const PROGRESS = [
        {key: 'read', label: 'Read'},
        {key: 'delivered', label: 'Delivered'},
        {key: 'sent', label: 'Sent'},
        {key: 'failed', label: 'Failed'},
        {key: 'cancelled', label: 'Cancelled'},
        {key: 'pending', label: 'Pending'},
    ];

    const STATUS_LABEL = {
        draft: 'Draft',
        running: 'Running',
        paused: 'Paused',
        completed: 'Completed',
        cancelled: 'Cancelled',
    };

    function audienceText(a) {
        if (!a) return '';
        if (a.all) return 'all contacts';
        if (a.contact_ids) return a.contact_ids.length + ' chosen contact' + (a.contact_ids.length === 1 ? '' : 's');
        const parts = [];
        if (a.phone_prefix) parts.push('numbers starting +' + a.phone_prefix);
        if (a.labels) parts.push('labelled ' + a.labels.join(', '));
        return parts.join(', ');
    }

    /* ---- one campaign's card, updated in place ---- */

    function card(c, actions) {
        const chip = el('span', {class: 'chip', testid: 'campaign-status'});
        const meta = el('p', {class: 'muted campaign-meta'});
        const bar = el('div', {
            class: 'progress',
            role: 'progressbar',
            'aria-valuemin': '0',
            'aria-label': 'Progress of ' + c.name,
            testid: 'campaign-progress',
        });
        const segs = new Map(
            PROGRESS.filter((p) => p.key !== 'pending').map((p) => {
                const s = el('span', {class: 'seg seg-' + p.key});
                bar.appendChild(s);
                return [p.key, s];
            }),
        );
        const figures = new Map();
        const dl = el(
            'dl',
            {class: 'progress-counts'},
            PROGRESS.map((p) => {
                const dd = el('dd', {testid: 'campaign-' + p.key});
                figures.set(p.key, dd);
                return el('div', {class: 'count-' + p.key}, [el('dt', {text: p.label}), dd]);
            }),
        );
        const summary = el('p', {class: 'campaign-summary', testid: 'campaign-summary'});
        const buttons = el('div', {class: 'campaign-actions'});
        const heading = el('h2', {class: 'campaign-name', tabindex: '-1', text: c.name});
        const node = el('li', {class: 'card campaign', testid: 'campaign', 'data-id': c.id}, [
            el('div', {class: 'campaign-head'}, [heading, chip]),
            meta,
            bar,
            summary,
            dl,
            buttons,
        ]);
        let lastStatus = null;

        function update(next) {
            c = next;
            const p = c.progress || {};
            const total = c.total || 0;
            const reached = (p.sent || 0) + (p.delivered || 0) + (p.read || 0);
            node.dataset.status = c.status;
            chip.className = 'chip chip-' + c.status;
            chip.textContent = STATUS_LABEL[c.status] || c.status;
            meta.textContent =
                'Template ' +
                c.template.name +
                ' (' +
                c.template.language +
                ') to ' +
                audienceText(c.audience) +
                ' · created ' +
                cv.fmt.full(c.created_at) +
                (c.completed_at ? ' · finished ' + cv.fmt.full(c.completed_at) : '');
            for (const [key, s] of segs) s.style.width = (total ? (100 * (p[key] || 0)) / total : 0) + '%';
            bar.setAttribute('aria-valuemax', String(total));
            bar.setAttribute('aria-valuenow', String(reached));
            bar.setAttribute('aria-valuetext', reached + ' of ' + total + ' sent');
            for (const [key, dd] of figures) {
                dd.textContent = cv.fmt.number(p[key] || 0);
                dd.dataset.value = String(p[key] || 0);
            }
            summary.textContent =
                c.status === 'running' && total === 0
                    ? 'Preparing recipients…'
                    : cv.fmt.number(reached) +
                      ' of ' +
                      cv.fmt.number(total) +
                      ' sent' +
                      (total ? ' (' + Math.round((100 * reached) / total) + ' %)' : '');
            summary.dataset.total = String(total);
            if (c.status !== lastStatus) {
                lastStatus = c.status;
                /* Pause becomes Resume and so on: the focus moves to the new first action */
                cv.keepFocus(
                    node,
                    () => cv.replace(buttons, actions(c)),
                    () => buttons.querySelector('button') || heading,
                );
            }
        }

        update(c);
        return {
            node,
            update,
            get campaign() {
                return c;
            },
        };
    }

    /* ---- the page ---- */

    function mount(root) {
        const admin = cv.api.isAdmin();
        const cards = new Map(); /* id -> card */
        let nextBefore = null,
            lastRead = 0,
            connections = [];

        const list = el('ul', {class: 'campaign-list', testid: 'campaign-list', 'aria-label': 'Campaigns'});
        const empty = el('p', {
            class: 'muted',
            testid: 'campaign-empty',
            hidden: true,
            text: admin
                ? 'No campaigns yet. Create one to message your contacts with a template.'
                : 'No campaigns yet.',
        });
        const more = el('button', {type: 'button', class: 'btn', hidden: true, text: 'Show older campaigns'});
        const newBtn = admin
            ? el('button', {
                  type: 'button',
                  class: 'btn btn-primary',
                  testid: 'campaign-new',
                  'aria-expanded': 'false',
                  'aria-controls': 'campaign-form',
                  text: 'New campaign',
              })
            : null;
        const formHost = el('div');

        cv.replace(
            root,
            el('section', {class: 'page campaigns', testid: 'campaigns-page'}, [
                el('div', {class: 'page-head'}, [el('h1', {text: 'Campaigns'}), newBtn]),
                formHost,
                empty,
                list,
                more,
            ]),
        );

        /* ---- actions ---- */

        function actions(c) {
            if (!admin) return [];
            const out = [];
            const act = (label, testid, cls, fn) =>
                el('button', {
                    type: 'button',
                    class: 'btn ' + cls,
                    testid,
                    'aria-label': label + ' ' + c.name,
                    text: label,
                    on: {click: (ev) => fn(ev.currentTarget)},
                });
            /* the one forward move each status allows: [status, label, testid, class, path, body, failure] */
            const moves = [
                ['draft', 'Start sending', 'campaign-trigger', 'btn-primary', '/api/v1/campaigns/trigger',
                    {campaign_id: c.id}, 'Could not start the campaign'],
                ['running', 'Pause', 'campaign-pause', '', '/api/v1/campaigns/' + c.id + '/pause',
                    undefined, 'Could not pause the campaign'],
                ['paused', 'Resume', 'campaign-resume', 'btn-primary', '/api/v1/campaigns/' + c.id + '/resume',
                    undefined, 'Could not resume the campaign'],
            ];
            for (const [status, label, testid, cls, path, body, failure] of moves) {
                if (c.status === status) out.push(act(label, testid, cls, (b) => move(b, 'POST', path, body, failure)));
            }
            if (c.status === 'draft' || c.status === 'running' || c.status === 'paused') {
                out.push(
                    act('Cancel', 'campaign-cancel', 'btn-danger-ghost', (b) => {
                        /* a second click within 4 s confirms: cancelling cannot be undone */
                        if (b.dataset.confirm !== 'yes') {
                            b.dataset.confirm = 'yes';
                            b.textContent = 'Confirm cancel';
                            setTimeout(() => {
                                b.dataset.confirm = '';
                                b.textContent = 'Cancel';
                            }, 4000);
                            return;
                        }
                        move(
                            b,
                            'POST',
                            '/api/v1/campaigns/' + c.id + '/cancel',
                            undefined,
                            'Could not cancel the campaign',
                        );
                    }),
                );
            }
            return out;
        }

        async function move(button, method, path, body, what) {
            button.disabled = true;
            try {
                const res = await cv.api.request(method, path, {body});
                upsert(res.data);
                render();
                poller.now();
            } catch (err) {
                cv.reportError(err, what);
            } finally {
                button.disabled = false;
            }
        }

        /* ---- the list ---- */

        function upsert(c) {
            const existing = cards.get(c.id);
            if (existing) existing.update(c);
            else cards.set(c.id, card(c, actions));
        }

        function render() {
            const order = Array.from(cards.keys()).sort((a, b) => b - a);
            let cursor = list.firstChild;
            for (const id of order) {
                const node = cards.get(id).node;
                if (node !== cursor) list.insertBefore(node, cursor);
                else cursor = cursor.nextSibling;
            }
            empty.hidden = cards.size > 0;
            more.hidden = !nextBefore;
        }

        /* Re-reads the newest campaigns, as many as are shown (up to the API's 100). */
        async function refresh() {
            const limit = Math.min(100, Math.max(PAGE, cards.size));
            const res = await cv.api.get('/api/v1/campaigns', {limit});
            for (const c of res.data) upsert(c);
            if (cards.size <= limit) nextBefore = res.next_before;
            lastRead = Date.now();
            render();
        }

        more.addEventListener('click', async () => {
            more.disabled = true;
            try {
                const res = await cv.api.get('/api/v1/campaigns', {limit: PAGE, before: nextBefore});
                for (const c of res.data) upsert(c);
                nextBefore = res.next_before;
                render();
            } catch (err) {
                cv.reportError(err, 'Could not load campaigns');
            } finally {
                more.disabled = false;
            }
        });

        /*
         * Counts move while a campaign runs, and for a while after it was paused or
         * finished: sends in flight end, and Meta's delivered and read statuses trail.
         */
        function moving(c) {
            return c.status === 'running' || Date.now() - Date.parse(c.updated_at) < SETTLE_MS;
        }

        const poller = cv.poll.every(async () => {
            const busy = Array.from(cards.values()).some((k) => moving(k.campaign));
            if (lastRead && !busy && Date.now() - lastRead < SLOW_MS) return;
            await refresh();
        }, FAST_MS);

        /* ---- the form ---- */

        let form = null;
        if (newBtn) {
            newBtn.addEventListener('click', () => {
                if (form) {
                    closeForm();
                    return;
                }
                openForm();
            });
        }

        function closeForm() {
            if (!form) return;
            form.destroy();
            form = null;
            newBtn.setAttribute('aria-expanded', 'false');
            newBtn.focus();
        }

        async function openForm() {
            newBtn.setAttribute('aria-expanded', 'true');
            try {
                connections = (await cv.api.get('/api/v1/connections')).data;
            } catch (err) {
                cv.reportError(err, 'Could not load the WhatsApp numbers');
            }
            form = cv.campaignForm.create(connections, {
                onCreated(c) {
                    upsert(c);
                    render();
                    closeForm();
                    cv.toast('Draft “' + c.name + '” created. Start sending when ready.', 'info');
                },
                onCancel: closeForm,
            });
            formHost.appendChild(form.node);
            form.focus();
        }

        return {
            unmount() {
                poller.stop();
                if (form) form.destroy();
            },
        };
    }

    cv.campaigns = {mount};
})((window.conversa = window.conversa || {}));
