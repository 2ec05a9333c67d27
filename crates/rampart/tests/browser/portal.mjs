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
//   SSH_PORT               the SSH listener's port (the home page's ready-to-copy commands)
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

// What a person sees: the rendered text of `selector` (innerText: hidden elements and closed
// <details> left out).
async function visibleText(page, selector = 'main') {
  return page.locator(selector).first().innerText();
}

// The class of rendering defect a person notices first: objects printed as `[object Object]`,
// `undefined`/`NaN` in cells, or raw JSON in a table.
async function assertReadable(page, where) {
  const text = await visibleText(page, 'body');
  for (const bad of [/\[object Object\]/, /\bundefined\b/, /\bNaN\b/]) {
    if (bad.test(text)) throw new Error(`${where} shows ${bad}:\n${text.slice(0, 2000)}`);
  }
  for (const table of await page.locator('main table').all()) {
    const cells = await table.innerText();
    if (cells.includes('{"') || cells.includes('":')) throw new Error(`${where} shows raw JSON in a table:\n${cells.slice(0, 2000)}`);
  }
}

// Waits for the confirmation dialog, checks it names what goes, and answers it.
async function confirmDialog(page, expected, answer) {
  const dialog = page.locator('dialog.confirm[open]');
  await dialog.waitFor({ timeout: 30_000 });
  const text = await dialog.innerText();
  for (const part of [].concat(expected)) {
    if (!(part instanceof RegExp ? part.test(text) : text.includes(part))) {
      throw new Error(`the confirmation does not say ${part}: ${text}`);
    }
  }
  await dialog.getByRole('button', { name: answer }).click();
  await dialog.waitFor({ state: 'detached' });
  return text;
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

  // 0. A wrong password: the page says why once ("login failed: ..."), not "login failed: login failed".
  await login(alice, 'alice', 'not-the-password', null);
  await alice.click('button[type=submit]');
  await alice.waitForFunction(() => document.querySelector('#status').textContent !== '');
  const refused = await visibleText(alice, '#status');
  if ((refused.match(/login failed/gi) || []).length !== 1) throw new Error(`the failed login says: ${refused}`);
  await screenshot(alice, 'login-failed');
  console.log(`step ok: a failed login says so once (${refused})`);

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

  // 1b. Logged in with the second factor, alice mints a database token on the Databases page:
  // shown once, and the token list never shows it again.
  await alice.goto(`${base}/databases`);
  await alice.waitForSelector('body[data-ready=true]');
  await alice.getByRole('button', { name: 'Create a database token' }).click();
  await alice.waitForSelector('#db-token:not([hidden])');
  const dbToken = await visibleText(alice, '#db-token');
  if (!/Your token \(copy it now\): rampartdb_\S+/.test(dbToken)) throw new Error(`no database token shown: ${dbToken}`);
  const dbStatus = await alice.textContent('#status');
  if (!dbStatus.includes('not shown again')) throw new Error(`the token's status line: ${dbStatus}`);
  const listed = await alice.evaluate(async () => (await fetch('/api/v1/db-tokens')).text());
  if (listed.includes(dbToken.split(': ')[1])) throw new Error('the database token list shows the secret');
  const queries = await visibleText(alice, '#queries');
  if (!queries.includes('no statement')) throw new Error(`the query log: ${queries}`);
  await screenshot(alice, 'databases');
  console.log('step ok: a database token minted in the portal after a TOTP login, shown once');

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
    // A privilege-escalation command: the detector raises an alert (the dashboard shows it).
    await page.keyboard.type('sudo -n true; echo escalated-$((1+1))\n');
    await waitForTerminal(page, 'escalated-2', 'escalation');
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

  // The grants page shows who and what in words: the label grant reads as its labels.
  await admin.reload();
  await admin.waitForSelector('body[data-ready=true]');
  const grantsShown = await visibleText(admin, '#grants');
  if (!grantsShown.includes('assets labelled env=test') || !grantsShown.includes('group ops')) {
    throw new Error(`the grants page does not show the label grant readably: ${grantsShown}`);
  }
  await assertReadable(admin, 'grants');

  // 5. It takes effect: alice's home lists the account and a terminal on it works; each
  // account has its labels in words and a ready-to-copy ssh command.
  await alice.goto(`${base}/`);
  await alice.waitForSelector('body[data-ready=true]');
  const after = await visibleText(alice, '#accounts');
  if (!after.includes(notYetGranted)) throw new Error(`home does not list ${notYetGranted} after the grant: ${after}`);
  if (!after.includes('env=test, team=web')) throw new Error(`home does not show the labels of ${asset}: ${after}`);
  const sshCommand = `ssh -p ${env('SSH_PORT')} alice@${notYetGranted}@127.0.0.1`;
  if (!after.includes(sshCommand)) throw new Error(`home does not offer "${sshCommand}": ${after}`);
  if (await alice.locator('#dashboard').isVisible()) throw new Error('a user sees the auditors\' dashboard');
  await assertReadable(alice, 'home');
  await screenshot(alice, 'home-after-grant');
  await connectAndRun(alice, notYetGranted, 'echo granted-$((3+4))', 'granted-7', 'terminal-after-grant');
  console.log('step ok: the new grant took effect');

  // 6. An auditor's view: watch alice's live terminal read-only, then kill it with a reason.
  await openTerminal(alice, granted);
  await alice.waitForTimeout(300);
  // Output from before the watcher came: watch opens on the current screen, so it shows.
  await alice.keyboard.type('echo before-watch-$((8*8))\n');
  await waitForTerminal(alice, 'before-watch-64', 'before-watch');
  await admin.goto(`${base}/sessions`);
  await admin.waitForSelector('body[data-ready=true]');
  const live = admin.locator('#sessions tbody tr', { hasText: 'live' }).filter({ hasText: granted }).first();
  await live.getByRole('link', { name: 'Watch' }).click();
  await admin.waitForURL(/\/watch\?session=/);
  await admin.waitForFunction(() => document.querySelector('#watch-state').textContent.startsWith('watching'));
  await waitForTerminal(admin, 'before-watch-64', 'watch-opens-on-the-screen');
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
  await confirmDialog(admin, ["Ends alice's shell session on", granted, env('KILL_REASON')], 'Kill session');
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

  // 9. The network domains page: the domain with its gateway, and the gateway's Test button
  //    reports each step and the failing one in one line.
  await admin.goto(`${base}/admin/domains`);
  await admin.waitForSelector('body[data-ready=true]');
  const domainsShown = await visibleText(admin, '#domains');
  if (!domainsShown.includes('dc-east') || !domainsShown.includes('gw-east-1')) {
    throw new Error(`the domains page lacks dc-east and its gateway: ${domainsShown}`);
  }
  const gatewayRow = admin.locator('#gateways tbody tr', { hasText: 'gw-east-1' }).first();
  await gatewayRow.getByRole('button', { name: 'Test' }).click();
  await admin.waitForFunction(() => /tcp reach: failed/.test(document.querySelector('#gateways').textContent));
  const tested = await visibleText(admin, '#gateways');
  const expected = `gateway gw-east-1: 127.0.0.1:${env('GATEWAY_PORT')} is unreachable (connection refused)`;
  if (!tested.includes(expected) || !tested.includes('host key: not tried')) {
    throw new Error(`the gateway test does not say which step failed: ${tested}`);
  }
  await admin.fill('#domain-add input[name=name]', 'dc-west');
  await admin.click('#domain-add button[type=submit]');
  await admin.waitForFunction(() => document.querySelector('#domains').textContent.includes('dc-west'));
  await screenshot(admin, 'domains');
  console.log('step ok: the domains page shows the domain, its gateway and a failing test step, and adds a domain');

  // Every other page loads without an error, at 1280x800.
  for (const path of ['/commands', '/audit', '/admin/users', '/admin/groups', '/admin/assets', '/admin/settings']) {
    await admin.goto(`${base}${path}`);
    await admin.waitForSelector('body[data-ready=true]');
    const status = await admin.textContent('#status');
    if (status) throw new Error(`${path}: ${status}`);
    await screenshot(admin, path.replaceAll('/', '-').slice(1));
  }
  const settings = await visibleText(admin, '#settings');
  if (!settings.includes('auth.lockout_threshold')) throw new Error(`settings: ${settings}`);
  // Named as in the configuration file.
  if (!settings.includes('http.listen') || !settings.includes('ssh.listen') || settings.includes('http_listen')) {
    throw new Error(`settings are not named as in the configuration file: ${settings}`);
  }
  await admin.goto(`${base}/commands`);
  await admin.waitForSelector('body[data-ready=true]');
  const commands = await admin.textContent('#commands');
  if (!commands.includes('hello-$((6*7))')) throw new Error(`the command log page lacks the command: ${commands}`);
  await assertReadable(admin, 'commands');
  // Each command links to the replay at its moment; the replay lists the session's commands
  // beside the player, and the player fits the window.
  const commandRow = admin.locator('#commands tbody tr', { hasText: 'hello-$((6*7))' }).first();
  await commandRow.getByRole('link', { name: 'replay at this moment' }).click();
  await admin.waitForURL(/\/replay\?session=.*&at=/);
  await admin.waitForSelector('body[data-ready=true]');
  await admin.waitForFunction(() => document.querySelector('#replay-commands').textContent.includes('hello-$((6*7))'));
  await admin.waitForSelector('#player .ap-player');
  await admin.waitForTimeout(500);
  const fit = await admin.evaluate(() => {
    const box = document.querySelector('#player .ap-player').getBoundingClientRect();
    return { right: box.right, bottom: box.bottom, width: innerWidth, height: innerHeight };
  });
  if (fit.right > fit.width + 1 || fit.bottom > fit.height + 1) throw new Error(`the replay does not fit the window: ${JSON.stringify(fit)}`);
  // (The command was typed within a second of the start, so the player's start point, a second
  // before the command, is 0 here: what is checked is the link and the list beside the player.)
  const seek = await visibleText(admin, '#replay-commands');
  if (!/^0:0\d echo hello-\$\(\(6\*7\)\)/m.test(seek)) throw new Error(`the commands beside the player: ${seek}`);
  await screenshot(admin, 'replay-at-command');
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
  // The audit page: one sentence per event, details folded away, no raw JSON.
  await admin.goto(`${base}/audit`);
  await admin.waitForSelector('body[data-ready=true]');
  const audit = await visibleText(admin, '#events');
  for (const sentence of [`alice opened a shell on ${granted}`, 'adam granted alice', `a login as alice from 127.0.0.1 failed`]) {
    if (!audit.includes(sentence)) throw new Error(`the audit page lacks "${sentence}":\n${audit.slice(0, 3000)}`);
  }
  await assertReadable(admin, 'audit');
  const started = admin.locator('#events tbody tr', { hasText: `alice opened a shell on ${granted}` }).first();
  await started.locator('summary').click();
  const details = await started.innerText();
  if (!/session\s+[0-9a-f-]{36}/.test(details)) throw new Error(`the event's details do not show its session: ${details}`);
  await screenshot(admin, 'audit-sentences');
  console.log('step ok: every page loads; the command log, replay at a command, settings, audit sentences and exports show');

  // Compliance reports: the summary for the last 30 days counts alice's shells, and the full
  // HTML report opens as a readable page with its sections and charts.
  await admin.goto(`${base}/reports`);
  await admin.waitForSelector('body[data-ready=true]');
  await admin.waitForFunction(() => document.querySelector('#report-summary tbody').textContent.includes('Sessions started'));
  const summary = await visibleText(admin, '#report-summary');
  const sessionsLine = summary.split('\n').find((line) => line.startsWith('Sessions started'));
  if (!sessionsLine || !/Sessions started\s+[1-9]\d*\s+SOC 2 CC6\.1/.test(sessionsLine)) {
    throw new Error(`the report summary does not count the sessions: ${summary}`);
  }
  const reportTitle = await visibleText(admin, '#report-title');
  if (!/ to .*: the audit trail (verifies|does NOT verify)/.test(reportTitle)) throw new Error(`the report title: ${reportTitle}`);
  await assertReadable(admin, 'reports');
  await screenshot(admin, 'reports');
  await admin.goto(await admin.getAttribute('#report-html', 'href').then((href) => new URL(href, base).href));
  const reportText = await admin.locator('body').innerText();
  for (const part of ['Rampart access report', 'Who accessed which assets, when, and for how long', 'Supports SOC 2 CC6.1', `alice`, granted, 'Verification of the audit trail', 'Sessions per day']) {
    if (!reportText.includes(part)) throw new Error(`the HTML report lacks "${part}":\n${reportText.slice(0, 3000)}`);
  }
  if ((await admin.locator('svg rect').count()) === 0) throw new Error('the HTML report has no chart bars');
  await screenshot(admin, 'report-html');
  console.log('step ok: the reports page summarises the period and opens the full HTML report');

  // Access requests: alice asks for web-02 in the portal; the administrator denies it with a
  // note, after a confirmation that says what the requester is told; alice sees the answer.
  await alice.goto(`${base}/requests`);
  await alice.waitForSelector('body[data-ready=true]');
  await alice.fill('#request-create input[name=asset]', 'web-02');
  await alice.fill('#request-create input[name=duration]', '1h');
  await alice.fill('#request-create input[name=reason]', 'browser test: look at web-02');
  await alice.click('#request-create button[type=submit]');
  await alice.waitForFunction(() => document.querySelector('#requests').textContent.includes('browser test: look at web-02'));
  const asked = await visibleText(alice, '#requests');
  if (!asked.includes('alice (you)') || !asked.includes('pending') || !asked.includes('asset web-02')) throw new Error(`alice's request: ${asked}`);
  if (!(await visibleText(alice, '#status')).includes('an approver has been told')) throw new Error('no confirmation of the request');
  await admin.goto(`${base}/requests`);
  await admin.waitForSelector('body[data-ready=true]');
  await admin.fill('#request-note', 'not today');
  const requestRow = admin.locator('#requests tbody tr', { hasText: 'browser test: look at web-02' }).first();
  await requestRow.getByRole('button', { name: 'Deny' }).click();
  await confirmDialog(admin, ["Deny alice's request for asset web-02?", 'not today'], 'Deny');
  await admin.waitForFunction(() => document.querySelector('#requests').textContent.includes('denied'));
  await alice.reload();
  await alice.waitForSelector('body[data-ready=true]');
  const answered = await visibleText(alice, '#requests');
  if (!answered.includes('denied') || !answered.includes('not today') || !answered.includes('user:adam')) throw new Error(`alice does not see the decision: ${answered}`);
  await assertReadable(alice, 'requests');
  await screenshot(alice, 'request-denied');
  console.log('step ok: a request asked in the portal is denied by the administrator with a note the requester sees');

  // Destructive buttons ask first and say what goes: an asset with an account and a grant.
  await admin.goto(`${base}/admin/assets`);
  await admin.waitForSelector('body[data-ready=true]');
  await admin.fill('#asset-add input[name=name]', 'web-03');
  await admin.fill('#asset-add input[name=host]', '127.0.0.1');
  await admin.fill('#asset-add input[name=labels]', 'env=scratch');
  await admin.click('#asset-add button[type=submit]');
  await admin.waitForFunction(() => document.querySelector('#assets').textContent.includes('web-03'));
  const assetsShown = await visibleText(admin, '#assets');
  if (!assetsShown.includes('env=test, team=web') || !assetsShown.includes('env=scratch')) {
    throw new Error(`the assets page does not show labels in words: ${assetsShown}`);
  }
  await assertReadable(admin, 'assets');
  await admin.evaluate(async () => {
    const me = await (await fetch('/api/v1/me')).json();
    const post = (path, body) =>
      fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token }, body: JSON.stringify(body) });
    await post('/api/v1/accounts', { account: 'deploy@web-03', password: 'scratch-password-1' });
    await post('/api/v1/grants', { user: 'alice', asset: 'web-03' });
  });
  await admin.reload();
  await admin.waitForSelector('body[data-ready=true]');
  const web03 = admin.locator('#assets tbody tr', { hasText: 'web-03' }).first();
  await web03.getByRole('button', { name: 'Remove' }).click();
  await confirmDialog(admin, ['Removes asset web-03, 1 account', 'and 1 grant'], 'Cancel');
  if (!(await visibleText(admin, '#assets')).includes('web-03')) throw new Error('cancelling removed the asset');
  await web03.getByRole('button', { name: 'Remove' }).click();
  await confirmDialog(admin, 'Removes asset web-03, 1 account', 'Remove');
  await admin.waitForFunction(() => !document.querySelector('#assets').textContent.includes('web-03'));
  console.log('step ok: removing an asset asks first and says it removes 1 account and 1 grant');

  // Edit in place: a user's role, a group's members, a group itself; each asks first.
  await admin.evaluate(async () => {
    const me = await (await fetch('/api/v1/me')).json();
    const post = (path, body) =>
      fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token }, body: JSON.stringify(body) });
    await post('/api/v1/users', { name: 'robin', role: 'user' });
    await post('/api/v1/groups', { name: 'night-shift' });
    await post('/api/v1/groups/night-shift/members', { user: 'robin' });
  });
  await admin.goto(`${base}/admin/users`);
  await admin.waitForSelector('body[data-ready=true]');
  await admin.getByLabel('Role of robin').selectOption('auditor');
  await confirmDialog(admin, ['Give robin the auditor role?', 'reads the audit trail'], 'Change role');
  await admin.waitForFunction(() => (document.querySelector('#status') || {}).textContent?.includes('robin now has the auditor role'));
  const robin = await admin.evaluate(async () => (await fetch('/api/v1/users/robin')).json());
  if (robin.role !== 'auditor') throw new Error(`robin's role after the change: ${robin.role}`);
  await admin.goto(`${base}/admin/groups`);
  await admin.waitForSelector('body[data-ready=true]');
  if (!(await visibleText(admin, '#groups')).includes('robin')) throw new Error('the group does not show its member');
  await admin.getByRole('button', { name: 'Take robin out of night-shift' }).click();
  await confirmDialog(admin, 'Grants to night-shift no longer reach robin', 'Remove');
  await admin.waitForFunction(() => !document.querySelector('#groups').textContent.includes('robin'));
  await admin.locator('#groups tbody tr', { hasText: 'night-shift' }).getByRole('button', { name: 'Remove' }).click();
  await confirmDialog(admin, 'Removes group night-shift and 0 grants', 'Remove');
  await admin.waitForFunction(() => !document.querySelector('#groups').textContent.includes('night-shift'));
  console.log('step ok: a role changes in place and a group loses a member and goes, each after a confirmation');

  // A grant's conditions change in place: Edit fills the form, Save changes applies them.
  await admin.evaluate(async () => {
    const me = await (await fetch('/api/v1/me')).json();
    await fetch('/api/v1/grants', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },
      body: JSON.stringify({ user: 'robin', asset: 'web-01', actions: 'exec' }),
    });
  });
  await admin.goto(`${base}/admin/grants`);
  await admin.waitForSelector('body[data-ready=true]');
  await admin.locator('#grants tbody tr', { hasText: 'robin' }).getByRole('button', { name: 'Edit' }).click();
  const editTitle = await visibleText(admin, '#grant-edit-title');
  if (!editTitle.includes('Change the grant of') || !editTitle.includes('robin')) throw new Error(`the edit form's title: ${editTitle}`);
  if ((await admin.inputValue('#grant-edit input[name=actions]')) !== 'exec') throw new Error('the edit form does not hold the grant\'s actions');
  await admin.fill('#grant-edit input[name=idle_timeout]', '45m');
  await admin.click('#grant-edit button[type=submit]');
  await admin.waitForFunction(() => document.querySelector('#grants').textContent.includes('idle 45m'));
  const robinsGrant = await admin.evaluate(async () => (await (await fetch('/api/v1/grants')).json()).find((g) => g.subject.user === 'robin'));
  if (robinsGrant.idle_timeout !== '45m') throw new Error(`robin's grant after the edit: ${JSON.stringify(robinsGrant)}`);
  console.log('step ok: a grant is edited in place');

  // An asset's address and labels change in place.
  await admin.evaluate(async () => {
    const me = await (await fetch('/api/v1/me')).json();
    await fetch('/api/v1/assets', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },
      body: JSON.stringify({ name: 'web-04', host: '127.0.0.1', labels: ['env=scratch'] }),
    });
  });
  await admin.goto(`${base}/admin/assets`);
  await admin.waitForSelector('body[data-ready=true]');
  await admin.locator('#assets tbody tr', { hasText: 'web-04' }).getByRole('button', { name: 'Edit' }).click();
  if ((await admin.inputValue('#asset-edit input[name=labels]')) !== 'env=scratch') throw new Error('the edit form does not hold the labels');
  await admin.fill('#asset-edit input[name=host]', '127.0.0.2');
  await admin.fill('#asset-edit input[name=labels]', 'env=edited, team=ops');
  await admin.click('#asset-edit button[type=submit]');
  await admin.waitForFunction(() => document.querySelector('#assets').textContent.includes('env=edited, team=ops'));
  const web04 = await visibleText(admin, '#assets');
  if (!web04.includes('127.0.0.2')) throw new Error(`the new address is not shown: ${web04}`);
  await admin.evaluate(async () => {
    const me = await (await fetch('/api/v1/me')).json();
    await fetch('/api/v1/assets/web-04', { method: 'DELETE', headers: { 'X-CSRF-Token': me.csrf_token } });
  });
  console.log('step ok: an asset is edited in place');

  // Lists page with the API's cursor and search the loaded page.
  await admin.goto(`${base}/admin/assets?page_size=1`);
  await admin.waitForSelector('body[data-ready=true]');
  const firstPage = await visibleText(admin, '#assets tbody');
  if (!firstPage.includes('web-01') || firstPage.includes('web-02')) throw new Error(`page 1 of 1: ${firstPage}`);
  await admin.getByRole('button', { name: 'Next page ›' }).click();
  await admin.waitForFunction(() => document.querySelector('#assets tbody').textContent.includes('web-02'));
  if ((await visibleText(admin, '#assets tbody')).includes('web-01')) throw new Error('page 2 repeats page 1');
  if (!(await admin.getByRole('button', { name: 'Next page ›' }).isDisabled())) throw new Error('a next page after the last');
  await admin.getByRole('button', { name: '‹ Previous page' }).click();
  await admin.waitForFunction(() => document.querySelector('#assets tbody').textContent.includes('web-01'));
  await admin.goto(`${base}/admin/assets`);
  await admin.waitForSelector('body[data-ready=true]');
  await admin.getByLabel('search assets').fill('team=web');
  const searched = await visibleText(admin, '#assets tbody');
  if (!searched.includes('web-02') || searched.includes('web-01')) throw new Error(`search for team=web shows: ${searched}`);
  console.log('step ok: lists page with the cursor and search the loaded page');

  // The dashboard on the first page of an auditor: live sessions and recent failures.
  await admin.goto(`${base}/`);
  await admin.waitForSelector('body[data-ready=true]');
  const board = await visibleText(admin, '#dashboard');
  if (!board.includes('Live sessions') || !board.includes('a login as alice from 127.0.0.1 failed')) {
    throw new Error(`the dashboard: ${board}`);
  }
  // The open alert from alice's `sudo`, acknowledged from the dashboard; the domain page's
  // gateway by its health.
  if (!board.includes('Open alerts: 1') || !board.includes('privilege escalation command: sudo')) {
    throw new Error(`the dashboard's alerts: ${board}`);
  }
  if (!/Gateways: (all 1 healthy|1 of 1 failing|1 gateway, 1 not checked yet)/.test(board)) {
    throw new Error(`the dashboard's gateways: ${board}`);
  }
  // No SIEM sink in this lab; the latest changes in words (the asset edited and removed above).
  if (!board.includes('Audit sinks: none has delivered yet')) throw new Error(`the dashboard's sinks: ${board}`);
  if (!board.includes('removed asset web-04') || !board.includes('changed asset web-04 (labels env=edited,team=ops)')) {
    throw new Error(`the dashboard's recent changes: ${board}`);
  }
  await admin.locator('#open-alerts').getByRole('button', { name: 'Acknowledge' }).click();
  await admin.waitForFunction(() => document.querySelector('#open-alerts').textContent.includes('no open alert'));
  if (!(await visibleText(admin, '#dashboard')).includes('Open alerts: 0')) throw new Error('the alert count after acknowledging');
  await assertReadable(admin, 'home (admin)');
  await screenshot(admin, 'dashboard');

  // Dark mode follows the system setting.
  await admin.emulateMedia({ colorScheme: 'dark' });
  const dark = await admin.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [red, green, blue] = dark.match(/\d+/g).map(Number);
  if (red + green + blue > 150) throw new Error(`dark mode background: ${dark}`);
  await screenshot(admin, 'dark-mode');
  await admin.emulateMedia({ colorScheme: 'light' });

  // 420 px wide: every page reads without sideways scrolling.
  await admin.setViewportSize({ width: 420, height: 800 });
  for (const path of ['/', '/sessions', '/commands', '/audit', '/admin/users', '/admin/assets', '/admin/accounts', '/admin/grants', '/admin/settings']) {
    await admin.goto(`${base}${path}`);
    await admin.waitForSelector('body[data-ready=true]');
    const overflow = await admin.evaluate(() => {
      const wide = [...document.querySelectorAll('.table-wrap, main')].filter((node) => node.scrollWidth > node.clientWidth + 1);
      return {
        page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
        containers: wide.map((node) => `${node.className || node.tagName} ${node.scrollWidth}>${node.clientWidth}`),
      };
    });
    if (overflow.page > 1 || overflow.containers.length) throw new Error(`${path} overflows at 420 px: ${JSON.stringify(overflow)}`);
    await screenshot(admin, `narrow${path.replaceAll('/', '-')}`);
  }
  await admin.setViewportSize(viewport);
  console.log('step ok: dashboard, dark mode, and every page readable at 420 px');

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
