// After logging in, the portal goes to `next` only if it is a place on the portal's own site
// (issue 11, item 8): a `next` that a browser reads as another site (`/\evil.example`, a tab
// inside `//`, `//evil.example`, a path that normalises to `//`) lands on the home page instead.
// Run by crates/rampart/tests/it/auth_hardening.rs, which starts a real `rampart serve`.
//
//   RAMPART_URL            https://127.0.0.1:PORT
//   LOGIN_USER / LOGIN_PASSWORD   a user with a password and no second factor
//   ARTIFACTS              directory for the screenshots
//   CHROMIUM               the browser (Debian's /usr/bin/chromium)
//
// Nothing leaves loopback: every request to another origin is aborted, and the browser resolves
// no host name at all.
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

// `next` exactly as it stands in the query string, and where the login must land.
const cases = [
  ['/%5Cevil.example/x', '/'],
  ['/%09/evil.example/', '/'],
  ['//evil.example', '/'],
  ['/\\evil.example', '/'],
  // Normalises to the path `//evil.example/`: it must stay a path on this site (a page that
  // does not exist), never become the host of the next navigation.
  ['/.//evil.example/', '//evil.example/'],
  ['https://evil.example/', '/'],
  ['javascript:alert(1)', '/'],
  // A place on the site is still reached, query included.
  ['/sessions%3Fuser%3Dalice', '/sessions?user=alice'],
];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-dev-shm-usage',
    '--disable-gpu',
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
  ],
});
const failures = [];
try {
  let n = 0;
  for (const [next, expected] of cases) {
    n += 1;
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const offSite = [];
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (new URL(url).origin === origin) return route.continue();
      offSite.push(url);
      return route.abort('blockedbyclient');
    });
    const page = await context.newPage();
    try {
      await page.goto(`${base}/login?next=${next}`);
      await page.fill('input[name=username]', env('LOGIN_USER'));
      await page.fill('input[name=password]', env('LOGIN_PASSWORD'));
      await page.click('button[type=submit]');
      // Wait until the login page is left, wherever the browser goes.
      await page.waitForURL((url) => !url.pathname.startsWith('/login'), { timeout: 30_000 });
      await page.waitForLoadState('load');
      const landed = new URL(page.url());
      const shown =
        landed.origin === origin
          ? await page.locator('h1').first().textContent({ timeout: 5_000 }).catch(() => '(no heading)')
          : '(not on the site)';
      await page.screenshot({ path: join(artifacts, `redirect-${n}.png`), fullPage: true });
      const where = `${landed.pathname}${landed.search}`;
      console.log(`next=${next} -> ${page.url()} (${shown})`);
      if (landed.origin !== origin) failures.push(`next=${next} left the site for ${page.url()}`);
      else if (where !== expected) failures.push(`next=${next} landed on ${where}, expected ${expected}`);
      else if (expected === '/' && !shown.includes('The accounts you may reach now')) {
        failures.push(`next=${next}: the home page shows ${shown}`);
      }
    } catch (err) {
      failures.push(`next=${next}: ${err.message.split('\n')[0]}`);
    }
    // Any request off the site (the aborted navigation of an open redirect) is a failure.
    if (offSite.length > 0) failures.push(`next=${next} navigated off the site to ${offSite.join(', ')}`);
    await context.close();
  }
} finally {
  await browser.close();
}
if (failures.length > 0) {
  console.error(failures.join('\n'));
  process.exit(1);
}
console.log('all redirects stayed on the site');
