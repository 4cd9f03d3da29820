//! Streamed downloads come out whole under every encoding a client may ask for: the same bytes
//! after decoding, on more rows than one chunk.

use std::io::Read;

use reqwest::Method;
use serde_json::json;

use crate::support::{TestApp, json_of, tenants::TestTenant};

/// What clients send: browsers and Python's `requests` ask for gzip, curl --compressed for more.
const ENCODINGS: &[&str] = &["identity", "gzip", "deflate", "br", "zstd", "gzip, deflate, br, zstd"];

/// The body of `path` as each encoding answers it, decoded; every one must be identical.
async fn same_bytes_under_every_encoding(app: &TestApp, tenant: &TestTenant, path: &str) -> String {
    let mut plain: Option<Vec<u8>> = None;
    for encoding in ENCODINGS {
        let response =
            app.as_key(Method::GET, path, &tenant.key).header("accept-encoding", *encoding).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} with {encoding}");
        let content_encoding =
            response.headers().get("content-encoding").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let bytes = response.bytes().await.unwrap_or_else(|e| panic!("{path} with {encoding} was cut off: {e}"));
        let decoded = match content_encoding.as_str() {
            "" => bytes.to_vec(),
            "gzip" => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out).expect("a whole gzip stream");
                out
            }
            other => panic!("{path} answered {encoding} with an encoding the test cannot read: {other}"),
        };
        match &plain {
            None => plain = Some(decoded),
            Some(plain) => assert!(plain == &decoded, "{path} with {encoding}: not the same bytes as uncompressed"),
        }
    }
    String::from_utf8(plain.unwrap()).unwrap()
}

#[tokio::test]
async fn the_transaction_export_is_whole_under_every_encoding() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let response = app
        .as_key(Method::POST, "/api/v1/accounts", &tenant.key)
        .json(&json!({"name": "Petty cash", "currency": "EUR"}))
        .send()
        .await
        .unwrap();
    let account = json_of(response, 201).await["id"].as_str().unwrap().to_owned();
    // More than the export's page of 5,000 rows, so the body is several chunks.
    let rows = 5_321;
    sqlx::query(
        "insert into transactions (tenant_id, id, account_id, provider_transaction_id, status, amount, currency,
             booking_date, description, raw, source, external_id)
         select $1, 'txn_' || lpad(to_hex(n), 32, '0'), $2, 'seed-' || n, 'booked', n * 7 - 20000, 'EUR',
                date '2026-01-01' + (n % 300), 'Payment ' || n, '{}', 'import', 'seed-' || n
         from generate_series(1, $3) as n",
    )
    .bind(&tenant.id)
    .bind(&account)
    .bind(rows)
    .execute(&app.superuser_pool().await)
    .await
    .unwrap();

    let csv = same_bytes_under_every_encoding(&app, &tenant, "/api/v1/transactions/export").await;
    let lines = csv.split("\r\n").filter(|l| !l.is_empty()).count();
    assert_eq!(lines, rows as usize + 1, "a header and every row");
}

#[tokio::test]
async fn the_audit_log_export_is_whole_under_every_encoding() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let id = payymo::domain::ids::TenantId::parse(&tenant.id).unwrap();
    // More than the export's page of 1,000 entries.
    let entries = 1_234;
    for n in 0..entries {
        let entry = payymo::audit::Entry {
            actor_type: "system".into(),
            action: format!("test.entry_{n}"),
            detail: json!({"n": n}),
            ..Default::default()
        };
        payymo::audit::append(&app.db, &id, entry).await.unwrap();
    }
    let csv = same_bytes_under_every_encoding(&app, &tenant, "/api/v1/audit_logs/export").await;
    let lines = csv.split("\r\n").filter(|l| !l.is_empty()).count();
    assert_eq!(lines, entries + 1, "a header and every entry");
}
