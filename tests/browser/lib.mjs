// What every browser scenario shares: the configuration from the environment, checks
// that fail with a clear message, waiting on a condition with a deadline, the API and
// the stand-in Meta server as the test drives them, and the browser itself.

import {chromium} from 'playwright-core';
import {mkdirSync} from 'node:fs';
import path from 'node:path';
import {pathToFileURL} from 'node:url';
import {createHmac, randomInt} from 'node:crypto';

const here = path.dirname(new URL(import.meta.url).pathname);

export const env = {
    url: (process.env.CONVERSA_URL || 'http://127.0.0.1:5000').replace(/\/$/, ''),
    fakeMeta: (process.env.FAKE_META_URL || 'http://127.0.0.1:5080').replace(/\/$/, ''),
    adminEmail: process.env.ADMIN_EMAIL || 'admin@demo.conversa.dev',
    agentEmail: process.env.AGENT_EMAIL || 'agent@demo.conversa.dev',
    password: process.env.PASSWORD || 'conversa-demo',
    artifacts: path.resolve(process.env.ARTIFACTS_DIR || path.join(here, 'artifacts')),
    chromium: process.env.CHROMIUM || '/usr/bin/chromium',
    // the demo connection's webhook (conversa seed --demo): only to make a dead letter
    webhookSlug: process.env.WEBHOOK_SLUG || 'demo',
    webhookSecret: process.env.WEBHOOK_SECRET || 'demo-app-secret',
};

// ---- checks ----

export class CheckError extends Error {
    constructor(message) {
        super(message);
        this.name = 'CheckError';
    }
}

export function check(ok, message) {
    if (!ok) throw new CheckError(message);
}

export function checkEqual(actual, expected, what) {
    const a = JSON.stringify(actual),
        e = JSON.stringify(expected);
    if (a !== e) throw new CheckError(`${what}: expected ${e}, got ${a}`);
}

// Polls fn until it returns a truthy value (returned) or the deadline passes; then
// fails with `message` and the last value or error seen. Never sleeps without a condition.
export async function waitUntil(fn, {timeout = 10000, interval = 100, message = 'condition'} = {}) {
    const deadline = Date.now() + timeout;
    let last, lastError;
    for (;;) {
        try {
            last = await fn();
            if (last) return last;
        } catch (err) {
            lastError = err;
        }
        if (Date.now() >= deadline) {
            const seen = lastError ? `last error: ${lastError.message}` : `last value: ${JSON.stringify(last)}`;
            throw new CheckError(`timed out after ${timeout} ms waiting for ${message} (${seen})`);
        }
        await new Promise((r) => setTimeout(r, interval));
    }
}

// Asserts fn() keeps returning the same value for `ms`: a condition held over time.
export async function holds(fn, ms, what) {
    const first = JSON.stringify(await fn());
    const end = Date.now() + ms;
    while (Date.now() < end) {
        await new Promise((r) => setTimeout(r, 200));
        const now = JSON.stringify(await fn());
        if (now !== first) throw new CheckError(`${what}: changed from ${first} to ${now}`);
    }
    return JSON.parse(first);
}

// ---- unique test data ----

export const runId = Date.now().toString(36).slice(-5) + randomInt(36 ** 2).toString(36);

// A phone number no seed or earlier run uses: 55 99 then 9 random digits (E.164, 13 digits).
export function randomPhone() {
    return '5599' + String(randomInt(1e8, 1e9));
}

// ---- HTTP ----

