// A desktop (VNC or RDP) through Rampart in real headless Chromium (issue 22). Run by
// crates/rampart/tests/it/desktop_vnc.rs and desktop_rdp.rs, which start Xvfb with a known
// root colour and an xterm, a VNC or RDP server with a vaulted password, and `rampart serve`.
//
// Steps: log in, find the desktop on the home page, Connect; the canvas shows the root colour
// outside the xterm; click into the xterm, type a command that changes the root colour, see
// the canvas change; print `READY <session id>` and wait: the test kills the session from the
// CLI, and the page must show the kill's reason.
//
//   RAMPART_URL            https://127.0.0.1:PORT
//   LOGIN_USER / PASSWORD  the user
//   ACCOUNT                LOGIN@ASSET of the desktop
//   TABLE                  (optional) the home page's table that lists it (#desktops, VNC)
//   COLOUR_COMMAND / COLOUR_RGB (optional) the command typed into the xterm and the root
//                          colour it sets, `r,g,b` (xsetroot to #c81e1e)
//   PROBE_X / PROBE_Y      a point of the screen outside the xterm
//   XTERM_X / XTERM_Y      a point inside the xterm
//   KILL_REASON            what the page must show once the test kills the session
//   CANARY                 the vaulted password: never on the page
//   EXPECT_END             (optional) the session must end at once, the page showing this
//   PASTE_TEXT / PASTE_NOTICE (optional) pasted into the canvas after the typing; the page
//                          must then show PASTE_NOTICE (a refusal), if given
//   COPY_TEXT              (optional) the clipboard: after the paste, print `PASTED` and wait
//                          while the test reads the target's clipboard and puts COPY_TEXT on
//                          it; the page must then show that the desktop's clipboard was copied
//                          and the browser's clipboard must hold COPY_TEXT
//   COPY_REFUSED_RGB       (optional, with COPY_TEXT) the copy is refused: once the test saw
//                          the refusal it turns the root this colour (`r,g,b`); when the canvas
//                          shows it, the page must not have shown nor taken COPY_TEXT (the
//                          replay then ends in this colour)
//   COPY_REFUSED_NOTICE    (optional, with COPY_REFUSED_RGB) the page must then show this notice
//   RESIZE_TO              (optional) `WIDTHxHEIGHT`: the target resizes to the view (Xvnc).
//                          Once the root colour shows, the canvas (the desktop's own size)
//                          must fill the view exactly (asked for at the start); then the
//                          window becomes RESIZE_TO and the canvas must fill the new view.
//                          Each time `CANVAS <width> <height>` is printed, for the test to
//                          check the target's own screen size
//   RESIZE_EVEN            (optional, with RESIZE_TO) the desktop's width is the view's
//                          rounded down to even (RDP's Display Control takes even widths)
//   RESIZE_LATEST          (optional, with RESIZE_TO) `WIDTHxHEIGHT`: then three sizes go at
//                          once, faster than Rampart passes them on (one a second), this one
//                          last: the canvas must end at it (`CANVAS` printed again)
//   TEXT_RGB               (optional) `r,g,b` of the xterm's text: some pixel of the xterm's
//                          first lines (around XTERM_X/XTERM_Y) must have it (the marker text)
//   ARTIFACTS / CHROMIUM   screenshots directory / the browser
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
const [px, py] = [Number(env('PROBE_X')), Number(env('PROBE_Y'))];
const table = process.env.TABLE || '#desktops';
const colourCommand = process.env.COLOUR_COMMAND || "xsetroot -solid '#c81e1e'";
const colour = (process.env.COLOUR_RGB || '200,30,30').split(',').map(Number);
const copyRefused = process.env.COPY_REFUSED_RGB ? process.env.COPY_REFUSED_RGB.split(',').map(Number) : null;
const finalColour = copyRefused || colour;
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});
const problems = [];

// The canvas pixel at (x, y) as [r, g, b].
const pixel = (page, x, y) =>
  page.evaluate(
    ([x, y]) => {
      const canvas = document.getElementById('desktop');
      if (!canvas || canvas.width <= x || canvas.height <= y) return null;
      return Array.from(canvas.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3));
    },
    [x, y],
  );

