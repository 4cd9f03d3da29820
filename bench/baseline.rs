//! The benchmark baseline: the least a plain axum server has to do to answer the same requests as
//! `payymo`, with no middleware, no shared state and no logging. `bench/run` starts it next to the
//! real service and prints both figures side by side, so the ratio shows what our stack costs over
//! axum itself, on the same machine, at the same moment.
//!
//! Usage: `bench-baseline CASE HOST:PORT`, where CASE is one of [`CASES`]; each case serves only
//! the routes its benchmark needs. Prints `listening on http://ADDR` to stderr once bound, and
//! serves until killed.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use axum::{Json, Router, routing::get};
use serde::Serialize;

/// The cases this baseline serves, named as in `bench/run`.
const CASES: &[&str] = &["healthz"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let usage = || format!("usage: bench-baseline CASE HOST:PORT (CASE: {})", CASES.join(", "));
    let mut args = std::env::args().skip(1);
    let (Some(case), Some(addr), None) = (args.next(), args.next(), args.next()) else {
        bail!(usage());
    };
    let addr: SocketAddr = addr.parse().with_context(|| format!("invalid listen address {addr:?}"))?;
    let router = match case.as_str() {
        "healthz" => healthz(),
        other => bail!("unknown case {other:?}; {}", usage()),
    };
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot bind {addr}"))?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}

/// Same body as `payymo`'s liveness route: a serialised struct, `{"status":"ok"}`.
#[derive(Serialize)]
struct Health {
    status: &'static str,
}

fn healthz() -> Router {
    Router::new().route("/healthz", get(|| async { Json(Health { status: "ok" }) }))
}
