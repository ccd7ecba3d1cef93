#!/usr/bin/env node
// The screenshots of docs/screenshots: inbox, a conversation, campaigns and operations
// at 1280×800, taken from a freshly seeded demo (`make run` on new data). It writes to
// the demo: Carlos writes in and gets a reply, two campaigns are created (one sent to
// every contact) and the operations page gets some traffic to chart. Not a test.
//
// Usage: CONVERSA_URL=… FAKE_META_URL=… node tests/browser/screenshots.mjs [DIR]
//        (DIR defaults to docs/screenshots)

import path from 'node:path';
import {env, Api, launch, newPage, signIn, fake, waitUntil, go} from './lib.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const dir = path.resolve(process.argv[2] || path.join(here, '..', '..', 'docs', 'screenshots'));
const shot = (page, name) => page.screenshot({path: path.join(dir, name + '.png')});

const browser = await launch();
try {
    const page = await newPage(browser);
    const api = new Api(await signIn(page, env.adminEmail));
    const conn = (await api.get('/api/v1/connections')).data[0];
    const convs = (await api.get('/api/v1/conversations?status=open&limit=50')).data;
    const carlos = convs.find((c) => c.contact.name === 'Carlos Oliveira');
    if (!carlos) throw new Error('the demo conversation with Carlos Oliveira is not open: use a freshly seeded demo');

    // Carlos answers (which opens his 24 h window), and the admin replies from the thread
    await fake.inbound(
        conn.phone_number_id,
        carlos.contact.phone_number,
        'Recebi o boleto, obrigado! Consigo pagar pelo app do banco?',
        'Carlos Oliveira',
    );
    await waitUntil(
        async () => (await page.getByTestId('conversation-item').first().textContent()).includes('Carlos'),
        {message: "Carlos's message in the inbox"},
    );
    await page.getByTestId('conversation-item').first().waitFor();
    await shot(page, 'inbox');

    await go(page, `#/inbox/open/${carlos.id}`, 'thread');
    await page.getByTestId('message').first().waitFor();
    const text = 'Consegue sim, Carlos! É só escanear o código de barras no app. Qualquer dúvida, estou por aqui.';
    await page.getByTestId('reply-text').fill(text);
    await page.getByTestId('reply-text').press('Enter');
    const bubble = page.getByTestId('message').filter({hasText: text});
    await waitUntil(async () => (await bubble.getAttribute('data-status')) === 'read', {
        timeout: 20000,
        message: 'read',
    });
    await page.getByTestId('reply-text').evaluate((e) => e.blur());
    await shot(page, 'conversation');

    // a campaign to everyone, sent; another one waiting as a draft
    const sent = (
        await api.post('/api/v1/campaigns', {
            name: 'Black Friday preview',
            connection_id: conn.id,
            template: {name: 'black_friday_preview', language: 'pt_BR', parameters: ['25%']},
            audience: {all: true},
        })
    ).data;
    await api.post('/api/v1/campaigns/trigger', {campaign_id: sent.id});
    await api.post('/api/v1/campaigns', {
        name: 'X200 back in stock',
        connection_id: conn.id,
        template: {name: 'restock_alert', language: 'pt_BR', parameters: ['X200']},
        audience: {labels: ['lead']},
    });
    await go(page, '#/campaigns', 'campaigns-page');
    const card = page.getByTestId('campaign').filter({hasText: 'Black Friday preview'});
    await waitUntil(
        async () =>
            (await card.getAttribute('data-status')) === 'completed' &&
            Number(await card.getByTestId('campaign-read').getAttribute('data-value')) > 0,
        {timeout: 30000, message: 'sent'},
    );
    await shot(page, 'campaigns');

    // operations, after a minute of varied traffic
    await go(page, '#/ops', 'ops-page');
    const until = Date.now() + 60000;
    for (let i = 0; Date.now() < until; i++) {
        const burst = 5 + Math.round(15 * (1 + Math.sin(i / 4)));
        await Promise.all(
            Array.from({length: burst}, (_, k) =>
                api.get(k % 3 ? '/api/v1/conversations/status' : '/api/v1/conversations?status=open&limit=20'),
            ),
        );
        await new Promise((r) => setTimeout(r, 1000));
    }
    await shot(page, 'operations');
    console.log('screenshots written to ' + dir);
} finally {
    await browser.close();
}
