//! A Python with the official clients the conformance tests drive: the system's when it has
//! them at the pinned versions, otherwise a private virtualenv under `target/` that this creates
//! once (from PyPI), so `cargo test` needs no manual step on a fresh machine.

use std::path::Path;

use tokio::process::Command;

/// The Python to run, with every `(package, version)` importable at that version.
pub async fn python_with(packages: &[(&str, &str)]) -> String {
    let wanted: Vec<String> = packages.iter().map(|(name, version)| format!("({name:?}, {version:?})")).collect();
    let probe =
        format!("import importlib.metadata as m; assert all(m.version(n) == v for n, v in [{}])", wanted.join(", "));
    let has_them = |python: String| {
        let probe = probe.clone();
        async move {
            let out = Command::new(&python).args(["-c", &probe]).output().await;
            out.is_ok_and(|out| out.status.success())
        }
    };
    if has_them("python3".to_owned()).await {
        return "python3".to_owned();
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/target/conformance-venv");
    let python = format!("{venv}/bin/python");
    if has_them(python.clone()).await {
        return python;
    }
    let specs: Vec<String> = packages.iter().map(|(name, version)| format!("{name}=={version}")).collect();
    let run = |program: String, args: Vec<String>| {
        let specs = specs.join(" ");
        async move {
            let out = Command::new(&program).args(&args).output().await;
            assert!(
                out.as_ref().is_ok_and(|o| o.status.success()),
                "installing the Python clients failed ({program} {args:?}): {out:?}; install them by hand with \
                 pip install {specs}"
            );
        }
    };
    if !Path::new(&python).exists() {
        run("python3".to_owned(), vec!["-m".into(), "venv".into(), venv.into()]).await;
    }
    let mut args: Vec<String> = ["-m", "pip", "install", "--quiet"].map(String::from).into();
    args.extend(specs.iter().cloned());
    run(python.clone(), args).await;
    python
}
