//! What webhook receivers are promised, checked from their side: deliveries verify with the public
//! libraries they use (`standardwebhooks`, Stripe's), also across secret rotations; a server killed
//! in the middle of a burst delivers every event after a restart, resending at most what it had in
//! flight; and a receiver that hangs slows only its own deliveries.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::{process::Command, sync::OnceCell};

use crate::{
    support::{
        APP_PASSWORD, TestApp, TestCluster,
        process::{database_url, serve},
        receiver::{Received, Receiver, Reply},
        tenants::TestTenant,
        test_config,
    },
    webhooks::{create_endpoint, dispatch, get, verifies, wait_for_status, webhook_app},
};

#[path = "../conformance/python.rs"]
mod python;

/// The verifying libraries, pinned: what receivers install from PyPI.
const STANDARDWEBHOOKS: &str = "1.1.0";
const STRIPE: &str = "16.1.0";

/// Checks the deliveries listed in a manifest (argv[1]) three ways: with `standardwebhooks`, with
/// `stripe` and by hand. Each must verify with every secret in its `accept` list, and neither with
/// a secret in its `reject` list nor, with any secret, once its body is tampered with.
const VERIFY_PY: &str = r#"
import base64, hashlib, hmac, json, os, sys

import standardwebhooks
import stripe
from standardwebhooks.webhooks import WebhookVerificationError

manifest = sys.argv[1]
with open(manifest, encoding="utf-8") as f:
    cases = json.load(f)


def by_hand(body, headers, secret):
    key = base64.b64decode(secret[len("whsec_"):])
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    standard = "v1," + base64.b64encode(mac).decode() in headers["webhook-signature"].split(" ")
    parts = headers["x-webhook-signature"].split(",")
    t = [p[2:] for p in parts if p.startswith("t=")]
    if len(t) != 1 or t[0] != timestamp:
        return False
    mac = hmac.new(secret.encode(), f"{t[0]}.".encode() + body, hashlib.sha256).hexdigest()
    return standard and any(hmac.compare_digest(mac, p[3:]) for p in parts if p.startswith("v1="))


def verdicts(body, headers, secret):
    """Whether each check accepts; any exception but a verification error fails the script."""
    verdict = {}
    try:
        verdict["standardwebhooks"] = standardwebhooks.Webhook(secret).verify(body, headers) == json.loads(body)
    except WebhookVerificationError:
        verdict["standardwebhooks"] = False
    try:
        header = headers["x-webhook-signature"]
        verdict["stripe"] = stripe.WebhookSignature.verify_header(body, header, secret, tolerance=300) is True
    except stripe.SignatureVerificationError:
        verdict["stripe"] = False
    verdict["hmac"] = by_hand(body, headers, secret)
    return verdict


def tampered(body):
    """The same JSON in other bytes, and a changed value: the signature covers bytes, not meaning."""
    variants = [
        body + b" ",
        json.dumps(json.loads(body)).encode(),
        body.replace(b'"tenant_id":"', b'"tenant_id":"x', 1),
    ]
    assert all(v != body for v in variants), "a tampered body equals the original"
    return variants


failures, passed, refused = [], 0, 0
for case in cases:
    with open(os.path.join(os.path.dirname(manifest), case["body"]), "rb") as f:
        body = f.read()
    headers = case["headers"]
    for secret in case["accept"]:
        for check, ok in verdicts(body, headers, secret).items():
            passed += ok
            if not ok:
                failures.append(f"{case['name']}: {check} refused it with {secret[:12]}...")
        for variant in tampered(body):
            for check, ok in verdicts(variant, headers, secret).items():
                refused += not ok
                if ok:
                    failures.append(f"{case['name']}: {check} accepted a tampered body {variant[:60]!r}")
    for secret in case["reject"]:
        for check, ok in verdicts(body, headers, secret).items():
            refused += not ok
            if ok:
                failures.append(f"{case['name']}: {check} accepted it with {secret[:12]}..., which did not sign it")

print(f"standardwebhooks {standardwebhooks.__version__}, stripe {stripe.VERSION}")
print(f"{len(cases)} deliveries: {passed} verifications passed, {refused} refusals as expected")
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("all webhook signature checks passed")
"#;

