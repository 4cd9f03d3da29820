//! The `payymo` binary itself: configuration errors, the OpenAPI printer, and the embedded
//! default database a newcomer gets with nothing configured.

use std::{path::Path, process::Stdio, time::Duration};

use serde_json::Value;
use tokio::{io::AsyncWriteExt, process::Command};

use crate::support::{
    APP_PASSWORD, TestApp, TestCluster, client,
    process::{Server, database_url, payymo, serve},
    test_config,
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

/// The platform commands do what the admin API does: the tenant's audit log records each change
/// (as the platform, from the CLI), new members and keys are announced as events, and the key
/// printed works against the running service.
#[tokio::test]
async fn platform_commands_are_audited_and_announced_and_their_key_works() {
    let options = TestCluster::get().await.fresh_database().await;
    let app = TestApp::spawn_with(test_config(), options.clone()).await;
    let url = database_url(&options, APP_PASSWORD);
    let run = |args: &'static [&'static str], extra: Vec<String>, stdin: &'static str| {
        let url = url.clone();
        async move {
            let mut child = payymo()
                .args(args)
                .args(extra)
                .env("DATABASE_URL", url)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(stdin.as_bytes()).await.unwrap();
            let output = child.wait_with_output().await.unwrap();
            assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
            serde_json::from_slice::<Value>(&output.stdout).unwrap()
        }
    };

    let tenant =
        run(&["tenant", "create", "--name", "CLI Co", "--environment", "test", "--plan", "standard"], vec![], "").await;
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let key = run(
        &["api-key", "create", "--label", "first", "--scopes", "*"],
        vec!["--tenant".into(), tenant_id.clone()],
        "",
    )
    .await;
    let secret = key["secret"].as_str().unwrap();
    let added = run(
        &["user", "create", "--email", "ada@example.com", "--role", "owner"],
        vec!["--tenant".into(), tenant_id.clone()],
        "a long password here\n",
    )
    .await;
    assert_eq!(added["member"]["role"], "owner", "{added}");

    let get = |path: &str| app.client.get(app.url(path)).header("x-api-key", secret).send();
    let me: Value = get("/api/v1/me").await.unwrap().json().await.unwrap();
    assert_eq!(me["tenant_id"], tenant_id.as_str(), "{me}");

    let log: Value = get("/api/v1/audit_logs?limit=100").await.unwrap().json().await.unwrap();
    let mut actions: Vec<(String, String, String, bool)> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"].as_str().unwrap().starts_with("admin."))
        .map(|entry| {
            let text = |field: &str| entry[field].as_str().unwrap().to_owned();
            let via = entry["detail"]["via"].as_str().unwrap_or_default().to_owned();
            (text("action"), text("actor_type"), via, entry["request_id"].is_null())
        })
        .collect();
    actions.sort();
    let cli = |action: &str| (action.to_owned(), "platform_admin".to_owned(), "cli".to_owned(), true);
    assert_eq!(actions, [cli("admin.api_keys.create"), cli("admin.members.add"), cli("admin.tenants.create")], "{log}");
    let verified: Value = get("/api/v1/audit_logs/verify").await.unwrap().json().await.unwrap();
    assert_eq!(verified["valid"], true, "{verified}");

    for (event_type, field, id) in
        [("api_key.created", "id", &key["id"]), ("member.added", "user_id", &added["member"]["user_id"])]
    {
        let events: Value = get(&format!("/api/v1/events?type={event_type}")).await.unwrap().json().await.unwrap();
        let data = events["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{events}");
        assert_eq!(&data[0]["data"][field], id, "{events}");
    }
}

fn cluster_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.canonicalize().unwrap().join("postgres")
}
