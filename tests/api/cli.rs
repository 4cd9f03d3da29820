//! The `payymo` binary itself: configuration errors, the OpenAPI printer, and the embedded
//! default database a newcomer gets with nothing configured.

use std::{path::Path, time::Duration};

use tokio::process::Command;

use crate::support::{
    client,
    process::{Server, payymo, serve},
};

#[tokio::test]
async fn invalid_configuration_stops_start_up_with_one_line_naming_the_variable() {
    let output = payymo().args(["serve"]).env("PAYYMO_LISTEN", "localhost-8080").output().await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: invalid configuration: PAYYMO_LISTEN: invalid value \"localhost-8080\""),
        "{stderr}"
    );
}

#[tokio::test]
async fn openapi_prints_the_committed_document() {
    let output = payymo().arg("openapi").output().await.unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap(), payymo::http::openapi::spec_json());
}

/// The README's run command, as a newcomer has it: no DATABASE_URL, nothing running. The service
/// creates its own cluster, serves, and stops the cluster again on SIGTERM.
#[tokio::test]
async fn serve_runs_on_the_embedded_database_and_stops_it_on_sigterm() {
    let data_dir = tempfile::tempdir().unwrap();
    // Readable by the unprivileged database user under root, so the cluster lives (and is
    // deleted) inside it rather than in a fallback under the temp dir.
    std::fs::set_permissions(data_dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let data_dir_text = data_dir.path().to_string_lossy().into_owned();
    let Server { mut child, base } = serve(&[("PAYYMO_DATA_DIR", &data_dir_text)]).await;

    let ready = client().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let pid_file = cluster_dir(data_dir.path()).join("pgdata/postmaster.pid");
    assert!(pid_file.exists(), "the embedded cluster runs under the data dir");

    let status = Command::new("kill").args(["-TERM", &child.id().unwrap().to_string()]).status().await.unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(!pid_file.exists(), "the cluster is stopped with the service");

    // The cluster is reused by the next command, which applies migrations and stops it again.
    let migrate = payymo().arg("migrate").env("PAYYMO_DATA_DIR", data_dir.path()).output().await.unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    assert!(!String::from_utf8_lossy(&migrate.stderr).contains("initialising"), "the cluster was reused");
    assert!(!pid_file.exists());
}

fn cluster_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.canonicalize().unwrap().join("postgres")
}
