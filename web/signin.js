/*
 * The sign-in form. On success the session is stored (api.js) and 'signed-in' is
 * emitted; app.js then shows the inbox.
 */
(function (cv) {
    'use strict';
    const {el} = cv;

    /* notice: why the form is shown (e.g. a session that ended), or nothing. */
    function mount(root, notice) {
        const email = el('input', {
            id: 'signin-email',
            type: 'email',
            name: 'email',
            autocomplete: 'username',
            required: true,
            testid: 'signin-email',
        });
        const password = el('input', {
            id: 'signin-password',
            type: 'password',
            name: 'password',
            autocomplete: 'current-password',
            required: true,
            testid: 'signin-password',
        });
        const error = el('p', {class: 'form-error', role: 'alert', testid: 'signin-error'});
        const submit = el(
            'button',
            {type: 'submit', class: 'btn btn-primary btn-block', testid: 'signin-submit'},
            'Sign in',
        );

        const form = el('form', {class: 'signin-card', testid: 'signin-form', 'aria-labelledby': 'signin-title'}, [
            el('div', {class: 'signin-brand'}, [el('span', {class: 'brand-mark', 'aria-hidden': 'true'}), 'conversa']),
            el('h1', {id: 'signin-title', class: 'signin-title', text: 'Sign in to your inbox'}),
            notice ? el('p', {class: 'form-notice', role: 'status', testid: 'signin-notice', text: notice}) : null,
            el('div', {class: 'field'}, [el('label', {for: 'signin-email', text: 'Email'}), email]),
            el('div', {class: 'field'}, [el('label', {for: 'signin-password', text: 'Password'}), password]),
            error,
            submit,
        ]);

        form.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            error.textContent = '';
            submit.disabled = true;
            submit.textContent = 'Signing in…';
            try {
                const user = await cv.api.login(email.value.trim(), password.value);
                cv.emit('signed-in', user);
            } catch (err) {
                error.textContent = err.status === 401 ? 'Wrong email or password.' : err.message;
                submit.disabled = false;
                submit.textContent = 'Sign in';
                password.select();
            }
        });

        cv.replace(root, el('main', {class: 'signin', id: 'main'}, form));
        email.focus();
        return {unmount() {}};
    }

    cv.signin = {mount};
})((window.conversa = window.conversa || {}));
