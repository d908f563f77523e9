// The control surface in a real browser: headless Chromium (Debian's `chromium`) driven
// by playwright-core, against a running `cuecast serve`. Each case does what a producer
// would do on the page and checks the outcome through the public API, which is the
// show's own account of what happened.
//
//   node tests/browser/surface.mjs CASE
//
// Environment: CUECAST_URL (the daemon, e.g. http://127.0.0.1:7070), CUECAST_SHOTS (a
// folder for screenshots), CUECAST_NODE_TOOLS (the node_modules holding playwright-core),
// CUECAST_CHROMIUM (default /usr/bin/chromium), CUECAST_TOKEN (the right token, for
// `auth`), CUECAST_OUTPUT (the output whose server is down, for `output`).
// Exits 0 when the case holds; otherwise prints why and leaves a `-failed` screenshot.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const base = env('CUECAST_URL');
const shots = env('CUECAST_SHOTS');
const { chromium } = createRequire(join(env('CUECAST_NODE_TOOLS'), 'resolve.js'))('playwright-core');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function api(method, path, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    data = text;
  }
  return { status: res.status, data };
}
const status = async () => (await api('GET', '/api/v1/status')).data;

/** Polls `check` until it returns something truthy; fails naming `what` and the last value. */
async function until(what, check, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(100);
  }
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/** The preview as the page shows it, once it has a picture. */
async function preview(page) {
  await until('the preview to show a picture', () => page.locator('#preview').evaluate((img) => img.naturalWidth > 0));
  return page.locator('#preview').screenshot();
}

/** Two looks at the preview `gapMs` apart differ. */
async function previewMoves(page, what, gapMs = 1000) {
  const a = await preview(page);
  await sleep(gapMs);
  const b = await preview(page);
  assert.ok(!a.equals(b), `${what}: two screenshots of the preview ${gapMs} ms apart are identical`);
}

const samePose = (a, b) => JSON.stringify(a.pos) === JSON.stringify(b.pos) && a.yaw === b.yaw && a.pitch === b.pitch;

