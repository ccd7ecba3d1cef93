/*
 * Contacts: search by name or phone prefix (the API decides which from the text),
 * page through the results, look a number up in any human format, and see a
 * contact's details.
 */
(function (cv) {
    'use strict';
    const {el} = cv;
    const PAGE = 20;

    function detail(c) {
        return el('article', {class: 'card contact-detail', testid: 'contact-detail', 'data-id': c.id}, [
            el('div', {class: 'contact-head'}, [
                el('span', {class: 'avatar avatar-large', 'aria-hidden': 'true', text: cv.initials(c.name || '#')}),
                el('div', null, [
                    el('h2', {text: c.name || 'No name'}),
                    el('p', {class: 'muted', text: cv.fmt.phone(c.phone_number)}),
                ]),
            ]),
            el('dl', {class: 'facts'}, [
                el('dt', {text: 'WhatsApp id'}),
                el('dd', {text: c.wa_id || '–'}),
                el('dt', {text: 'Labels'}),
                el(
                    'dd',
                    null,
                    c.labels && c.labels.length
                        ? el(
                              'ul',
                              {class: 'labels'},
                              c.labels.map((l) => el('li', {class: 'chip', text: l})),
                          )
                        : '–',
                ),
                el('dt', {text: 'Added'}),
                el('dd', {text: cv.fmt.full(c.created_at)}),
                el('dt', {text: 'Updated'}),
                el('dd', {text: cv.fmt.full(c.updated_at)}),
            ]),
        ]);
    }

    function mount(root) {
        let q = '',
            page = 1,
            total = 0,
            estimate = false,
            controller = null;
        const items = [];

        const search = el('input', {
            id: 'contacts-q',
            type: 'search',
            class: 'input',
            autocomplete: 'off',
            placeholder: 'Name or phone number',
            testid: 'contacts-search',
        });
        const list = el('ul', {class: 'contact-list', testid: 'contacts-list', 'aria-label': 'Contacts'});
        const summary = el('p', {class: 'muted', role: 'status', testid: 'contacts-summary'});
        const more = el('button', {
            type: 'button',
            class: 'btn',
            hidden: true,
            testid: 'contacts-more',
            text: 'Show more',
        });
        const side = el('div', {class: 'contacts-side', testid: 'contacts-side'});

        const phone = el('input', {
            id: 'lookup-phone',
            type: 'tel',
            class: 'input',
            autocomplete: 'off',
            required: true,
            placeholder: '+55 11 98765-0001',
            testid: 'contacts-lookup-input',
        });
        const lookupResult = el('div', {class: 'lookup-result', role: 'status', testid: 'contacts-lookup-result'});
        const lookup = el('form', {class: 'card lookup', testid: 'contacts-lookup'}, [
            el('h2', {text: 'Look up a number'}),
            el('label', {for: 'lookup-phone', text: 'Phone number, in any format'}),
            el('div', {class: 'inline-form'}, [
                phone,
                el('button', {type: 'submit', class: 'btn btn-primary', text: 'Look up'}),
            ]),
            lookupResult,
        ]);

        cv.replace(
            root,
            el('section', {class: 'page contacts', testid: 'contacts-page'}, [
                el('div', {class: 'page-head'}, [el('h1', {text: 'Contacts'})]),
                el('div', {class: 'contacts-grid'}, [
                    el('div', {class: 'card contacts-main'}, [
                        el('form', {role: 'search', class: 'search', on: {submit: (ev) => ev.preventDefault()}}, [
                            el('label', {for: 'contacts-q', class: 'sr-only', text: 'Search contacts'}),
                            cv.icon('search', 'search-icon'),
                            search,
                        ]),
                        summary,
                        list,
                        more,
                    ]),
                    el('div', {class: 'contacts-aside'}, [lookup, side]),
                ]),
            ]),
        );

        function show(c) {
            cv.replace(side, detail(c));
        }

        function render() {
            cv.replace(
                list,
                items.map((c) =>
                    el(
                        'li',
                        null,
                        el(
                            'button',
                            {
                                type: 'button',
                                class: 'contact-row',
                                testid: 'contact-row',
                                'data-id': c.id,
                                on: {click: () => show(c)},
                            },
                            [
                                el('span', {class: 'avatar', 'aria-hidden': 'true', text: cv.initials(c.name || '#')}),
                                el('span', {class: 'contact-name', text: c.name || 'No name'}),
                                el('span', {class: 'contact-phone', text: cv.fmt.phone(c.phone_number)}),
                            ],
                        ),
                    ),
                ),
            );
            const n = cv.fmt.number(total) + (estimate ? '+' : '');
            summary.textContent =
                total === 0
                    ? q
                        ? 'No contact matches “' + q + '”.'
                        : 'No contacts yet.'
                    : q
                      ? n + ' matching “' + q + '”'
                      : n + ' contacts';
            more.hidden = items.length >= total || items.length === 0;
        }

        async function load(reset) {
            if (controller) controller.abort();
            controller = new AbortController();
            if (reset) page = 1;
            try {
                const res = await cv.api.get(
                    '/api/v1/contacts',
                    {q: q || undefined, page, limit: PAGE},
                    {signal: controller.signal},
                );
                if (reset) items.length = 0;
                items.push(...res.data);
                total = res.pagination.total;
                estimate = !!res.pagination.total_is_estimate;
                render();
            } catch (err) {
                cv.reportError(err, 'Could not load contacts');
            }
        }

        const onSearch = cv.debounce(() => {
            q = search.value.trim();
            load(true);
        }, 250);
        search.addEventListener('input', onSearch);
        more.addEventListener('click', () => {
            page++;
            load(false);
        });

        lookup.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            cv.replace(lookupResult, 'Looking up…');
            try {
                const res = await cv.api.get('/api/v1/contacts/lookup', {phone: phone.value});
                cv.replace(
                    lookupResult,
                    el(
                        'button',
                        {type: 'button', class: 'contact-row', testid: 'lookup-hit', on: {click: () => show(res.data)}},
                        [
                            el('span', {
                                class: 'avatar',
                                'aria-hidden': 'true',
                                text: cv.initials(res.data.name || '#'),
                            }),
                            el('span', {class: 'contact-name', text: res.data.name || 'No name'}),
                            el('span', {class: 'contact-phone', text: cv.fmt.phone(res.data.phone_number)}),
                        ],
                    ),
                );
                show(res.data);
            } catch (err) {
                if (err.status === 404) {
                    cv.replace(
                        lookupResult,
                        el('p', {
                            class: 'muted',
                            testid: 'lookup-miss',
                            text: 'No contact has the number ' + phone.value + '.',
                        }),
                    );
                } else if (err.status === 400) {
                    cv.replace(lookupResult, el('p', {class: 'form-error', text: err.message}));
                } else {
                    cv.replace(lookupResult, '');
                    cv.reportError(err, 'Could not look the number up');
                }
            }
        });

        load(true);
        search.focus();

        return {
            unmount() {
                onSearch.cancel();
                if (controller) controller.abort();
            },
        };
    }

    cv.contacts = {mount};
})((window.conversa = window.conversa || {}));
