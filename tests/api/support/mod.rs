//! Test support: the real server on a free port, over a fresh database per test.
//!
//! Databases come from `DATABASE_URL` when set, otherwise from the embedded cluster in
//! `.payymo/test`. A template database is migrated once per migration set (coordinated across
//! processes with an advisory lock) and each test clones it, which takes milliseconds.

#![allow(dead_code)]

pub mod bank;
pub mod db_proxy;
pub mod ids;
pub mod panics;
pub mod process;
pub mod receiver;
pub mod replica;
pub mod tenants;

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use payymo::{
    app::Application,
    config::Config,
    db::{self, embedded::EmbeddedPostgres},
};
use sqlx::{Connection, PgConnection, PgPool, postgres::PgConnectOptions};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// Test databases older than this are dropped when a test run starts.
const STALE_AFTER: Duration = Duration::from_secs(2 * 3600);
/// The ordinary role tests connect as, so row-level security applies as it does in production.
pub const APP_ROLE: &str = "payymo_app";
pub const APP_PASSWORD: &str = "payymo_app";

/// Where test databases are created, and the template they are cloned from.
pub struct TestCluster {
    /// Options for the maintenance database (`postgres`), as the superuser.
    maintenance: PgConnectOptions,
    template: String,
    /// The role test databases belong to and apps connect as, when it could be created.
    app_role: Option<&'static str>,
}

static CLUSTER: OnceCell<TestCluster> = OnceCell::const_new();

impl TestCluster {
    pub async fn get() -> &'static TestCluster {
        CLUSTER.get_or_init(Self::init).await
    }

    async fn init() -> TestCluster {
        let maintenance = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                url.parse::<PgConnectOptions>().expect("DATABASE_URL parses").database("postgres")
            }
            _ => {
                let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".payymo/test");
                let cluster = EmbeddedPostgres::start(&dir).await.expect("the embedded test cluster starts");
                // Left running on purpose: the next test run reuses it.
                cluster.connect_options("postgres")
            }
        };
        let app_role = match db::ensure_role(&maintenance, APP_ROLE, Some(APP_PASSWORD)).await {
            Ok(()) => Some(APP_ROLE),
            Err(error) => {
                eprintln!("cannot create role {APP_ROLE} ({error}); tests connect as the DATABASE_URL role");
                None
            }
        };
        let owner = app_role.map(|r| format!(" owner {r}")).unwrap_or_default();
        // Named after the migrations and the owning role: a change to either builds a new one.
        let template = format!("payymo_tpl_{}_s1_{}", migrations_fingerprint(), app_role.unwrap_or("dburl"));
        let mut conn = PgConnection::connect_with(&maintenance).await.expect("connect to the maintenance database");
        sqlx::query("select pg_advisory_lock(7170001)").execute(&mut conn).await.expect("lock");
        let exists: bool = sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
            .bind(&template)
            .fetch_one(&mut conn)
            .await
            .expect("query pg_database");
        if !exists {
            let building = format!("{template}_building");
            sqlx::query(&format!("drop database if exists {} with (force)", db::quote_ident(&building)))
                .execute(&mut conn)
                .await
                .expect("drop half-built template");
            sqlx::query(&format!("create database {}{owner}", db::quote_ident(&building)))
                .execute(&mut conn)
                .await
                .expect("create template");
            let pool = PgPool::connect_with(as_app(&maintenance, app_role).database(&building))
                .await
                .expect("connect to template");
            db::MIGRATOR.run(&pool).await.expect("migrate the template");
            pool.close().await;
            if let Err(error) = db::allow_indexed_search(&maintenance.clone().database(&building)).await {
                eprintln!("free-text search stays unindexed in test databases ({error}); results are the same");
            }
            sqlx::query(&format!(
                "alter database {} rename to {}",
                db::quote_ident(&building),
                db::quote_ident(&template)
            ))
            .execute(&mut conn)
            .await
            .expect("publish template");
        }
        drop_stale_databases(&mut conn).await;
        sqlx::query("select pg_advisory_unlock(7170001)").execute(&mut conn).await.expect("unlock");
        conn.close().await.ok();
        TestCluster { maintenance, template, app_role }
    }

    /// Superuser options for a test database, for what a test must do behind the app's back
    /// (tamper with the audit log, bypass row-level security to set up a check).
    pub fn superuser(&self, database: &str) -> PgConnectOptions {
        self.maintenance.clone().database(database)
    }

    /// A new, migrated database of its own.
    pub async fn fresh_database(&self) -> PgConnectOptions {
        let name = format!("payymo_test_{}_{}", unix_now(), uuid::Uuid::new_v4().simple());
        self.create(&name, Some(&self.template)).await;
        as_app(&self.maintenance, self.app_role).database(&name)
    }

    /// A new database with no schema at all.
    pub async fn empty_database(&self) -> PgConnectOptions {
        let name = format!("payymo_test_{}_{}", unix_now(), uuid::Uuid::new_v4().simple());
        self.create(&name, None).await;
        as_app(&self.maintenance, self.app_role).database(&name)
    }

    async fn create(&self, name: &str, template: Option<&str>) {
        let mut conn =
            PgConnection::connect_with(&self.maintenance).await.expect("connect to the maintenance database");
        let owner = self.app_role.map(|r| format!(" owner {r}")).unwrap_or_default();
        let sql = match template {
            Some(t) => format!("create database {} template {}{owner}", db::quote_ident(name), db::quote_ident(t)),
            None => format!("create database {}{owner}", db::quote_ident(name)),
        };
        // Cloning fails while another session is connected to the template; that is brief.
        for attempt in 0.. {
            match sqlx::query(&sql).execute(&mut conn).await {
                Ok(_) => break,
                Err(e) if attempt < 50 && e.to_string().contains("being accessed by other users") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot create test database {name}: {e}"),
            }
        }
        conn.close().await.ok();
    }
}