/// A Python with the pinned libraries: `python3` when it has them, else a venv under `target/`
/// (beside the nordigen client of the GoCardless conformance test) where they are installed once.
async fn python_with_webhook_libraries() -> &'static str {
    static PYTHON: OnceCell<String> = OnceCell::const_new();
    PYTHON.get_or_init(install_webhook_libraries).await
}

async fn install_webhook_libraries() -> String {
    python::python_with(&[("standardwebhooks", STANDARDWEBHOOKS), ("stripe", STRIPE)]).await
}

/// One received delivery for the libraries: it must verify with every secret in `accept`, and
/// with none in `reject`.
struct Check<'a> {
    name: String,
    received: &'a Received,
    accept: Vec<String>,
    reject: Vec<String>,
}

/// Writes each delivery's raw body and headers to a temporary folder and runs one Python process
/// that checks them all with the libraries (see `VERIFY_PY`).
async fn check_with_libraries(checks: &[Check<'_>]) {
    let python = python_with_webhook_libraries().await;
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = Vec::new();
    for (i, check) in checks.iter().enumerate() {
        let file = format!("{i:04}.body");
        std::fs::write(dir.path().join(&file), &check.received.body).unwrap();
        let headers: serde_json::Map<String, Value> = check
            .received
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), Value::from(value.to_str().unwrap())))
            .collect();
        manifest.push(json!({
            "name": check.name, "body": file, "headers": headers, "accept": check.accept, "reject": check.reject,
        }));
    }
    let manifest_path = dir.path().join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let script = dir.path().join("verify.py");
    std::fs::write(&script, VERIFY_PY).unwrap();
    let output =
        tokio::time::timeout(Duration::from_secs(60), Command::new(python).arg(&script).arg(&manifest_path).output())
            .await
            .expect("the verification script finishes within a minute")
            .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "verification failed ({}):\n{stdout}\n{stderr}", output.status);
    // Three checks per secret; each accepted secret also meets three tampered bodies.
    let accepting: usize = checks.iter().map(|c| c.accept.len()).sum();
    let rejecting: usize = checks.iter().map(|c| c.reject.len()).sum();
    let summary = format!(
        "{} deliveries: {} verifications passed, {} refusals as expected",
        checks.len(),
        3 * accepting,
        3 * (3 * accepting + rejecting)
    );
    assert!(stdout.contains(&summary), "expected {summary:?} in:\n{stdout}");
    assert!(stdout.contains("all webhook signature checks passed"), "{stdout}");
    println!("{}", stdout.trim());
}

