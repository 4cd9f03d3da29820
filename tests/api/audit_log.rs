//! The audit log: what is recorded, the hash chain and its verification, and the endpoints.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::support::{TestApp, problem};

async fn entries(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let page: Value = app
        .as_key(Method::GET, &format!("/api/v1/audit_logs?limit=100&{query}"), key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["data"].as_array().unwrap().clone()
}

async fn verify(app: &TestApp, key: &str) -> Value {
    app.as_key(Method::GET, "/api/v1/audit_logs/verify", key).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn every_mutating_call_is_recorded_with_who_what_where_and_outcome() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let created = app
        .as_key(Method::POST, "/api/v1/api_keys", &tenant.key)
        .header("x-request-id", "req-audit-1")
        .json(&json!({"label": "erp", "scopes": ["api_keys:read"]}))
        .send()
        .await
        .unwrap();
    let created: Value = created.json().await.unwrap();
    let failed =
        app.as_key(Method::POST, "/api/v1/api_keys", &tenant.key).json(&json!({"label": ""})).send().await.unwrap();
    assert_eq!(failed.status(), 422);
    // Reads are not audited.
    app.as_key(Method::GET, "/api/v1/api_keys", &tenant.key).send().await.unwrap();

    let log = entries(&app, &tenant.key, "").await;
    assert_eq!(log.len(), 2, "{log:?}");
    let (failure, success) = (&log[0], &log[1]);
    assert_eq!(success["action"], "POST /api/v1/api_keys");
    assert_eq!(success["outcome"], "success");
    assert_eq!(success["status"], 201);
    assert_eq!(success["actor_type"], "api_key");
    assert_eq!(success["actor_id"], tenant.key_id.as_str());
    assert_eq!(success["resource_type"], "api_key");
    assert_eq!(success["resource_id"], created["id"]);
    assert_eq!(success["ip"], "127.0.0.1");
    assert_eq!(success["request_id"], "req-audit-1");
    assert_eq!(success["seq"], 1);
    assert_eq!(failure["outcome"], "failure");
    assert_eq!(failure["status"], 422);
    assert_eq!(failure["seq"], 2);
}

#[tokio::test]
async fn authentication_failures_of_a_known_key_are_recorded() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let (id, key) = app.key_with_id(&tenant, &["api_keys:read"]).await;
    app.as_key(Method::POST, &format!("/api/v1/api_keys/{id}/revoke"), &tenant.key).send().await.unwrap();
    problem(app.as_key(Method::GET, "/api/v1/api_keys", &key).send().await.unwrap(), 401, "unauthenticated").await;

    let denied = entries(&app, &tenant.key, "outcome=denied").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["action"], "auth.failed");
    assert_eq!(denied[0]["credential_id"], id.as_str());
    assert_eq!(denied[0]["detail"]["reason"], "the credential has been revoked");
}

#[tokio::test]
async fn the_chain_verifies_and_any_tampering_is_located() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    // Concurrent writers must not fork the chain.
    let writes = (0..20).map(|i| {
        app.as_key(Method::POST, "/api/v1/api_keys", &tenant.key)
            .json(&json!({"label": format!("k{i}"), "scopes": ["api_keys:read"]}))
            .send()
    });
    for response in futures_util::future::join_all(writes).await {
        assert_eq!(response.unwrap().status(), 201);
    }
    let report = verify(&app, &tenant.key).await;
    assert_eq!(report, json!({"valid": true, "entries_checked": 20, "first_invalid_seq": null, "reason": null}));

    // The application's role cannot change history, even inside its own tenant.
    let tenant_id = payymo::domain::ids::TenantId::parse(&tenant.id).unwrap();
    let mut tx = payymo::db::tenant::begin_tenant(&app.db, &tenant_id).await.unwrap();
    let update = sqlx::query("update audit_logs set ip = '192.0.2.66'").execute(&mut *tx).await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    drop(tx);

    // A superuser with triggers off can; verification then points at the edited row.
    let mut admin = PgConnection::connect_with(app.superuser.as_ref().unwrap()).await.unwrap();
    sqlx::query("set session_replication_role = replica").execute(&mut admin).await.unwrap();
    sqlx::query("update audit_logs set ip = '192.0.2.66' where seq = 7").execute(&mut admin).await.unwrap();
    let report = verify(&app, &tenant.key).await;
    assert_eq!(report["valid"], false);
    assert_eq!(report["first_invalid_seq"], 7);
    assert_eq!(report["reason"], "the row's content does not match its hash");

    sqlx::query("update audit_logs set ip = '127.0.0.1' where seq = 7").execute(&mut admin).await.unwrap();
    assert_eq!(verify(&app, &tenant.key).await["valid"], true, "restoring the content restores the chain");

    sqlx::query("delete from audit_logs where seq = 20").execute(&mut admin).await.unwrap();
    let report = verify(&app, &tenant.key).await;
    assert_eq!(report["valid"], false, "removing the newest row is detected through the chain head");
    sqlx::query("delete from audit_logs where seq = 10").execute(&mut admin).await.unwrap();
    assert_eq!(verify(&app, &tenant.key).await["first_invalid_seq"], 11);
}

#[tokio::test]
async fn lists_filter_paginate_and_refuse_bad_filters() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    for i in 0..3 {
        app.as_key(Method::POST, "/api/v1/api_keys", &tenant.key)
            .json(&json!({"label": format!("k{i}"), "scopes": ["api_keys:read"]}))
            .send()
            .await
            .unwrap();
    }
    let first: Value =
        app.as_key(Method::GET, "/api/v1/audit_logs?limit=2", &tenant.key).send().await.unwrap().json().await.unwrap();
    assert_eq!(first["has_more"], true);
    let seqs: Vec<i64> = first["data"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [3, 2]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = app
        .as_key(Method::GET, &format!("/api/v1/audit_logs?limit=2&cursor={cursor}"), &tenant.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["data"][0]["seq"], 1);
    assert_eq!(second["has_more"], false);

    assert_eq!(entries(&app, &tenant.key, "action=POST%20/api/v1/api_keys").await.len(), 3);
    assert_eq!(entries(&app, &tenant.key, "outcome=failure").await.len(), 0);
    for (query, field) in [
        ("outcome=maybe", "outcome"),
        ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
        ("since=yesterday", "since"),
        ("colour=red", "colour"),
        ("limit=1000", "limit"),
        ("cursor=forged", "cursor"),
    ] {
        let response =
            app.as_key(Method::GET, &format!("/api/v1/audit_logs?{query}"), &tenant.key).send().await.unwrap();
        let body = problem(response, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }
}

#[tokio::test]
async fn export_streams_csv_with_every_entry() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    for i in 0..3 {
        app.as_key(Method::POST, "/api/v1/api_keys", &tenant.key)
            .json(&json!({"label": format!("k{i}"), "scopes": ["api_keys:read"]}))
            .send()
            .await
            .unwrap();
    }
    let response = app.as_key(Method::GET, "/api/v1/audit_logs/export", &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("seq,id,occurred_at,actor_type"));
    assert!(lines[1].starts_with("3,aud_"));
    assert!(lines[3].contains("POST /api/v1/api_keys"));
}
