//! The embedded default database: a private PostgreSQL cluster started from the machine's own
//! server binaries, so `payymo serve` and the test suite work with nothing configured.
//!
//! The cluster lives in `<data_dir>/postgres` (`pgdata/`, `run/` for the Unix socket, and
//! `postgres.log`), listens on no TCP port, and is reused across runs. PostgreSQL refuses to run as
//! root, so under root the server runs as an unprivileged system user (`postgres` when the machine
//! has one, otherwise a `payymo` user created for it). A file lock serialises concurrent starts
//! (several test processes, a service and a test run).

use std::{
    fs::{self, File},
    io,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Output},
};

use sqlx::postgres::PgConnectOptions;

/// The superuser the embedded cluster is initialised with (trust auth over its private socket).
const SUPERUSER: &str = "postgres";
/// Longest Unix socket path Linux accepts (`sun_path` is 108 bytes with the trailing NUL).
const MAX_SOCKET_PATH: usize = 107;

/// What went wrong starting the embedded cluster, phrased for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "DATABASE_URL is not set and no PostgreSQL server binaries (initdb, pg_ctl) were found on PATH, \
         via pg_config, or under /usr/lib/postgresql/*/bin. Either install PostgreSQL \
         (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql), \
         or set DATABASE_URL to an existing database, or run `docker compose up`."
    )]
    NoBinaries,
    #[error("embedded PostgreSQL: {0}")]
    Io(String),
    #[error("embedded PostgreSQL: `{command}` failed: {detail}")]
    Command { command: String, detail: String },
}

/// A running embedded cluster. Dropping it does not stop the server: call [`Self::stop`] (the
/// service does at shutdown) so that a cluster started by someone else is left alone.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    runner: Option<Runner>,
    /// True when this process started the server, and so should stop it.
    started_here: bool,
}

/// The unprivileged account the server runs as when we are root.
#[derive(Debug, Clone, Copy)]
struct Runner {
    uid: u32,
    gid: u32,
}

impl EmbeddedPostgres {
    /// Initialises the cluster if needed and starts it unless it is already running.
    pub async fn start(data_dir: &Path) -> Result<Self, EmbeddedError> {
        let data_dir = data_dir.to_path_buf();
        tokio::task::spawn_blocking(move || Self::start_blocking(&data_dir))
            .await
            .map_err(|e| EmbeddedError::Io(e.to_string()))?
    }

    fn start_blocking(data_dir: &Path) -> Result<Self, EmbeddedError> {
        let bin_dir = find_bin_dir().ok_or(EmbeddedError::NoBinaries)?;
        let root = cluster_root(data_dir)?;
        fs::create_dir_all(&root).map_err(|e| io_error("create", &root, e))?;
        let lock_path = root.join("start.lock");
        let lock = File::create(&lock_path).map_err(|e| io_error("create", &lock_path, e))?;
        lock.lock().map_err(|e| io_error("lock", &lock_path, e))?;

        let runner = if is_root() { Some(Runner::find_or_create()?) } else { None };
        let mut cluster =
            Self { bin_dir, pgdata: root.join("pgdata"), socket_dir: root.join("run"), runner, started_here: false };
        for dir in [&cluster.pgdata, &cluster.socket_dir] {
            fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
            cluster.hand_over(dir)?;
        }
        fs::set_permissions(&cluster.pgdata, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error("chmod", &cluster.pgdata, e))?;

        if !cluster.pgdata.join("PG_VERSION").exists() {
            cluster.init(&root)?;
        }
        if !cluster.is_running()? {
            cluster.run_pg_ctl(&root)?;
            cluster.started_here = true;
        }
        drop(lock);
        Ok(cluster)
    }

    /// Connection options for a database in this cluster, over its private socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new().socket(&self.socket_dir).username(SUPERUSER).database(database)
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Whether this process started the server (and so stops it at shutdown).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Stops the server with a fast shutdown if this process started it.
    pub async fn stop(self) -> Result<(), EmbeddedError> {
        if !self.started_here {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || {
            let pg_ctl = self.bin_dir.join("pg_ctl");
            self.run(Command::new(pg_ctl).arg("-D").arg(&self.pgdata).args(["-m", "fast", "-w", "stop"])).map(drop)
        })
        .await
        .map_err(|e| EmbeddedError::Io(e.to_string()))?
    }

    /// Makes and starts a streaming replica of this cluster under `data_dir` (`pg_basebackup`
    /// with a standby configuration, its own private socket, hot standby feedback on), or
    /// starts the one already there. For tests and local experiments with `DATABASE_READ_URL`.
    pub async fn start_standby(&self, data_dir: &Path) -> Result<Self, EmbeddedError> {
        let (bin_dir, primary_socket, runner) = (self.bin_dir.clone(), self.socket_dir.clone(), self.runner);
        let data_dir = data_dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let root = cluster_root(&data_dir)?;
            fs::create_dir_all(&root).map_err(|e| io_error("create", &root, e))?;
            let mut standby = Self {
                bin_dir,
                pgdata: root.join("pgdata"),
                socket_dir: root.join("run"),
                runner,
                started_here: false,
            };
            fs::create_dir_all(&standby.socket_dir).map_err(|e| io_error("create", &standby.socket_dir, e))?;
            standby.hand_over(&root)?;
            standby.hand_over(&standby.socket_dir)?;
            if !standby.pgdata.join("PG_VERSION").exists() {
                standby.run(
                    Command::new(standby.bin_dir.join("pg_basebackup"))
                        .arg("-D")
                        .arg(&standby.pgdata)
                        .arg("-h")
                        .arg(&primary_socket)
                        .args(["-U", SUPERUSER, "-X", "stream", "-R", "-c", "fast"])
                        .current_dir(&root),
                )?;
                let settings = format!(
                    "\n# payymo embedded standby\nunix_socket_directories = '{}'\nhot_standby_feedback = on\n",
                    standby.socket_dir.display()
                );
                let conf = standby.pgdata.join("postgresql.conf");
                let mut text = fs::read_to_string(&conf).map_err(|e| io_error("read", &conf, e))?;
                text.push_str(&settings);
                fs::write(&conf, text).map_err(|e| io_error("write", &conf, e))?;
            }
            if !standby.is_running()? {
                standby.run_pg_ctl(&root)?;
                standby.started_here = true;
            }
            Ok(standby)
        })
        .await
        .map_err(|e| EmbeddedError::Io(e.to_string()))?
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`), whoever started it, and waits; for
    /// tests that simulate an outage or clean up after themselves, from any context (it blocks).
    pub fn stop_immediately(&self) -> Result<(), EmbeddedError> {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        self.run(Command::new(pg_ctl).arg("-D").arg(&self.pgdata).args(["-m", "immediate", "-w", "stop"])).map(drop)
    }

    fn init(&self, root: &Path) -> Result<(), EmbeddedError> {
        tracing::info!(pgdata = %self.pgdata.display(), "initialising the embedded PostgreSQL cluster");
        self.run(
            Command::new(self.bin_dir.join("initdb"))
                .arg("-D")
                .arg(&self.pgdata)
                .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"])
                .current_dir(root),
        )?;
        // Private socket only; enough connections for a parallel test suite plus a service.
        let settings = format!(
            "\n# payymo embedded cluster\nlisten_addresses = ''\nunix_socket_directories = '{}'\nmax_connections = 300\n",
            self.socket_dir.display()
        );
        let conf = self.pgdata.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).map_err(|e| io_error("read", &conf, e))?;
        text.push_str(&settings);
        fs::write(&conf, text).map_err(|e| io_error("write", &conf, e))
    }

    fn run_pg_ctl(&self, root: &Path) -> Result<(), EmbeddedError> {
        tracing::info!(socket = %self.socket_dir.display(), "starting the embedded PostgreSQL cluster");
        let log = root.join("postgres.log");
        if !log.exists() {
            File::create(&log).map_err(|e| io_error("create", &log, e))?;
        }
        self.hand_over(&log)?;
        self.run(
            Command::new(self.bin_dir.join("pg_ctl"))
                .arg("-D")
                .arg(&self.pgdata)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "start"])
                .current_dir(root),
        )
        .map(drop)
    }

    fn is_running(&self) -> Result<bool, EmbeddedError> {
        let output =
            self.command(Command::new(self.bin_dir.join("pg_ctl")).arg("-D").arg(&self.pgdata).arg("status"))?;
        // pg_ctl status: 0 running, 3 not running, 4 no accessible data directory.
        Ok(output.status.success())
    }

    /// Gives a path to the unprivileged runner, when there is one.
    fn hand_over(&self, path: &Path) -> Result<(), EmbeddedError> {
        if let Some(runner) = self.runner {
            std::os::unix::fs::chown(path, Some(runner.uid), Some(runner.gid))
                .map_err(|e| io_error("chown", path, e))?;
        }
        Ok(())
    }

    fn command(&self, command: &mut Command) -> Result<Output, EmbeddedError> {
        if let Some(runner) = self.runner {
            command.uid(runner.uid).gid(runner.gid);
        }
        // Keep the parent's locale out of initdb; the server is told what it needs explicitly.
        command.env("LC_ALL", "C").env_remove("PGDATA");
        command.output().map_err(|e| EmbeddedError::Command { command: describe(command), detail: e.to_string() })
    }

    fn run(&self, command: &mut Command) -> Result<Output, EmbeddedError> {
        let output = self.command(command)?;
        if output.status.success() {
            return Ok(output);
        }
        let detail = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let detail = if detail.is_empty() { String::from_utf8_lossy(&output.stdout).trim().to_owned() } else { detail };
        Err(EmbeddedError::Command {
            command: describe(command),
            detail: format!(
                "{} ({}); see {}/postgres.log",
                detail,
                output.status,
                self.pgdata.parent().unwrap_or(&self.pgdata).display()
            ),
        })
    }
}

impl Runner {
    /// The `postgres` account when it exists, else a `payymo` system account, created if needed.
    fn find_or_create() -> Result<Self, EmbeddedError> {
        for name in ["postgres", "payymo"] {
            if let Some(runner) = Self::lookup(name) {
                return Ok(runner);
            }
        }
        let status = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "payymo"])
            .status()
            .map_err(|e| {
                EmbeddedError::Io(format!("running as root and no `postgres` user exists; useradd failed: {e}"))
            })?;
        if !status.success() {
            return Err(EmbeddedError::Io(
                "running as root and no `postgres` user exists; `useradd payymo` failed".into(),
            ));
        }
        Self::lookup("payymo").ok_or_else(|| EmbeddedError::Io("user `payymo` missing after useradd".into()))
    }

    fn lookup(name: &str) -> Option<Self> {
        let passwd = fs::read_to_string("/etc/passwd").ok()?;
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() >= 4 && fields[0] == name)
                .then(|| Some(Self { uid: fields[2].parse().ok()?, gid: fields[3].parse().ok()? }))?
        })
    }
}

/// Where the cluster lives: `<data_dir>/postgres`, unless the unprivileged runner could not reach it
/// (a home directory closed to others) or the socket path would be too long; then a directory
/// under the system temp dir, named after the data dir so it is still reused.
fn cluster_root(data_dir: &Path) -> Result<PathBuf, EmbeddedError> {
    fs::create_dir_all(data_dir).map_err(|e| io_error("create", data_dir, e))?;
    let data_dir = fs::canonicalize(data_dir).map_err(|e| io_error("resolve", data_dir, e))?;
    let preferred = data_dir.join("postgres");
    let socket_len = preferred.join("run/.s.PGSQL.5432").as_os_str().len();
    if socket_len <= MAX_SOCKET_PATH && (!is_root() || traversable_by_others(&data_dir)) {
        return Ok(preferred);
    }
    let fallback =
        std::env::temp_dir().join(format!("payymo-pg-{:016x}", fnv1a(data_dir.as_os_str().as_encoded_bytes())));
    tracing::warn!(
        data_dir = %data_dir.display(),
        cluster = %fallback.display(),
        "the embedded cluster cannot live under the data dir (socket path too long, or not reachable by the unprivileged postgres user); using the temp dir instead"
    );
    Ok(fallback)
}

fn traversable_by_others(dir: &Path) -> bool {
    dir.ancestors().all(|d| fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// Finds a directory holding `initdb`, `pg_ctl` and `postgres`.
fn find_bin_dir() -> Option<PathBuf> {
    let has_all = |dir: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|b| dir.join(b).is_file());
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    for dir in on_path {
        // Debian links only some binaries into PATH; follow the link to the real bin dir.
        if let Ok(real) = fs::canonicalize(dir.join("initdb"))
            && let Some(parent) = real.parent()
            && has_all(parent)
        {
            return Some(parent.to_path_buf());
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_all(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, dir)| has_all(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

fn is_root() -> bool {
    // The effective uid, read without libc: /proc/self/status lists "Uid: real effective ...".
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn describe(command: &Command) -> String {
    let program = Path::new(command.get_program()).file_name().unwrap_or_default().to_string_lossy().into_owned();
    let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    format!("{program} {}", args.join(" "))
}

fn io_error(action: &str, path: &Path, error: io::Error) -> EmbeddedError {
    EmbeddedError::Io(format!("cannot {action} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_name_is_stable_per_data_dir() {
        assert_eq!(fnv1a(b"/a/.payymo"), fnv1a(b"/a/.payymo"));
        assert_ne!(fnv1a(b"/a/.payymo"), fnv1a(b"/b/.payymo"));
    }

    #[test]
    fn long_data_dirs_move_the_cluster_to_the_temp_dir() {
        let base = tempfile::tempdir().unwrap();
        let deep = base.path().join("x".repeat(120));
        let root = cluster_root(&deep).unwrap();
        assert!(root.starts_with(std::env::temp_dir()));
        assert!(root.join("run/.s.PGSQL.5432").as_os_str().len() <= MAX_SOCKET_PATH);
    }
}
