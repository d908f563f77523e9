//! The control surface (`/`) in headless Chromium against a real `cuecast serve`.
//!
//! Each test starts a daemon, then runs one case of `tests/browser/surface.mjs` (or, for
//! a python model's show, of [`PYTHON_CASES`] below): the browser does what a producer
//! would, and the case checks the result through the API.
//! Screenshots of each state land in `target/tmp/surface/` (and `<case>-failed.png` when
//! a case fails). Needs `chromium` and the npm `playwright-core` that `scripts/setup`
//! installs.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};
use support::*;

/// Every test's show has a preview, which is what the page shows.
const PREVIEW: &str = "outputs:\n  - {name: preview, type: preview, fps: 15}\n";

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("surface")
}

/// Every name the page's modules use is declared or imported (a missing import would
/// fail only when its code runs); and the check finds one that is not.
#[test]
fn every_name_the_surface_uses_is_declared_or_imported() {
    let tools = std::env::var("CUECAST_NODE_TOOLS").expect("CUECAST_NODE_TOOLS: run scripts/setup");
    let check = |dirs: &[PathBuf]| {
        Command::new("node")
            .arg(repo().join("tests/browser/names.mjs"))
            .args(dirs)
            .env("CUECAST_NODE_TOOLS", &tools)
            .output()
            .expect("cannot run node: run scripts/setup")
    };
    let surface = repo().join("daemon/src/surface");
    let out = check(&[surface.clone(), surface.join("modules")]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("6 modules"), "{said}");
    // A module that uses another's function without importing it is caught.
    let broken = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("names-check");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("a.js"),
        "import { x } from './b.js';\nx();\nlog('hi');\n",
    )
    .unwrap();
    let out = check(&[broken]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("log declared nowhere"));
}

/// Runs `case` in the browser against `daemon`; fails with what the case said.
fn browser(case: &str, daemon: &Daemon, env: &[(&str, &str)]) {
    let tools = std::env::var("CUECAST_NODE_TOOLS").expect("CUECAST_NODE_TOOLS: run scripts/setup");
    let out = Command::new("node")
        .arg(repo().join("tests/browser/surface.mjs"))
        .arg(case)
        .env("CUECAST_URL", format!("http://{}", daemon.api))
        .env("CUECAST_SHOTS", shots())
        .env("CUECAST_NODE_TOOLS", tools)
        .envs(env.iter().copied())
        .output()
        .expect("cannot run node: run scripts/setup");
    assert!(
        out.status.success(),
        "browser case {case} failed (screenshots in {}):\n{}{}\n--- daemon log ---\n{}",
        shots().display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );
}

fn show(name: &str) -> Daemon {
    Daemon::start(&format!("surface-{name}"), PREVIEW, &[])
}

#[test]
fn the_preview_shows_moving_frames_and_the_health_bar() {
    let _serial = serial();
    browser("preview", &show("preview"), &[]);
}

#[test]
fn a_prompt_typed_and_sent_changes_the_show_and_a_refusal_is_shown() {
    let _serial = serial();
    browser("prompt", &show("prompt"), &[]);
}

#[test]
fn holding_w_flies_and_releasing_it_stops_so_do_the_joystick_and_a_gamepad_and_typing_never_steers()
{
    let _serial = serial();
    browser("camera", &show("camera"), &[]);
}

#[test]
fn go_fires_the_next_rundown_item_and_back_goes_back() {
    let _serial = serial();
    browser("rundown", &show("rundown"), &[]);
}

#[test]
fn a_slider_sets_its_param() {
    let _serial = serial();
    browser("param", &show("param"), &[]);
}

#[test]
fn a_take_with_a_marker_is_exported_with_progress_and_a_checkpoint_restores() {
    let _serial = serial();
    browser("takes", &show("takes"), &[]);
}

#[test]
fn an_output_whose_server_is_down_shows_retrying_with_its_error() {
    let _serial = serial();
    // Nothing listens on this port: every connection attempt is refused.
    let dead = format!("rtmp://127.0.0.1:{}/live", free_port());
    let daemon = Daemon::start(
        "surface-output",
        &format!("{PREVIEW}  - {{name: platform, type: rtmp, url: {dead:?}, key: k, profile: {SMALL}}}\n"),
        &[],
    );
    browser("output", &daemon, &[("CUECAST_OUTPUT", "platform")]);
}

#[test]
fn with_auth_on_the_page_asks_for_the_token_and_refuses_a_wrong_one() {
    let _serial = serial();
    let daemon = Daemon::start_with(
        "surface-auth",
        &format!("api: {{listen: 127.0.0.1:0, token_env: CUECAST_TEST_TOKEN}}\n{PREVIEW}"),
        &[("CUECAST_TEST_TOKEN", "right-token")],
    );
    browser("auth", &daemon, &[("CUECAST_TOKEN", "right-token")]);
}

