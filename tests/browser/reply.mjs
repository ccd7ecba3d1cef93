// Replying: the reply shows as pending at once, then its tick moves (sent, delivered,
// read) as the stand-in Meta server sends the status webhooks, without reloading. A
// reply to a number Meta cannot reach ends failed, with Meta's code and reason shown.

import {newConversation, check, checkEqual, waitUntil, runId, fake, screenshot, isMain, runScenarios} from './lib.mjs';

const ORDER = ['pending', 'sent', 'delivered', 'read'];

// Records, in the page, every state the bubble with `text` shows, as the DOM changes.
function recordTicks(text) {
    window.__ticks = [];
    const root = document.querySelector('[data-testid="messages"]');
    const record = () => {
        for (const b of root.querySelectorAll('[data-testid="message"]')) {
            if (b.querySelector('.msg-body')?.textContent !== text) continue;
            if (window.__ticks[window.__ticks.length - 1] !== b.dataset.status) window.__ticks.push(b.dataset.status);
        }
    };
    new MutationObserver(record).observe(root, {subtree: true, childList: true, attributes: true});
}

export default async function reply(t) {
    const {conv, phone, name, page} = await newConversation(t, 'Reply');

    const text = `Thanks for writing (${runId}), your order ships today.`;
    await page.evaluate(recordTicks, text);
    await page.getByTestId('reply-text').fill(text);
    await page.getByTestId('reply-send').click();
    const bubble = page.getByTestId('message').filter({hasText: text});
    await bubble.waitFor({timeout: 5000});
    checkEqual(await bubble.getAttribute('data-direction'), 'outbound', 'the reply bubble');
    await waitUntil(async () => (await bubble.getAttribute('data-status')) === 'read', {
        timeout: 15000,
        message: 'the reply to be read',
    });
    const ticks = await page.evaluate(() => window.__ticks);
    t.note(`reply ticks seen: ${ticks.join(' → ')}`);
    checkEqual(ticks[0], 'pending', "the reply's first state");
    check(
        ticks.every((s, i) => i === 0 || ORDER.indexOf(s) > ORDER.indexOf(ticks[i - 1])),
        `the tick went backwards or repeated: ${ticks.join(' → ')}`,
    );
    check(ticks.length >= 3, `the tick should pass through delivered on its way to read: ${ticks.join(' → ')}`);
    checkEqual(await bubble.getByTestId('message-status').getAttribute('aria-label'), 'Read', "the tick's label");
    const stored = (await t.api.get(`/api/v1/conversations/${conv.id}/messages?limit=5`)).data.find(
        (m) => m.body === text,
    );
    checkEqual(stored && stored.status, 'read', "the reply's status in the API");
    await screenshot(page, 'conversation');

    // the customer answers while the thread is open: it appears without reloading
    const answer = `Great, thank you! (${runId})`;
    await fake.inbound((await t.connection()).phone_number_id, phone, answer, name);
    await page.getByTestId('message').filter({hasText: answer}).waitFor({timeout: 5000});
    checkEqual(
        await page.getByTestId('message').last().getAttribute('data-direction'),
        'inbound',
        'the newest message in the thread',
    );

    // Meta accepts, then reports it undeliverable (131026): the bubble says so
    await fake.config({unreachable_prefix: phone});
    try {
        const doomed = `This one cannot arrive (${runId}).`;
        await page.getByTestId('reply-text').fill(doomed);
        await page.getByTestId('reply-text').press('Enter');
        const failed = page.getByTestId('message').filter({hasText: doomed});
        await waitUntil(async () => (await failed.getAttribute('data-status')) === 'failed', {
            timeout: 15000,
            message: 'the undeliverable reply to be marked failed',
        });
        const why = await failed.getByTestId('message-error').textContent();
        check(/131026/.test(why) && /undeliverable/i.test(why), `the failure reason shown: "${why}"`);
        checkEqual(
            await failed.getByTestId('message-status').getAttribute('aria-label'),
            'Failed',
            "the failed tick's label",
        );
    } finally {
        await fake.config({unreachable_prefix: ''});
    }
}

if (isMain(import.meta.url)) await runScenarios([['reply', reply]]);
