//! A webhook receiver on a loopback port: records every request it gets and answers as the test
//! scripts it (a status, a header, or hanging past the sender's timeout).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// A status with one extra header (e.g. `Retry-After`, `Location`).
    WithHeader(u16, &'static str, String),
    /// Answers nothing for this long.
    Hang(Duration),
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    arrived: Notify,
}

pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
    shutdown: CancellationToken,
}

impl Receiver {
    /// A receiver answering 200 to everything, until scripted otherwise.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let inner = Arc::new(Inner::default());
        let shutdown = CancellationToken::new();
        let router = Router::new().fallback(receive).with_state(inner.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await.ok();
        });
        Self { url, inner, shutdown }
    }

    /// The next requests get these answers, in order; later ones get the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.script.lock().unwrap().extend(replies);
    }

    /// What requests get once the script is used up (200 unless set).
    pub fn answer_always(&self, reply: Reply) {
        *self.inner.default.lock().unwrap() = Some(reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// How many requests arrived, without copying them (for tests that take thousands).
    pub fn count(&self) -> usize {
        self.inner.received.lock().unwrap().len()
    }

    /// Waits until at least `count` requests arrived, or panics after `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let arrived = self.inner.arrived.notified();
            // Counted first: copying thousands of requests on every arrival would slow the
            // receiver down more than anything it measures.
            let arrivals = self.count();
            if arrivals >= count {
                return self.received();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "expected {count} deliveries within {within:?}, got {arrivals}");
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), arrived).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    inner.received.lock().unwrap().push(Received { headers, body, at: Instant::now() });
    inner.arrived.notify_waiters();
    let reply = inner.script.lock().unwrap().pop_front().or_else(|| inner.default.lock().unwrap().clone());
    match reply.unwrap_or(Reply::Status(200)) {
        Reply::Status(status) => (StatusCode::from_u16(status).unwrap(), "ok").into_response(),
        Reply::WithHeader(status, name, value) => {
            (StatusCode::from_u16(status).unwrap(), [(name, value)], "see header").into_response()
        }
        Reply::Hang(duration) => {
            tokio::time::sleep(duration).await;
            (StatusCode::OK, "too late").into_response()
        }
    }
}
