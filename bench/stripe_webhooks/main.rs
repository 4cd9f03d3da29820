//! Inbound Stripe webhooks, measured from Stripe's side: a generator that signs distinct events
//! as Stripe signs them and sends them to `POST /api/v1/stripe/webhooks/{connection_id}`.
//!
//! - `bench-stripe-webhooks connect PAYYMO_URL API_KEY STRIPE_SIM_URL`: connects the API key's
//!   tenant to the simulator's default account (`PUT /api/v1/stripe/connection` with
//!   `sk_test_sandbox_payymo`), then reads the signing secret of the endpoint Payymo registered
//!   from the simulator's control API (`GET /_stripe/webhooks/endpoints`). Prints
//!   `connection sc_… whsec_…`.
//! - `bench-stripe-webhooks open URL SECRET RATE SECONDS [CONNECTIONS [WARMUP]]`: open loop
//!   ([`load`]): RATE × (WARMUP + SECONDS) distinct `charge.succeeded` events ([`events`]),
//!   built and signed before the clock starts, sent at RATE per second over CONNECTIONS (64)
//!   keep-alive connections, each timed from when it was due; the first WARMUP (2) seconds are not
//!   counted. Prints `req/s p50_ms p99_ms p99.9_ms problems` (the format of `bench/run`'s
//!   open-loop runs), details on stderr; req/s counts the 2xx answers that arrived in the
//!   counted seconds. A server that falls behind is given 5 s more, then the requests still
//!   unsent count as answered at that cut-off.
//! - `bench-stripe-webhooks capacity …`: the same at a rate above what the server can take,
//!   stopped when the counted seconds end: req/s is its throughput.
//! - `bench-stripe-webhooks crash PAYYMO_BIN DATA_DIR [EVENTS]`: kill -9 of `payymo serve`
//!   while EVENTS (10,000) real payments' events arrive ([`crash`]); exits 1 on any loss or
//!   duplicate.

mod check;
mod crash;
mod deliver;
mod events;
mod load;
mod processes;
mod setup;

use anyhow::{Context, bail};

/// The allocator `payymo` runs with (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: bench-stripe-webhooks connect PAYYMO_URL API_KEY STRIPE_SIM_URL
       bench-stripe-webhooks open|capacity URL SECRET RATE SECONDS [CONNECTIONS [WARMUP]]
       bench-stripe-webhooks crash PAYYMO_BIN DATA_DIR [EVENTS]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let number = |text: &str, what: &str| text.parse::<u64>().with_context(|| format!("{what}: not a number: {text}"));
    match args.as_slice() {
        ["connect", payymo, key, sim] => {
            let (connection, secret) = setup::connect(payymo, key, sim).await?;
            println!("connection {connection} {secret}");
        }
        [mode @ ("open" | "capacity"), url, secret, rate, seconds, rest @ ..] => {
            let connections = rest.first().map(|c| number(c, "CONNECTIONS")).transpose()?.unwrap_or(64);
            let warmup = rest.get(1).map(|w| number(w, "WARMUP")).transpose()?.unwrap_or(2);
            let run = load::Run {
                url: (*url).to_owned(),
                secret: (*secret).to_owned(),
                rate: number(rate, "RATE")?,
                seconds: number(seconds, "SECONDS")?,
                warmup,
                connections: connections.max(1) as usize,
                capacity: *mode == "capacity",
            };
            let report = load::open_loop(&run).await?;
            println!("{}", report.line());
        }
        ["crash", bin, data, rest @ ..] => {
            let events = rest.first().map(|e| number(e, "EVENTS")).transpose()?.unwrap_or(10_000);
            let ok = crash::run(bin, data, events as usize).await?;
            if !ok {
                std::process::exit(1);
            }
        }
        _ => bail!(USAGE),
    }
    Ok(())
}
