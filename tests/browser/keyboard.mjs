// The keyboard alone: from the top of a conversation's page, Tab reaches the reply
// box (the conversation list is one stop), with a visible focus; Enter sends, and so
// does the Send button reached by Tab. The tabs move with the arrow keys. Every
// control on each page has an accessible name.

import {
    check,
    checkEqual,
    waitUntil,
    runId,
    go,
    unnamedControls,
    newConversation,
    isMain,
    runScenarios,
} from './lib.mjs';

export default async function keyboard(t) {
    const {conv, page} = await newConversation(t, 'Keys');

    await page.reload();
    await page.getByTestId('thread').waitFor();
    await page.getByTestId('message').first().waitFor();
    let presses = 0,
        focused = null;
    while (presses < 40 && focused !== 'reply-text') {
        await page.keyboard.press('Tab');
        presses++;
        focused = await page.evaluate(() => document.activeElement && document.activeElement.dataset.testid);
    }
    checkEqual(focused, 'reply-text', `focus after ${presses} presses of Tab`);
    t.note(`Tab presses from the top of the page to the reply box: ${presses}`);
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    check(outline !== 'none', 'the focused reply box shows no focus outline');

    const first = `Typed and sent with Enter (${runId})`;
    await page.keyboard.type(first);
    await page.keyboard.press('Enter');
    await page.getByTestId('message').filter({hasText: first}).waitFor();
    checkEqual(await page.getByTestId('reply-text').inputValue(), '', 'the reply box after sending');
    checkEqual(await page.evaluate(() => document.activeElement.dataset.testid), 'reply-text', 'focus after sending');

    const second = `Sent with the button (${runId})`;
    await page.keyboard.type(second);
    await page.keyboard.press('Tab');
    checkEqual(
        await page.evaluate(() => document.activeElement.dataset.testid),
        'reply-send',
        'focus after the reply box',
    );
    await page.keyboard.press('Enter');
    await page.getByTestId('message').filter({hasText: second}).waitFor();
    const sent = (await t.api.get(`/api/v1/conversations/${conv.id}/messages?limit=5`)).data.map((m) => m.body);
    check(sent.includes(first) && sent.includes(second), 'the replies sent by keyboard are not in the API');

    // tabs: arrow keys move the selection and the focus
    await page.getByTestId('tab-open').focus();
    await page.keyboard.press('ArrowRight');
    await waitUntil(async () => (await page.getByTestId('tab-pending').getAttribute('aria-selected')) === 'true', {
        message: 'ArrowRight to select the pending tab',
    });
    checkEqual(
        await page.evaluate(() => document.activeElement.dataset.testid),
        'tab-pending',
        'focus after ArrowRight',
    );
    await page.keyboard.press('ArrowLeft');
    await waitUntil(async () => (await page.getByTestId('tab-open').getAttribute('aria-selected')) === 'true', {
        message: 'ArrowLeft to select the open tab',
    });

    // accessible names, page by page
    const pages = [
        ['#/inbox/open/' + conv.id, 'thread'],
        ['#/contacts', 'contacts-page'],
        ['#/campaigns', 'campaigns-page'],
        ['#/ops', 'ops-page'],
    ];
    for (const [hash, testid] of pages) {
        await go(page, hash, testid);
        if (testid === 'campaigns-page') {
            await page.getByTestId('campaign-new').click();
            await page.getByTestId('audience-result').first().waitFor();
        }
        if (testid === 'contacts-page') await page.getByTestId('contact-row').first().waitFor();
        await page.getByTestId('notifications-button').click();
        await page.getByTestId('notifications-panel').waitFor();
        const unnamed = await unnamedControls(page);
        check(unnamed.length === 0, `controls without a name on ${hash}: ${unnamed.join(' | ')}`);
        await page.keyboard.press('Escape');
    }
}

if (isMain(import.meta.url)) await runScenarios([['keyboard', keyboard]]);
