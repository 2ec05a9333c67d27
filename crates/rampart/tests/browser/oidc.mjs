// Single sign-on in real headless Chromium (issue 20): the portal's "Sign in with ..." button,
// the provider's own login page (oidc-provider, tests/browser/oidc_provider.mjs), and back to
// the portal signed in, or refused. Run by crates/rampart/tests/it/oidc.rs.
//
//   RAMPART_URL / IDP_URL    https://127.0.0.1:PORT of each
//   STEPS                    JSON: [{"user", "groups"?, "mode"?, "expect": "signed-in"|"refused"|"code", "whoami"?, "totp_uri"?}]
//                            ("code": the portal asks for the TOTP code after the provider; the
//                            code of the next time step, computed from totp_uri, signs in)
//                            each step in a fresh browser context (no provider session): the
//                            user's groups set at the provider, the next ID token's mode set
//                            (see oidc_provider.mjs), then the sign-in
//   ARTIFACTS / CHROMIUM     screenshots directory / the browser
//   NODE_EXTRA_CA_CERTS      the provider's CA, for the control calls
//
// Prints `cookie: VALUE` for the last signed-in step. Requests to any other origin are aborted.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';

// The code an authenticator app shows for an otpauth:// URI (RFC 6238: SHA-1, 6 digits, 30 s),
// for the time step `step`.
function totpCode(uri, step) {
  const secret = new URL(uri).searchParams.get('secret').replace(/=+$/, '').toUpperCase();
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(value).padStart(6, '0');
}

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env('RAMPART_URL');
const idp = env('IDP_URL');
const allowed = new Set([new URL(base).origin, new URL(idp).origin]);
const artifacts = env('ARTIFACTS');
mkdirSync(artifacts, { recursive: true });
const steps = JSON.parse(env('STEPS'));

async function control(path, body) {
  const response = await fetch(idp + path, { method: 'POST', body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});
try {
  let index = 0;
  for (const step of steps) {
    index += 1;
    const name = `${index}-${step.user}-${step.mode || 'plain'}`;
    if (step.groups) await control(`/test/users/${step.user}`, { groups: step.groups });
    if (step.mode) await control('/test/next-id-token', { mode: step.mode });
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    await context.route('**/*', (route) =>
      allowed.has(new URL(route.request().url()).origin) ? route.continue() : route.abort('blockedbyclient'),
    );
    const page = await context.newPage();
    try {
    await page.goto(base + '/');
    await page.waitForURL((url) => url.pathname === '/login', { timeout: 30_000 });
    await page.click('#oidc-login-link');
    await page.waitForURL((url) => url.origin === new URL(idp).origin, { timeout: 30_000 });
    await page.fill('input[name=login]', step.user);
    await page.fill('input[name=password]', 'any password: the dev login page takes it');
    await page.screenshot({ path: join(artifacts, `oidc-${name}-provider.png`), fullPage: true });
    await page.click('button[type=submit]');
    if (step.expect === 'code') {
      // Back at the portal's login page, not signed in: the TOTP code is asked for.
      await page.waitForURL((url) => url.origin === new URL(base).origin && url.pathname === '/login', { timeout: 30_000 });
      await page.locator('#oidc-code-form', { hasText: 'Your account also has a second factor' }).waitFor({ timeout: 30_000 });
      const early = (await context.cookies(base)).find((c) => c.name === 'rampart_session');
      if (early) throw new Error(`${name}: a session cookie before the code`);
      await page.screenshot({ path: join(artifacts, `oidc-${name}-code-asked.png`), fullPage: true });
      // The next step's code (accepted with one step of skew): the enrolment used this one.
      await page.fill('#oidc-code-form input[name=code]', totpCode(step.totp_uri, Math.floor(Date.now() / 30_000) + 1));
      await page.click('#oidc-code-form button[type=submit]');
    }
    if (step.expect === 'signed-in' || step.expect === 'code') {
      await page.waitForURL((url) => url.origin === new URL(base).origin && url.pathname === '/', { timeout: 30_000 });
      const who = page.locator('#whoami', { hasText: step.whoami || step.user });
      await who.waitFor({ timeout: 30_000 });
      await page.screenshot({ path: join(artifacts, `oidc-${name}-signed-in.png`), fullPage: true });
      const cookie = (await context.cookies(base)).find((c) => c.name === 'rampart_session');
      if (!cookie) throw new Error(`${name}: no session cookie`);
      console.log(`step ${index}: signed in as ${await who.innerText()}`);
      if (index === steps.length) console.log(`cookie: ${cookie.value}`);
    } else {
      await page.waitForURL((url) => url.origin === new URL(base).origin && url.pathname === '/login', { timeout: 30_000 });
      if (!new URL(page.url()).searchParams.get('oidc_error')) throw new Error(`${name}: back at ${page.url()} without an error`);
      await page.locator('#status', { hasText: 'Single sign-on refused' }).waitFor({ timeout: 30_000 });
      const cookie = (await context.cookies(base)).find((c) => c.name === 'rampart_session');
      if (cookie) throw new Error(`${name}: refused, yet a session cookie was set`);
      await page.screenshot({ path: join(artifacts, `oidc-${name}-refused.png`), fullPage: true });
      console.log(`step ${index}: refused`);
    }
    } catch (err) {
      await page.screenshot({ path: join(artifacts, `oidc-${name}-failed.png`), fullPage: true }).catch(() => {});
      throw new Error(`step ${index} (${name}) at ${page.url()}: ${err.message}`);
    }
    await context.close();
  }
} finally {
  await browser.close();
}
