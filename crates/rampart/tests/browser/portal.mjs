// Rampart's portal in real headless Chromium: run by crates/rampart/tests/it/browser.rs, which
// starts a real `rampart serve` in front of a real sshd and passes everything in the environment.
//
//   RAMPART_URL            https://127.0.0.1:PORT
//   ALICE_PASSWORD         alice's password (alice has a TOTP second factor)
//   ALICE_TOTP_SECRET      the base32 secret from alice's otpauth:// URI
//   TOTP_USED_UNTIL        unix time: codes of steps up to this one were already used
//   ADMIN_USER / ADMIN_PASSWORD
//   GRANTED                LOGIN@web-01, the account alice has a grant for
//   NOT_YET_GRANTED        LOGIN@web-02, the account the admin grants her through the UI
//   ARTIFACTS              directory for the screenshots
//   CHROMIUM               the browser (Debian's /usr/bin/chromium)
//   CANARY                 a password the admin puts into the vault through the UI: it must
//                          come back in no response, page or WebSocket frame (D1)
//   KILL_REASON            the reason the admin gives when killing a watched session
//
// Every step leaves a screenshot; any page error or CSP violation fails the run.
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env('RAMPART_URL');
const artifacts = env('ARTIFACTS');
const granted = env('GRANTED');
const notYetGranted = env('NOT_YET_GRANTED');
mkdirSync(artifacts, { recursive: true });

// RFC 6238: HMAC-SHA-1, 30-second steps, 6 digits.
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text.replace(/=+$/, '').toUpperCase()) {
    const index = alphabet.indexOf(c);
    if (index < 0) throw new Error('bad base32');
    bits += index.toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, '0');
}

