//! The crash run's deliveries: every event sent signed (at the moment of sending, as Stripe
//! signs each attempt) at a fixed rate by concurrent senders; `payymo serve` killed with SIGKILL
//! once half have been answered and started again at once while the senders go on; then every
//! delivery not answered 2xx sent again, as Stripe retries, until each is.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU16, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::bail;
use tokio::process::Child;

use crate::{events, events::Delivery, processes::Processes};

/// Deliveries sent per second in the first pass.
const RATE: u64 = 1_000;
/// Senders at once.
const SENDERS: usize = 32;
/// Rounds of retries after the first pass, half a second apart.
const RETRY_ROUNDS: usize = 20;

/// What to kill and how to start it again.
pub struct Restart<'a> {
    pub procs: &'a Processes,
    pub serve: &'a mut Child,
    pub port: u16,
    pub sim: &'a str,
}

/// How the deliveries went.
pub struct Outcome {
    pub sent: usize,
    /// Answered 2xx before the kill.
    pub acked_before_kill: usize,
    /// Not answered 2xx in the first pass (refused, cut off, 5xx), sent again later.
    pub failed_first_pass: usize,
    /// Deliveries sent again, all rounds.
    pub retried: usize,
    /// 2xx answers saying `duplicate: true` (the event was kept before: a retry of a delivery
    /// whose answer the kill cut off).
    pub duplicate_answers: usize,
    /// Event ids answered 2xx, at the end.
    pub acked: HashSet<String>,
    pub restarted: Instant,
    pub restart_took: Duration,
    pub delivered: Instant,
}

/// Sends every delivery to `url`, kills and restarts `payymo serve` half-way, retries.
pub async fn deliver(
    url: &str,
    secret: &str,
    deliveries: &[Delivery],
    restart: Restart<'_>,
) -> anyhow::Result<Outcome> {
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build()?;
    let status: Arc<Vec<AtomicU16>> = Arc::new(deliveries.iter().map(|_| AtomicU16::new(0)).collect());
    let duplicates = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let all: Vec<usize> = (0..deliveries.len()).collect();
    let shared =
        Shared { http, url, secret, deliveries, status: &status, duplicates: &duplicates, answered: &answered };
    let first = shared.send_all(&all, RATE);
    let kill = async {
        while answered.load(Ordering::Relaxed) < deliveries.len() / 2 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        restart.serve.start_kill()?;
        restart.serve.wait().await?;
        let acked_before_kill = status.iter().filter(|s| is_2xx(s.load(Ordering::Relaxed))).count();
        let killed = Instant::now();
        eprintln!("kill -9 of payymo serve after {acked_before_kill} deliveries answered 2xx; starting it again");
        *restart.serve = restart.procs.serve(restart.port, restart.sim).await?;
        eprintln!("payymo serve answers again after {:.2}s", killed.elapsed().as_secs_f64());
        anyhow::Ok((acked_before_kill, Instant::now(), killed.elapsed()))
    };
    let ((), killed) = tokio::join!(first, kill);
    let (acked_before_kill, restarted, restart_took) = killed?;
    let mut failed = not_acked(&status);
    let failed_first_pass = failed.len();
    let mut retried = 0;
    for _ in 0..RETRY_ROUNDS {
        if failed.is_empty() {
            break;
        }
        retried += failed.len();
        shared.send_all(&failed, 0).await;
        failed = not_acked(&status);
        if !failed.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    if !failed.is_empty() {
        bail!("{} deliveries still not answered 2xx after {RETRY_ROUNDS} rounds of retries", failed.len());
    }
    let acked = deliveries.iter().map(|d| d.id.clone()).collect();
    Ok(Outcome {
        sent: deliveries.len(),
        acked_before_kill,
        failed_first_pass,
        retried,
        duplicate_answers: duplicates.load(Ordering::Relaxed),
        acked,
        restarted,
        restart_took,
        delivered: Instant::now(),
    })
}

fn is_2xx(status: u16) -> bool {
    (200..300).contains(&status)
}

fn not_acked(status: &[AtomicU16]) -> Vec<usize> {
    (0..status.len()).filter(|&i| !is_2xx(status[i].load(Ordering::Relaxed))).collect()
}

struct Shared<'a> {
    http: reqwest::Client,
    url: &'a str,
    secret: &'a str,
    deliveries: &'a [Delivery],
    status: &'a [AtomicU16],
    duplicates: &'a AtomicUsize,
    answered: &'a AtomicUsize,
}

impl Shared<'_> {
    /// Sends the deliveries at `indices` with [`SENDERS`] at once, at `rate` per second (0: as
    /// fast as they are answered), recording each answer's status.
    async fn send_all(&self, indices: &[usize], rate: u64) {
        let next = AtomicUsize::new(0);
        let start = tokio::time::Instant::now();
        let sender = || async {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = indices.get(n) else { return };
                if let Some(interval_ns) = 1_000_000_000u64.checked_div(rate) {
                    tokio::time::sleep_until(start + Duration::from_nanos(interval_ns * n as u64)).await;
                }
                let delivery = &self.deliveries[i];
                let t = chrono::Utc::now().timestamp();
                let answer = self
                    .http
                    .post(self.url)
                    .header("content-type", "application/json; charset=utf-8")
                    .header("stripe-signature", events::signature(self.secret, t, &delivery.body))
                    .body(delivery.body.clone())
                    .send()
                    .await;
                let code = match answer {
                    Ok(answer) => {
                        let code = answer.status().as_u16();
                        let body = answer.bytes().await.unwrap_or_default();
                        if is_2xx(code) && body.windows(16).any(|w| w == b"\"duplicate\":true") {
                            self.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        code
                    }
                    Err(_) => 0,
                };
                self.status[i].store(code, Ordering::Relaxed);
                self.answered.fetch_add(1, Ordering::Relaxed);
            }
        };
        futures_util::future::join_all((0..SENDERS).map(|_| sender())).await;
    }
}
