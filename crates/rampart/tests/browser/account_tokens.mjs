// Self-service API tokens in real headless Chromium (issue 20): a user makes an API token of
// their own on the Account page (shown once), the token works against the API, and the user
// revokes it there, after which it no longer works. Run by
// crates/rampart/tests/it/self_service.rs, which starts a real `rampart serve`.
//
//   RAMPART_URL                 https://127.0.0.1:PORT
//   LOGIN_USER / PASSWORD       the user
//   ARTIFACTS / CHROMIUM        screenshots directory / the browser
import { chromium, request } from 'playwright-core';
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
// A client without the browser's cookie: only the bearer token speaks for it.
const outside = await request.newContext({ ignoreHTTPSErrors: true });
const me = async (token) =>
  (await outside.get(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } })).status();
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  await context.route('**/*', (route) =>
    new URL(route.request().url()).origin === origin ? route.continue() : route.abort('blockedbyclient'),
  );
  const page = await context.newPage();
  await page.goto(`${base}/account`);
  await page.waitForURL((url) => url.pathname.startsWith('/login'), { timeout: 30_000 });
  await page.fill('input[name=username]', env('LOGIN_USER'));
  await page.fill('input[name=password]', env('PASSWORD'));
  await page.click('button[type=submit]');
  await page.waitForURL((url) => url.pathname === '/account', { timeout: 30_000 });
  await page.locator('#my-tokens', { hasText: 'no API token' }).waitFor({ timeout: 30_000 });

  await page.fill('#token-form input[name=description]', 'made in the portal');
  await page.selectOption('#token-form select[name=scope]', 'read');
  await page.fill('#token-form input[name=expires]', '1d');
  await page.click('#token-form button[type=submit]');
  await page.locator('#status', { hasText: 'API token created' }).waitFor({ timeout: 30_000 });
  const secret = (await page.locator('#token-secret').innerText()).trim();
  if (!secret) throw new Error('no token shown');
  await page.locator('#my-tokens', { hasText: 'made in the portal' }).waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(artifacts, 'account-token-made.png'), fullPage: true });
  const works = await me(secret);
  if (works !== 200) throw new Error(`the new token got ${works} from /api/v1/me`);

  await page.click('#my-tokens button:has-text("Revoke")');
  await page.locator('#status', { hasText: 'API token revoked.' }).waitFor({ timeout: 30_000 });
  await page.locator('#my-tokens', { hasText: 'no API token' }).waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(artifacts, 'account-token-revoked.png'), fullPage: true });
  const refused = await me(secret);
  if (refused !== 401) throw new Error(`the revoked token got ${refused} from /api/v1/me`);
  console.log('API token made, used and revoked in the browser');
} finally {
  await outside.dispose();
  await browser.close();
}
