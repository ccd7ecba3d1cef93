/*
 * The app's frame and routing. Routes are hash routes, so the server only ever serves
 * index.html at / and a reload keeps the screen:
 *
 *   #/inbox[/TAB[/ID]]   the inbox, a status tab, a conversation
 *   #/contacts           contacts search and look-up
 *   #/campaigns          campaigns
 *   #/ops                operations (admins)
 *
 * Without a session the sign-in form is shown; a 401 anywhere brings it back.
 */
(function (cv) {
    'use strict';
    const {el} = cv;

    const VIEWS = {
        inbox: {title: 'Inbox', module: () => cv.inbox},
        contacts: {title: 'Contacts', module: () => cv.contacts},
        campaigns: {title: 'Campaigns', module: () => cv.campaigns},
        ops: {title: 'Operations', module: () => cv.ops, admin: true},
    };

    const NAV = [
        {view: 'inbox', href: '#/inbox', label: 'Inbox', icon: 'inbox'},
        {view: 'contacts', href: '#/contacts', label: 'Contacts', icon: 'users'},
        {view: 'campaigns', href: '#/campaigns', label: 'Campaigns', icon: 'megaphone'},
        {view: 'ops', href: '#/ops', label: 'Operations', icon: 'activity', admin: true},
    ];

    const appRoot = () => document.getElementById('app');
    let shell = null; /* {main, nav links, notifications} while signed in */
    let current = null; /* {name, instance} */
    let signin = null;

    function parseHash() {
        const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
        const name = VIEWS[parts[0]] ? parts[0] : 'inbox';
        if (name === 'inbox') return {name, params: {tab: parts[1] || 'open', id: parts[2] || null}};
        return {name, params: {}};
    }

    function buildShell() {
        const user = cv.api.user();
        const main = el('main', {id: 'main', class: 'main', tabindex: '-1'});
        const links = new Map();
        const nav = el(
            'nav',
            {class: 'nav', 'aria-label': 'Main'},
            NAV.filter((n) => !n.admin || cv.api.isAdmin()).map((n) => {
                const a = el('a', {href: n.href, class: 'nav-link', testid: 'nav-' + n.view}, [
                    cv.icon(n.icon),
                    el('span', {text: n.label}),
                ]);
                links.set(n.view, a);
                return a;
            }),
        );
        const notifHost = el('div', {class: 'notif-host'});
        const signout = el(
            'button',
            {type: 'button', class: 'icon-btn', testid: 'signout', 'aria-label': 'Sign out', title: 'Sign out'},
            cv.icon('logout'),
        );
        signout.addEventListener('click', async () => {
            signout.disabled = true;
            await cv.api.logout();
            showSignin('You have signed out.');
        });
        const skip = el('button', {
            type: 'button',
            class: 'skip-link',
            text: 'Skip to content',
            on: {click: () => main.focus()},
        });
        const header = el('header', {class: 'topbar'}, [
            el('a', {class: 'brand', href: '#/inbox', 'aria-label': 'conversa, inbox'}, [
                el('span', {class: 'brand-mark', 'aria-hidden': 'true'}),
                el('span', {class: 'brand-name', text: 'conversa'}),
            ]),
            nav,
            el('div', {class: 'topbar-right'}, [
                notifHost,
                el('div', {class: 'me', testid: 'current-user'}, [
                    el('span', {class: 'avatar avatar-small', 'aria-hidden': 'true', text: cv.initials(user.name)}),
                    el('span', {class: 'me-text'}, [
                        el('span', {class: 'me-name', text: user.name || user.email}),
                        el('span', {class: 'me-role', text: user.role}),
                    ]),
                ]),
                signout,
            ]),
        ]);
        cv.replace(appRoot(), [skip, header, main]);
        const notifications = cv.notifications.mount(notifHost);
        return {main, links, notifications};
    }

    function teardown() {
        if (current) current.instance.unmount();
        current = null;
        if (shell) shell.notifications.unmount();
        shell = null;
        if (signin) signin.unmount();
        signin = null;
    }

    function showSignin(notice) {
        teardown();
        document.title = 'Sign in · conversa';
        signin = cv.signin.mount(appRoot(), notice);
    }

    function route() {
        if (!shell) return;
        const {name, params} = parseHash();
        const def = VIEWS[name];
        for (const [view, a] of shell.links) {
            if (view === name) a.setAttribute('aria-current', 'page');
            else a.removeAttribute('aria-current');
        }
        document.title = def.title + ' · conversa';
        if (current && current.name === name && current.instance.update) {
            current.instance.update(params);
            return;
        }
        const moving = current !== null;
        if (current) current.instance.unmount();
        current = null;
        cv.clear(shell.main);
        try {
            current = {name, instance: def.module().mount(shell.main, params)};
        } catch (err) {
            /* a bug must not leave a blank page */
            console.error(err);
            cv.replace(
                shell.main,
                el('div', {class: 'placeholder', role: 'alert'}, 'This page failed to load: ' + err.message),
            );
        }
        if (moving && !shell.main.contains(document.activeElement)) shell.main.focus({preventScroll: true});
    }

    function start() {
        cv.on('unauthorized', () => {
            if (shell) showSignin('Your session has ended. Sign in again.');
        });
        cv.on('signed-in', () => {
            teardown();
            shell = buildShell();
            route();
        });
        window.addEventListener('hashchange', route);
        if (cv.api.hasSession()) {
            shell = buildShell();
            route();
        } else {
            showSignin();
        }
    }

    window.addEventListener('error', (ev) => {
        cv.toast('Something went wrong on this page: ' + ev.message);
    });
    window.addEventListener('unhandledrejection', (ev) => {
        cv.reportError(ev.reason, 'Something went wrong');
    });

    start();
})((window.conversa = window.conversa || {}));
