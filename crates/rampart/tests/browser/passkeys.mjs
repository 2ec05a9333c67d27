// Passkeys in real headless Chromium (issue 20) with a virtual authenticator from the DevTools
// protocol (CTAP2, internal, resident keys, user verification): a user registers two passkeys
// on the Account page and sees them by name, logs out, logs in with password then passkey,
// logs in without a password, removes one, and that one no longer logs in (the usual
// message). A wrong assertion and a replayed one are refused at the API. A user without a
// passkey is not asked for one. Run by crates/rampart/tests/it/passkeys.rs.
//
//   RAMPART_URL                       https://localhost:PORT (WebAuthn needs a name, not an address)
//   LOGIN_USER / PASSWORD             the user who registers passkeys
//   PLAIN_USER / PLAIN_PASSWORD       a user without a passkey
//   ARTIFACTS / CHROMIUM              screenshots directory / the browser
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
const WAIT = { timeout: 60_000 };
const USAGE_MESSAGE = 'login failed: check the user name, password and code';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-dev-shm-usage',
    '--disable-gpu',
    '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
  ],
});
const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
const statusLine = async (page, text) => page.locator('#status', { hasText: text }).waitFor(WAIT);

// Fills the login form; `expectPasskey`: the page asks for the passkey after the password.
async function passwordLogin(page, user, password) {
  await page.waitForURL((url) => url.pathname.startsWith('/login'), WAIT);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.click('#login-form button[type=submit]');
}

// Answers the page's fetch: status and body, from the page (same origin, its cookie).
const fetchIn = (page, path, body) =>
  page.evaluate(
    async ([p, b]) => {
      const response = await fetch(p, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: b === undefined ? undefined : JSON.stringify(b),
      });
      return { status: response.status, text: await response.text() };
    },
    [path, body],
  );

// The accounts the page's session may use now (a grant requiring MFA counts only with it).
const accountsIn = (page) =>
  page.evaluate(async () => (await (await fetch('/api/v1/me/accounts')).json()).map((a) => a.account));
const expectAccounts = async (page, expected, what) => {
  const got = await accountsIn(page);
  if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`${what}: the accounts are ${JSON.stringify(got)}`);
};

