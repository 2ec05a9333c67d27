// The alerts page in real headless Chromium: an auditor sees the open alerts with their
// severity, time, user, target and what raised them, follows an alert to its session and its
// events, acknowledges one, and finds it again under "all", acknowledged by them.
// Run by crates/rampart/tests/it/alerts.rs, which starts a real `rampart serve` in front of a
// real sshd and raises the alerts first.
//
//   RAMPART_URL                  https://127.0.0.1:PORT
//   LOGIN_USER / LOGIN_PASSWORD  an auditor with a password and no second factor
//   SESSION                      the id of the session the sudo alert names
//   TARGET                       LOGIN@web-01, the target both alerts name
//   ARTIFACTS                    directory for the screenshots
//   CHROMIUM                     the browser (Debian's /usr/bin/chromium)
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env('RAMPART_URL');
const artifacts = env('ARTIFACTS');
const session = env('SESSION');
const target = env('TARGET');
mkdirSync(artifacts, { recursive: true });

const problems = [];
let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  const file = join(artifacts, `alerts-${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

function expectText(text, wanted, where) {
  for (const piece of wanted) {
    if (!text.includes(piece)) throw new Error(`${where} does not show ${JSON.stringify(piece)}:\n${text.slice(0, 3000)}`);
  }
}

function expectReadable(text, where) {
  for (const bad of [/\[object Object\]/, /\bundefined\b/, /\bNaN\b/, /\{"/]) {
    if (bad.test(text)) throw new Error(`${where} shows ${bad}:\n${text.slice(0, 3000)}`);
  }
}

async function ready(page) {
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
}

// The row of the alerts table whose text holds `needle`.
const alertRow = (page, needle) => page.locator('#alerts tbody tr', { hasText: needle });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
  });

  await page.goto(`${base}/login?next=/alerts`);
  await page.fill('input[name=username]', env('LOGIN_USER'));
  await page.fill('input[name=password]', env('LOGIN_PASSWORD'));
  await page.click('button[type=submit]');
  await page.waitForURL((url) => url.pathname === '/alerts', { timeout: 30_000 });
  await ready(page);
  // The navigation leads here too.
  if (!(await page.locator('header nav a[href="/alerts"]').isVisible())) throw new Error('no Alerts link in the navigation');

  // Both open alerts, each with what a person needs to judge it.
  await page.waitForSelector('#alerts tbody tr:not([data-empty])', { timeout: 30_000 });
  let text = await page.locator('main').innerText();
  await screenshot(page, 'open');
  expectText(
    text,
    [
      'privilege escalation detector',
      'privilege escalation command: sudo -n true',
      'command rule',
      'command refused by rule #10 deny prefix:rm -rf',
      'warning',
      'critical',
      'alice',
      target,
      `session ${session.slice(0, 8)}`,
      'open',
    ],
    'the alerts page',
  );
  expectReadable(text, 'the alerts page');
  const sudo = alertRow(page, 'sudo -n true');
  if ((await sudo.count()) !== 1) throw new Error(`expected one sudo alert row, found ${await sudo.count()}`);
  const time = await sudo.locator('td').first().innerText();
  if (!/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/.test(time)) throw new Error(`the alert's time reads ${JSON.stringify(time)}`);

  // Its session: the replay of exactly that session.
  const replay = await sudo.locator('a.alert-session').getAttribute('href');
  if (replay !== `/replay?session=${session}`) throw new Error(`the session link is ${replay}`);
  await sudo.locator('a.alert-session').click();
  await page.waitForURL((url) => url.pathname === '/replay', { timeout: 30_000 });
  await page.waitForFunction(() => document.querySelector('#session-summary')?.textContent.length > 0, null, { timeout: 30_000 });
  expectText(await page.locator('#session-summary').innerText(), ['alice', target], 'the replay page');
  await screenshot(page, 'session');

  // Its events: the audit log filtered on the session, the alert among them in words.
  await page.goto(`${base}/alerts`);
  await ready(page);
  await alertRow(page, 'sudo -n true').locator('a.alert-events').click();
  await page.waitForURL((url) => url.pathname === '/audit', { timeout: 30_000 });
  await ready(page);
  const filter = await page.locator('#audit-filter [name=contains]').inputValue();
  if (filter !== session) throw new Error(`the audit filter holds ${JSON.stringify(filter)}`);
  text = await page.locator('#events').innerText();
  await screenshot(page, 'events');
  expectText(text, ['warning alert from the privilege escalation detector: privilege escalation command: sudo -n true'], 'the session\'s events');
  expectReadable(text, 'the session\'s events');

  // Acknowledge the sudo alert: it leaves the open list, the other one stays.
  await page.goto(`${base}/alerts`);
  await ready(page);
  await alertRow(page, 'sudo -n true').getByRole('button', { name: 'Acknowledge' }).click();
  await page.waitForFunction(
    () => ![...document.querySelectorAll('#alerts tbody tr')].some((row) => row.textContent.includes('sudo -n true')),
    null,
    { timeout: 30_000 },
  );
  text = await page.locator('main').innerText();
  await screenshot(page, 'acknowledged');
  expectText(text, ['acknowledged', 'command refused by rule #10 deny prefix:rm -rf'], 'the open alerts after acknowledging');

  // "all" shows it again, acknowledged by the auditor; the other is still open.
  await page.check('#alert-filter input[value=all]');
  await page.click('#alert-filter button[type=submit]');
  await page.waitForFunction(
    () => [...document.querySelectorAll('#alerts tbody tr')].some((row) => row.textContent.includes('sudo -n true')),
    null,
    { timeout: 30_000 },
  );
  const row = await alertRow(page, 'sudo -n true').innerText();
  expectText(row, [`acknowledged by ${env('LOGIN_USER')}`], 'the acknowledged alert');
  const other = await alertRow(page, 'deny prefix:rm -rf').innerText();
  expectText(other, ['open', 'Acknowledge'], 'the alert still open');
  await screenshot(page, 'all');
  await context.close();
} catch (err) {
  problems.push(err.message);
} finally {
  await browser.close();
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('the alerts page passed');
