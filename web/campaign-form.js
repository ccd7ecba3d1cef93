/*
 * The "new campaign" form: name, WhatsApp number, an approved template (name,
 * language, body parameters) and the audience: chosen contacts (searched and ticked),
 * all contacts, or a phone prefix and labels. It creates a draft; starting it is a
 * separate, deliberate step on the campaign's card.
 *
 * The API validates everything again; an error that names a field is shown under it.
 */
(function (cv) {
    'use strict';
    const {el} = cv;
    const PICKER_LIMIT = 10;

    function field(id, label, control, hint) {
        const error = el('p', {class: 'field-error', id: id + '-error', 'data-for': id});
        control.setAttribute('aria-describedby', (hint ? id + '-hint ' : '') + id + '-error');
        return el('div', {class: 'field'}, [
            el('label', {for: id, text: label}),
            control,
            hint ? el('p', {class: 'hint', id: id + '-hint', text: hint}) : null,
            error,
        ]);
    }

    function create(connections, hooks) {
        const chosen = new Map(); /* contact id -> contact */

        const name = el('input', {
            id: 'cf-name',
            class: 'input',
            required: true,
            maxlength: '200',
            testid: 'campaign-name',
        });
        const connection = el(
            'select',
            {id: 'cf-connection', class: 'input', required: true, testid: 'campaign-connection'},
            connections.map((c) =>
                el('option', {
                    value: c.id,
                    text:
                        c.name +
                        ' (' +
                        (c.display_phone_number || c.phone_number_id) +
                        ')' +
                        (c.status !== 'active' ? ' – ' + c.status : ''),
                }),
            ),
        );
        const template = el('input', {
            id: 'cf-template',
            class: 'input',
            required: true,
            pattern: '[a-z0-9_]+',
            autocomplete: 'off',
            spellcheck: 'false',
            testid: 'campaign-template',
        });
        const language = el('input', {
            id: 'cf-language',
            class: 'input',
            required: true,
            value: 'en_US',
            autocomplete: 'off',
            spellcheck: 'false',
            testid: 'campaign-language',
        });
        const params = el('textarea', {id: 'cf-params', class: 'input', rows: '2', testid: 'campaign-params'});

        const modes = [
            {value: 'contacts', label: 'Chosen contacts'},
            {value: 'all', label: 'All contacts'},
            {value: 'filter', label: 'Phone prefix and labels'},
        ];
        const radios = modes.map((m, i) =>
            el('label', {class: 'radio'}, [
                el('input', {
                    type: 'radio',
                    name: 'cf-audience',
                    value: m.value,
                    checked: i === 0,
                    testid: 'audience-' + m.value,
                }),
                m.label,
            ]),
        );

        /* chosen contacts */
        const search = el('input', {
            id: 'cf-search',
            type: 'search',
            class: 'input',
            autocomplete: 'off',
            placeholder: 'Name or phone number',
            testid: 'audience-search',
        });
        const results = el('ul', {
            class: 'picker-results',
            testid: 'audience-results',
            'aria-label': 'Matching contacts',
        });
        const chips = el('ul', {class: 'picker-chosen', testid: 'audience-chosen', 'aria-label': 'Chosen contacts'});
        const chosenCount = el('p', {class: 'hint', role: 'status', testid: 'audience-count'});
        const pickerError = el('p', {class: 'field-error', 'data-for': 'audience.contact_ids'});
        const picker = el('div', {class: 'picker'}, [
            el('label', {for: 'cf-search', text: 'Find contacts'}),
            search,
            results,
            chosenCount,
            chips,
            pickerError,
        ]);

        /* phone prefix and labels */
        const prefix = el('input', {
            id: 'cf-prefix',
            class: 'input',
            inputmode: 'numeric',
            pattern: '[1-9][0-9]*',
            testid: 'audience-prefix',
        });
        const labels = el('input', {id: 'cf-labels', class: 'input', testid: 'audience-labels'});
        const filter = el('div', {class: 'filter', hidden: true}, [
            field('cf-prefix', 'Phone numbers starting with', prefix, 'Digits with the country code, without +.'),
            field('cf-labels', 'Labels', labels, 'Separated by commas; a contact needs every one.'),
        ]);
        const allNote = el('p', {class: 'hint', hidden: true, text: 'Every contact of the company gets the template.'});
        const audienceError = el('p', {class: 'field-error', 'data-for': 'audience'});

        const submit = el('button', {
            type: 'submit',
            class: 'btn btn-primary',
            testid: 'campaign-create',
            text: 'Create draft',
        });
        const formError = el('p', {class: 'form-error', role: 'alert'});
        const node = el(
            'form',
            {
                id: 'campaign-form',
                class: 'card campaign-form',
                testid: 'campaign-form',
                'aria-labelledby': 'cf-title',
                novalidate: true,
            },
            [
                el('h2', {id: 'cf-title', text: 'New campaign'}),
                el('div', {class: 'form-grid'}, [
                    field('cf-name', 'Name', name),
                    field('cf-connection', 'Send from', connection),
                    field(
                        'cf-template',
                        'Template name',
                        template,
                        'An approved WhatsApp template: lowercase letters, digits and _.',
                    ),
                    field('cf-language', 'Template language', language, 'As approved, e.g. en_US or pt_BR.'),
                ]),
                field('cf-params', 'Template parameters', params, 'One per line, for {{1}}, {{2}}, … of its body.'),
                el('fieldset', {class: 'audience'}, [
                    el('legend', {text: 'Audience'}),
                    el('div', {class: 'radios'}, radios),
                    picker,
                    filter,
                    allNote,
                    audienceError,
                ]),
                formError,
                el('div', {class: 'form-actions'}, [
                    submit,
                    el('button', {type: 'button', class: 'btn', text: 'Cancel', on: {click: () => hooks.onCancel()}}),
                ]),
            ],
        );

        function mode() {
            return node.querySelector('input[name="cf-audience"]:checked').value;
        }

        for (const r of node.querySelectorAll('input[name="cf-audience"]')) {
            r.addEventListener('change', () => {
                picker.hidden = mode() !== 'contacts';
                filter.hidden = mode() !== 'filter';
                allNote.hidden = mode() !== 'all';
            });
        }

        function renderChosen() {
            cv.replace(
                chips,
                Array.from(chosen.values()).map((c) =>
                    el('li', {class: 'chip chip-removable'}, [
                        c.name || cv.fmt.phone(c.phone_number),
                        el(
                            'button',
                            {
                                type: 'button',
                                class: 'icon-btn',
                                'aria-label': 'Remove ' + (c.name || c.phone_number),
                                on: {
                                    click: () => {
                                        chosen.delete(c.id);
                                        renderChosen();
                                        renderResults(lastResults);
                                    },
                                },
                            },
                            cv.icon('close'),
                        ),
                    ]),
                ),
            );
            chosenCount.textContent =
                chosen.size === 0
                    ? 'No contact chosen yet.'
                    : chosen.size + ' contact' + (chosen.size === 1 ? '' : 's') + ' chosen.';
            chosenCount.dataset.count = String(chosen.size);
        }

        let lastResults = [],
            controller = null;
        function renderResults(list) {
            lastResults = list;
            cv.replace(
                results,
                list.map((c) => {
                    const box = el('input', {
                        type: 'checkbox',
                        checked: chosen.has(c.id),
                        testid: 'audience-result',
                        'data-id': c.id,
                    });
                    box.addEventListener('change', () => {
                        if (box.checked) chosen.set(c.id, c);
                        else chosen.delete(c.id);
                        renderChosen();
                    });
                    return el(
                        'li',
                        null,
                        el('label', {class: 'check'}, [
                            box,
                            el('span', {text: c.name || 'No name'}),
                            el('span', {class: 'muted', text: cv.fmt.phone(c.phone_number)}),
                        ]),
                    );
                }),
            );
        }

        const onSearch = cv.debounce(async () => {
            if (controller) controller.abort();
            controller = new AbortController();
            try {
                const res = await cv.api.get(
                    '/api/v1/contacts',
                    {q: search.value.trim() || undefined, limit: PICKER_LIMIT},
                    {signal: controller.signal},
                );
                renderResults(res.data);
            } catch (err) {
                cv.reportError(err, 'Could not search contacts');
            }
        }, 250);
        search.addEventListener('input', onSearch);

        function clearErrors() {
            formError.textContent = '';
            for (const p of node.querySelectorAll('.field-error')) p.textContent = '';
            for (const c of node.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
        }

        /* Shows err under the control it names (the API's field, e.g. template.name), else at the foot. */
        const FIELD_IDS = {
            name: 'cf-name',
            connection_id: 'cf-connection',
            'template.name': 'cf-template',
            'template.language': 'cf-language',
            'template.parameters': 'cf-params',
            'audience.phone_prefix': 'cf-prefix',
            'audience.labels': 'cf-labels',
        };
        function showError(fieldName, message) {
            const id = FIELD_IDS[fieldName];
            const target = id
                ? node.querySelector('.field-error[data-for="' + id + '"]')
                : node.querySelector('.field-error[data-for="' + fieldName + '"]');
            if (target) {
                target.textContent = message;
                if (id) {
                    const control = node.querySelector('#' + id);
                    control.setAttribute('aria-invalid', 'true');
                    control.focus();
                }
            } else {
                formError.textContent = message;
            }
        }

        function audience() {
            const m = mode();
            if (m === 'all') return {all: true};
            if (m === 'contacts') return {contact_ids: Array.from(chosen.keys())};
            const a = {};
            if (prefix.value.trim()) a.phone_prefix = prefix.value.trim().replace(/^\+/, '');
            const ls = labels.value
                .split(',')
                .map((s) => s.trim())
                .filter(Boolean);
            if (ls.length) a.labels = ls;
            return a;
        }

        node.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            clearErrors();
            if (!name.value.trim()) return showError('name', 'Give the campaign a name.');
            if (!template.value.trim()) return showError('template.name', 'Name the template to send.');
            if (mode() === 'contacts' && chosen.size === 0) {
                return showError('audience.contact_ids', 'Choose at least one contact.');
            }
            const body = {
                name: name.value.trim(),
                connection_id: Number(connection.value),
                template: {
                    name: template.value.trim(),
                    language: language.value.trim(),
                    parameters: params.value
                        .split('\n')
                        .map((s) => s.trim())
                        .filter(Boolean),
                },
                audience: audience(),
            };
            submit.disabled = true;
            try {
                const res = await cv.api.post('/api/v1/campaigns', body);
                hooks.onCreated(res.data);
            } catch (err) {
                if (err.status === 400 && err.field) showError(err.field, err.message);
                else if (err.status === 400) showError('', err.message);
                else cv.reportError(err, 'Could not create the campaign');
            } finally {
                submit.disabled = false;
            }
        });

        renderChosen();
        onSearch();

        return {
            node,
            focus: () => name.focus(),
            destroy() {
                onSearch.cancel();
                if (controller) controller.abort();
                node.remove();
            },
        };
    }

    cv.campaignForm = {create};
})((window.conversa = window.conversa || {}));
