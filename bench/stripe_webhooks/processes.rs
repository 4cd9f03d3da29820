//! The processes of the crash run: the Stripe simulator on its own (so it outlives `payymo
//! serve`), `payymo serve` pointed at it, and payymo's CLI, each as a real child process.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::process::{Child, Command};

/// The premium plan's limit out of reach, as in `bench/run`.
const RATE_LIMITS: &str = "free=60/1m,standard=600/1m,premium=1000000000/1m";

/// A loopback port nothing listens on now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where the crash run's programs live and write.
pub struct Processes {
    pub bin: PathBuf,
    pub data: PathBuf,
}

impl Processes {
    fn log(&self, name: &str) -> anyhow::Result<Stdio> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(self.data.join(format!("{name}.log")))?;
        Ok(Stdio::from(file))
    }

    /// `payymo sandbox --only stripe --stripe-listen 127.0.0.1:PORT`, ready.
    pub async fn simulator(&self, port: u16) -> anyhow::Result<Child> {
        let child = Command::new(&self.bin)
            .args(["sandbox", "--only", "stripe", "--stripe-listen", &format!("127.0.0.1:{port}")])
            .env("PAYYMO_LOG", "warn")
            .current_dir(&self.data)
            .stdout(self.log("stripe-sim")?)
            .stderr(self.log("stripe-sim")?)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start payymo sandbox")?;
        wait_ready(&format!("http://127.0.0.1:{port}/_stripe/clock"), Duration::from_secs(30)).await?;
        Ok(child)
    }

    /// `payymo serve` on `port` with its data in the data dir (an embedded cluster unless
    /// `DATABASE_URL` is set), its Stripe simulator at `sim`, ready.
    pub async fn serve(&self, port: u16, sim: &str) -> anyhow::Result<Child> {
        let child = Command::new(&self.bin)
            .arg("serve")
            .env("PAYYMO_LISTEN", format!("127.0.0.1:{port}"))
            .env("PAYYMO_DATA_DIR", &self.data)
            .env("PAYYMO_LOG", "warn")
            .env("PAYYMO_LOG_FORMAT", "text")
            .env("PAYYMO_SHUTDOWN_GRACE", "5s")
            .env("PAYYMO_RATE_LIMITS", RATE_LIMITS)
            .env("PAYYMO_STRIPE_SANDBOX_URL", sim)
            .current_dir(&self.data)
            .stdout(self.log("payymo")?)
            .stderr(self.log("payymo")?)
            .spawn()
            .context("cannot start payymo serve")?;
        wait_ready(&format!("http://127.0.0.1:{port}/healthz"), Duration::from_secs(60)).await?;
        Ok(child)
    }

    /// A payymo CLI command against the same data dir; its JSON output.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<Value> {
        let out = Command::new(&self.bin)
            .args(args)
            .env("PAYYMO_DATA_DIR", &self.data)
            .env("PAYYMO_LOG", "warn")
            .current_dir(&self.data)
            .stderr(self.log("cli")?)
            .output()
            .await?;
        if !out.status.success() {
            bail!("payymo {} failed ({}); see {}", args.join(" "), out.status, self.data.join("cli.log").display());
        }
        serde_json::from_slice(&out.stdout).with_context(|| format!("payymo {}: not JSON", args.join(" ")))
    }

    /// The socket directory of the embedded cluster, when there is one.
    pub fn socket_dir(&self) -> PathBuf {
        self.data.join("postgres").join("run")
    }

    /// Stops the embedded cluster a killed `payymo serve` left running (a restarted one reuses
    /// it and so does not stop it on exit).
    pub async fn stop_cluster(&self) {
        let pidfile = self.data.join("postgres").join("pgdata").join("postmaster.pid");
        let Ok(text) = std::fs::read_to_string(&pidfile) else { return };
        let Some(pid) = text.lines().next().filter(|p| p.chars().all(|c| c.is_ascii_digit())) else { return };
        let _ = Command::new("kill").args(["-INT", pid]).status().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while pidfile.exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// SIGTERM, then waits (payymo stops the cluster it started on the way out).
pub async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
}

/// Waits until `url` answers 2xx.
pub async fn wait_ready(url: &str, limit: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build()?;
    let deadline = Instant::now() + limit;
    loop {
        if http.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer within {}s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
