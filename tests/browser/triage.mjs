// Triage from the thread: "Assign to me" moves a new conversation from Unassigned to
// Mine, the status select moves it from Open to Pending (it leaves the open list and
// shows in the pending tab) and then to Resolved; every count on the tabs follows,
// and equals the API's.

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