async function waitForPixel(page, x, y, rgb, what) {
  const deadline = Date.now() + 60_000;
  let last = null;
  while (Date.now() < deadline) {
    last = await pixel(page, x, y);
    if (last && last.every((v, i) => Math.abs(v - rgb[i]) <= 2)) return;
    await page.waitForTimeout(200);
  }
  await page.screenshot({ path: join(artifacts, `desktop-no-${what}.png`) });
  throw new Error(`the canvas at ${x},${y} is ${JSON.stringify(last)}, not ${what} ${JSON.stringify(rgb)}`);
}

// Waits (up to 60 s) until the canvas's own size (the desktop's) is the view's (or `size`),
// then prints `CANVAS <width> <height>`.
async function canvasFillsView(page, when, size) {
  const sizes = () =>
    page.evaluate(() => {
      const canvas = document.getElementById('desktop');
      const view = document.getElementById('desktop-wrap').getBoundingClientRect();
      return { canvas: [canvas.width, canvas.height], view: [Math.floor(view.width), Math.floor(view.height)] };
    });
  const even = process.env.RESIZE_EVEN ? (w) => w - (w % 2) : (w) => w;
  const wanted = (seen) => size || [even(seen.view[0]), seen.view[1]];
  const done = (seen) => seen.canvas[0] === wanted(seen)[0] && seen.canvas[1] === wanted(seen)[1];
  const deadline = Date.now() + 60_000;
  let last = await sizes();
  while (Date.now() < deadline && !done(last)) {
    await page.waitForTimeout(200);
    last = await sizes();
  }
  const name = `desktop-size-${when.replace(/[^a-z0-9]+/gi, '-')}`;
  await page.screenshot({ path: join(artifacts, `${name}.png`) });
  if (!done(last)) {
    throw new Error(`${when}, the desktop is ${last.canvas.join('x')}, not ${wanted(last).join('x')} (the view is ${last.view.join('x')})`);
  }
  console.log(`CANVAS ${last.canvas[0]} ${last.canvas[1]}`);
}

try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 800 } });
  await context.route('**/*', (route) =>
    new URL(route.request().url()).origin === origin ? route.continue() : route.abort('blockedbyclient'),
  );
  // The clipboard test reads what the page put on the browser's clipboard.
  if (process.env.COPY_TEXT) await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  const page = await context.newPage();
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) problems.push(message.text());
  });
  await page.goto(`${base}/`);
  await page.waitForURL(/\/login/, { timeout: 30_000 });
  await page.fill('input[name=username]', env('LOGIN_USER'));
  await page.fill('input[name=password]', env('PASSWORD'));
  await page.click('button[type=submit]');
  await page.waitForURL((url) => url.pathname === '/', { timeout: 30_000 });
  await page.locator('body[data-ready=true]').waitFor({ timeout: 30_000 });

  // The home page lists the desktop with its address and a Connect button.
  const row = page.locator(`${table} tbody tr`, { hasText: account });
  await row.waitFor({ timeout: 30_000 });
  const rowText = await row.innerText();
  if (!rowText.includes('Connect')) throw new Error(`the desktop's row has no Connect: ${rowText}`);
  await page.screenshot({ path: join(artifacts, 'desktop-home.png'), fullPage: true });
  await row.getByRole('link', { name: 'Connect' }).click();
  await page.waitForURL((url) => url.pathname === '/desktop', { timeout: 30_000 });
  await page.locator('body[data-desktop=open], body[data-desktop=closed]').first().waitFor({ timeout: 60_000 });

  // A target that must fail: the page shows why, and that is all.
  if (process.env.EXPECT_END) {
    await page.locator('body[data-desktop=closed]').waitFor({ timeout: 60_000 });
    const notice = await page.locator('#desktop-notice').innerText();
    await page.screenshot({ path: join(artifacts, 'desktop-ended.png') });
    if (!notice.includes(process.env.EXPECT_END)) throw new Error(`the page does not say why: ${notice}`);
    if (problems.length > 0) throw new Error(problems.join('\n'));
    console.log(`desktop ended as expected: ${notice}`);
  } else {
    await desktopSteps(page);
  }
} finally {
  await browser.close();
}

