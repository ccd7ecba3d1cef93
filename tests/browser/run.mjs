#!/usr/bin/env node
// Browser tests of the conversa web app: Debian's chromium, headless, driven by
// playwright-core, against a running conversa (CONVERSA_URL) that sends through the
// stand-in Meta server (FAKE_META_URL). See README.md beside this file.
//
// Usage: node tests/browser/run.mjs [SCENARIO ...]   (every scenario, in order, by default)
// Each scenario is also a script of its own: node tests/browser/SCENARIO.mjs

import {runScenarios} from './lib.mjs';
import signin from './signin.mjs';
import inbound from './inbound.mjs';
import reply from './reply.mjs';
import triage from './triage.mjs';
import notifications from './notifications.mjs';
import contacts from './contacts.mjs';
import campaigns from './campaigns.mjs';
import metrics from './metrics.mjs';
import operations from './operations.mjs';
import mobile from './mobile.mjs';
import keyboard from './keyboard.mjs';

const SCENARIOS = {
    signin,
    inbound,
    reply,
    triage,
    notifications,
    contacts,
    campaigns,
    metrics,
    operations,
    mobile,
    keyboard,
};

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
    console.log(`usage: node run.mjs [SCENARIO ...]\nscenarios: ${Object.keys(SCENARIOS).join(' ')}`);
    process.exit(0);
}
const unknown = args.filter((a) => !SCENARIOS[a]);
if (unknown.length) {
    console.error(`unknown scenario(s): ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(' ')}`);
    process.exit(2);
}
await runScenarios((args.length ? args : Object.keys(SCENARIOS)).map((name) => [name, SCENARIOS[name]]));
