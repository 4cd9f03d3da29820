//! Driven by the OpenAPI document, so every operation added later is covered: a NUL, an
//! over-long string and a lone surrogate in every string field of every request body, every
//! query parameter and every path parameter answer a 4xx in the error shape, never a 5xx; NUL and
//! over-long strings are refused by name.

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use crate::support::{TestApp, TestCluster, ids::placeholder_id, test_config};

const ADMIN_TOKEN: &str = "hostile-input-admin-token-0123456789";
/// Replaced by a lone surrogate escape in the JSON text, which serde_json cannot write itself.
const SURROGATE: &str = "__lone_surrogate__";
const LONG: usize = payymo::domain::text::MAX_CHARS + 1;

#[derive(Debug, Clone, Copy)]
enum Hostile {
    Nul,
    Long,
    Surrogate,
}

const ALL: [Hostile; 3] = [Hostile::Nul, Hostile::Long, Hostile::Surrogate];

impl Hostile {
    fn json_value(self) -> String {
        match self {
            Hostile::Nul => "a\0b".to_owned(),
            Hostile::Long => "x".repeat(LONG),
            Hostile::Surrogate => SURROGATE.to_owned(),
        }
    }

    /// Percent-encoded, for a query string or a path.
    fn encoded(self) -> String {
        match self {
            Hostile::Nul => "a%00b".to_owned(),
            Hostile::Long => "x".repeat(LONG),
            Hostile::Surrogate => "%ED%A0%80".to_owned(),
        }
    }
}

/// `#/components/schemas/X` resolved, `allOf` merged, and a nullable `oneOf` unwrapped.
fn resolve(spec: &Value, schema: &Value) -> Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return resolve(spec, &spec["components"]["schemas"][name]);
    }
    if let Some(parts) = schema["allOf"].as_array() {
        let mut merged = json!({"type": "object", "properties": {}, "required": []});
        for part in parts {
            let part = resolve(spec, part);
            for (k, v) in part["properties"].as_object().into_iter().flatten() {
                merged["properties"][k] = v.clone();
            }
            for r in part["required"].as_array().into_iter().flatten() {
                merged["required"].as_array_mut().unwrap().push(r.clone());
            }
        }
        return merged;
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array()
            && let Some(option) = options.iter().find(|o| o["type"] != "null")
        {
            return resolve(spec, option);
        }
    }
    schema.clone()
}

fn is_type(schema: &Value, name: &str) -> bool {
    schema["type"] == name || schema["type"].as_array().is_some_and(|t| t.iter().any(|x| x == name))
}

/// A value of `schema` that passes the parser: required fields filled, plausible formats.
fn sample(spec: &Value, schema: &Value) -> Value {
    let schema = resolve(spec, schema);
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.iter().find(|v| !v.is_null())) {
        return first.clone();
    }
    if is_type(&schema, "object") || schema["properties"].is_object() {
        let mut object = Map::new();
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            object.insert(name.to_owned(), sample(spec, &schema["properties"][name]));
        }
        return Value::Object(object);
    }
    if is_type(&schema, "array") {
        let n = schema["minItems"].as_u64().unwrap_or(0);
        return Value::Array((0..n).map(|_| sample(spec, &schema["items"])).collect());
    }
    if is_type(&schema, "integer") || is_type(&schema, "number") {
        return json!(1);
    }
    if is_type(&schema, "boolean") {
        return json!(false);
    }
    match schema["format"].as_str() {
        Some("date") => json!("2026-01-01"),
        Some("date-time") => json!("2026-01-01T00:00:00Z"),
        Some("uri") => json!("https://example.com/hook"),
        Some("email") => json!("someone@example.com"),
        _ => json!("text"),
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index,
}

/// Every place in `schema` that holds a string (a map's keys included), as paths.
fn string_places(spec: &Value, schema: &Value, at: &[Segment], out: &mut Vec<(Vec<Segment>, bool)>) {
    let schema = resolve(spec, schema);
    if at.len() > 6 {
        return;
    }
    let here = |extra: Segment| [at, &[extra]].concat();
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            string_places(spec, property, &here(Segment::Key(name.clone())), out);
        }
    } else if schema["additionalProperties"].is_object() {
        let key = here(Segment::Key("k".into()));
        out.push((key.clone(), true));
        string_places(spec, &schema["additionalProperties"], &key, out);
    } else if is_type(&schema, "array") {
        string_places(spec, &schema["items"], &here(Segment::Index), out);
    } else if is_type(&schema, "string") && schema["format"] != "binary" && !at.is_empty() {
        out.push((at.to_vec(), false));
    }
}

