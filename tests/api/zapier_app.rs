//! The Zapier app (`integrations/zapier/`), run by `cargo test` like everything else: its mocha
//! tests (Zapier's own app tester against a real `payymo serve` that they start on an embedded
//! database) and `zapier validate` in its offline form.
//!
//! It needs Node.js and the app's npm packages (`npm ci` in `integrations/zapier`). Without them
//! it prints `SKIPPED` and passes, unless `PAYYMO_INTEGRATION_TESTS=required` (set by `.ci/run`,
//! which installs them).

use std::{path::PathBuf, process::Command};

fn app_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("integrations/zapier")
}

/// Whether the app's tests can run here; panics when they must and cannot.
fn ready() -> bool {
    let installed = app_dir().join("node_modules/.bin/mocha").is_file();
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if installed && node {
        return true;
    }
    assert!(
        std::env::var("PAYYMO_INTEGRATION_TESTS").as_deref() != Ok("required"),
        "the Zapier app's tests are required, but Node.js or its packages are missing (run `npm ci` in integrations/zapier)"
    );
    eprintln!("SKIPPED: the Zapier app's tests need Node.js and `npm ci` in integrations/zapier");
    false
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(app_dir())
        .env("PAYYMO_BIN", env!("CARGO_BIN_EXE_payymo"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

#[test]
fn the_zapier_app_passes_its_tests_against_a_real_server() {
    if !ready() {
        return;
    }
    let report = run("node_modules/.bin/mocha", &["--recursive", "--timeout", "30000", "test"]);
    assert!(report.contains("passing") && !report.contains("failing"), "{report}");
    eprintln!("{}", report.lines().filter(|l| l.contains("passing")).collect::<String>());
}

#[test]
fn the_zapier_app_passes_zapier_validate_offline() {
    if !ready() {
        return;
    }
    let report = run("node_modules/.bin/zapier", &["validate", "--without-style"]);
    assert!(report.contains("structurally sound"), "{report}");
}