/// Creates an API key labelled `label`, which records an `api_key.created` event carrying it.
async fn create_key(app: &TestApp, tenant: &TestTenant, label: &str) {
    let response = app
        .as_key(Method::POST, "/api/v1/api_keys", &tenant.key)
        .json(&json!({"label": label, "scopes": ["api_keys:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
}

/// Rotates the endpoint's secret, the old one staying live for an hour; returns the new one.
async fn rotate(app: &TestApp, tenant: &TestTenant, endpoint_id: &str) -> String {
    let response = app
        .as_key(Method::POST, &format!("/api/v1/webhook_endpoints/{endpoint_id}/rotate_secret"), &tenant.key)
        .json(&json!({"overlap_seconds": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let rotated: Value = response.json().await.unwrap();
    rotated["secret"].as_str().unwrap().to_owned()
}

/// A secret that signed nothing.
fn foreign_secret() -> String {
    payymo::webhooks::signing::SigningSecret::generate().expose().to_owned()
}

fn label_of(received: &Received) -> String {
    received.json()["data"]["label"].as_str().unwrap().to_owned()
}

/// Labels with non-ASCII text, so the signed bytes are not the same as their characters.
const LABELS: [&str; 3] = ["Zahlungsabgleich — ü", "Rapprochement bancaire — é", "plain ascii"];

#[tokio::test]
async fn real_deliveries_verify_with_the_standardwebhooks_and_stripe_libraries() {
    // Installed first, so an install's time does not age the deliveries' timestamps.
    python_with_webhook_libraries().await;
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    let endpoint = create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    let (endpoint_id, old) = (endpoint["id"].as_str().unwrap(), endpoint["secret"].as_str().unwrap().to_owned());
    let _dispatcher = dispatch(&app, "d1");
    for label in LABELS {
        create_key(&app, &tenant, label).await;
    }
    receiver.wait_for(LABELS.len(), Duration::from_secs(10)).await;

    let new = rotate(&app, &tenant, endpoint_id).await;
    assert_ne!(new, old);
    for label in LABELS {
        create_key(&app, &tenant, &format!("{label} (after rotation)")).await;
    }
    let received = receiver.wait_for(2 * LABELS.len(), Duration::from_secs(10)).await;
    assert_eq!(received.len(), 2 * LABELS.len(), "each event delivered once");
    assert!(received.iter().any(|r| r.body.windows(2).any(|w| w == "ü".as_bytes())), "a body carries UTF-8 bytes");

    let (before, after) = received.split_at(LABELS.len());
    let mut checks = Vec::new();
    for r in before {
        assert!(verifies(r, &old) && !verifies(r, &new));
        assert!(!r.header("webhook-signature").contains(' '), "{}", r.header("webhook-signature"));
        let name = format!("before rotation: {}", label_of(r));
        checks.push(Check { name, received: r, accept: vec![old.clone()], reject: vec![new.clone()] });
    }
    for r in after {
        assert!(verifies(r, &old) && verifies(r, &new));
        // One signature per live secret in each header.
        assert_eq!(r.header("webhook-signature").split(' ').count(), 2);
        assert_eq!(r.header("x-webhook-signature").matches(",v1=").count(), 2);
        let name = format!("during the overlap: {}", label_of(r));
        checks.push(Check {
            name,
            received: r,
            accept: vec![old.clone(), new.clone()],
            reject: vec![foreign_secret()],
        });
    }
    check_with_libraries(&checks).await;
}

#[tokio::test]
async fn secret_rotation_mid_stream_never_fails_verification() {
    const EVENTS: usize = 200;
    const ROTATE_BEFORE: [usize; 2] = [70, 140];
    python_with_webhook_libraries().await;
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    let endpoint = create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    let endpoint_id = endpoint["id"].as_str().unwrap();
    let _dispatcher = dispatch(&app, "d1");

    // secrets[k] is current after rotation k; rotations[k - 1] says when rotation k was asked for.
    let mut secrets = vec![endpoint["secret"].as_str().unwrap().to_owned()];
    let mut rotations: Vec<Instant> = Vec::new();
    let mut last_rotated = Instant::now();
    for i in 0..EVENTS {
        if ROTATE_BEFORE.contains(&i) {
            // An attempt lasts at most the 2 s timeout, so with rotations further apart than that
            // no attempt signed before one rotation arrives after the next.
            tokio::time::sleep_until((last_rotated + Duration::from_secs(3)).into()).await;
            rotations.push(Instant::now());
            secrets.push(rotate(&app, &tenant, endpoint_id).await);
            last_rotated = Instant::now();
        }
        create_key(&app, &tenant, &format!("stream {i}")).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let received = loop {
        let received = receiver.received();
        let distinct: HashSet<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
        if distinct.len() == EVENTS {
            break received;
        }
        assert!(Instant::now() < deadline, "{} of {EVENTS} events arrived", distinct.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // What a receiver that keeps the old secret through the overlap must accept: a delivery that
    // arrives after rotation k was asked for verifies with the secret current before it; one whose
    // event was recorded after rotation k answered verifies with the new secret as well.
    let foreign = foreign_secret();
    let mut checks = Vec::new();
    let mut both = [0; 2];
    for r in &received {
        let index: usize = label_of(r).strip_prefix("stream ").unwrap().parse().unwrap();
        let rotated_before_arrival = rotations.iter().filter(|at| **at < r.at).count();
        let rotated_before_event = ROTATE_BEFORE.iter().filter(|first| index >= **first).count();
        let old = &secrets[rotated_before_arrival.saturating_sub(1)];
        let mut accept = vec![old.clone()];
        if rotated_before_event > 0 && secrets[rotated_before_event] != *old {
            accept.push(secrets[rotated_before_event].clone());
            both[rotated_before_event - 1] += 1;
        }
        for secret in &accept {
            assert!(verifies(r, secret), "event {index} does not verify with a secret it must: {:?}", r.headers);
        }
        assert!(!verifies(r, &foreign));
        let name = format!("event {index}, arrived after {rotated_before_arrival} rotations");
        checks.push(Check { name, received: r, accept, reject: vec![foreign.clone()] });
    }
    // Most of each overlap's deliveries were signed with both secrets (the rest arrived after the
    // next rotation).
    assert!(both.iter().all(|n| *n >= 35), "deliveries verified with old and new secret per rotation: {both:?}");
    println!("{} deliveries; per rotation, {both:?} verified with both the old and the new secret", received.len());
    check_with_libraries(&checks).await;
}

#[tokio::test]
async fn a_server_killed_during_a_burst_of_10000_events_delivers_every_one_after_restart() {
    const EVENTS: usize = 10_000;
    // The default, set explicitly because the bound below depends on it.
    const CONCURRENCY: usize = 8;
    // A local receiver answers fast, so the lane may hold the larger count.
    const HELD: usize = CONCURRENCY * payymo::webhooks::dispatcher::CLAIM_AHEAD_FAST;
    let options = TestCluster::get().await.fresh_database().await;
    // This app serves the API only (tests run no dispatcher); the `payymo serve` processes deliver.
    let app = TestApp::spawn_with(test_config(), options.clone()).await;
    let tenant = app.tenant().await;
    let receiver = Receiver::start().await;
    create_endpoint(&app, &tenant, &receiver.url, &["*"]).await;
    let su = app.superuser_pool().await;
    let url = database_url(&options, APP_PASSWORD);
    let concurrency = CONCURRENCY.to_string();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("PAYYMO_WORKERS", "true"),
        ("PAYYMO_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("PAYYMO_WEBHOOK_TIMEOUT", "2s"),
        ("PAYYMO_WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s"),
        ("PAYYMO_WEBHOOK_CONCURRENCY", concurrency.as_str()),
    ];
    let mut first = serve(&env).await;

    // One statement: the fan-out trigger makes the 10,000 deliveries in the events' transaction.
    let started = Instant::now();
    crate::webhooks::insert_events(&su, &tenant, i32::try_from(EVENTS).unwrap()).await;
    let inserted = started.elapsed();
    while receiver.count() < 1_000 {
        assert!(started.elapsed() < Duration::from_secs(30), "only {} deliveries in 30 s", receiver.count());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.child.kill().await.unwrap(); // SIGKILL: no draining, no outcome written on the way out
    first.child.wait().await.unwrap();
    let killed = Instant::now();
    let before_kill = receiver.received();
    let distinct_before_kill = before_kill.iter().map(|r| r.header("webhook-id")).collect::<HashSet<_>>().len();
    assert!(distinct_before_kill < EVENTS, "the burst was over before the kill");
    // Attempts the dead process claimed and had not recorded: pending, leased to it for 14 s.
    let leased: i64 = sqlx::query_scalar(
        "select count(*) from webhook_deliveries where status = 'pending' and locked_by is not null",
    )
    .fetch_one(&su)
    .await
    .unwrap();

    let _second = serve(&env).await;
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(90);
    loop {
        let distinct = receiver.received().iter().map(|r| r.header("webhook-id").to_owned()).collect::<HashSet<_>>();
        if distinct.len() == EVENTS {
            break;
        }
        assert!(Instant::now() < deadline, "{} of {EVENTS} events arrived within 90 s of the restart", distinct.len());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained = restarted.elapsed();
    let status = || async {
        sqlx::query_as::<_, (String, i64)>("select status, count(*) from webhook_deliveries group by status")
            .fetch_all(&su)
            .await
            .unwrap()
            .into_iter()
            .collect::<HashMap<String, i64>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut statuses = status().await;
    while statuses != HashMap::from([("succeeded".to_owned(), EVENTS as i64)]) {
        assert!(Instant::now() < deadline, "deliveries by status: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
        statuses = status().await;
    }
    // Settled: nothing is pending, so nothing more will arrive.
    let arrivals = receiver.count();
    let duplicates = arrivals - EVENTS;
    println!(
        "{EVENTS} events inserted in {inserted:?}; {} deliveries ({distinct_before_kill} distinct) before SIGKILL \
         after {:?}; {leased} leased to the dead process; restart took {:?}; every event delivered {drained:?} \
         after the restart; {arrivals} arrivals, {duplicates} duplicates",
        before_kill.len(),
        killed - started,
        restarted - killed,
    );
    // The bound: a dispatcher holds at most CLAIM_AHEAD_FAST x PAYYMO_WEBHOOK_CONCURRENCY claimed
    // attempts per endpoint (sending CONCURRENCY at once), and an attempt keeps its slot until its
    // outcome is written. A delivery the receiver got but whose success was never recorded is one
    // of those held attempts, so a killed instance leaves at most that many to be sent again (when
    // their lease runs out); every recorded success is final. One endpoint, one killed instance:
    // at most HELD duplicates.
    assert!(leased <= HELD as i64, "{leased} attempts were in flight on one endpoint");
    assert!(duplicates <= HELD, "{duplicates} duplicates, more than the {HELD} in flight");
    assert!(duplicates as i64 <= leased, "{duplicates} duplicates but only {leased} attempts were in flight");
}

#[tokio::test]
async fn a_hanging_receiver_times_out_is_retried_and_does_not_slow_a_healthy_endpoint() {
    const EVENTS: usize = 20;
    const LANE: usize = 8; // PAYYMO_WEBHOOK_CONCURRENCY's default
    let app = webhook_app().await; // 2 s timeout, retries after 1 s
    let tenant = app.tenant().await;
    let (hanging, healthy) = (Receiver::start().await, Receiver::start().await);
    // Its first attempts fill its lane and hang past the timeout; it answers 200 after that.
    hanging.script(std::iter::repeat_n(Reply::Hang(Duration::from_secs(5)), LANE));
    let hanging_endpoint = create_endpoint(&app, &tenant, &hanging.url, &["*"]).await;
    let healthy_endpoint = create_endpoint(&app, &tenant, &healthy.url, &["*"]).await;
    let _dispatcher = dispatch(&app, "d1");

    for i in 0..EVENTS {
        create_key(&app, &tenant, &format!("burst {i}")).await;
    }
    let emitted = Instant::now();
    healthy.wait_for(EVENTS, Duration::from_millis(1500)).await;
    let healthy_done = emitted.elapsed();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let distinct = hanging.received().iter().map(|r| r.header("webhook-id").to_owned()).collect::<HashSet<_>>();
        if distinct.len() == EVENTS {
            break;
        }
        assert!(Instant::now() < deadline, "{} of {EVENTS} events reached the hanging receiver", distinct.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let path = |endpoint: &Value| {
        format!("/api/v1/webhook_endpoints/{}/deliveries?limit=100", endpoint["id"].as_str().unwrap())
    };
    let slow = wait_for_status(&app, &tenant, &path(&hanging_endpoint), "succeeded", EVENTS).await;
    let timed_out: Vec<&Value> = slow.iter().filter(|d| d["attempt_count"] == 2).collect();
    assert_eq!(timed_out.len(), LANE, "the hung attempts, retried once: {slow:?}");
    for delivery in &timed_out {
        let (first, second) = (&delivery["attempts"][0], &delivery["attempts"][1]);
        assert!(first["error"].as_str().unwrap().starts_with("timed out"), "{first}");
        assert_eq!(first["status_code"], Value::Null, "{first}");
        let waited = first["latency_ms"].as_i64().unwrap();
        assert!((1_900..3_000).contains(&waited), "gave up after the 2 s timeout, not the 5 s hang: {waited} ms");
        assert_eq!((second["status_code"].clone(), second["succeeded"].clone()), (json!(200), json!(true)));
    }
    let fast = get(&app, &tenant.key, &path(&healthy_endpoint)).await;
    let fast = fast["data"].as_array().unwrap();
    assert_eq!(fast.len(), EVENTS);
    assert!(fast.iter().all(|d| d["status"] == "succeeded" && d["attempt_count"] == 1), "{fast:?}");
    println!(
        "healthy endpoint had all {EVENTS} {healthy_done:?} after the last event; the hanging one got {} requests",
        hanging.count()
    );
}