/// The path as the API names a field: `lines[0].amount`.
fn field_name(path: &[Segment]) -> String {
    let mut name = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) if name.is_empty() => name.push_str(key),
            Segment::Key(key) => name.push_str(&format!(".{key}")),
            Segment::Index => name.push_str("[0]"),
        }
    }
    name
}

/// `body` with `value` at `path` (as the key itself when `as_key`).
fn place(body: &mut Value, path: &[Segment], value: &str, as_key: bool) {
    let (last, parents) = path.split_last().unwrap();
    let mut node = body;
    for segment in parents {
        node = match segment {
            Segment::Key(key) => {
                if !node.is_object() {
                    *node = json!({});
                }
                node.as_object_mut().unwrap().entry(key.clone()).or_insert(Value::Null)
            }
            Segment::Index => {
                if node.as_array().is_none_or(|a| a.is_empty()) {
                    *node = json!([null]);
                }
                &mut node.as_array_mut().unwrap()[0]
            }
        };
    }
    match last {
        Segment::Key(key) => {
            if !node.is_object() {
                *node = json!({});
            }
            let object = node.as_object_mut().unwrap();
            if as_key {
                object.remove(key);
                object.insert(value.to_owned(), json!("v"));
            } else {
                object.insert(key.clone(), json!(value));
            }
        }
        Segment::Index => *node = json!([value]),
    }
}

struct Probe<'a> {
    app: &'a TestApp,
    key: &'a str,
    failures: Vec<String>,
    sent: usize,
    /// The statuses the operation being probed documents.
    documented: Vec<String>,
}

impl Probe<'_> {
    fn request(&self, method: &Method, path: &str) -> reqwest::RequestBuilder {
        let credential = if path.starts_with("/admin/") { ADMIN_TOKEN } else { self.key };
        self.app.client.request(method.clone(), self.app.url(path)).bearer_auth(credential)
    }

    /// Sends one hostile request; `named` is the field a 422 must name, when one must.
    async fn check(&mut self, what: String, request: reqwest::RequestBuilder, named: Option<&str>, oauth: bool) {
        self.sent += 1;
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let shaped = if oauth {
            body["error"].is_string()
        } else {
            content_type == "application/problem+json" && body["status"] == status && body["code"].is_string()
        };
        if !(400..500).contains(&status) || !shaped {
            self.failures.push(format!("{what}: {status} {content_type} {body}"));
            return;
        }
        if !self.documented.contains(&status.to_string()) {
            self.failures.push(format!("{what}: answered {status}, which the operation does not document"));
        }
        if let Some(field) = named {
            let names: Vec<&str> =
                body["errors"].as_array().into_iter().flatten().filter_map(|e| e["field"].as_str()).collect();
            if status != 422 || !names.iter().any(|n| n.starts_with(field)) {
                self.failures.push(format!("{what}: expected a 422 naming {field}, got {status} {body}"));
            }
        }
    }
}