async function http(method, url, {token, body} = {}) {
    const headers = {Accept: 'application/json'};
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(url, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
    const text = await res.text();
    let data = null;
    try {
        data = text ? JSON.parse(text) : null;
    } catch {
        data = text;
    }
    if (!res.ok) throw new CheckError(`${method} ${url} answered ${res.status}: ${text.slice(0, 300)}`);
    return res.status === 204 ? null : data;
}

// The API as the signed-in browser user: same token, so the same company and user.
export class Api {
    constructor(token) {
        this.token = token;
    }
    request(method, p, body) {
        return http(method, env.url + p, {token: this.token, body});
    }
    get(p) {
        return http('GET', env.url + p, {token: this.token});
    }
    post(p, body) {
        return http('POST', env.url + p, {token: this.token, body});
    }
    patch(p, body) {
        return http('PATCH', env.url + p, {token: this.token, body});
    }

    // The conversation of a contact's number among the open ones (the newest first).
    async openConversationOf(phone) {
        for (let cursor = null; ;) {
            const q = '/api/v1/conversations?status=open&limit=50' + (cursor ? '&cursor=' + cursor : '');
            const page = await this.get(q);
            const hit = page.data.find((c) => c.contact.phone_number === phone);
            if (hit) return hit;
            cursor = page.pagination.next_cursor;
            if (!cursor) return null;
        }
    }
}

// The stand-in WhatsApp Cloud API (conversa fake-meta): a customer writing in, settings, stats.
export const fake = {
    inbound(phoneNumberId, from, text, name) {
        return http('POST', env.fakeMeta + '/_fake/inbound', {
            body: {phone_number_id: phoneNumberId, from, text, name},
        });
    },
    config(settings) {
        return http('POST', env.fakeMeta + '/_fake/config', {body: settings});
    },
    stats() {
        return http('GET', env.fakeMeta + '/_fake/stats');
    },
};

// A webhook as Meta signs it (X-Hub-Signature-256), posted to the demo connection.
export async function sendWebhook(payload) {
    const body = JSON.stringify(payload);
    const signature = 'sha256=' + createHmac('sha256', env.webhookSecret).update(body).digest('hex');
    const res = await fetch(`${env.url}/api/webhooks/meta/${env.webhookSlug}`, {
        method: 'POST',
        headers: {'Content-Type': 'application/json', 'X-Hub-Signature-256': signature},
        body,
    });
    if (!res.ok) throw new CheckError(`the webhook was refused: ${res.status} ${await res.text()}`);
}

// ---- the browser ----

export async function launch() {
    return chromium.launch({
        executablePath: env.chromium,
        headless: true,
        args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
        ],
    });
}

// A context of its own (fresh storage) that records what the page reports as errors.
export async function newPage(browser, options = {}) {
    const context = await browser.newContext({viewport: {width: 1280, height: 800}, ...options});
    context.setDefaultTimeout(10000);
    const page = await context.newPage();
    page.problems = [];
    page.on('pageerror', (err) => page.problems.push('page error: ' + err.message));
    page.on('console', (msg) => {
        // a CSP refusal or an uncaught error is a bug; a failed API call the app reports itself
        if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text()))
            page.problems.push('console: ' + msg.text());
    });
    return page;
}

// Signs in through the form and returns the session's token (the app keeps it in sessionStorage).
export async function signIn(page, email) {
    await page.goto(env.url + '/');
    await page.getByTestId('signin-email').fill(email);
    await page.getByTestId('signin-password').fill(env.password);
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('inbox').waitFor();
    const token = await page.evaluate(() => sessionStorage.getItem('conversa.token'));
    check(token && token.startsWith('cv_'), 'no session token after signing in');
    return token;
}

export async function screenshot(page, name) {
    mkdirSync(env.artifacts, {recursive: true});
    const file = path.join(env.artifacts, name + '.png');
    await page.screenshot({path: file});
    return file;
}

// Goes to a hash route of the app and waits for the view's root.
export async function go(page, hash, testid) {
    await page.evaluate((h) => {
        location.hash = h;
    }, hash);
    if (testid) await page.getByTestId(testid).waitFor();
}

// The number a tab shows.
export async function tabCount(page, tab) {
    const v = await page.getByTestId('tab-count-' + tab).getAttribute('data-count');
    return v === null ? null : Number(v);
}

