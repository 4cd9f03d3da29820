//! The process's metrics in the Prometheus exposition format: HTTP requests, labelled by route
//! *template* (never the raw path, so ids cannot explode the series count), method and status,
//! and webhook delivery, which the dispatcher records.
//!
//! The registry belongs to the application state, not to a process-global, so two servers in one
//! process (as in the tests) keep their own figures.

use std::time::Duration;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// The route label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// A request being served; decrements the in-flight gauge when dropped (also on cancellation).
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The metrics of one server: its requests and its webhook deliveries.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RequestLabels, Histogram>,
    in_flight: Gauge,
    /// Webhook delivery metrics, in the same registry.
    pub webhooks: crate::webhooks::metrics::WebhookMetrics,
    /// Inbound Stripe deliveries refused for their signature.
    pub stripe_signature_failures: Counter,
    /// The read replica: reads by where they went, its lag and availability.
    pub reads: crate::db::replica::ReadMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        // 0.5 ms to ~16 s, doubling.
        let duration = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16))
        });
        let in_flight = Gauge::default();
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer an HTTP request", duration.clone());
        registry.register("http_requests_in_flight", "HTTP requests being served now", in_flight.clone());
        registry.register("payymo_build_info", "The running build", build);
        let webhooks = crate::webhooks::metrics::WebhookMetrics::register(&mut registry);
        let stripe_signature_failures = Counter::default();
        registry.register(
            "payymo_stripe_webhook_signature_failures",
            "Inbound Stripe webhook deliveries refused because their signature did not verify",
            stripe_signature_failures.clone(),
        );
        let reads = crate::db::replica::ReadMetrics::register(&mut registry);
        Self { registry, requests, duration, in_flight, webhooks, stripe_signature_failures, reads }
    }
}

impl Metrics {
    /// Counts a request in flight until the returned guard is dropped.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels { method: method.to_owned(), route: route.to_owned(), status };
        self.requests.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
