//! Events: recorded with the change that causes them (and never without it), listed newest
//! first with stable ids, filtered, paginated, and free of secrets.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, problem};

async fn events(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let page: Value = app
        .as_key(Method::GET, &format!("/api/v1/events?limit=100&{query}"), key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn key_lifecycle_changes_are_announced_newest_first_without_secrets() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let created: Value = app
        .as_key(Method::POST, "/api/v1/api_keys", &tenant.key)
        .json(&json!({"label": "erp", "scopes": ["api_keys:read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let rotated: Value = app
        .as_key(Method::POST, &format!("/api/v1/api_keys/{id}/rotate"), &tenant.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let successor = rotated["id"].as_str().unwrap();
    for _ in 0..2 {
        // Revoking twice changes once, so it is announced once.
        app.as_key(Method::POST, &format!("/api/v1/api_keys/{successor}/revoke"), &tenant.key).send().await.unwrap();
    }

    let all = events(&app, &tenant.key, "").await;
    let types: Vec<&str> = all.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["api_key.revoked", "api_key.rotated", "api_key.created"], "{all:?}");
    for event in &all {
        assert!(event["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(event["tenant_id"], tenant.id.as_str());
        assert!(event["timestamp"].is_string());

        assert!(event["data"].get("secret").is_none(), "no secret field in {event}");
    }
    assert_eq!(all[2]["data"]["id"], id);
    assert_eq!(all[1]["data"], json!({"id": id, "rotated_to": successor, "overlap_seconds": 86400}));
    assert_eq!(all[0]["data"]["id"], successor);
    assert!(all[0]["data"]["revoked_at"].is_string());

    // Get one by id; the same object.
    let one: Value = app
        .as_key(Method::GET, &format!("/api/v1/events/{}", all[1]["id"].as_str().unwrap()), &tenant.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one, all[1]);
}

#[tokio::test]
async fn a_refused_change_announces_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let owner = app.user(&tenant, "only-owner@example.com", payymo::domain::scope::Role::Owner).await;
    let response = app.as_key(Method::DELETE, &format!("/api/v1/members/{owner}"), &tenant.key).send().await.unwrap();
    problem(response, 409, "conflict").await;
    assert!(events(&app, &tenant.key, "type=member.removed").await.is_empty());

    let added: Value = app
        .as_key(Method::POST, "/api/v1/members", &tenant.key)
        .json(&json!({"email": "second@example.com", "role": "viewer", "password": "another long password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = added["user_id"].as_str().unwrap();
    for _ in 0..2 {
        // Setting the same role again changes nothing, so it is announced once.
        app.as_key(Method::PATCH, &format!("/api/v1/members/{user}"), &tenant.key)
            .json(&json!({"role": "admin"}))
            .send()
            .await
            .unwrap();
    }
    let updated = events(&app, &tenant.key, "type=member.updated").await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["data"]["role"], "admin");
    assert_eq!(updated[0]["data"]["previous_role"], "viewer");
}

#[tokio::test]
async fn filters_and_cursors_work_and_bad_values_are_422() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    for i in 0..3 {
        app.as_key(Method::POST, "/api/v1/api_keys", &tenant.key)
            .json(&json!({"label": format!("k{i}"), "scopes": ["*"]}))
            .send()
            .await
            .unwrap();
    }
    // Zapier's sample request.
    let first: Value = app
        .as_key(Method::GET, "/api/v1/events?type=api_key.created&limit=2", &tenant.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    assert_eq!(first["has_more"], true);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = app
        .as_key(Method::GET, &format!("/api/v1/events?type=api_key.created&limit=2&cursor={cursor}"), &tenant.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert_eq!(second["data"][0]["data"]["label"], "k0", "oldest last");
    assert!(events(&app, &tenant.key, "since=2100-01-01T00:00:00Z").await.is_empty());

    for (query, field) in [
        ("type=invoice.nope", "type"),
        ("since=soon", "since"),
        ("limit=0", "limit"),
        ("cursor=x", "cursor"),
        ("kind=a", "kind"),
    ] {
        let response = app.as_key(Method::GET, &format!("/api/v1/events?{query}"), &tenant.key).send().await.unwrap();
        let body = problem(response, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }
}
