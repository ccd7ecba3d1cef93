// Signing in: a wrong password is refused on the form; the admin's sign-in shows the
// demo company's inbox, whose tab counts are GET /conversations/status's and whose
// tabs list exactly that many conversations (scrolling loads the rest) with the
// seeded customers among them.

import {
    env,
    check,
    checkEqual,
    waitUntil,
    runId,
    newPage,
    signIn,
    screenshot,
    tabCount,
    Api,
    isMain,
    runScenarios,
} from './lib.mjs';

const TABS = ['open', 'pending', 'resolved', 'mine', 'unassigned'];
const SEEDED = [
    'Mariana Souza',
    'Carlos Oliveira',
    'Fernanda Lima',
    'Rafael Santos',
    'Juliana Pereira',
    'Pedro Almeida',
    'Beatriz Costa',
    'Lucas Ferreira',
];

// Every conversation id of a status, in the API's order, through the cursor.
async function allIds(api, query) {
    const ids = [];
    for (let cursor = null; ;) {
        const page = await api.get('/api/v1/conversations?limit=50&' + query + (cursor ? '&cursor=' + cursor : ''));
        ids.push(...page.data.map((c) => c.id));
        cursor = page.pagination.next_cursor;
        if (!cursor) return ids;
    }
}

export default async function signin(t) {
    const page = await newPage(t.browser);
    t.page = page;

    await page.goto(env.url + '/');
    await page.getByTestId('signin-form').waitFor();
    await page.getByTestId('signin-email').fill(`nobody-${runId}@example.test`);
    await page.getByTestId('signin-password').fill('not-the-password');
    await page.getByTestId('signin-submit').click();
    await waitUntil(async () => /wrong email or password/i.test(await page.getByTestId('signin-error').textContent()), {
        message: 'the form to say the credentials are wrong',
    });
    check((await page.getByTestId('inbox').count()) === 0, 'a wrong password opened the inbox');

    const token = await signIn(page, env.adminEmail);
    t.api = new Api(token);
    t.user = await page.evaluate(() => JSON.parse(sessionStorage.getItem('conversa.user')));
    checkEqual(t.user.email, env.adminEmail, 'signed-in user');
    check(
        (await page.getByTestId('current-user').textContent()).includes(t.user.name),
        'the top bar does not name the user',
    );

    // the tab counts are the API's
    const counts = await waitUntil(
        async () => {
            const api = (await t.api.get('/api/v1/conversations/status')).data;
            for (const tab of TABS) if ((await tabCount(page, tab)) !== api[tab]) return false;
            return api;
        },
        {message: 'the tab counts to equal GET /api/v1/conversations/status'},
    );
    check(counts.total >= SEEDED.length, `only ${counts.total} conversations; the demo seeds ${SEEDED.length}`);

    // each tab lists exactly its count, loading more as the list scrolls
    const names = new Set();
    for (const tab of TABS) {
        await page.getByTestId('tab-' + tab).click();
        // the click changes the location; the tabs are drawn again when the page sees it
        await waitUntil(async () => (await page.getByTestId('tab-' + tab).getAttribute('aria-selected')) === 'true', {
            timeout: 5000,
            message: `tab ${tab} selected`,
        });
        await waitUntil(
            async () => {
                await page.locator('.conv-scroll').evaluate((e) => {
                    e.scrollTop = e.scrollHeight;
                });
                return (
                    (await page.getByTestId('conversation-item').count()) === counts[tab] &&
                    (await page.getByTestId('conversation-list-status').getAttribute('data-state')) !== 'loading'
                );
            },
            {timeout: 20000, message: `the ${tab} tab to list ${counts[tab]} conversations`},
        );
        const ids = await page
            .getByTestId('conversation-item')
            .evaluateAll((els) => els.map((e) => Number(e.dataset.id)));
        check(new Set(ids).size === ids.length, `the ${tab} tab lists a conversation twice`);
        const query = {
            open: 'status=open',
            pending: 'status=pending',
            resolved: 'status=resolved',
        }[tab];
        if (query) {
            checkEqual(ids, await allIds(t.api, query), `the ${tab} tab's conversations, in order`);
        } else {
            const assignee = tab === 'mine' ? 'me' : 'unassigned';
            const expected = [
                ...(await allIds(t.api, 'status=open&assignee=' + assignee)),
                ...(await allIds(t.api, 'status=pending&assignee=' + assignee)),
            ];
            checkEqual(
                [...ids].sort((a, b) => a - b),
                expected.sort((a, b) => a - b),
                `the ${tab} tab's conversations`,
            );
        }
        for (const n of await page.getByTestId('conversation-name').allTextContents()) names.add(n);
    }
    const missing = SEEDED.filter((n) => !names.has(n));
    check(missing.length === 0, `seeded conversations not shown: ${missing.join(', ')}`);

    await page.getByTestId('tab-open').click();
    await page.locator('.conv-scroll').evaluate((e) => {
        e.scrollTop = 0;
    });
    await screenshot(page, 'inbox');
}

if (isMain(import.meta.url)) await runScenarios([['signin', signin]]);