const b64ToB64u = (text) => text.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  await context.route('**/*', (route) =>
    new URL(route.request().url()).origin === origin ? route.continue() : route.abort('blockedbyclient'),
  );
  // Two devices: a page each, with its own virtual authenticator (an authenticator keeps one
  // discoverable credential per user and site, and refuses to make one it is told to exclude).
  const device = async () => {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    const credentials = async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
    return { page, credentials };
  };
  const laptop = await device();
  const page = laptop.page;
  // Every passkey answer the pages send, to replay later.
  const answers = [];
  context.on('request', (request) => {
    if (new URL(request.url()).pathname === '/api/v1/login/passkey') answers.push(request.postDataJSON());
  });

  // A user without a passkey: the password is the whole login, nothing more is asked.
  await page.goto(`${base}/account`);
  await passwordLogin(page, env('PLAIN_USER'), env('PLAIN_PASSWORD'));
  await page.waitForURL((url) => url.pathname === '/account', WAIT);
  await page.locator('#my-passkeys', { hasText: 'no passkey' }).waitFor(WAIT);
  if (answers.length !== 0) throw new Error('a user without a passkey was asked for one');
  await page.click('#logout');
  await page.waitForURL((url) => url.pathname.startsWith('/login'), WAIT);

  // The passkey user, with only a password so far.
  await page.goto(`${base}/account`);
  await passwordLogin(page, env('LOGIN_USER'), env('PASSWORD'));
  await page.waitForURL((url) => url.pathname === '/account', WAIT);
  await page.locator('#my-passkeys', { hasText: 'no passkey' }).waitFor(WAIT);
  await expectAccounts(page, [], 'a password login, under a grant that requires a second factor');

  // Register "laptop": the sessions end, and the next password login asks for the passkey.
  await page.fill('#passkey-form input[name=name]', 'laptop');
  await page.click('#passkey-form button[type=submit]');
  await statusLine(page, 'Passkey "laptop" registered: log in again.');
  await shot(page, 'passkey-registered');
  await passwordLogin(page, env('LOGIN_USER'), env('PASSWORD'));
  await page.waitForURL((url) => url.pathname === '/account', WAIT);
  if (answers.length !== 1) throw new Error(`the password login answered ${answers.length} passkey challenges, not 1`);
  await expectAccounts(page, ['root@web-01'], 'password and passkey');
  await page.locator('#my-passkeys', { hasText: 'laptop' }).waitFor(WAIT);

  // Register "security key" on the second device (the same browser session), and see both.
  const key = await device();
  await key.page.goto(`${base}/account`);
  await key.page.locator('#my-passkeys', { hasText: 'laptop' }).waitFor(WAIT);
  await key.page.fill('#passkey-form input[name=name]', 'security key');
  await key.page.click('#passkey-form button[type=submit]');
  await statusLine(key.page, 'Passkey "security key" registered: log in again.');
  await passwordLogin(key.page, env('LOGIN_USER'), env('PASSWORD'));
  await key.page.waitForURL((url) => url.pathname === '/account', WAIT);
  await key.page.locator('#my-passkeys', { hasText: 'security key' }).waitFor(WAIT);
  const listed = (await key.page.locator('#my-passkeys').innerText()).replace(/\s+/g, ' ');
  for (const name of ['laptop', 'security key']) {
    if (!listed.includes(name)) throw new Error(`the passkey list shows ${JSON.stringify(listed)}`);
  }
  await shot(key.page, 'passkeys-listed');
  const mine = await key.page.evaluate(async () => (await fetch('/api/v1/me/passkeys')).json());
  const idOf = Object.fromEntries(mine.map((p) => [p.name, p.credential_id]));
  const held = async (dev) => (await dev.credentials()).map((c) => b64ToB64u(c.credentialId));
  if (JSON.stringify(await held(laptop)) !== JSON.stringify([idOf['laptop']])) throw new Error('the laptop holds another credential');
  if (JSON.stringify(await held(key)) !== JSON.stringify([idOf['security key']])) throw new Error('the key holds another credential');

  // Log out; log in without a password, with the laptop.
  await key.page.click('#logout');
  await key.page.waitForURL((url) => url.pathname.startsWith('/login'), WAIT);
  await page.goto(`${base}/login?next=/account`);
  await page.click('#passkey-login-button');
  await page.waitForURL((url) => url.pathname === '/account', WAIT);
  await page.locator('#whoami', { hasText: env('LOGIN_USER') }).waitFor(WAIT);
  await shot(page, 'passwordless-login');
  await expectAccounts(page, ['root@web-01'], 'a passwordless login');
  const passwordless = answers[answers.length - 1];

  // A replayed assertion: the same answer again (its challenge is used up), and the same
  // assertion against a fresh challenge; a tampered signature. All the one refusal.
  const expectRefused = (result, what) => {
    if (result.status !== 401 || !result.text.includes(USAGE_MESSAGE)) {
      throw new Error(`${what}: ${result.status} ${result.text}`);
    }
  };
  expectRefused(await fetchIn(page, '/api/v1/login/passkey', passwordless), 'the same answer replayed');
  const fresh = JSON.parse((await fetchIn(page, '/api/v1/login/passkey/start')).text);
  expectRefused(
    await fetchIn(page, '/api/v1/login/passkey', { login_id: fresh.login_id, credential: passwordless.credential }),
    'an old assertion against a fresh challenge',
  );
  const fresh2 = JSON.parse((await fetchIn(page, '/api/v1/login/passkey/start')).text);
  const tampered = structuredClone(passwordless.credential);
  tampered.response.signature = tampered.response.signature.slice(0, -4) + (tampered.response.signature.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  expectRefused(
    await fetchIn(page, '/api/v1/login/passkey', { login_id: fresh2.login_id, credential: tampered }),
    'a tampered signature',
  );

  // Remove "security key" (after the confirmation), log in again with password and passkey.
  await page.goto(`${base}/account`);
  const row = page.locator('#my-passkeys tr', { hasText: 'security key' });
  await row.getByRole('button', { name: 'Remove' }).click();
  const dialog = page.locator('dialog.confirm[open]');
  await dialog.waitFor(WAIT);
  const question = await dialog.innerText();
  if (!question.includes('security key')) throw new Error(`the confirmation says ${question}`);
  await dialog.getByRole('button', { name: 'Remove' }).click();
  await statusLine(page, 'Passkey "security key" removed: log in again.');
  await passwordLogin(page, env('LOGIN_USER'), env('PASSWORD'));
  await page.waitForURL((url) => url.pathname === '/account', WAIT);
  await page.locator('#my-passkeys', { hasText: 'laptop' }).waitFor(WAIT);
  const after = (await page.locator('#my-passkeys').innerText()).replace(/\s+/g, ' ');
  if (after.includes('security key')) throw new Error(`the removed passkey is still listed: ${after}`);
  await page.click('#logout');
  await page.waitForURL((url) => url.pathname.startsWith('/login'), WAIT);

  // The removed passkey, still in its authenticator, no longer logs in.
  await key.page.goto(`${base}/login?next=/account`);
  await key.page.click('#passkey-login-button');
  await statusLine(key.page, USAGE_MESSAGE);
  if (new URL(key.page.url()).pathname !== '/login') throw new Error(`the removed passkey led to ${key.page.url()}`);
  await shot(key.page, 'removed-passkey-refused');
  console.log('passkeys done in the browser');
} finally {
  await browser.close();
}
