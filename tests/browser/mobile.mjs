// A phone-sized screen (375×667, touch), signed in as the agent: the inbox is one
// column without sideways scrolling, with all five tabs in view; a conversation
// replaces the list, its reply box is on screen, and Back returns to the list.
// Then the session ends: signing out revokes the token, and a token revoked
// elsewhere (a 401 on the next poll) brings the sign-in form back with the reason.

import {check, checkEqual, waitUntil, env, newPage, signIn, screenshot, Api, isMain, runScenarios} from './lib.mjs';

// The API's answer to a token: 200, or 401 once revoked (every server thread forgets it within 5 s).
async function statusOf(token) {
    const res = await fetch(env.url + '/api/v1/notifications/unread_count', {
        headers: {Authorization: 'Bearer ' + token},
    });
    return res.status;
}

export default async function mobile(t) {
    const page = await newPage(t.browser, {
        viewport: {width: 375, height: 667},
        isMobile: true,
        hasTouch: true,
        deviceScaleFactor: 2,
    });
    try {
        await signIn(page, env.agentEmail);
        const items = page.getByTestId('conversation-item');
        await waitUntil(async () => (await items.count()) > 0, {message: "conversations in the agent's inbox"});

        const overflow = await page.evaluate(() => ({
            page: document.documentElement.scrollWidth - window.innerWidth,
            list: Math.max(
                ...Array.from(document.querySelectorAll('.inbox-list, .conv-scroll, .topbar')).map(
                    (e) => e.scrollWidth - e.clientWidth,
                ),
            ),
        }));
        check(
            overflow.page <= 0 && overflow.list <= 0,
            `the inbox scrolls sideways on a phone: ${JSON.stringify(overflow)}`,
        );
        check(!(await page.getByTestId('thread-pane').isVisible()), 'the thread pane shows beside the list on a phone');
        for (const tab of ['open', 'pending', 'resolved', 'mine', 'unassigned']) {
            const box = await page.getByTestId('tab-' + tab).boundingBox();
            check(
                box && box.x >= 0 && box.x + box.width <= 375 + 0.5,
                `the ${tab} tab is off screen: ${JSON.stringify(box)}`,
            );
        }
        await screenshot(page, 'inbox-mobile');

        await items.first().tap();
        const thread = page.getByTestId('thread');
        await thread.waitFor();
        check(!(await page.locator('.inbox-list').isVisible()), 'the list still shows beside the open conversation');
        const reply = await page.getByTestId('reply-text').boundingBox();
        check(
            reply && reply.y >= 0 && reply.y + reply.height <= 667,
            `the reply box is off screen: ${JSON.stringify(reply)}`,
        );
        const send = await page.getByTestId('reply-send').boundingBox();
        check(send && send.x + send.width <= 375, `the send button is off screen: ${JSON.stringify(send)}`);
        await page.getByTestId('message').first().waitFor();
        await screenshot(page, 'conversation-mobile');

        await page.getByTestId('thread-back').tap();
        await page.locator('.inbox-list').waitFor();
        checkEqual(await page.getByTestId('thread-pane').isVisible(), false, 'thread pane visible after Back');

        // signing out revokes the token
        const first = await page.evaluate(() => sessionStorage.getItem('conversa.token'));
        await page.getByTestId('signout').tap();
        await page.getByTestId('signin-notice').filter({hasText: 'signed out'}).waitFor();
        checkEqual(
            await page.evaluate(() => sessionStorage.getItem('conversa.token')),
            null,
            'token kept after signing out',
        );
        await waitUntil(async () => (await statusOf(first)) === 401, {message: 'the signed-out token to be refused'});

        // a token revoked behind the app's back: the next poll's 401 shows the sign-in form
        const second = await signIn(page, env.agentEmail);
        await new Api(second).request('DELETE', '/api/v1/auth/token');
        await page.getByTestId('signin-notice').filter({hasText: 'session has ended'}).waitFor({timeout: 15000});
        check(await page.getByTestId('signin-form').isVisible(), 'the sign-in form is not shown after a 401');
        check(page.problems.length === 0, 'the page reported errors: ' + page.problems.join(' | '));
    } finally {
        await page.context().close();
    }
}

if (isMain(import.meta.url)) await runScenarios([['mobile', mobile]]);