const cases = {
  async preview(page) {
    // A still camera over a still world is a still picture: set the world moving.
    assert.equal((await api('POST', '/api/v1/cues', { type: 'action', forward: 0.6, yaw: 0.3 })).status, 202);
    await previewMoves(page, 'while the camera flies');
    await until('the health bar to show the frame rate', async () => /^\d+\.\d$/.test(await page.locator('#h-fps').innerText()));
    await until('the preview output listed', () => page.locator('#outputs tr[data-key="preview"] .state').innerText().then((t) => t === 'live'));
    await until('the event log to say the page is ready', () => page.locator('#log').innerText().then((t) => t.includes('control surface ready')));
    await shot(page, 'surface');
  },

  async prompt(page) {
    const text = 'desert dunes at sunset';
    const before = await preview(page);
    await page.fill('#transition', '0.5');
    await page.fill('#prompt', text);
    await page.press('#prompt', 'Enter');
    await until(`status.prompt = "${text}"`, async () => (await status()).prompt === text);
    await until('the prompt field to be cleared once sent', async () => (await page.inputValue('#prompt')) === '');
    // The camera is still: the picture changes only because the prompt did.
    await until('the preview to change with the prompt', async () => !before.equals(await preview(page)));
    await until('the prompt under the preview', () => page.locator('#prompt-now').innerText().then((t) => t.includes(text)));
    await shot(page, 'prompt');

    // The API's refusal is shown, not swallowed, and nothing changes.
    await page.fill('#transition', '-3');
    await page.fill('#prompt', 'frozen lake');
    await page.click('#prompt-send');
    const error = await until('an error shown on the page', async () => (await page.isVisible('#error')) && page.locator('#error-text').innerText());
    assert.match(error, /transition_s/, `the error names the field: ${error}`);
    assert.equal((await status()).prompt, text, 'a refused prompt changed the show');
    assert.match(await page.locator('#log').innerText(), /prompt: .*transition_s/);
    await shot(page, 'prompt-refused');
  },

  async camera(page) {
    await until('the page to be ready', () => page.locator('#log').innerText().then((t) => t.includes('control surface ready')));
    // Typing in the prompt field is typing, not flying.
    const still = (await status()).camera;
    await page.click('#prompt');
    await page.keyboard.down('w');
    await sleep(600);
    await page.keyboard.up('w');
    await sleep(300);
    assert.ok(samePose(still, (await status()).camera), 'W typed into the prompt field moved the camera');
    assert.equal(await page.inputValue('#prompt'), 'w');
    await page.keyboard.press('Escape');

    const start = (await status()).camera;
    await page.keyboard.down('w');
    const moving = await until('the camera to move while W is held', async () => {
      const s = await status();
      return !samePose(start, s.camera) && s.camera;
    });
    await sleep(700);
    const further = (await status()).camera;
    assert.ok(!samePose(moving, further), 'the camera stopped although W is still held');
    await until('the page to show the held action', () => page.locator('#action').innerText().then((t) => t.includes('forward 1')));
    await shot(page, 'camera-moving');
    await page.keyboard.up('w');
    // Once the stop is applied the pose holds still.
    await until('the camera to stop after W is released', async () => {
      const a = (await status()).camera;
      await sleep(400);
      return samePose(a, (await status()).camera);
    });
    const stopped = (await status()).camera;
    await sleep(800);
    assert.ok(samePose(stopped, (await status()).camera), 'the camera kept moving after W was released');

    // The joystick: pushed up flies forward, let go stops.
    const box = await page.locator('#joystick').boundingBox();
    const cx = box.x + box.width / 2;
    const cy = box.y + box.height / 2;
    await page.mouse.move(cx, cy);
    await page.mouse.down();
    await page.mouse.move(cx, cy - box.height / 2, { steps: 4 });
    await until('the camera to move with the joystick', async () => !samePose(stopped, (await status()).camera));
    await page.mouse.up();
    await until('the camera to stop when the joystick is let go', async () => {
      const a = (await status()).camera;
      await sleep(400);
      return samePose(a, (await status()).camera);
    });

    // A gamepad (headless Chromium has none: the page is handed one through the same
    // navigator.getGamepads() a real pad answers): left stick forward flies.
    await page.evaluate(() => {
      window.testPad = { id: 'test pad', axes: [0, -1, 0, 0], buttons: [] };
      navigator.getGamepads = () => [window.testPad];
      window.dispatchEvent(new Event('gamepadconnected'));
    });
    await until('the page to see the gamepad', () => page.locator('#gamepad').innerText().then((t) => t.includes('test pad')));
    const before = (await status()).camera;
    await until('the camera to move with the left stick', async () => !samePose(before, (await status()).camera));
    await page.evaluate(() => { window.testPad.axes = [0, 0, 0, 0]; });
    await until('the camera to stop when the stick is centred', async () => {
      const a = (await status()).camera;
      await sleep(400);
      return samePose(a, (await status()).camera);
    });
  },

  async rundown(page) {
    const r0 = await until('the rundown listed', async () => {
      const n = await page.locator('#rundown li').count();
      return n > 1 && (await status()).rundown;
    });
    assert.equal(r0.current, null);
    assert.match(await page.locator('#rundown li.next').innerText(), new RegExp(r0.items[0].name));
    await page.click('#go');
    await until('GO to fire the first item', async () => (await status()).rundown.current === 0);
    // The space bar is GO too.
    await page.locator('body').press('Space');
    const dawn = r0.items[1].cues.find((c) => c.type === 'scene').name;
    await until('the second item to be on air', async () => (await status()).rundown.current === 1);
    const scene = (await api('GET', '/api/v1/scenes')).data.find((s) => s.name === dawn);
    await until(`its scene cue to change the prompt to "${scene.prompt}"`, async () => (await status()).prompt === scene.prompt);
    await until('the page to highlight the next item', () => page.locator('#rundown li.next').innerText().then((t) => t.includes(r0.items[2].name)));
    await shot(page, 'rundown');
    await page.click('#back');
    await until('back to return to the first item', async () => (await status()).rundown.current === 0);
    const hills = r0.items[0].cues.find((c) => c.type === 'scene').name;
    const first = (await api('GET', '/api/v1/scenes')).data.find((s) => s.name === hills);
    await until(`back to fire the first item again (prompt "${first.prompt}")`, async () => (await status()).prompt === first.prompt);
  },

  async param(page) {
    const fog = page.locator('input[data-param="fog"]');
    await until('the fog slider', () => fog.count());
    const spec = (await api('GET', '/api/v1/params')).data.find((p) => p.name === 'fog');
    const target = spec.min + (spec.max - spec.min) * 0.85;
    assert.ok(Math.abs(spec.value - target) > 0.1, 'pick a target away from the value now');
    await fog.fill(String(target));
    await until(`status.params.fog = ${target}`, async () => Math.abs((await status()).params.fog - target) < 1e-9);
    // The keyboard on a slider moves the slider, not the camera.
    const pose = (await status()).camera;
    await fog.focus();
    await page.keyboard.press('ArrowLeft');
    await until('the slider step to reach the show', async () => (await status()).params.fog < target);
    assert.ok(samePose(pose, (await status()).camera), 'an arrow key on the slider moved the camera');
    await shot(page, 'param');
  },

  async output(page) {
    const name = env('CUECAST_OUTPUT');
    const row = page.locator(`#outputs tr[data-key="${name}"]`);
    await until(`${name} shown retrying`, () => row.locator('.state').innerText().then((t) => t === 'retrying'), 30000);
    const error = await until(`${name}'s error shown`, () => row.locator('.last-error').innerText());
    const api_ = (await api('GET', '/api/v1/outputs')).data.find((o) => o.name === name);
    // The next attempt may have begun since (the first comes 2 s after a failure).
    assert.ok(['retrying', 'connecting'].includes(api_.state), api_.state);
    assert.equal(error, api_.last_error, 'the page shows the API\'s last error');
    await shot(page, 'output-retrying');
    await row.locator('button', { hasText: 'Stop' }).click();
    await until(`${name} stopped`, async () => (await api('GET', '/api/v1/outputs')).data.find((o) => o.name === name).state === 'stopped');
    await until(`${name} shown stopped`, () => row.locator('.state').innerText().then((t) => t === 'stopped'));
    // The rest of the show never noticed.
    await until('the preview still live', () => page.locator('#outputs tr[data-key="preview"] .state').innerText().then((t) => t === 'live'));
  },

  async sound(page) {
    // The show mixes a test tone (input `tone`): its meter moves, and Mute mutes it.
    const row = page.locator('#audio tr[data-key="tone"]');
    await until('the tone\'s meter to show its level', () => row.locator('meter').evaluate((m) => m.value > -30));
    assert.match(await row.locator('.level-text').innerText(), /dBFS/);
    await shot(page, 'sound');
    await row.locator('button.mute').click();
    await until('the tone muted in the show', async () => (await status()).audio[0].muted === true);
    await until('the meter to fall silent', () => row.locator('.level-text').innerText().then((t) => t === 'silent'));
    await row.locator('button', { hasText: '−3 dB' }).click();
    await until('the gain lowered by 3 dB', async () => (await status()).audio[0].gain_db === -9);
    await shot(page, 'sound-muted');
  },

  async takes(page) {
    await until('the page to be ready', () => page.locator('#log').innerText().then((t) => t.includes('control surface ready')));
    await page.click('#take-toggle');
    const name = await until('a take recording', async () => (await status()).take);
    await until('REC in the health bar', () => page.isVisible('#h-take'));
    await page.keyboard.press('m');
    await page.click('#checkpoint-save');
    const saved = await until('the checkpoint listed', async () => (await page.locator('#checkpoints tr[data-key]').count()) === 1 && page.locator('#checkpoints tr[data-key]').getAttribute('data-key'));
    const savedPrompt = (await status()).prompt;
    await sleep(1000); // frames for the take
    await page.click('#take-toggle');
    await until('the take stopped', async () => !(await status()).take);
    const take = (await api('GET', '/api/v1/takes')).data.find((t) => t.name === name);
    assert.equal(take.markers, 1, 'M dropped one marker into the take');
    assert.ok(take.frames > 10, `the take holds ${take.frames} frames`);
    const row = page.locator(`#takes tr[data-key="${name}"]`);
    await until('the take listed with its marker', () => row.locator('.info').innerText().then((t) => t.includes('1 marker')));
    await row.locator('button', { hasText: 'Export' }).click();
    await until('the export shown under way', () => row.locator('.job').innerText().then((t) => /^export(: |ed →)/.test(t)));
    await shot(page, 'export');
    await until('the export shown done', () => row.locator('.job').innerText().then((t) => t.startsWith('exported →')), 120000);
    const exported = (await api('GET', '/api/v1/takes')).data.find((t) => t.name === name);
    assert.ok(exported, 'the take is still listed');
    // Restoring the checkpoint brings its prompt back.
    assert.equal((await api('POST', '/api/v1/cues', { type: 'prompt', text: 'frozen lake', transition_s: 0 })).status, 202);
    await until('the new prompt', async () => (await status()).prompt === 'frozen lake');
    await page.locator(`#checkpoints tr[data-key="${saved}"] button`).click();
    await until(`the checkpoint's prompt back ("${savedPrompt}")`, async () => (await status()).prompt === savedPrompt);
    await until('the log to say so', () => page.locator('#log').innerText().then((t) => t.includes(`checkpoint ${saved} restored`)));
    await shot(page, 'takes');
  },

  async auth(page) {
    const right = env('CUECAST_TOKEN');
    const dialog = page.locator('#token-dialog');
    await until('the page to ask for the token', () => dialog.isVisible());
    await shot(page, 'auth-asks');
    await page.fill('#token', 'not-the-token');
    await page.click('#token-submit');
    await until('the wrong token refused', () => page.locator('#token-error').innerText().then((t) => /refused/.test(t)));
    assert.ok(await dialog.isVisible(), 'the dialog closed on a wrong token');
    await shot(page, 'auth-refused');
    await page.fill('#token', right);
    await page.click('#token-submit');
    await until('the dialog to close on the right token', async () => !(await dialog.isVisible()));
    // Changes now go through with the token.
    await page.click('#go');
    await until('GO with the token', async () => (await status()).rundown.current === 0);
  },
};

async function main() {
  const name = process.argv[2];
  const run = cases[name];
  if (!run) throw new Error(`no case ${JSON.stringify(name)}; cases: ${Object.keys(cases).join(', ')}`);
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: env('CUECAST_CHROMIUM', '/usr/bin/chromium'),
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  const problems = [];
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (e) => problems.push(`uncaught in the page: ${e.message}`));
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
  page.on('request', (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith('data:')) problems.push(`the page fetched ${r.url()}`);
  });
  try {
    await page.goto(`${base}/`);
    await run(page);
    assert.deepEqual(problems, [], 'the page misbehaved');
    console.log(`${name}: ok`);
  } catch (e) {
    await shot(page, `${name}-failed`).catch(() => {});
    console.error(`${name}: ${e.stack || e}`);
    if (problems.length) console.error(problems.join('\n'));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

await main();
