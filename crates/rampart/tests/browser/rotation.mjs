// Credential rotation in real headless Chromium (issue 17): an administrator opens an
// account's rotation view on the Accounts page, clicks Rotate now, confirms, and sees the
// history row (outcome, who) as text. No answer the page received and no text it shows holds
// the old or the new secret. Run by crates/rampart/tests/it/rotation_mysql.rs, which starts a
// real `rampart serve` and a real MariaDB.
//
//   RAMPART_URL                  https://127.0.0.1:PORT
//   ADMIN_USER / ADMIN_PASSWORD  the administrator
//   ACCOUNT                      the account to rotate (login@asset)
//   SECRETS                      the old and new secret, comma-separated (canaries)
//   ARTIFACTS / CHROMIUM         screenshots directory / the browser
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env('RAMPART_URL');
const origin = new URL(base).origin;
const artifacts = env('ARTIFACTS');
const account = env('ACCOUNT');
const secrets = env('SECRETS').split(',');
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  await context.route('**/*', (route) =>
    new URL(route.request().url()).origin === origin ? route.continue() : route.abort('blockedbyclient'),
  );
  const page = await context.newPage();
  // Every answer the page gets is searched for the secrets.
  const leaks = [];
  const seen = [];
  page.on('response', async (response) => {
    try {
      const body = await response.text();
      seen.push(response.url());
      for (const secret of secrets) if (body.includes(secret)) leaks.push(response.url());
    } catch (_) {
      // a redirect or an aborted request has no body
    }
  });
  await page.goto(`${base}/admin/accounts?account=${encodeURIComponent(account)}`);
  await page.waitForURL((url) => url.pathname.startsWith('/login'), { timeout: 30_000 });
  await page.fill('input[name=username]', env('ADMIN_USER'));
  await page.fill('input[name=password]', env('ADMIN_PASSWORD'));
  await page.click('button[type=submit]');
  await page.waitForURL((url) => url.pathname === '/admin/accounts', { timeout: 30_000 });
  await page.locator('#rotation-title', { hasText: `Rotation of ${account}` }).waitFor({ timeout: 30_000 });
  await page.locator('#rotations', { hasText: 'no rotation yet' }).waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(artifacts, 'rotation-before.png'), fullPage: true });

  // Rotate now asks first; Cancel changes nothing.
  await page.click('#rotate-now');
  const dialog = page.locator('dialog.confirm');
  await dialog.waitFor({ timeout: 10_000 });
  const question = await dialog.innerText();
  if (!question.includes(`Rotate the secret of ${account} now?`)) throw new Error(`the dialog says ${JSON.stringify(question)}`);
  await page.screenshot({ path: join(artifacts, 'rotation-confirm.png'), fullPage: true });
  await dialog.locator('button', { hasText: 'Cancel' }).click();
  await page.locator('#rotations', { hasText: 'no rotation yet' }).waitFor({ timeout: 10_000 });

  await page.click('#rotate-now');
  await page.locator('dialog.confirm button', { hasText: 'Rotate now' }).click();
  await page.locator('#status', { hasText: `rotated ${account}: the new secret works` }).waitFor({ timeout: 60_000 });
  const row = page.locator('#rotations tbody tr').first();
  await row.locator('td', { hasText: 'rotated: the new secret works and replaced the old one' }).waitFor({ timeout: 30_000 });
  const rowText = (await row.innerText()).replace(/\s+/g, ' ');
  if (!rowText.includes(env('ADMIN_USER'))) throw new Error(`the history row says ${JSON.stringify(rowText)}`);
  if (!rowText.includes('a fresh login with the new secret worked')) throw new Error(`the history row says ${JSON.stringify(rowText)}`);
  await page.screenshot({ path: join(artifacts, 'rotation-after.png'), fullPage: true });

  const shown = await page.locator('body').innerText();
  for (const secret of secrets) if (shown.includes(secret)) throw new Error('a secret is shown on the page');
  if (leaks.length) throw new Error(`a secret in the answers to ${leaks.join(', ')}`);
  if (!seen.some((url) => url.includes('/rotations'))) throw new Error('the history was never fetched');
  console.log('rotation done in the browser');
} finally {
  await browser.close();
}
