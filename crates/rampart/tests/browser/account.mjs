// Self-service in real headless Chromium (issue 20): a user changes their own password on the
// Account page (and is sent to log in again), logs in with the new one, and adds an SSH key of
// their own, each checked on what the page shows. Run by
// crates/rampart/tests/it/self_service.rs, which starts a real `rampart serve`.
//
//   RAMPART_URL                          https://127.0.0.1:PORT
//   LOGIN_USER / OLD_PASSWORD / NEW_PASSWORD
//   PUBLIC_KEY / FINGERPRINT             the key to add and its SHA256 fingerprint
//   ARTIFACTS / CHROMIUM                 screenshots directory / the browser
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
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});
const login = async (page, password) => {
  await page.waitForURL((url) => url.pathname.startsWith('/login'), { timeout: 30_000 });
  await page.fill('input[name=username]', env('LOGIN_USER'));
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForURL((url) => url.pathname === '/account', { timeout: 30_000 });
};
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  await context.route('**/*', (route) =>
    new URL(route.request().url()).origin === origin ? route.continue() : route.abort('blockedbyclient'),
  );
  const page = await context.newPage();
  await page.goto(`${base}/account`);
  await login(page, env('OLD_PASSWORD'));
  await page.locator('#my-keys', { hasText: 'no SSH key' }).waitFor({ timeout: 30_000 });
  // A wrong current password changes nothing, and says so.
  await page.fill('#password-form input[name=current_password]', 'not-the-password-at-all');
  await page.fill('#password-form input[name=new_password]', env('NEW_PASSWORD'));
  await page.click('#password-form button[type=submit]');
  await page.locator('#status', { hasText: 'password: the current password is not right' }).waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(artifacts, 'account-wrong-password.png'), fullPage: true });
  await page.fill('#password-form input[name=current_password]', env('OLD_PASSWORD'));
  await page.click('#password-form button[type=submit]');
  await page.locator('#status', { hasText: 'Password changed: log in again with the new one.' }).waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(artifacts, 'account-password-changed.png'), fullPage: true });
  await login(page, env('NEW_PASSWORD'));
  await page.fill('#key-form textarea[name=public_key]', env('PUBLIC_KEY'));
  await page.click('#key-form button[type=submit]');
  await page.locator('#status', { hasText: 'Key added.' }).waitFor({ timeout: 30_000 });
  const keys = (await page.locator('#my-keys').innerText()).replace(/\s+/g, ' ');
  if (!keys.includes(env('FINGERPRINT'))) throw new Error(`the key list shows ${JSON.stringify(keys)}`);
  await page.screenshot({ path: join(artifacts, 'account-key-added.png'), fullPage: true });
  console.log('self-service done in the browser');
} finally {
  await browser.close();
}
