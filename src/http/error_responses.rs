//! The errors every operation can answer, documented from what the operation itself declares,
//! so the OpenAPI document cannot fall behind the extractors: a JSON body (`ApiJson`) can answer
//! 400, 413, 415 and 422; query parameters (`ApiQuery`) 422; a path id (`PathId`) 404; a
//! credential (`authenticate`) 401 and 429, and 403 when a scope is required;
//! a tenant's write (`Idempotency-Key`) 400, 409 and 422. Every operation gets a `default` for
//! the rest (500, 503). What a handler documents itself is kept.

use serde_json::{Value, json};

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    })
}

/// Adds the responses each operation's declared inputs imply to every operation in `spec`.
pub fn document(spec: &mut Value) {
    let Some(paths) = spec["paths"].as_object_mut() else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, operation) in item.iter_mut() {
            let implied = implied(path, method, operation);
            let Some(responses) = operation["responses"].as_object_mut() else { continue };
            for (status, description) in implied {
                responses.entry(status).or_insert_with(|| problem(&description));
            }
        }
    }
}

/// The statuses `operation` can answer beyond its own, each with what it means.
fn implied(path: &str, method: &str, operation: &Value) -> Vec<(String, String)> {
    // Each status once, in the order first added, with every reason for it.
    let mut statuses: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut add = |status: &'static str, text: &'static str| match statuses.iter_mut().find(|(s, _)| *s == status) {
        Some((_, texts)) => texts.push(text),
        None => statuses.push((status, vec![text])),
    };
    let json_body = operation["requestBody"]["content"].get("application/json").is_some();
    if json_body {
        add("400", "`malformed_json`: the body is not JSON (the detail says where)");
        add("413", "`payload_too_large`: the body is larger than the server accepts");
        add("415", "`unsupported_media_type`: the body is not sent as `application/json`");
        add("422", "`validation_failed`: fields are missing or invalid; `errors` names each");
    }
    let parameters = operation["parameters"].as_array().map(Vec::as_slice).unwrap_or_default();
    if parameters.iter().any(|p| p["in"] == "query") {
        add("422", "`validation_failed`: query parameters are unknown or invalid; `errors` names each");
    }
    if parameters.iter().any(|p| p["in"] == "path") {
        add("404", "`not_found`: no such resource in this tenant (a malformed id included)");
    }
    let requirements = operation["security"].as_array().map(Vec::as_slice).unwrap_or_default();
    let authenticated = requirements.iter().any(|r| r.as_object().is_some_and(|r| !r.is_empty()));
    if authenticated {
        add("401", "`unauthenticated`: the credential is missing, malformed, unknown, expired or revoked");
        add("429", "`rate_limited`: too many requests for this credential; see `Retry-After`");
        let scoped = requirements
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|r| r.values())
            .any(|scopes| scopes.as_array().is_some_and(|s| !s.is_empty()));
        if scoped {
            add("403", "`insufficient_scope`: the credential lacks the scope named in `required_scope`");
        }
        if path.starts_with("/api/v1/") && matches!(method, "post" | "patch" | "put" | "delete") {
            add("400", "`invalid_request`: the `Idempotency-Key` is not 1 to 255 visible ASCII characters");
            add("409", "`idempotency_key_in_use`: a request with this `Idempotency-Key` is still running");
            add("422", "`idempotency_key_reused`: this `Idempotency-Key` was used for a different request");
        }
    }
    let mut implied: Vec<(String, String)> =
        statuses.into_iter().map(|(status, texts)| (status.to_owned(), texts.join("; or "))).collect();
    implied.push((
        "default".to_owned(),
        "Any other error in the same shape: `internal_error` (500), or a retryable 503 such as `database_unavailable`"
            .to_owned(),
    ));
    implied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_follow_the_declared_inputs_and_keep_the_handlers_own() {
        let mut spec = json!({"paths": {"/api/v1/things/{id}": {"post": {
            "parameters": [{"name": "id", "in": "path"}],
            "requestBody": {"content": {"application/json": {}}},
            "security": [{"api_key": ["things:write"]}],
            "responses": {"200": {"description": "ok"}, "404": {"description": "mine"}},
        }}}});
        document(&mut spec);
        let responses = spec["paths"]["/api/v1/things/{id}"]["post"]["responses"].as_object().unwrap();
        let statuses: Vec<&str> = responses.keys().map(String::as_str).collect();
        for status in ["200", "400", "401", "403", "404", "409", "413", "415", "422", "429", "default"] {
            assert!(statuses.contains(&status), "{status} in {statuses:?}");
        }
        assert_eq!(responses["404"]["description"], "mine");
        let unprocessable = responses["422"]["description"].as_str().unwrap();
        assert!(unprocessable.contains("validation_failed") && unprocessable.contains("idempotency_key_reused"));
    }
}