fn as_app(maintenance: &PgConnectOptions, role: Option<&str>) -> PgConnectOptions {
    match role {
        Some(role) => maintenance.clone().username(role).password(APP_PASSWORD),
        None => maintenance.clone(),
    }
}

async fn drop_stale_databases(conn: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("select datname from pg_database where datname like 'payymo\\_test\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    let cutoff = unix_now().saturating_sub(STALE_AFTER.as_secs());
    for name in names {
        let created: u64 = name.split('_').nth(2).and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
        if created < cutoff {
            let _ = sqlx::query(&format!("drop database if exists {} with (force)", db::quote_ident(&name)))
                .execute(&mut *conn)
                .await;
        }
    }
}

fn migrations_fingerprint() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for m in db::MIGRATOR.iter() {
        for b in m.version.to_le_bytes().iter().chain(m.checksum.iter()) {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The configuration tests start from: a free port, defaults elsewhere.
pub fn test_config() -> Config {
    let mut config = Config::defaults();
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.shutdown_grace = Duration::from_secs(5);
    // Tests drain the job queue themselves (`TestApp::run_jobs`), so nothing runs behind their back.
    config.workers = false;
    // Webhook receivers in tests listen on loopback, which deliveries otherwise refuse.
    config.webhook_allowed_networks = vec!["127.0.0.0/8".parse().expect("network")];
    config
}

/// A running server and the database behind it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// Superuser options for this app's database (None when it is not a test database).
    pub superuser: Option<PgConnectOptions>,
    /// The test's own database, dropped with the app.
    database: Option<String>,
    pub db: PgPool,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub state: payymo::state::AppState,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Where the panic record stood when the server started (see [`panics`]).
    panic_mark: usize,
    /// Panics the test provokes on purpose, by part of their message.
    allowed_panics: std::sync::Mutex<Vec<String>>,
}

impl TestApp {
    /// The real application on a fresh, migrated database.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(test_config(), TestCluster::get().await.fresh_database().await).await
    }

    pub async fn spawn_with(config: Config, options: PgConnectOptions) -> TestApp {
        panics::install();
        let panic_mark = panics::mark();
        let database = options.get_database().filter(|name| name.starts_with("payymo_test_")).map(str::to_owned);
        let db = db::pool(options, &config);
        let app = Application::build(config, db.clone()).await.expect("the server binds");
        let addr = app.local_addr().expect("local address");
        let state = app.state().clone();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until(shutdown.clone()));
        let superuser = database.as_deref().and_then(|name| Some(CLUSTER.get()?.superuser(name)));
        TestApp {
            addr,
            superuser,
            database,
            db,
            client: client(),
            shutdown,
            state,
            server,
            panic_mark,
            allowed_panics: Default::default(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    /// A pool on this test's database as a superuser: sees every tenant's rows (RLS bypassed),
    /// for checking what the API may not show.
    pub async fn superuser_pool(&self) -> PgPool {
        PgPool::connect_with(self.superuser.clone().expect("a test database")).await.expect("superuser pool")
    }

    /// Lets a panic whose message contains `message` happen without failing the test: for tests
    /// that provoke one on purpose.
    pub fn allow_panic(&self, message: &str) {
        self.allowed_panics.lock().expect("not poisoned").push(message.to_owned());
    }

    /// Stops the server and waits for it to finish draining.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.shutdown.cancel();
        (&mut self.server).await.expect("server task")
    }
}

impl Drop for TestApp {
    /// Stops the server and drops the test's database, so runs do not pile databases up; then
    /// fails the test if the server panicked while it ran.
    fn drop(&mut self) {
        self.shutdown.cancel();
        let allowed = self.allowed_panics.lock().map(|a| a.clone()).unwrap_or_default();
        let panicked = panics::since(self.panic_mark, &allowed);
        self.drop_database();
        if !panicked.is_empty() && !std::thread::panicking() {
            panic!("the server panicked while this test ran:\n{}", panicked.join("\n"));
        }
    }
}

impl TestApp {
    fn drop_database(&mut self) {
        let (Some(name), Some(cluster)) = (self.database.take(), CLUSTER.get()) else { return };
        let maintenance = cluster.maintenance.clone();
        let label = name.clone();
        // Drop cannot await, and this runtime may be finishing: use a private one on its own thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let mut conn = PgConnection::connect_with(&maintenance).await?;
                sqlx::query(&format!("drop database if exists {} with (force)", db::quote_ident(&name)))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        });
        if let Ok(Err(error)) = dropped.join() {
            eprintln!("could not drop test database {label}: {error}");
        }
    }
}

/// An HTTP client that never goes through a proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("client")
}

/// Reads a JSON body, asserting the status (the body is shown when it differs).
pub async fn json_of(response: reqwest::Response, status: u16) -> serde_json::Value {
    let actual = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    assert_eq!(actual, status, "{body}");
    body
}

/// Reads a problem+json body, asserting the content type and the fields every problem carries.
pub async fn problem(response: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert_eq!(content_type, "application/problem+json");
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let body: serde_json::Value = response.json().await.expect("JSON body");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["request_id"], request_id.as_str(), "{body}");
    assert_eq!(body["type"], format!("/docs/errors#{code}"), "{body}");
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    assert!(body["retryable"].is_boolean(), "{body}");
    body
}
