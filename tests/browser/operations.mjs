// Operations: health is ok (database and Redis up), the live figures come from
// /api/metrics (request rate above zero, latency, cache hit rate, queue depth) and
// follow the traffic: a burst of requests makes the request rate climb and the
// charts gain points. The alerts section says what fires. Every queue conversa runs
// (webhooks, outbound replies, campaigns) has its row with the API's counts, and its
// dead letters open from it. A webhook job that cannot succeed (a status for a message
// nobody sent) ends in the dead letter: it is listed with its error, retried alone,
// and with "Retry all".

import {
    check,
    checkEqual,
    waitUntil,
    go,
    screenshot,
    runId,
    randomPhone,
    sendWebhook,
    isMain,
    runScenarios,
} from './lib.mjs';

// A status for a message that does not exist: the job fails each attempt, then is left failed.
async function deadLetter(conn) {
    const phone = randomPhone();
    await sendWebhook({
        object: 'whatsapp_business_account',
        entry: [
            {
                id: '1',
                changes: [
                    {
                        field: 'messages',
                        value: {
                            messaging_product: 'whatsapp',
                            metadata: {
                                display_phone_number: conn.display_phone_number,
                                phone_number_id: conn.phone_number_id,
                            },
                            statuses: [
                                {
                                    id: `wamid.NOSUCHMESSAGE${runId}`,
                                    status: 'delivered',
                                    timestamp: String(Math.floor(Date.now() / 1000)),
                                    recipient_id: phone,
                                },
                            ],
                        },
                    },
                ],
            },
        ],
    });
    return `${conn.id}:${phone}`;
}

