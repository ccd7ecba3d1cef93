// A customer's message sent through the stand-in Meta server (POST /_fake/inbound,
// which delivers Meta's signed messages webhook to conversa) appears in the open
// inbox within 2 s, without reloading: a new conversation first, then two more
// messages in it. The open count follows. Opening the conversation reads it: its
// unread badge clears at once and the API says 0; a message arriving while it is open
// is read as it arrives, so no badge comes back.

import {check, checkEqual, waitUntil, runId, randomPhone, fake, go, tabCount, isMain, runScenarios} from './lib.mjs';

const LIMIT_MS = 2000;

export default async function inbound(t) {
    const page = await t.admin();
    const conn = await t.connection();
    await go(page, '#/inbox/open', 'inbox');
    await waitUntil(
        async () => (await page.getByTestId('conversation-list-status').getAttribute('data-state')) === 'ready',
        {message: 'the open list to load'},
    );
    const before = (await t.api.get('/api/v1/conversations/status')).data.open;
    await waitUntil(async () => (await tabCount(page, 'open')) === before, {
        message: `the open count to show ${before}`,
    });

    const phone = randomPhone(),
        name = `Customer ${runId}`;
    const latencies = [];
    for (let i = 1; i <= 3; i++) {
        const text = `Hello (${runId} #${i}), is my order on its way?`;
        const started = Date.now();
        await fake.inbound(conn.phone_number_id, phone, text, name);
        await page.waitForFunction(
            (want) =>
                Array.from(document.querySelectorAll('[data-testid="conversation-preview"]')).some(
                    (e) => e.textContent === want,
                ),
            text,
            {polling: 'raf', timeout: 10000},
        );
        latencies.push(Date.now() - started);
    }
    t.note(`inbox appearance latency (ms): ${latencies.join(', ')}`);
    check(
        Math.max(...latencies) <= LIMIT_MS,
        `a message took ${Math.max(...latencies)} ms to appear in the inbox (limit ${LIMIT_MS} ms): ${latencies.join(', ')}`,
    );

    // one conversation for the customer, first in the list, and counted
    const rows = page.getByTestId('conversation-item').filter({hasText: name});
    checkEqual(await rows.count(), 1, `rows for ${name}`);
    checkEqual(
        await page.getByTestId('conversation-item').first().getByTestId('conversation-name').textContent(),
        name,
        'the newest conversation first',
    );
    await waitUntil(async () => (await tabCount(page, 'open')) === before + 1, {
        message: `the open count to become ${before + 1}`,
    });
    checkEqual((await t.api.get('/api/v1/conversations/status')).data.open, before + 1, 'open conversations (API)');
    checkEqual(await rows.getByTestId('conversation-unread').getAttribute('data-count'), '3', 'unread messages shown');
    checkEqual((await t.api.openConversationOf(phone)).unread_count, 3, 'unread messages in the API');

    // opening it reads it
    await rows.locator('a').click();
    await page.getByTestId('thread-title').filter({hasText: name}).waitFor();
    const badges = () => rows.getByTestId('conversation-unread').count();
    await waitUntil(async () => (await badges()) === 0, {
        timeout: LIMIT_MS,
        message: 'the unread badge to clear once the conversation is open',
    });
    checkEqual((await t.api.openConversationOf(phone)).unread_count, 0, 'unread messages in the API after opening');

    // the customer writes again while it is open: shown in the thread, and read
    const more = `One more thing (${runId})`;
    await fake.inbound(conn.phone_number_id, phone, more, name);
    await page.getByTestId('message').filter({hasText: more}).waitFor({timeout: 5000});
    await waitUntil(
        async () => (await t.api.openConversationOf(phone)).unread_count === 0 && (await badges()) === 0,
        {timeout: 5000, message: 'a message that arrived while the conversation was open to be read'},
    );
    await go(page, '#/inbox/open', 'inbox');
}

if (isMain(import.meta.url)) await runScenarios([['inbound', inbound]]);