async function desktopSteps(page) {
  await page.locator('body[data-desktop=open]').waitFor({ timeout: 60_000 });

  // The known picture: the root window's colour outside the xterm.
  await waitForPixel(page, px, py, [0x12, 0xab, 0x34], 'green');
  await page.screenshot({ path: join(artifacts, 'desktop-green.png') });

  if (process.env.RESIZE_TO) {
    await canvasFillsView(page, 'at the start');
    const [width, height] = process.env.RESIZE_TO.split('x').map(Number);
    await page.setViewportSize({ width, height });
    await canvasFillsView(page, `in a ${width}x${height} window`);
    if (process.env.RESIZE_LATEST) {
      const latest = process.env.RESIZE_LATEST.split('x').map(Number);
      await page.evaluate(([w, h]) => {
        for (const step of [40, 20, 0]) window.rampartDesktop.sendSize(w + step, h + step);
      }, latest);
      await canvasFillsView(page, `after a burst of sizes ending at ${latest.join('x')}`, latest);
    }
    await waitForPixel(page, px, py, [0x12, 0xab, 0x34], 'green after the resize');
  }

  // The marker text the session's xterm shows: pixels of its text colour in its first lines.
  if (process.env.TEXT_RGB) {
    const rgb = process.env.TEXT_RGB.split(',').map(Number);
    const deadline = Date.now() + 60_000;
    let found = false;
    while (!found && Date.now() < deadline) {
      found = await page.evaluate(
        ([rgb]) => {
          const canvas = document.getElementById('desktop');
          if (!canvas || canvas.width < 300 || canvas.height < 40) return false;
          const data = canvas.getContext('2d').getImageData(0, 0, 300, 40).data;
          for (let i = 0; i < data.length; i += 4) {
            if (rgb.every((v, k) => Math.abs(data[i + k] - v) <= 8)) return true;
          }
          return false;
        },
        [rgb],
      );
      if (!found) await page.waitForTimeout(200);
    }
    if (!found) {
      await page.screenshot({ path: join(artifacts, 'desktop-no-marker.png') });
      throw new Error(`no pixel of the xterm's text colour ${rgb} in its first lines`);
    }
    console.log('marker text drawn');
  }

  // Type a command into the remote xterm and see what it does.
  const canvas = page.locator('#desktop');
  await canvas.click({ position: { x: Number(env('XTERM_X')), y: Number(env('XTERM_Y')) } });
  await page.waitForTimeout(300);
  await page.keyboard.type(colourCommand, { delay: 20 });
  await page.keyboard.press('Enter');
  await waitForPixel(page, px, py, colour, 'red');
  await page.screenshot({ path: join(artifacts, 'desktop-red.png') });

  // A paste into the canvas, as the browser delivers one; the page says what became of it.
  if (process.env.PASTE_TEXT) {
    await page.evaluate((text) => {
      const data = new DataTransfer();
      data.setData('text/plain', text);
      const canvas = document.getElementById('desktop');
      canvas.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
    }, process.env.PASTE_TEXT);
    if (process.env.PASTE_NOTICE) {
      await page.locator('#desktop-notice', { hasText: env('PASTE_NOTICE') }).waitFor({ timeout: 30_000 });
      await page.screenshot({ path: join(artifacts, 'desktop-paste.png') });
      console.log(`paste notice: ${await page.locator('#desktop-notice').innerText()}`);
    }
  }

  // The target's clipboard: the test reads the paste there, then copies COPY_TEXT on it.
  if (process.env.COPY_TEXT) {
    const copied = process.env.COPY_TEXT;
    const browserClipboard = () => page.evaluate(() => navigator.clipboard.readText());
    console.log('PASTED');
    if (copyRefused) {
      // Everything the relay sent before the new colour reached the page before it.
      await waitForPixel(page, px, py, copyRefused, 'the colour after the refused copy');
      const notice = await page.locator('#desktop-notice').innerText();
      const held = await browserClipboard();
      await page.screenshot({ path: join(artifacts, 'desktop-copy-refused.png') });
      if (/clipboard was copied/.test(notice) || (await page.locator('body').innerText()).includes(copied)) {
        throw new Error(`the refused copy shows on the page: ${notice}`);
      }
      if (held === copied) throw new Error("the refused copy reached the browser's clipboard");
      const refusal = process.env.COPY_REFUSED_NOTICE;
      if (refusal && !notice.includes(refusal)) throw new Error(`the page does not say the copy was refused: ${notice}`);
      console.log(`copy not shown: ${notice}`);
    } else {
      const shown = `the desktop's clipboard was copied (${copied.length} characters)`;
      await page.locator('#desktop-notice', { hasText: shown }).waitFor({ timeout: 90_000 });
      await page.screenshot({ path: join(artifacts, 'desktop-copied.png') });
      const held = await browserClipboard();
      if (held !== copied) throw new Error(`the browser's clipboard holds ${JSON.stringify(held)}, not ${JSON.stringify(copied)}`);
      console.log(`copied: ${shown}`);
    }
  }

  const shown = await page.locator('body').innerText();
  if (shown.includes(env('CANARY'))) throw new Error('the vaulted password is on the page');
  const html = await page.content();
  if (html.includes(env('CANARY'))) throw new Error('the vaulted password is in the page source');

  // The test kills the session now; the page must say why.
  const session = await page.evaluate(() => document.body.dataset.desktopSession || '');
  console.log(`READY ${session}`);
  await page.locator('body[data-desktop=closed]').waitFor({ timeout: 60_000 });
  const notice = await page.locator('#desktop-notice').innerText();
  if (!notice.includes(env('KILL_REASON'))) throw new Error(`the page does not show the kill's reason: ${notice}`);
  await page.screenshot({ path: join(artifacts, 'desktop-killed.png') });

  // The replay: verified, green at the first key frame, red at the end; seeking both ways.
  await page.goto(`${base}/replay?session=${encodeURIComponent(session)}`);
  await page.locator('body[data-replay=ready]').waitFor({ timeout: 60_000 });
  await page.locator('#verification', { hasText: 'verified' }).waitFor({ timeout: 30_000 });
  const verdict = await page.locator('#verification').innerText();
  if (verdict.includes('NOT')) throw new Error(`the replay page says: ${verdict}`);
  const keyTimes = await page.evaluate(() => window.rampartDesktopReplay.keyTimes);
  if (keyTimes.length < 1) throw new Error('the recording has no key frame');
  const replayPixel = async (t) => {
    await page.evaluate((at) => window.rampartDesktopReplay.seek(at), t);
    return pixel(page, px, py);
  };
  const end = await page.evaluate(() => window.rampartDesktopReplay.end);
  const close = (got, rgb) => got && got.every((v, i) => Math.abs(v - rgb[i]) <= 2);
  const atEnd = await replayPixel(end);
  if (!close(atEnd, finalColour)) throw new Error(`the replay's end shows ${JSON.stringify(atEnd)}, not ${JSON.stringify(finalColour)}`);
  await page.screenshot({ path: join(artifacts, 'desktop-replay-end.png') });
  // The desktop before the command: at the first key frame, or, for a session that starts
  // with the connection (xrdp's: black until it drew), somewhere between it and the end.
  const times = [...keyTimes, ...Array.from({ length: 60 }, (_, i) => keyTimes[0] + ((end - keyTimes[0]) * i) / 60)];
  let atStart = null;
  for (const t of times) {
    atStart = await replayPixel(t);
    if (close(atStart, [0x12, 0xab, 0x34])) break;
  }
  if (!close(atStart, [0x12, 0xab, 0x34])) throw new Error(`the replay never shows green before the end (the last seen: ${JSON.stringify(atStart)})`);
  await page.screenshot({ path: join(artifacts, 'desktop-replay-start.png') });
  if (problems.length > 0) throw new Error(problems.join('\n'));
  console.log('desktop steps passed');
}
