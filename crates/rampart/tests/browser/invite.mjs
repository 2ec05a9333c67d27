// An enrolment link in real headless Chromium (issue 20): the invited user opens it, sees whose
// it is and the otpauth:// URI for their app, sets a password with a code computed from that
// URI (RFC 6238, as an authenticator app does), and sees it done; the link then fails.
// Run by crates/rampart/tests/it/self_service.rs.
//
//   INVITE_URL        https://127.0.0.1:PORT/invite?token=...
//   LOGIN_USER        the invited user (shown on the page)
//   NEW_PASSWORD      the password to set
//   ARTIFACTS / CHROMIUM
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const inviteUrl = env('INVITE_URL');
const origin = new URL(inviteUrl).origin;
const artifacts = env('ARTIFACTS');
mkdirSync(artifacts, { recursive: true });

const base32 = (text) => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/=+$/, '').toUpperCase()) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
};
const totp = (secret) => {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const mac = createHmac('sha1', secret).update(counter).digest();
  const at = mac[19] & 15;
  const n = ((mac[at] & 127) << 24) | (mac[at + 1] << 16) | (mac[at + 2] << 8) | mac[at + 3];
  return String(n % 1_000_000).padStart(6, '0');
};

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
  await page.goto(inviteUrl);
  const expected = `Set the password and second factor of ${env('LOGIN_USER')}.`;
  await page.locator('#invite-for', { hasText: expected }).waitFor({ timeout: 30_000 });
  const uri = (await page.locator('#invite-uri').innerText()).trim();
  if (!uri.startsWith('otpauth://totp/')) throw new Error(`the page shows ${JSON.stringify(uri)}`);
  await page.screenshot({ path: join(artifacts, 'invite-opened.png'), fullPage: true });
  const secret = base32(new URL(uri).searchParams.get('secret'));
  await page.fill('#invite-form input[name=password]', env('NEW_PASSWORD'));
  await page.fill('#invite-form input[name=code]', totp(secret));
  await page.click('#invite-form button[type=submit]');
  await page.locator('#status', { hasText: 'Done: your password and second factor are set: log in.' }).waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(artifacts, 'invite-done.png'), fullPage: true });
  // Used: opening it again says so.
  await page.goto(inviteUrl);
  await page.locator('#status', { hasText: 'invite (wrong, expired or used) not found' }).waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(artifacts, 'invite-used.png'), fullPage: true });
  console.log('invite used in the browser');
} finally {
  await browser.close();
}
