// Notifications: messages in a conversation assigned to the admin notify them; the
// bell shows the unread count (the API's), one notification is marked read (the
// count drops by one), then all (the count is 0).

import {check, checkEqual, waitUntil, runId, randomPhone, fake, isMain, runScenarios} from './lib.mjs';

export default async function notifications(t) {
    const page = await t.admin();
    const conn = await t.connection();
    const unread = async () => (await t.api.get('/api/v1/notifications/unread_count')).data.unread_count;
    const shown = async () => {
        const badge = page.getByTestId('notifications-count');
        return (await badge.isVisible()) ? Number(await badge.getAttribute('data-count')) : 0;
    };

    // a new customer, assigned to the admin, who then writes twice
    const phone = randomPhone(),
        name = `Notify ${runId}`;
    await fake.inbound(conn.phone_number_id, phone, 'First message', name);
    const conv = await waitUntil(() => t.api.openConversationOf(phone), {message: `a conversation with ${phone}`});
    await t.api.patch(`/api/v1/conversations/${conv.id}`, {assignee_id: t.user.id});
    const before = await unread();
    await fake.inbound(conn.phone_number_id, phone, `Are you there? (${runId})`, name);
    await fake.inbound(conn.phone_number_id, phone, `Hello again (${runId})`, name);
    const count = await waitUntil(
        async () => {
            const n = await unread();
            return n >= before + 2 && n;
        },
        {message: 'two new notifications for the admin'},
    );

    await waitUntil(async () => (await shown()) === count, {message: `the bell to show ${count} unread`});
    const label = await page.getByTestId('notifications-button').getAttribute('aria-label');
    check(label.includes(String(count)), `the bell's label does not say the count: "${label}"`);

    await page.getByTestId('notifications-button').click();
    const panel = page.getByTestId('notifications-panel');
    await panel.waitFor();
    const ours = panel.getByTestId('notification').filter({hasText: runId});
    await waitUntil(async () => (await ours.count()) >= 2, {message: 'the new notifications in the panel'});
    const first = ours.first();
    const id = await first.getAttribute('data-id');
    checkEqual(await first.getAttribute('data-read'), 'false', 'the new notification before reading');
    await first.getByTestId('notification-read').click();
    await waitUntil(
        async () =>
            (await panel.locator(`[data-testid="notification"][data-id="${id}"]`).getAttribute('data-read')) === 'true',
        {message: 'the notification to show as read'},
    );
    await waitUntil(async () => (await shown()) === count - 1 && (await unread()) === count - 1, {
        message: `the unread count to become ${count - 1} on the bell and in the API`,
    });

    await page.getByTestId('notifications-read-all').click();
    await waitUntil(async () => (await shown()) === 0 && (await unread()) === 0, {
        message: 'the unread count to become 0 on the bell and in the API',
    });
    check(!(await page.getByTestId('notifications-count').isVisible()), 'the badge is still shown at 0');
    const states = await panel.getByTestId('notification').evaluateAll((els) => els.map((e) => e.dataset.read));
    check(
        states.every((s) => s === 'true'),
        'a notification in the panel still shows as unread',
    );
    await page.keyboard.press('Escape');
    await panel.waitFor({state: 'hidden'});
}

if (isMain(import.meta.url)) await runScenarios([['notifications', notifications]]);