#[tokio::test]
async fn hostile_strings_in_every_field_and_parameter_are_4xx_problems_never_5xx() {
    let mut config = test_config();
    config.admin_token = Some(SecretString::from(ADMIN_TOKEN.to_owned()));
    let app = TestApp::spawn_with(config, TestCluster::get().await.fresh_database().await).await;
    let tenant = app.tenant().await;
    let spec: Value = serde_json::from_str(&payymo::http::openapi::spec_json()).unwrap();
    let mut probe = Probe { app: &app, key: &tenant.key, failures: Vec::new(), sent: 0, documented: Vec::new() };

    for (template, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let oauth = template == "/api/v1/oauth/token";
            let path = filled(template);
            let parameters = op["parameters"].as_array().cloned().unwrap_or_default();
            probe.documented = op["responses"].as_object().unwrap().keys().cloned().collect();

            for parameter in &parameters {
                let name = parameter["name"].as_str().unwrap();
                for hostile in ALL {
                    let what = format!("{method} {template} {} {name} {hostile:?}", parameter["in"]);
                    match parameter["in"].as_str() {
                        Some("path") => {
                            let path = template.replace(&format!("{{{name}}}"), &hostile.encoded());
                            let path = fill_path(&path, "unused");
                            probe.check(what, probe.request(&method, &path), None, oauth).await;
                        }
                        Some("query") => {
                            let url = format!("{path}?{name}={}", hostile.encoded());
                            let named = Some(name);
                            probe.check(what, probe.request(&method, &url), named, oauth).await;
                        }
                        _ => {}
                    }
                }
            }

            let content = &op["requestBody"]["content"];
            if let Some(schema) = content.get("application/json").map(|c| &c["schema"]) {
                let base = sample(&spec, schema);
                let mut places = Vec::new();
                string_places(&spec, schema, &[], &mut places);
                for (place_at, as_key) in places {
                    let field = field_name(&place_at);
                    for hostile in ALL {
                        let mut body = base.clone();
                        place(&mut body, &place_at, &hostile.json_value(), as_key);
                        let text = body.to_string().replace(&format!("\"{SURROGATE}"), "\"\\ud800");
                        let what = format!(
                            "{method} {template} body {field}{} {hostile:?}",
                            if as_key { " (key)" } else { "" }
                        );
                        let request =
                            probe.request(&method, &path).header("content-type", "application/json").body(text);
                        // A bad key is named under its map, by the key itself.
                        let named = match (hostile, as_key) {
                            (Hostile::Surrogate, _) => None,
                            (_, true) => Some(field.rsplit_once('.').map_or(field.as_str(), |(map, _)| map)),
                            (_, false) => Some(field.as_str()),
                        };
                        probe.check(what, request, named, oauth).await;
                    }
                }
            }
            if let Some(schema) = content.get("application/x-www-form-urlencoded").map(|c| &c["schema"]) {
                let schema = resolve(&spec, schema);
                for name in schema["properties"].as_object().unwrap().keys() {
                    for hostile in ALL {
                        let what = format!("{method} {template} form {name} {hostile:?}");
                        let request = probe
                            .request(&method, &path)
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(format!("grant_type=client_credentials&{name}={}", hostile.encoded()));
                        probe.check(what, request, None, oauth).await;
                    }
                }
            }
        }
    }
    assert!(probe.sent > 500, "only {} requests: is the spec being read?", probe.sent);
    assert!(
        probe.failures.is_empty(),
        "{} of {} failed:\n{}",
        probe.failures.len(),
        probe.sent,
        probe.failures.join("\n")
    );
}

#[tokio::test]
async fn every_list_names_every_bad_parameter_at_once() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let spec: Value = serde_json::from_str(&payymo::http::openapi::spec_json()).unwrap();
    let mut lists = 0;
    for (template, item) in spec["paths"].as_object().unwrap() {
        let Some(op) = item.get("get") else { continue };
        let parameters = op["parameters"].as_array().cloned().unwrap_or_default();
        if !parameters.iter().any(|p| p["name"] == "limit") {
            continue;
        }
        lists += 1;
        let path = format!("{}?bogus=1&also_bogus=2&limit=0", filled(template));
        let response = app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap();
        let body = crate::support::problem(response, 422, "validation_failed").await;
        let fields: Vec<&str> =
            body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["bogus", "also_bogus", "limit"], "{template}");
    }
    assert!(lists >= 12, "only {lists} lists found");

    // The example from the field: unknown parameters, a date that does not exist, a bad limit.
    let response = app
        .as_key(
            Method::GET,
            "/api/v1/transactions?bogus=1&also_bogus=2&booking_date_from=2026-02-30&limit=0",
            &tenant.key,
        )
        .send()
        .await
        .unwrap();
    let body = crate::support::problem(response, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["bogus", "also_bogus", "limit", "booking_date_from"]);
}

/// `path` with its `{param}` filled with a well-formed id that exists nowhere.
fn filled(path: &str) -> String {
    if path.contains('{') { fill_path(path, &placeholder_id(path)) } else { path.to_owned() }
}

/// Every `{param}` left in `path` filled with `value`.
fn fill_path(path: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}
