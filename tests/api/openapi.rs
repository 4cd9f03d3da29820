//! The committed OpenAPI document is the one the code generates, and the server serves it.

use std::path::PathBuf;

use crate::support::TestApp;

const REGENERATE: &str = "cargo run -- openapi --output openapi/openapi.json";

#[test]
fn committed_spec_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let generated = payymo::http::openapi::spec_json();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date with the code. Regenerate it with `{REGENERATE}` (or `UPDATE_SNAPSHOTS=1 cargo test`) and commit it."
    );
}

#[test]
fn spec_is_openapi_3_1_with_problem_and_security_components() {
    let spec: serde_json::Value = serde_json::from_str(&payymo::http::openapi::spec_json()).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let schemas = &spec["components"]["schemas"];
    for name in ["Problem", "FieldError", "ErrorCode"] {
        assert!(schemas[name].is_object(), "{name} missing");
    }
    let codes: Vec<&str> =
        schemas["ErrorCode"]["enum"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    for code in payymo::http::error::ErrorCode::ALL {
        assert!(codes.contains(&code.as_str()), "{} missing from the spec", code.as_str());
    }
    let security = &spec["components"]["securitySchemes"];
    assert_eq!(security["api_key"]["type"], "apiKey");
    assert_eq!(security["api_key"]["name"], "X-API-Key");
    assert_eq!(security["bearer"]["scheme"], "bearer");
    // Every security scheme an operation names is defined.
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for requirement in op["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(security[scheme].is_object(), "{method} {path} names undefined scheme {scheme}");
                }
            }
        }
    }
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"] {
        let op = &spec["paths"][path]["get"];
        assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{path} has no summary");
        assert!(op["description"].as_str().is_some_and(|s| !s.is_empty()), "{path} has no description");
    }
}

#[tokio::test]
async fn server_serves_the_same_document() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), payymo::http::openapi::spec_json());
}

/// Two types once shared the schema name `RowResult`, and the document described an invoice
/// batch's rows as a transactions import's. Each now has its own.
#[test]
fn a_batch_row_and_an_import_row_are_documented_apart() {
    let spec: serde_json::Value = serde_json::from_str(&payymo::http::openapi::spec_json()).unwrap();
    let schemas = &spec["components"]["schemas"];
    assert_eq!(schemas["BatchResult"]["properties"]["results"]["items"]["$ref"], "#/components/schemas/BatchRowResult");
    let batch_row = schemas["BatchRowResult"]["properties"].as_object().unwrap();
    assert!(batch_row.contains_key("id") && batch_row.contains_key("errors"), "{batch_row:?}");
    let import_row = schemas["RowResult"]["properties"].as_object().unwrap();
    assert!(import_row.contains_key("transaction_id") && import_row.contains_key("row"), "{import_row:?}");
}