export default async function operations(t) {
    const page = await t.admin();
    const key = await deadLetter(await t.connection());
    await go(page, '#/ops', 'ops-page');
    const value = async (testid) => {
        const v = await page.getByTestId(testid).getAttribute('data-value');
        return v === null || v === '' ? null : Number(v);
    };
    const samples = async () => Number(await page.getByTestId('ops-chart-rate').getAttribute('data-samples'));

    await waitUntil(async () => (await page.getByTestId('ops-health-status').getAttribute('data-status')) === 'ok', {
        message: 'health to be ok',
    });
    check((await page.getByTestId('ops-db').getAttribute('data-status')) === 'up', 'the database is not shown up');
    check((await page.getByTestId('ops-redis').getAttribute('data-status')) === 'up', 'Redis is not shown up');

    const rate0 = await waitUntil(
        async () => {
            const r = await value('ops-rate');
            return r > 0 && r;
        },
        {timeout: 15000, message: 'a request rate above 0'},
    );
    const points0 = await samples();

    // traffic the figures must show: 90 requests as fast as they go
    for (let i = 0; i < 3; i++) {
        await Promise.all(Array.from({length: 30}, () => t.api.get('/api/v1/conversations/status')));
    }
    const rate1 = await waitUntil(
        async () => {
            const r = await value('ops-rate');
            return r > rate0 + 5 && r;
        },
        {timeout: 15000, message: `the request rate to climb above ${rate0 + 5}/s after a burst (it was ${rate0}/s)`},
    );
    await waitUntil(async () => (await samples()) >= points0 + 2, {
        timeout: 15000,
        message: 'the charts to gain points',
    });
    t.note(`request rate on the page: ${rate0.toFixed(1)}/s, then ${rate1.toFixed(1)}/s after a burst`);

    const p95 = await value('ops-p95'),
        hit = await value('ops-hit-rate'),
        queued = await value('ops-queued');
    check(p95 !== null && p95 >= 0, `no p95 latency shown (${p95})`);
    check(hit !== null && hit >= 0 && hit <= 100, `the cache hit rate is not a percentage (${hit})`);
    check(queued !== null && queued >= 0, `no queue depth shown (${queued})`);

    await page.getByTestId('ops-queue').filter({hasText: 'webhooks'}).waitFor();
    const QUEUES = ['webhooks', 'outbound', 'campaigns'];
    checkEqual(
        (await t.api.get('/api/v1/queues')).data.map((q) => q.name),
        QUEUES,
        'the queues GET /api/v1/queues lists',
    );
    const rowsShown = async () =>
        page.getByTestId('ops-queue').evaluateAll((els) => els.map((e) => e.getAttribute('data-name')));
    await waitUntil(async () => JSON.stringify(await rowsShown()) === JSON.stringify(QUEUES), {
        message: `a row for each queue (${QUEUES.join(', ')})`,
    });
    for (const name of QUEUES.slice(1)) {
        const row = page.locator(`[data-testid="ops-queue"][data-name="${name}"]`);
        // the page reads the queues every 10 s: it shows the API's count by its next read
        await waitUntil(
            async () =>
                Number((await row.getByTestId('ops-queue-failed').textContent()).replace(/\D/g, '')) ===
                (await t.api.get('/api/v1/queues')).data.find((q) => q.name === name).failed,
            {timeout: 15000, message: `the failed jobs of ${name} to be the API's`},
        );
        await row.getByTestId('ops-show-failed').click();
        const section = page.getByTestId('ops-failed');
        await section.locator('h3').filter({hasText: `Failed jobs of ${name} (`}).waitFor();
        const total = (await t.api.get(`/api/v1/queues/${name}/failed?limit=100`)).pagination.total;
        const shown = await section.getByTestId('ops-failed-job').count();
        checkEqual(shown, Math.min(total, 20), `dead letters of ${name} listed`);
        await row.getByTestId('ops-show-failed').click();
        await section.waitFor({state: 'detached'});
    }
    await waitUntil(
        async () =>
            (await page.getByTestId('ops-no-alerts').isVisible()) || (await page.getByTestId('ops-alert').count()) > 0,
        {message: 'the alerts section to say what is firing'},
    );

    // the dead letter: listed with its error, retried alone, then with the others
    const failedIds = async () =>
        (await t.api.get('/api/v1/queues/webhooks/failed?limit=100')).data
            .filter((j) => j.key === key)
            .map((j) => j.id);
    const [jobId] = await waitUntil(
        async () => {
            const ids = await failedIds();
            return ids.length && ids;
        },
        {timeout: 30000, message: `the poisoned webhook job (${key}) to end failed`},
    );
    const queue = page.getByTestId('ops-queue').filter({hasText: 'webhooks'});
    await queue.getByTestId('ops-show-failed').click();
    const job = page.locator(`[data-testid="ops-failed-job"][data-id="${jobId}"]`);
    await job.waitFor({timeout: 15000});
    check(
        (await job.textContent()).includes('not known yet'),
        `the job's error is not shown: ${await job.textContent()}`,
    );
    await job.getByTestId('ops-retry').click();
    await page
        .getByTestId('toast')
        .filter({hasText: `Job ${jobId} queued again`})
        .waitFor();
    await job.waitFor({state: 'detached'});
    checkEqual(await failedIds(), [], 'failed jobs of the poisoned key right after the retry');
    // it fails again (the message still does not exist); "Retry all" takes it back too
    await waitUntil(async () => (await failedIds()).length === 1, {
        timeout: 30000,
        message: 'the retried job to fail again',
    });
    await job.waitFor({timeout: 15000});
    await page.getByTestId('ops-retry-all').click();
    await page
        .getByTestId('toast')
        .filter({hasText: /\d+ jobs? queued again/})
        .waitFor();
    checkEqual(await failedIds(), [], 'failed jobs of the poisoned key after "Retry all"');
    await queue.getByTestId('ops-show-failed').click();
    await page.getByTestId('ops-failed').waitFor({state: 'detached'});
    await page.locator('.main').evaluate((e) => {
        e.scrollTop = 0;
    });
    await screenshot(page, 'operations');
}

if (isMain(import.meta.url)) await runScenarios([['operations', operations]]);