/// A show whose model is the reference chunked python model: it takes the keys W, A, S
/// and D, the mouse and a start image.
fn python_show() -> Daemon {
    let show = format!(
        "name: play\nbackend: python\nmodel: {}/models/kv-chunks\ndevice: cpu\nmodel_threads: 1\nseed: 5\nprompt: a quiet valley\n",
        repo().display()
    );
    let daemon = Daemon::start_with_show(
        "surface-python",
        &show,
        &format!("media: media\n{PREVIEW}"),
        &[],
    );
    let inputs = &daemon.get("/api/v1/model")["inputs"];
    assert_eq!(
        inputs["keys"],
        json!(["KeyW", "KeyA", "KeyS", "KeyD"]),
        "{inputs}"
    );
    daemon
}

/// The cues the daemon applied, oldest first.
fn applied(daemon: &Daemon) -> Vec<Value> {
    let log = daemon.get("/api/v1/cues/log");
    log.as_array()
        .unwrap()
        .iter()
        .map(|c| c["cue"].clone())
        .collect()
}

/// The browser cases for a python model's show, run like those of
/// `tests/browser/surface.mjs` (the same browser and the same checks: no uncaught error,
/// nothing blocked by the CSP, nothing fetched from elsewhere).
const PYTHON_CASES: &str = r#"
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const base = process.env.CUECAST_URL;
const shots = process.env.CUECAST_SHOTS;
const { chromium } = createRequire(join(process.env.CUECAST_NODE_TOOLS, 'resolve.js'))('playwright-core');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const get = async (path) => (await fetch(base + path)).json();
async function until(what, check, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(100);
  }
}
const applied = async (type) => (await get('/api/v1/cues/log')).map((c) => c.cue).filter((c) => c.type === type);
const lastKeys = async () => (await applied('input')).filter((c) => c.keys).map((c) => c.keys.join(' ')).at(-1);
const locked = (page) => page.evaluate(() => document.pointerLockElement && document.pointerLockElement.id);
const text = (page, sel) => page.locator(sel).innerText();
const shot = (page, name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

const cases = {
  // Click the picture, hold W, move the mouse, press Esc with W still down, let W go.
  async play(page) {
    await until('the page to offer play mode', () => page.isVisible('#play'), 90000);
    await until('the page to say what the model takes', async () => /KeyW.*mouse/.test(await text(page, '#play-takes')));
    await until('the model process running in the health bar', async () => (await text(page, '#h-process-state')) === 'running', 90000);
    await page.click('#preview');
    await until('the pointer locked to the picture', async () => (await locked(page)) === 'preview');
    await until('the page to say it is playing', async () => (await text(page, '#play-state')) === 'playing');
    await page.keyboard.down('KeyW');
    await until('the daemon to hold KeyW', async () => (await lastKeys()) === 'KeyW');
    await until('the page to show KeyW held', async () => (await text(page, '#play-held')).includes('KeyW'));
    await shot(page, 'play');
    for (let i = 1; i <= 5; i += 1) {
      await page.mouse.move(700 + 20 * i, 300 + 5 * i);
      await sleep(30);
    }
    await until('mouse movement to reach the daemon', async () => (await applied('input')).some((c) => c.mouse && (c.mouse.dx || c.mouse.dy)));
    await page.keyboard.press('Escape');
    await until('play mode to end on Esc', async () => !(await locked(page)));
    await until('the daemon to hold no key once play ends, W still down', async () => (await lastKeys()) === '');
    await page.keyboard.up('KeyW');
    await sleep(500);
    assert.equal(await lastKeys(), '', 'a key was sent after play ended');
    assert.deepEqual(await applied('action'), [], 'W steered the camera while it was the model\'s');
  },

  // A file of another type is refused on the page; a PNG is uploaded and the model starts
  // from it; the same name again is refused until "replace" is ticked; "Start from" too.
  async image(page) {
    await until('the page to offer start images', () => page.isVisible('#image-card'), 90000);
    await until('the page to be ready', async () => (await text(page, '#log')).includes('control surface ready'));
    await page.setInputFiles('#media-file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
    await until('the page to refuse a text file', async () => (await page.isVisible('#error')) && /only PNG and JPEG/.test(await text(page, '#error-text')));
    assert.deepEqual(await get('/api/v1/media'), [], 'a refused file was uploaded');
    await page.click('#error-close');
    const png = Buffer.from(await page.evaluate(async () => {
      const c = new OffscreenCanvas(64, 36);
      const g = c.getContext('2d');
      g.fillStyle = '#c84';
      g.fillRect(0, 0, 64, 36);
      g.fillStyle = '#248';
      g.fillRect(0, 18, 64, 18);
      const bytes = new Uint8Array(await (await c.convertToBlob({ type: 'image/png' })).arrayBuffer());
      return btoa(String.fromCharCode(...bytes));
    }), 'base64');
    const file = { name: 'start.png', mimeType: 'image/png', buffer: png };
    await page.setInputFiles('#media-file', file);
    await until('the daemon to start from the upload', async () => (await applied('image')).length === 1);
    await until('the upload listed', () => page.locator('#media tr[data-key="start.png"]').count());
    const listed = (await get('/api/v1/media')).find((m) => m.name === 'start.png');
    assert.equal(listed && listed.bytes, png.length, 'the file the daemon keeps is the one sent');
    assert.ok(!(await page.isVisible('#error')), `an error after the upload: ${await text(page, '#error-text')}`);
    await shot(page, 'image');
    await page.setInputFiles('#media-file', file);
    await until('the page to say the name is taken', async () => (await page.isVisible('#error')) && /already has an image called start\.png/.test(await text(page, '#error-text')));
    await page.click('#error-close');
    await page.check('#media-replace');
    await page.setInputFiles('#media-file', file);
    await until('the replaced upload to start the model over again', async () => (await applied('image')).length === 2);
    await page.locator('#media tr[data-key="start.png"] button').click();
    await until('"Start from" to start it over once more', async () => (await applied('image')).length === 3);
    assert.ok(!(await page.isVisible('#error')), `an error: ${await text(page, '#error-text')}`);
  },
};

const name = process.argv[2];
mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CUECAST_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
const problems = [];
page.on('pageerror', (e) => problems.push(`uncaught in the page: ${e.message}`));
page.on('console', (m) => {
  if (/Content Security Policy/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
});
page.on('request', (r) => {
  if (!r.url().startsWith(base) && !r.url().startsWith('data:')) problems.push(`the page fetched ${r.url()}`);
});
try {
  await page.goto(`${base}/`);
  await cases[name](page);
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
"#;

/// Runs one of [`PYTHON_CASES`] against `daemon`, as [`browser`] runs a case of
/// `surface.mjs`.
fn python_browser(case: &str, daemon: &Daemon) {
    std::fs::create_dir_all(shots()).unwrap();
    let script = shots().join("python-cases.mjs");
    std::fs::write(&script, PYTHON_CASES).unwrap();
    let tools = std::env::var("CUECAST_NODE_TOOLS").expect("CUECAST_NODE_TOOLS: run scripts/setup");
    let out = Command::new("node")
        .arg(&script)
        .arg(case)
        .env("CUECAST_URL", format!("http://{}", daemon.api))
        .env("CUECAST_SHOTS", shots())
        .env("CUECAST_NODE_TOOLS", tools)
        .output()
        .expect("cannot run node: run scripts/setup");
    assert!(
        out.status.success(),
        "browser case {case} failed (screenshots in {}):\n{}{}\n--- daemon log ---\n{}",
        shots().display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );
}

#[test]
fn play_mode_hands_the_models_keys_and_mouse_to_it_and_esc_lets_everything_go() {
    let _serial = serial();
    let daemon = python_show();
    python_browser("play", &daemon);
    // The daemon's own account: KeyW held, then nothing once play ended.
    let keys: Vec<Value> = applied(&daemon)
        .into_iter()
        .filter(|c| c["type"] == "input" && c.get("keys").is_some())
        .map(|c| c["keys"].clone())
        .collect();
    assert!(keys.contains(&json!(["KeyW"])), "KeyW never held: {keys:?}");
    assert_eq!(keys.last(), Some(&json!([])), "{keys:?}");
}

#[test]
fn an_image_uploaded_from_the_page_starts_the_model_over_and_other_files_are_refused() {
    let _serial = serial();
    let daemon = python_show();
    python_browser("image", &daemon);
    let images: Vec<Value> = applied(&daemon)
        .into_iter()
        .filter(|c| c["type"] == "image")
        .collect();
    assert_eq!(
        images,
        vec![json!({"type": "image", "name": "start.png"}); 3]
    );
    assert!(daemon.dir.join("media/start.png").is_file());
    assert!(!daemon.dir.join("media/notes.txt").exists());
}

#[test]
fn the_sound_card_meters_each_source_and_mutes_and_turns_it_down_with_cues() {
    let _turn = serial();
    let d = Daemon::start(
        "surface-sound",
        &format!(
            "inputs:\n  - {{name: tone, type: test, tone_hz: 440}}\naudio:\n  - {{input: tone, gain_db: -6}}\n{PREVIEW}"
        ),
        &[],
    );
    browser("sound", &d, &[]);
}
