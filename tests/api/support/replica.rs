//! A primary and a streaming replica of it (`pg_basebackup` and a hot standby), each an embedded
//! cluster of its own in a temporary directory, so a test can pause, lag and stop the replica
//! without touching the shared test cluster. Both are stopped when the pair is dropped.

use std::{os::unix::fs::PermissionsExt, time::Duration};

use payymo::db::{self, embedded::EmbeddedPostgres};
use sqlx::{PgPool, postgres::PgConnectOptions};

use super::{APP_PASSWORD, APP_ROLE, process::database_url};

const DATABASE: &str = "payymo";

/// A cluster stopped when dropped, even when the test panics half-way through setting up.
struct Stopping(EmbeddedPostgres);

impl Drop for Stopping {
    fn drop(&mut self) {
        let _ = self.0.stop_immediately();
    }
}

pub struct ReplicaPair {
    // Declared standby first: dropped (stopped) before the primary it streams from.
    standby: Stopping,
    primary: Stopping,
    /// The primary's database as the app role, for `TestApp::spawn_with`.
    pub primary_options: PgConnectOptions,
    /// The standby's database as the app role, for `DATABASE_READ_URL`.
    pub read_url: String,
    dir: tempfile::TempDir,
}

impl ReplicaPair {
    /// A migrated primary and a replica that has caught up with it.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // The clusters run as an unprivileged user when the tests run as root: let it in.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let primary = Stopping(EmbeddedPostgres::start(&dir.path().join("primary")).await.expect("the primary starts"));
        let admin = primary.0.connect_options("postgres");
        db::ensure_role(&admin, APP_ROLE, Some(APP_PASSWORD)).await.unwrap();
        db::create_database_if_missing(&admin, DATABASE, Some(APP_ROLE)).await.unwrap();
        db::allow_indexed_search(&admin.clone().database(DATABASE)).await.unwrap();
        let primary_options = primary.0.connect_options(DATABASE).username(APP_ROLE).password(APP_PASSWORD);
        let pool = PgPool::connect_with(primary_options.clone()).await.unwrap();
        db::MIGRATOR.run(&pool).await.expect("migrations apply");
        pool.close().await;
        let standby = Stopping(primary.0.start_standby(&dir.path().join("standby")).await.expect("the standby starts"));
        let replica_options = standby.0.connect_options(DATABASE).username(APP_ROLE);
        let read_url = database_url(&replica_options, APP_PASSWORD);
        let pair = Self { primary, standby, primary_options, read_url, dir };
        pair.wait_caught_up().await;
        pair
    }

    pub async fn primary_superuser(&self) -> PgPool {
        PgPool::connect_with(self.primary.0.connect_options(DATABASE)).await.unwrap()
    }

    pub async fn standby_superuser(&self) -> PgPool {
        PgPool::connect_with(self.standby.0.connect_options(DATABASE)).await.unwrap()
    }

    /// Stops replaying WAL on the standby: it keeps answering, with what it had.
    pub async fn pause_replay(&self) {
        sqlx::query("select pg_wal_replay_pause()").execute(&self.standby_superuser().await).await.unwrap();
    }

    pub async fn resume_replay(&self) {
        sqlx::query("select pg_wal_replay_resume()").execute(&self.standby_superuser().await).await.unwrap();
    }

    /// Waits (at most 30 s) until the standby has replayed what the primary has flushed.
    pub async fn wait_caught_up(&self) {
        let (primary, standby) = (self.primary_superuser().await, self.standby_superuser().await);
        let target: String =
            sqlx::query_scalar("select pg_current_wal_flush_lsn()::text").fetch_one(&primary).await.unwrap();
        for _ in 0..300 {
            let behind: bool = sqlx::query_scalar("select pg_last_wal_replay_lsn() < $1::pg_lsn")
                .bind(&target)
                .fetch_one(&standby)
                .await
                .unwrap();
            if !behind {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the standby did not replay up to {target} within 30 s");
    }

    /// Stops the standby at once, as a crash or a lost host would.
    pub fn stop_standby(&self) {
        self.standby.0.stop_immediately().expect("the standby stops");
    }

    /// Starts the stopped standby again on its data directory.
    pub async fn restart_standby(&mut self) {
        let restarted = self.primary.0.start_standby(&self.dir.path().join("standby")).await;
        // The old handle's drop would stop the restarted server (same data directory): forget it.
        std::mem::forget(std::mem::replace(&mut self.standby, Stopping(restarted.expect("the standby restarts"))));
    }
}
