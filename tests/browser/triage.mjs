// Triage from the thread: "Assign to me" moves a new conversation from Unassigned to
// Mine; handing it to a colleague names them (GET /api/v1/users) in the thread and in
// the list, and takes it out of Mine until "Assign to me" takes it back; the status
// select moves it from Open to Pending (it leaves the open list and shows in the
// pending tab) and then to Resolved; every count on the tabs follows, and equals the
// API's.

import {check, checkEqual, waitUntil, tabCount, newConversation, isMain, runScenarios} from './lib.mjs';

const TABS = ['open', 'pending', 'resolved', 'mine', 'unassigned'];

export default async function triage(t) {
    const {conv, name, page} = await newConversation(t, 'Triage');
    const status = async () => (await t.api.get('/api/v1/conversations/status')).data;
    // the tabs show the API's counts, and those moved by `delta` from `base`
    const countsMoved = async (base, delta, what) =>
        waitUntil(
            async () => {
                const api = await status();
                for (const tab of TABS) {
                    if (api[tab] !== base[tab] + (delta[tab] || 0) || (await tabCount(page, tab)) !== api[tab])
                        return false;
                }
                return api;
            },
            {message: `the tab counts after ${what} (expected ${JSON.stringify(delta)} from ${JSON.stringify(base)})`},
        );

    let base = await countsMoved(await status(), {}, 'opening the conversation');
    checkEqual(await page.getByTestId('thread-assignee').textContent(), 'Unassigned', 'assignee before');
    await page.getByTestId('thread-assign').click();
    await waitUntil(async () => (await page.getByTestId('thread-assignee').textContent()) === 'Assigned to you', {
        message: 'the thread to say it is assigned to the user',
    });
    checkEqual(
        (await t.api.get('/api/v1/conversations/' + conv.id)).data.assignee_id,
        t.user.id,
        'assignee in the API',
    );
    base = await countsMoved(base, {mine: 1, unassigned: -1}, 'assigning');
    const row = page.getByTestId('conversation-item').filter({hasText: name});
    const rowAssignee = async () => row.getByTestId('conversation-assignee').textContent();
    await waitUntil(async () => (await rowAssignee()) === 'You', {message: 'the list to say it is assigned to you'});

    // to a colleague, by name: the thread and the list name them, not "Agent #id"
    const colleague = (await t.api.get('/api/v1/users')).data.find((u) => u.id !== t.user.id);
    check(colleague, 'the company has no other user to hand a conversation to');
    const choices = await page.getByTestId('thread-colleague').locator('option').allTextContents();
    check(
        choices.some((c) => c.startsWith(colleague.name)),
        `the colleague ${colleague.name} is not offered: ${choices.join(', ')}`,
    );
    check(!choices.some((c) => c.startsWith(t.user.name)), 'the user is offered as their own colleague');
    check(
        (await page.getByTestId('thread-hand-over').isDisabled()) === true,
        'the hand-over button works before anyone is chosen',
    );
    await page.getByTestId('thread-colleague').selectOption(String(colleague.id));
    await page.getByTestId('thread-hand-over').click();
    await waitUntil(
        async () => (await page.getByTestId('thread-assignee').textContent()) === 'Assigned to ' + colleague.name,
        {message: `the thread to say it is assigned to ${colleague.name}`},
    );
    await waitUntil(async () => (await rowAssignee()) === colleague.name, {
        message: `the list to name ${colleague.name}`,
    });
    checkEqual(
        (await t.api.get('/api/v1/conversations/' + conv.id)).data.assignee_id,
        colleague.id,
        'assignee in the API after handing it over',
    );
    base = await countsMoved(base, {mine: -1}, 'handing it to a colleague');
    checkEqual(await page.getByTestId('thread-assign').textContent(), 'Assign to me', 'the assign button');
    await page.getByTestId('thread-assign').click();
    await waitUntil(async () => (await page.getByTestId('thread-assignee').textContent()) === 'Assigned to you', {
        message: 'the thread to say it is assigned to the user again',
    });
    base = await countsMoved(base, {mine: 1}, 'taking it back');

    await page.getByTestId('thread-status').selectOption('pending');
    base = await countsMoved(base, {open: -1, pending: 1}, 'moving it to pending');
    const inOpen = page.getByTestId('conversation-item').filter({hasText: name});
    await waitUntil(async () => (await inOpen.count()) === 0, {message: 'the conversation to leave the open list'});
    await page.getByTestId('tab-pending').click();
    await page.getByTestId('conversation-item').filter({hasText: name}).waitFor();
    check((await page.getByTestId('thread-title').textContent()) === name, 'the thread closed on changing tabs');

    await page.getByTestId('thread-status').selectOption('resolved');
    await countsMoved(base, {pending: -1, resolved: 1, mine: -1}, 'resolving it');
    checkEqual((await t.api.get('/api/v1/conversations/' + conv.id)).data.status, 'resolved', 'status in the API');
    await page.getByTestId('tab-open').click();
}

if (isMain(import.meta.url)) await runScenarios([['triage', triage]]);
