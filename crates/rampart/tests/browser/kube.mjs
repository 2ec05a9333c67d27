// The portal's Kubernetes page in real headless Chromium (issue 23): a user with a TOTP second
// factor logs in, opens the Kubernetes page, sees the cluster she may reach and its "Download
// kubeconfig" button, and downloads a kubeconfig. Run by crates/rampart/tests/it/kube.rs, which
// starts a real `rampart serve` with its Kubernetes listener in front of the fake API server,
// then runs the real kubectl with the downloaded file.
//
//   RAMPART_URL            https://127.0.0.1:PORT
//   LOGIN_USER / PASSWORD  the user (she has a TOTP second factor)
//   TOTP_SECRET            the base32 secret from her otpauth:// URI
//   TOTP_USED_UNTIL        unix time: codes of steps up to this one were already used
//   CLUSTER                the Kubernetes asset's name the page must show
//   KUBECONFIG_OUT         where the downloaded kubeconfig is saved
//   ARTIFACTS / CHROMIUM   screenshots directory / the browser
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env('RAMPART_URL');
const origin = new URL(base).origin;
const artifacts = env('ARTIFACTS');
const cluster = env('CLUSTER');
mkdirSync(artifacts, { recursive: true });

// RFC 6238: HMAC-SHA-1, 30-second steps, 6 digits.
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text.replace(/=+$/, '').toUpperCase()) {
    const index = alphabet.indexOf(c);
    if (index < 0) throw new Error('bad base32');
    bits += index.toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, '0');
}

// A code is accepted once per step: wait for a step after the ones already used.
async function freshCode() {
  const usedStep = Math.floor(Number(env('TOTP_USED_UNTIL')) / 30);
  for (;;) {
    const step = Math.floor(Date.now() / 1000 / 30);
    if (step > usedStep) return totp(env('TOTP_SECRET'), step);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});
const problems = [];
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true });
  await context.route('**/*', (route) =>
    new URL(route.request().url()).origin === origin ? route.continue() : route.abort('blockedbyclient'),
  );
  const page = await context.newPage();
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) problems.push(message.text());
  });
  await page.goto(`${base}/kubernetes`);
  await page.waitForURL((url) => url.pathname.startsWith('/login'), { timeout: 30_000 });
  await page.fill('input[name=username]', env('LOGIN_USER'));
  await page.fill('input[name=password]', env('PASSWORD'));
  await page.fill('input[name=totp]', await freshCode());
  await page.click('button[type=submit]');
  await page.waitForURL((url) => url.pathname === '/kubernetes', { timeout: 30_000 });
  await page.locator('body[data-ready=true]').waitFor({ timeout: 30_000 });

  // What a person sees: the page's title, the cluster by name, what she may do, the button.
  const heading = (await page.locator('h1').innerText()).trim();
  if (heading !== 'Kubernetes') throw new Error(`the page's heading is ${JSON.stringify(heading)}`);
  const row = page.locator('#kube-clusters tbody tr', { hasText: cluster });
  await row.waitFor({ timeout: 30_000 });
  const rowText = await row.innerText();
  for (const words of [cluster, 'read', 'exec', 'Download kubeconfig']) {
    if (!rowText.includes(words)) throw new Error(`the cluster's row does not say ${words}: ${rowText}`);
  }
  if (/\[object Object\]|undefined|null/.test(rowText)) throw new Error(`raw values on the page: ${rowText}`);
  await page.screenshot({ path: join(artifacts, 'kube-clusters.png'), fullPage: true });

  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 30_000 }),
    row.getByRole('button', { name: 'Download kubeconfig' }).click(),
  ]);
  const out = env('KUBECONFIG_OUT');
  await download.saveAs(out);
  if (download.suggestedFilename() !== `${cluster}.kubeconfig`) {
    throw new Error(`the download is named ${download.suggestedFilename()}`);
  }
  await page.locator('#status', { hasText: `Kubeconfig for ${cluster} downloaded` }).waitFor({ timeout: 30_000 });
  const shown = await page.locator('main').innerText();
  const token = JSON.parse(readFileSync(out, 'utf8')).users[0].user.token;
  if (!token || shown.includes(token)) throw new Error('the token is missing from the file, or shown on the page');
  if (!shown.includes(`kubectl --kubeconfig ${cluster}.kubeconfig get pods`)) throw new Error(`no kubectl hint: ${shown}`);
  await page.screenshot({ path: join(artifacts, 'kube-downloaded.png'), fullPage: true });
  if (problems.length > 0) throw new Error(problems.join('\n'));
  console.log('kubeconfig downloaded in the browser');
} finally {
  await browser.close();
}
