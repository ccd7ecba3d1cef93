// Contacts: search by a name prefix (any case) and by phone digits, then look a
// number up written the way people write it; an unknown number says so.

import {check, checkEqual, waitUntil, go, isMain, runScenarios} from './lib.mjs';

export default async function contacts(t) {
    const page = await t.admin();
    await go(page, '#/contacts', 'contacts-page');
    const rows = page.getByTestId('contact-row');
    const names = () => rows.locator('.contact-name').allTextContents();
    const search = page.getByTestId('contacts-search');

    await search.fill('mari');
    await waitUntil(
        async () => {
            const n = await names();
            return n.length > 0 && n.every((x) => /^mari/i.test(x)) && n;
        },
        {message: 'the search for "mari" to list only names starting with it'},
    );
    check((await names()).includes('Mariana Souza'), 'Mariana Souza is not found by "mari"');

    await search.fill('5521');
    await waitUntil(async () => (await names()).includes('Fernanda Lima'), {
        message: 'the search by phone digits "5521"',
    });
    const phones = await rows.locator('.contact-phone').allTextContents();
    check(
        phones.every((p) => p.startsWith('+5521')),
        `a phone search listed other numbers: ${phones.join(', ')}`,
    );

    await rows.filter({hasText: 'Fernanda Lima'}).click();
    const detail = page.getByTestId('contact-detail');
    await detail.filter({hasText: 'Fernanda Lima'}).waitFor();
    check((await detail.textContent()).includes('troca'), "the contact's labels are not shown");

    await page.getByTestId('contacts-lookup-input').fill('+55 (11) 98765-0002');
    await page.getByTestId('contacts-lookup-input').press('Enter');
    await page.getByTestId('lookup-hit').filter({hasText: 'Carlos Oliveira'}).waitFor();
    await detail.filter({hasText: 'Carlos Oliveira'}).waitFor();

    await page.getByTestId('contacts-lookup-input').fill('+1 555 000 0000');
    await page.getByTestId('contacts-lookup-input').press('Enter');
    const miss = page.getByTestId('lookup-miss');
    await miss.waitFor();
    checkEqual(await miss.textContent(), 'No contact has the number +1 555 000 0000.', 'the look-up miss');
}

if (isMain(import.meta.url)) await runScenarios([['contacts', contacts]]);