// Controls on screen without an accessible name: none may be found. A name comes
// from aria-label, aria-labelledby, a <label>, the control's text or its title.
export async function unnamedControls(page) {
    return page.evaluate(() => {
        const visible = (e) =>
            !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length) &&
            getComputedStyle(e).visibility !== 'hidden';
        const nameOf = (e) => {
            if ((e.getAttribute('aria-label') || '').trim()) return true;
            const by = e.getAttribute('aria-labelledby');
            if (by && by.split(/\s+/).some((id) => (document.getElementById(id)?.textContent || '').trim()))
                return true;
            if (e.labels && Array.from(e.labels).some((l) => l.textContent.trim())) return true;
            if (!['INPUT', 'SELECT', 'TEXTAREA'].includes(e.tagName) && e.textContent.trim()) return true;
            return !!(e.getAttribute('title') || '').trim();
        };
        return Array.from(
            document.querySelectorAll('button, a[href], input:not([type=hidden]), select, textarea, [role=tab]'),
        )
            .filter((e) => visible(e) && !nameOf(e))
            .map((e) => e.outerHTML.slice(0, 160));
    });
}

// Opens a new conversation: the customer writes first (that also opens their 24 h window).
export async function newConversation(t, label) {
    const conn = await t.connection();
    const phone = randomPhone(),
        name = `${label} ${runId}`;
    await fake.inbound(conn.phone_number_id, phone, `Hi, this is ${name}.`, name);
    const conv = await waitUntil(() => t.api.openConversationOf(phone), {message: `a conversation with ${phone}`});
    const page = await t.admin();
    await go(page, `#/inbox/open/${conv.id}`, 'thread');
    await page.getByTestId('thread-title').filter({hasText: name}).waitFor();
    return {conv, phone, name, page};
}

// ---- running scenarios ----

const SCENARIO_MS = 120000;

// Whether the module at metaUrl is the script node was started with.
export function isMain(metaUrl) {
    return !!process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === metaUrl;
}

function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${what} took more than ${ms / 1000} s`)), ms);
        }),
    ]).finally(() => clearTimeout(timer));
}

// Runs [[name, fn], ...] in order in one browser, sharing one admin session (one
// sign-in: conversa throttles sign-ins per email); prints a line per scenario and a
// closing "browser: N passed, N failed", and exits 1 if any failed. Each failure
// leaves failure-NAME.png in ARTIFACTS_DIR.
export async function runScenarios(list) {
    const browser = await launch();
    const t = {
        browser,
        page: null,
        api: null,
        user: null,
        note(line) {
            console.log('  ' + line);
        },
        async admin() {
            if (!this.page || this.page.isClosed() || !this.api) {
                this.page = await newPage(browser);
                this.api = new Api(await signIn(this.page, env.adminEmail));
                this.user = await this.page.evaluate(() => JSON.parse(sessionStorage.getItem('conversa.user')));
            }
            return this.page;
        },
        async connection() {
            await this.admin();
            const conn = (await this.api.get('/api/v1/connections')).data.find((c) => c.status === 'active');
            if (!conn) throw new Error('the company has no active WhatsApp connection to send from');
            return conn;
        },
    };

    console.log(`browser tests against ${env.url} (stand-in Meta at ${env.fakeMeta}); artifacts in ${env.artifacts}`);
    let passed = 0,
        failed = 0;
    for (const [name, fn] of list) {
        const started = Date.now();
        try {
            await withTimeout(fn(t), SCENARIO_MS, name);
            const problems = t.page ? t.page.problems.splice(0) : [];
            if (problems.length) throw new CheckError('the page reported errors: ' + problems.join(' | '));
            passed++;
            console.log(`ok   ${name} (${Date.now() - started} ms)`);
        } catch (err) {
            failed++;
            console.log(`FAIL ${name} (${Date.now() - started} ms): ${err.message}`);
            if (err.name !== 'CheckError' && err.stack) console.log(err.stack.split('\n').slice(1, 4).join('\n'));
            if (t.page && !t.page.isClosed()) {
                t.page.problems.splice(0);
                try {
                    console.log('     screenshot: ' + (await screenshot(t.page, 'failure-' + name)));
                } catch (shotErr) {
                    console.log('     (no screenshot: ' + shotErr.message + ')');
                }
            }
        }
    }
    await browser.close();
    console.log(`browser: ${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
}
