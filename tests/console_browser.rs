//! The console in a real browser: the specs of `tests/browser` (driven by
//! playwright-core with the system Chromium) against the real engine in
//! both modes. Screenshots of every main screen land in
//! `target/console-screenshots/<mode>/`.
//!
//! Needs Node, `npm ci` in `tests/browser` and Chromium (`.ci/run` installs
//! them); without them the test fails and says what is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{Engine, Mode};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn missing() -> Option<String> {
    let browser_dir = root().join("tests/browser");
    if !browser_dir.join("node_modules/playwright-core").is_dir() {
        return Some(format!(
            "run `npm ci` in {} (the browser tests' driver)",
            browser_dir.display()
        ));
    }
    if !chromium().exists() {
        return Some(format!(
            "install Chromium (Debian: apt-get install chromium), or name it in CHROMIUM; not found at {}",
            chromium().display()
        ));
    }
    None
}

async fn specs(mode: Mode) {
    if let Some(what) = missing() {
        panic!("the browser tests cannot run: {what}");
    }
    // One browser at a time: two at once on a small machine measure each
    // other's load, not the console.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    // The specs register a tenant each, from one address.
    let engine = Engine::start_with(mode, &[("FLOWMESH_REGISTRATIONS_PER_ADDRESS", "0")]).await;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let shots = target.join("console-screenshots").join(match mode {
        Mode::Embedded => "embedded",
        Mode::Distributed => "distributed",
    });
    let output = tokio::process::Command::new("node")
        .arg(Path::new("tests/browser/run.mjs"))
        .current_dir(root())
        .env("FLOWMESH_URL", &engine.base)
        .env("FLOWMESH_SHOTS", &shots)
        .env("CHROMIUM", chromium())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "browser specs failed ({}):\n{stdout}\n{stderr}\nengine log:\n{}",
        output.status,
        engine.log_text()
    );
    assert!(
        std::fs::read_dir(&shots).map(|d| d.count()).unwrap_or(0) > 0,
        "no screenshot was saved in {}",
        shots.display()
    );
}
both_modes!(specs, specs);
