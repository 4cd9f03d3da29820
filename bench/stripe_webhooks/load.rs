//! The open loop: request `i` is due at `start + i / rate` whatever happened to the others, and
//! is timed from then, not from when a connection was free to send it. When every connection is
//! busy the requests wait, and the wait counts in their latency, so a stall shows in the figures
//! of everything queued behind it (no coordinated omission, like oha's `--latency-correction`).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;

use crate::events::{self, Delivery};

/// One open-loop run.
pub struct Run {
    pub url: String,
    pub secret: String,
    /// Requests per second.
    pub rate: u64,
    /// Seconds counted.
    pub seconds: u64,
    /// Seconds sent first and not counted.
    pub warmup: u64,
    pub connections: usize,
    /// Saturation: stop sending when the counted seconds end, whatever is left (the throughput
    /// is what was answered in the window). Otherwise everything is sent, for at most
    /// [`GRACE`] more, and what could not be is counted as answered at the cut-off.
    pub capacity: bool,
}

/// How long a run at a fixed rate may overrun before the rest is given up.
const GRACE: Duration = Duration::from_secs(5);

/// What one request came to.
#[derive(Clone, Copy)]
struct Outcome {
    /// From when it was due until its answer, in microseconds.
    latency_us: u64,
    /// Since the start, when the answer came, in microseconds.
    done_us: u64,
    status: u16,
    duplicate: bool,
    counted: bool,
    /// Never sent: the run was cut off first.
    unsent: bool,
}

/// A run's figures.
pub struct Report {
    pub achieved: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub problems: Vec<String>,
}

impl Report {
    /// `req/s p50 p99 p99.9 problems`, as `bench/run`'s open-loop runs print them.
    pub fn line(&self) -> String {
        let problems = if self.problems.is_empty() { "-".to_owned() } else { self.problems.join("_") };
        format!("{:.2} {:.3} {:.3} {:.3} {problems}", self.achieved, self.p50_ms, self.p99_ms, self.p999_ms)
    }
}

/// Builds and signs the run's events, then sends them at the run's rate.
pub async fn open_loop(run: &Run) -> anyhow::Result<Report> {
    let total = run.rate * (run.warmup + run.seconds);
    let now = chrono::Utc::now().timestamp();
    let built = Instant::now();
    let prefix = events::fresh_prefix();
    let deliveries = events::charge_succeeded(&prefix, total, now)?;
    let signed: Vec<(Delivery, String)> = deliveries
        .into_iter()
        .map(|d| {
            let signature = events::signature(&run.secret, now, &d.body);
            (d, signature)
        })
        .collect();
    let bytes: usize = signed.iter().map(|(d, _)| d.body.len()).sum();
    eprintln!(
        "built and signed {total} distinct charge.succeeded events (evt_{prefix}…, {} bytes on average) in {:.2}s; \
         sending {}/s for {}s + {}s warm-up over {} connections to {}",
        bytes / signed.len().max(1),
        built.elapsed().as_secs_f64(),
        run.rate,
        run.seconds,
        run.warmup,
        run.connections,
        run.url
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(run.connections)
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()?;
    let signed = Arc::new(signed);
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(signed.len())));
    let interval_ns = 1_000_000_000 / run.rate.max(1);
    let counted_from = run.rate * run.warmup;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let window = Duration::from_secs(run.warmup + run.seconds);
    let cutoff = start + if run.capacity { window } else { window + GRACE };
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..run.connections {
        let (client, signed, next, outcomes, url) =
            (client.clone(), signed.clone(), next.clone(), outcomes.clone(), run.url.clone());
        workers.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((delivery, signature)) = signed.get(i) else { break };
                let due = start + Duration::from_nanos(interval_ns * i as u64);
                if due >= cutoff || tokio::time::Instant::now() >= cutoff {
                    mine.push(Outcome {
                        latency_us: cutoff.saturating_duration_since(due).as_micros() as u64,
                        done_us: cutoff.saturating_duration_since(start).as_micros() as u64,
                        status: 0,
                        duplicate: false,
                        counted: i as u64 >= counted_from && due < cutoff,
                        unsent: true,
                    });
                    continue;
                }
                tokio::time::sleep_until(due).await;
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json; charset=utf-8")
                    .header("user-agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
                    .header("stripe-signature", signature)
                    .body(delivery.body.clone())
                    .send()
                    .await;
                let (status, duplicate) = match answer {
                    Ok(answer) => {
                        let status = answer.status().as_u16();
                        let body = answer.bytes().await.unwrap_or_default();
                        (status, body.windows(16).any(|w| w == b"\"duplicate\":true"))
                    }
                    Err(_) => (0, false),
                };
                let done = tokio::time::Instant::now();
                mine.push(Outcome {
                    latency_us: done.saturating_duration_since(due).as_micros() as u64,
                    done_us: done.saturating_duration_since(start).as_micros() as u64,
                    status,
                    duplicate,
                    counted: i as u64 >= counted_from,
                    unsent: false,
                });
            }
            outcomes.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined.context("a sender task failed")?;
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(report(&outcomes, run))
}

fn report(outcomes: &[Outcome], run: &Run) -> Report {
    let counted: Vec<&Outcome> = outcomes.iter().filter(|o| o.counted).collect();
    let unsent = counted.iter().filter(|o| o.unsent).count();
    let errors = counted.iter().filter(|o| o.status == 0 && !o.unsent).count();
    let non_2xx = counted.iter().filter(|o| o.status != 0 && !(200..300).contains(&o.status)).count();
    let duplicates = outcomes.iter().filter(|o| o.duplicate).count();
    // Throughput: 2xx answers that arrived within the counted seconds.
    let window_us = run.warmup * 1_000_000..(run.warmup + run.seconds) * 1_000_000;
    let ok = outcomes.iter().filter(|o| (200..300).contains(&o.status) && window_us.contains(&o.done_us)).count();
    let achieved = ok as f64 / run.seconds.max(1) as f64;
    // A capacity run's unsent requests were never due to be answered in time; a fixed-rate
    // run's count as answered at the cut-off (a lower bound of their latency).
    let mut latencies: Vec<u64> =
        counted.iter().filter(|o| !(run.capacity && o.unsent)).map(|o| o.latency_us).collect();
    latencies.sort_unstable();
    let at = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index] as f64 / 1000.0
    };
    let mut problems = Vec::new();
    if non_2xx > 0 {
        problems.push(format!("non-2xx={non_2xx}"));
    }
    if errors > 0 {
        problems.push(format!("errors={errors}"));
    }
    if unsent > 0 && !run.capacity {
        eprintln!("{unsent} requests due in the counted seconds could not be sent before the cut-off");
    }
    if duplicates > 0 {
        problems.push(format!("duplicate-answers={duplicates}"));
    }
    let report = Report { achieved, p50_ms: at(0.5), p99_ms: at(0.99), p999_ms: at(0.999), problems };
    eprintln!(
        "{} requests ({} counted, {unsent} of them unsent at the cut-off): {non_2xx} non-2xx, {errors} failed; \
         {ok} 2xx in the counted {}s = {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        outcomes.len(),
        counted.len(),
        run.seconds,
        report.achieved,
        report.p50_ms,
        report.p99_ms,
        report.p999_ms,
        latencies.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    report
}
