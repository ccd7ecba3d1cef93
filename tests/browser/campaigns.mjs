// Campaigns: a small campaign is created in the form (a template and three chosen
// contacts), started, and its progress counts move until every recipient has it
// (delivered or read). A second one, on a number slowed to one message a second, is
// paused (its counts stop) and resumed (it completes).

import {check, checkEqual, waitUntil, holds, runId, randomPhone, go, screenshot, isMain, runScenarios} from './lib.mjs';

async function makeContacts(api, prefix, n) {
    const out = [];
    for (let i = 1; i <= n; i++) {
        const res = await api.post('/api/v1/contacts', {phone_number: '+' + randomPhone(), name: `${prefix} ${i}`});
        out.push(res.data);
    }
    return out;
}

// The figures a campaign's card shows, read at one instant (the card updates as it polls).
async function figures(card) {
    const out = await card.evaluate((node) => {
        const f = {status: node.dataset.status};
        for (const k of ['pending', 'sent', 'delivered', 'read', 'failed', 'cancelled']) {
            f[k] = Number(node.querySelector(`[data-testid="campaign-${k}"]`).dataset.value);
        }
        f.total = Number(node.querySelector('[data-testid="campaign-summary"]').dataset.total);
        return f;
    });
    out.reached = out.sent + out.delivered + out.read;
    return out;
}

export default async function campaigns(t) {
    const page = await t.admin();
    const conn = await t.connection();
    const group = `Camp ${runId}`;
    await makeContacts(t.api, group, 3);

    await go(page, '#/campaigns', 'campaigns-page');
    await page.getByTestId('campaign-new').click();
    const form = page.getByTestId('campaign-form');
    await form.waitFor();
    const name = `Browser test ${runId}`;
    await form.getByTestId('campaign-name').fill(name);
    await form.getByTestId('campaign-template').fill('order_update');
    await form.getByTestId('campaign-language').fill('en_US');
    await form.getByTestId('campaign-params').fill('Ana\n48213');
    await form.getByTestId('audience-search').fill(group);
    const results = form.getByTestId('audience-result');
    await waitUntil(async () => (await results.count()) === 3, {
        message: `the three contacts of "${group}" to be found`,
    });
    for (let i = 0; i < 3; i++) await results.nth(i).check();
    checkEqual(await form.getByTestId('audience-count').getAttribute('data-count'), '3', 'contacts chosen');
    await form.getByTestId('campaign-create').click();
    await form.waitFor({state: 'detached'});

    const card = page.getByTestId('campaign').filter({hasText: name});
    await card.waitFor();
    checkEqual(await card.getAttribute('data-status'), 'draft', 'the new campaign');
    const id = Number(await card.getAttribute('data-id'));
    const stored = (await t.api.get('/api/v1/campaigns/' + id)).data;
    checkEqual(
        [
            stored.template.name,
            stored.template.language,
            stored.template.parameters,
            stored.audience.contact_ids.length,
        ],
        ['order_update', 'en_US', ['Ana', '48213'], 3],
        'the campaign as created',
    );

    await card.getByTestId('campaign-trigger').click();
    const seen = new Set();
    await waitUntil(
        async () => {
            const f = await figures(card);
            seen.add(`${f.reached}/${f.total} sent, ${f.delivered + f.read} delivered`);
            const accounted = f.pending + f.reached + f.failed + f.cancelled;
            check(
                f.total === 0 || accounted === f.total,
                `the counts add up to ${accounted}, not ${f.total}: ${JSON.stringify(f)}`,
            );
            return f.total === 3 && f.delivered + f.read === 3 && f.failed === 0 && f.status === 'completed';
        },
        {timeout: 30000, message: 'the campaign to reach its 3 recipients (delivered or read) and complete'},
    );
    t.note(`campaign progress seen: ${[...seen].join(', ')}`);
    check(seen.size >= 2, 'the progress never moved on screen: it went straight to the end');

    // pause and resume, on a number slowed to 1 message a second so there is time for both
    const slow = await makeContacts(t.api, `Pause ${runId}`, 6);
    const rate = conn.messages_per_second;
    await t.api.patch('/api/v1/connections/' + conn.id, {messages_per_second: 1});
    try {
        const second = (
            await t.api.post('/api/v1/campaigns', {
                name: `Paced ${runId}`,
                connection_id: conn.id,
                template: {name: 'order_update', language: 'en_US', parameters: ['Ana', '48214']},
                audience: {contact_ids: slow.map((c) => c.id)},
            })
        ).data;
        await page.reload();
        const card2 = page.getByTestId('campaign').filter({hasText: `Paced ${runId}`});
        await card2.getByTestId('campaign-trigger').click();
        await waitUntil(async () => (await figures(card2)).reached >= 1, {
            timeout: 15000,
            message: 'the paced campaign to send',
        });
        await card2.getByTestId('campaign-pause').click();
        await waitUntil(async () => (await figures(card2)).status === 'paused', {
            message: 'the campaign to show paused',
        });
        // sends in flight finish within about a second; then nothing moves
        const api = async () => (await t.api.get('/api/v1/campaigns/' + second.id)).data;
        const settled = await waitUntil(
            async () => {
                const a = await api();
                await new Promise((r) => setTimeout(r, 1200));
                const b = await api();
                return a.progress.pending === b.progress.pending && b.progress.pending > 0 && b;
            },
            {timeout: 10000, message: 'the paused campaign to stop sending with recipients left'},
        );
        await holds(async () => (await api()).progress.pending, 2500, 'recipients pending while paused');
        await waitUntil(async () => (await figures(card2)).pending === settled.progress.pending, {
            message: 'the card to show the paused counts',
        });
        await card2.getByTestId('campaign-resume').click();
        await waitUntil(
            async () => {
                const f = await figures(card2);
                return f.status === 'completed' && f.reached === 6 && f.total === 6;
            },
            {timeout: 30000, message: 'the resumed campaign to reach its 6 recipients and complete'},
        );
    } finally {
        await t.api.patch('/api/v1/connections/' + conn.id, {messages_per_second: rate});
    }
    await page.locator('.main').evaluate((e) => {
        e.scrollTop = 0;
    });
    await screenshot(page, 'campaigns');
}

if (isMain(import.meta.url)) await runScenarios([['campaigns', campaigns]]);
