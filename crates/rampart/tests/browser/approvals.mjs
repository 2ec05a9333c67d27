// Held commands in real headless Chromium: an approver opens the Requests page, finds the shell
// line an approve rule holds (who, where, the line, the rule, waiting), approves it after a
// confirmation that says it runs now, and sees it approved by them.
// Run by crates/rampart/tests/it/command_approvals.rs, which holds the line in a real ssh
// session first and then checks that it ran on the target.
//
//   RAMPART_URL                  https://127.0.0.1:PORT
//   LOGIN_USER / LOGIN_PASSWORD  an approver with a password and no second factor
//   LINE                         the held line
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
const line = env('LINE');
const user = env('LOGIN_USER');
mkdirSync(artifacts, { recursive: true });

const problems = [];
let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  const file = join(artifacts, `approvals-${String(shot).padStart(2, '0')}-${name}.png`);
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

  await page.goto(`${base}/login?next=/requests`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', env('LOGIN_PASSWORD'));
  await page.click('button[type=submit]');
  await page.waitForURL((url) => url.pathname === '/requests', { timeout: 30_000 });
  await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });

  // The held line, with what an approver needs to judge it.
  const row = page.locator('#command-approvals tbody tr', { hasText: line });
  await row.first().waitFor({ timeout: 30_000 });
  const held = await row.first().innerText();
  await screenshot(page, 'held');
  expectText(held, ['alice', '@web-01', line, '#10 approve prefix:touch', 'waiting'], 'the held command');
  expectReadable(await page.locator('main').innerText(), 'the Requests page');

  // Approve, after a confirmation that says what happens.
  await row.first().getByRole('button', { name: 'Approve' }).click();
  const dialog = page.locator('dialog.confirm[open]');
  await dialog.waitFor({ timeout: 30_000 });
  expectText(await dialog.innerText(), [`Approve alice's command`, line, 'runs on the target now'], 'the confirmation');
  await dialog.getByRole('button', { name: 'Approve' }).click();
  await dialog.waitFor({ state: 'detached' });
  await page.waitForFunction(
    ([text, who]) => [...document.querySelectorAll('#command-approvals tbody tr')].some(
      (r) => r.textContent.includes(text) && r.textContent.includes('approved') && r.textContent.includes(`by ${who}`),
    ),
    [line, user],
    { timeout: 30_000 },
  );
  await screenshot(page, 'approved');
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
console.log('the held command was approved in the portal');
