//! The control surface (`/`) in headless Chromium against a real `cuecast serve`.
//!
//! Each test starts a daemon, then runs one case of `tests/browser/surface.mjs`: the
//! browser does what a producer would, and the case checks the result through the API.
//! Screenshots of each state land in `target/tmp/surface/` (and `<case>-failed.png` when
//! a case fails). Needs `chromium` and the npm `playwright-core` that `scripts/setup`
//! installs.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::*;

/// Every test's show has a preview, which is what the page shows.
const PREVIEW: &str = "outputs:\n  - {name: preview, type: preview, fps: 15}\n";

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("surface")
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