// A code is accepted once per step: wait for a step after the ones already used.
async function freshCode() {
  const usedStep = Math.floor(Number(env('TOTP_USED_UNTIL')) / 30);
  for (;;) {
    const step = Math.floor(Date.now() / 1000 / 30);
    if (step > usedStep) return totp(env('ALICE_TOTP_SECRET'), step);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

const problems = [];
let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  const file = join(artifacts, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

// Every response body and WebSocket frame the browsers receive, for the canary search (D1).
const received = [];
function recordTraffic(page) {
  page.on('response', async (response) => {
    try {
      received.push((await response.body()).toString('latin1'));
    } catch (_) {
      // redirects and aborted loads have no body
    }
  });
  page.on('websocket', (socket) => {
    socket.on('framereceived', (frame) => received.push(Buffer.from(frame.payload).toString('latin1')));
  });
}

function watchForProblems(page, who) {
  recordTraffic(page);
  page.on('pageerror', (err) => problems.push(`${who}: page error: ${err.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) {
      problems.push(`${who}: ${message.text()}`);
    }
  });
}

async function login(page, user, password, code) {
  await page.goto(`${base}/`);
  // Anonymous visitors land on the login page.
  await page.waitForURL(/\/login/);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  if (code) await page.fill('input[name=totp]', code);
  return page;
}

async function terminalText(page) {
  return page.evaluate(() => {
    const term = window.rampartTerminal;
    if (!term) return '';
    const buffer = term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i += 1) lines.push(buffer.getLine(i).translateToString(true));
    return lines.join('\n');
  });
}

async function waitForTerminal(page, expected, what) {
  const deadline = Date.now() + 30_000;
  let text = '';
  while (Date.now() < deadline) {
    text = await terminalText(page);
    if (text.includes(expected)) return text;
    await page.waitForTimeout(200);
  }
  await screenshot(page, `failed-${what}`);
  throw new Error(`${expected} never appeared in the terminal (${what}); it shows:\n${text}`);
}

// A paste, as the browser delivers one to xterm.js's text area.
async function paste(page, text) {
  await page.evaluate((text) => {
    const data = new DataTransfer();
    data.setData('text/plain', text);
    const area = document.querySelector('#terminal textarea');
    area.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  }, text);
}

// A copy of the whole screen, as the browser asks xterm.js for one.
async function copyAll(page) {
  return page.evaluate(() => {
    window.rampartTerminal.selectAll();
    const data = new DataTransfer();
    const area = document.querySelector('#terminal textarea');
    area.dispatchEvent(new ClipboardEvent('copy', { clipboardData: data, bubbles: true, cancelable: true }));
    return data.getData('text/plain');
  });
}

async function openTerminal(page, account) {
  await page.goto(`${base}/`);
  const row = page.locator('#accounts tbody tr', { hasText: account });
  await row.getByRole('link', { name: 'Connect' }).click();
  await page.waitForURL(/\/terminal\?account=/);
  await page.waitForSelector('#terminal .xterm');
  await page.waitForFunction(() => document.querySelector('#terminal-state').textContent === 'connected');
  await page.locator('#terminal').click();
}

async function connectAndRun(page, account, command, expected, name, extra) {
  await openTerminal(page, account);
  // The shell's prompt first, so the keystrokes are not typed ahead of it.
  await page.waitForTimeout(300);
  await page.keyboard.type(`${command}\n`);
  await waitForTerminal(page, expected, name);
  await screenshot(page, name);
  if (extra) await extra(page);
  await page.keyboard.type('exit\n');
  await page.waitForFunction(() => document.body.dataset.terminal === 'closed', null, { timeout: 30_000 });
  const state = await page.textContent('#terminal-state');
  if (!state.includes('exited with status 0')) throw new Error(`terminal state after exit: ${state}`);
  await screenshot(page, `${name}-exited`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
try {
  const viewport = { width: 1280, height: 800 };
  const alice = await (await browser.newContext({ ignoreHTTPSErrors: true, viewport })).newPage();
  const admin = await (await browser.newContext({ ignoreHTTPSErrors: true, viewport })).newPage();
  watchForProblems(alice, 'alice');
  watchForProblems(admin, 'admin');

  // 1. Alice logs in with password and TOTP code.
  await login(alice, 'alice', env('ALICE_PASSWORD'), null);
  await screenshot(alice, 'login-page');
  await alice.fill('input[name=totp]', await freshCode());
  await alice.click('button[type=submit]');
  await alice.waitForURL(`${base}/`);
  await alice.waitForSelector('body[data-ready=true]');
  const home = await alice.textContent('#accounts');
  if (!home.includes(granted)) throw new Error(`home does not list ${granted}: ${home}`);
  if (home.includes(notYetGranted)) throw new Error(`home lists ${notYetGranted} before any grant`);
  await screenshot(alice, 'home');
  console.log('step ok: login with password and TOTP, home lists the granted account');

  // 2. A terminal to the real sshd target: type a command, see its output.
  await connectAndRun(alice, granted, 'echo hello-$((6*7))', 'hello-42', 'terminal', async (page) => {
    // Paste goes to the shell; copy takes what the screen shows.
    // The shell asks for bracketed paste, so a pasted line waits for Enter, as it should.
    await paste(page, 'echo pasted-$((2+3))');
    await waitForTerminal(page, 'echo pasted-$((2+3))', 'paste-shown');
    await page.keyboard.press('Enter');
    await waitForTerminal(page, 'pasted-5', 'paste');
    const copied = await copyAll(page);
    if (!copied.includes('hello-42') || !copied.includes('pasted-5')) throw new Error(`copy gave: ${copied}`);
    // A smaller window: the terminal refits and the remote side learns the new size.
    const before = await page.evaluate(() => window.rampartTerminal.cols);
    await page.setViewportSize({ width: 900, height: 500 });
    await page.waitForFunction((before) => window.rampartTerminal.cols !== before, before);
    const size = await page.evaluate(() => `${window.rampartTerminal.rows} ${window.rampartTerminal.cols}`);
    // The size travels ahead of the keystrokes on the same socket; give the target a moment.
    await page.waitForTimeout(300);
    await page.keyboard.type('stty size\n');
    await waitForTerminal(page, `\n${size}`, 'resize');
    await screenshot(page, 'terminal-resized');
    await page.setViewportSize(viewport);
  });
  console.log('step ok: browser terminal ran a command on the target; paste, copy and resize work');

  // 3. The administrator replays that session.
  await login(admin, env('ADMIN_USER'), env('ADMIN_PASSWORD'), null);
  await admin.click('button[type=submit]');
  await admin.waitForURL(`${base}/`);
  await admin.goto(`${base}/sessions`);
  await admin.waitForSelector('body[data-ready=true]');
  const sessionRow = admin.locator('#sessions tbody tr', { hasText: granted }).filter({ hasText: 'alice' }).first();
  await screenshot(admin, 'sessions');
  await sessionRow.getByRole('link', { name: 'Replay' }).click();
  await admin.waitForURL(/\/replay\?session=/);
  await admin.waitForSelector('body[data-ready=true]');
  await admin.waitForFunction(() => /verified/.test(document.querySelector('#verification').textContent));
  const verification = await admin.textContent('#verification');
  if (!verification.startsWith('verified')) throw new Error(`verification: ${verification}`);
  await admin.waitForSelector('#player .ap-player, #player .ap-wrapper');
  await admin.evaluate(() => window.rampartPlayer.play());
  await admin.waitForFunction(() => document.querySelector('#player').textContent.includes('hello-42'), null, {
    timeout: 60_000,
  });
  await screenshot(admin, 'replay');
  console.log('step ok: the session replays in asciinema-player and its recording verifies');

  // 4. The administrator grants alice another account, through the UI.
  await admin.goto(`${base}/admin/grants`);
  await admin.waitForSelector('body[data-ready=true]');
  const [, asset] = notYetGranted.split('@');
  await admin.fill('#grant-add input[name=user]', 'alice');
  await admin.fill('#grant-add input[name=asset]', asset);
  await admin.click('#grant-add button[type=submit]');
  await admin.waitForFunction(() => document.querySelector('#status').textContent === 'grant added');
  await admin.fill('#grant-explain input[name=user]', 'alice');
  await admin.fill('#grant-explain input[name=asset]', asset);
  await admin.click('#grant-explain button[type=submit]');
  await admin.waitForSelector('#explanation strong.ok');
  await screenshot(admin, 'grant-added-and-explained');
  console.log('step ok: grant added and explained in the UI');

  // 5. It takes effect: alice's home lists the account and a terminal on it works.
  await alice.goto(`${base}/`);
  await alice.waitForSelector('body[data-ready=true]');
  const after = await alice.textContent('#accounts');
  if (!after.includes(notYetGranted)) throw new Error(`home does not list ${notYetGranted} after the grant: ${after}`);
  await screenshot(alice, 'home-after-grant');
  await connectAndRun(alice, notYetGranted, 'echo granted-$((3+4))', 'granted-7', 'terminal-after-grant');
  console.log('step ok: the new grant took effect');

  // 6. An auditor's view: watch alice's live terminal read-only, then kill it with a reason.
  await openTerminal(alice, granted);
  await alice.waitForTimeout(300);
  await admin.goto(`${base}/sessions`);
  await admin.waitForSelector('body[data-ready=true]');
  const live = admin.locator('#sessions tbody tr', { hasText: 'live' }).filter({ hasText: granted }).first();
  await live.getByRole('link', { name: 'Watch' }).click();
  await admin.waitForURL(/\/watch\?session=/);
  await admin.waitForFunction(() => document.querySelector('#watch-state').textContent.startsWith('watching'));
  await alice.keyboard.type('echo watched-$((5*5))\n');
  await waitForTerminal(admin, 'watched-25', 'watch');
  // Read-only: what the watcher types reaches nobody.
  await admin.locator('#terminal').click();
  await admin.keyboard.type('echo from-the-watcher\n');
  await screenshot(admin, 'watch');
  await admin.goto(`${base}/sessions`);
  await admin.waitForSelector('body[data-ready=true]');
  const toKill = admin.locator('#sessions tbody tr', { hasText: 'live' }).filter({ hasText: granted }).first();
  await toKill.getByLabel('kill reason').fill(env('KILL_REASON'));
  await toKill.getByRole('button', { name: 'Kill' }).click();
  await admin.waitForFunction(() => /is being ended/.test(document.querySelector('#status').textContent));
  await alice.waitForFunction(() => document.body.dataset.terminal === 'closed', null, { timeout: 30_000 });
  if ((await terminalText(alice)).includes('from-the-watcher')) throw new Error("the watcher's keystrokes reached the session");
  await screenshot(alice, 'killed');
  console.log('step ok: watched a live session read-only and killed it with a reason');

  // 7. A secret set through the UI goes into the vault and never comes back (D1).
  await admin.goto(`${base}/admin/accounts`);
  await admin.waitForSelector('body[data-ready=true]');
  await admin.fill('#account-secret input[name=account]', `canary@${asset}`);
  await admin.fill('#account-secret input[name=password]', env('CANARY'));
  if ((await admin.inputValue('#account-secret input[name=password]')) !== env('CANARY')) {
    throw new Error('the canary is not in the form: the search below could not fail');
  }
  await admin.click('#account-secret button[value=add]');
  await admin.waitForFunction(() => /added canary@/.test(document.querySelector('#status').textContent));
  await admin.fill('#account-secret input[name=account]', `canary@${asset}`);
  await admin.fill('#account-secret input[name=password]', `${env('CANARY')}-replaced`);
  await admin.click('#account-secret button[value=replace]');
  await admin.waitForFunction(() => /replaced the secret of canary@/.test(document.querySelector('#status').textContent));
  await admin.reload();
  await admin.waitForSelector('body[data-ready=true]');
  await screenshot(admin, 'accounts');
  const html = await admin.content();
  if (!html.includes(`canary@${asset}`)) throw new Error('the new account is not listed');
  const leaks = received.filter((body) => body.includes(env('CANARY'))).length;
  if (html.includes(env('CANARY')) || leaks > 0) throw new Error(`the canary came back (${leaks} responses)`);
  console.log(`step ok: the secret set in the UI is in no page, response or frame (${received.length} searched)`);

  // 8. The assets page shows each asset's endpoints, and an administrator adds one.
  await admin.goto(`${base}/admin/assets`);
  await admin.waitForSelector('body[data-ready=true]');
  const before = await admin.textContent('#assets');
  if (!/ssh:\d+/.test(before)) throw new Error(`the assets page shows no ssh endpoint: ${before}`);
  await admin.fill('#asset-endpoint input[name=asset]', asset);
  await admin.selectOption('#asset-endpoint select[name=protocol]', 'postgres');
  await admin.fill('#asset-endpoint input[name=port]', '15432');
  await admin.click('#asset-endpoint button[type=submit]');
  await admin.waitForFunction(() => document.querySelector('#assets').textContent.includes('postgres:15432'));
  const row = await admin.locator('#assets tbody tr', { hasText: asset }).first().textContent();
  if (!/ssh:\d+, postgres:15432/.test(row)) throw new Error(`the new endpoint is not in ${asset}'s row: ${row}`);
  await screenshot(admin, 'asset-endpoint-added');
  console.log('step ok: the assets page shows endpoints and adds one');

  // Every other page loads without an error, at 1280x800.
  for (const path of ['/commands', '/audit', '/admin/users', '/admin/groups', '/admin/assets', '/admin/settings']) {
    await admin.goto(`${base}${path}`);
    await admin.waitForSelector('body[data-ready=true]');
    const status = await admin.textContent('#status');
    if (status) throw new Error(`${path}: ${status}`);
    await screenshot(admin, path.replaceAll('/', '-').slice(1));
  }
  const settings = await admin.textContent('#settings');
  if (!settings.includes('auth.lockout_threshold')) throw new Error(`settings: ${settings}`);
  await admin.goto(`${base}/commands`);
  await admin.waitForSelector('body[data-ready=true]');
  const commands = await admin.textContent('#commands');
  if (!commands.includes('hello-$((6*7))')) throw new Error(`the command log page lacks the command: ${commands}`);
  // The audit page's export links download the events (with the cookie, as a click would).
  await admin.goto(`${base}/audit`);
  await admin.waitForSelector('body[data-ready=true]');
  for (const format of ['csv', 'jsonl']) {
    const exported = await admin.evaluate(async (format) => {
      const response = await fetch(document.querySelector(`#export-${format}`).href);
      return { status: response.status, text: await response.text() };
    }, format);
    if (exported.status !== 200 || !exported.text.includes('grant_added')) {
      throw new Error(`${format} export: ${exported.status} ${exported.text.slice(0, 200)}`);
    }
  }
  console.log('step ok: every page loads; the command log, settings and audit exports show');

  // 8. Logging out (here from another tab) ends the terminals of that browser session.
  await openTerminal(alice, granted);
  const otherTab = await alice.context().newPage();
  await otherTab.goto(`${base}/`);
  await otherTab.waitForSelector('body[data-ready=true]');
  await otherTab.click('#logout');
  await otherTab.waitForURL(/\/login/);
  await alice.waitForFunction(() => document.body.dataset.terminal === 'closed', null, { timeout: 30_000 });
  await screenshot(alice, 'terminal-ended-by-logout');
  console.log('step ok: logging out ended the open terminal');

  if (problems.length) throw new Error(`problems in the pages:\n${problems.join('\n')}`);
  console.log('all steps passed');
} finally {
  await browser.close();
}
