// Web approval at SSH login in real headless Chromium (issue 20): log in to the portal, open the
// link the waiting `ssh` printed, check what the page says about the login, and approve or deny
// it. Run by crates/rampart/tests/it/ssh_web_approval.rs, which starts a real `rampart serve`
// and the waiting `ssh`.
//
//   RAMPART_URL                    https://127.0.0.1:PORT
//   APPROVAL_URL                   the link ssh printed
//   LOGIN_USER / LOGIN_PASSWORD    a user with a password and no second factor
//   EXPECT_LOGIN                   the SSH login name the page must show
//   ANSWER                         approve | deny
//   ARTIFACTS / CHROMIUM           screenshots directory / the browser
//
// Nothing leaves loopback: requests to another origin are aborted.
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
const approve = env('ANSWER') === 'approve';

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
  // The link first: the portal sends an anonymous visitor to the login page and back.
  await page.goto(env('APPROVAL_URL'));
  await page.waitForURL((url) => url.pathname.startsWith('/login'), { timeout: 30_000 });
  await page.fill('input[name=username]', env('LOGIN_USER'));
  await page.fill('input[name=password]', env('LOGIN_PASSWORD'));
  await page.click('button[type=submit]');
  await page.waitForURL((url) => url.pathname === '/ssh', { timeout: 30_000 });
  const card = page.locator('#ssh-approval-card');
  await card.waitFor({ state: 'visible', timeout: 30_000 });
  const shown = (await card.innerText()).replace(/\s+/g, ' ');
  const expected = `An SSH login as ${env('EXPECT_LOGIN')} from 127.0.0.1 waits for you.`;
  if (!shown.includes(expected)) throw new Error(`the page says ${JSON.stringify(shown)}, not ${JSON.stringify(expected)}`);
  await page.screenshot({ path: join(artifacts, 'ssh-approval-waiting.png'), fullPage: true });
  await page.click(approve ? '#ssh-approval-approve' : '#ssh-approval-deny');
  const result = approve ? 'Approved: the SSH login goes on.' : 'Denied: the SSH login is refused.';
  await page.locator('#ssh-approval-result', { hasText: result }).waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(artifacts, `ssh-approval-${approve ? 'approved' : 'denied'}.png`), fullPage: true });
  console.log(`${approve ? 'approved' : 'denied'} in the browser`);
} finally {
  await browser.close();
}
