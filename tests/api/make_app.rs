//! The Make custom app in `integrations/make/`, held to the API it calls.
//!
//! Statically: every request of its connection, webhooks and modules is an operation of
//! `openapi/openapi.json`, its query and body fields are the operation's, the parameters mapped
//! into them have Make types the schemas accept, and every field a module outputs is in the
//! answer (or, for an instant trigger, in the event). Against the real server: the connection
//! test, attach, a delivered `invoice.paid`, detach, and the actions and searches, each request
//! filled from the definition's IML the way Make fills it.

use std::{collections::BTreeMap, path::Path, time::Duration};

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::{
    reconciliation_matches::credits,
    support::{TestApp, receiver::Receiver},
    webhooks::{dispatch, get, webhook_app},
};

const MODULES: &[&str] = &[
    "createOrUpdateCustomer",
    "createOrUpdateInvoice",
    "createTransaction",
    "excludeTransaction",
    "findInvoice",
    "findTransaction",
    "matchTransaction",
    "watchBankConnectionExpiring",
    "watchInvoicePaid",
    "watchInvoicePartiallyPaid",
    "watchNewTransaction",
    "watchNewUnmatchedCredit",
    "watchStripePayoutPaid",
    "watchTransactionMatched",
    "watchWebhookEndpointDisabled",
];

#[test]
fn every_request_of_the_make_app_is_an_operation_of_the_openapi_document() {
    let definition = Definition::load();
    let modules: Vec<String> = definition.components("modules");
    assert_eq!(modules, MODULES, "the modules in integrations/make/modules");
    let problems = check(&definition, &spec());
    assert!(problems.is_empty(), "the Make app has drifted from openapi/openapi.json:\n{}", problems.join("\n"));
}

#[test]
fn the_checker_names_what_has_drifted() {
    let mut definition = Definition::default();
    definition.add("base.json", json!({"baseUrl": "{{connection.baseUrl}}/api/v1"}));
    definition.add("connections/payymo/parameters.json", json!([{"name": "baseUrl", "type": "url"}]));
    definition.add("modules/drifted/metadata.json", json!({"name": "drifted", "typeId": "action"}));
    definition.add("modules/drifted/mappable-parameters.json", json!([{"name": "total", "type": "text"}]));
    definition.add(
        "modules/drifted/communication.json",
        json!([
            {"url": "/invoice/{{parameters.total}}"},
            {"url": "/invoices", "method": "POST", "qs": {"dry_run": true},
             "body": {"number": "X", "currency": "GBP", "amount_totl": 1, "amount_total": "{{parameters.total}}"}}
        ]),
    );
    definition.add("modules/drifted/interface.json", json!([{"name": "numbr", "type": "text"}]));

    let problems = check(&definition, &spec());
    let expected = [
        "modules/drifted/communication.json: body.amount_totl is not a field of the request body",
        "modules/drifted/communication.json: qs.dry_run is not a query parameter of POST /api/v1/invoices",
        "modules/drifted/communication.json: body.amount_total maps parameters.total, of Make type text; the API wants integer",
        "modules/drifted/communication.json: GET /api/v1/invoice/* is no operation of the API",
        "modules/drifted/interface.json: numbr is not in the answer",
    ];
    for sentence in expected {
        assert!(problems.iter().any(|p| p.starts_with(sentence)), "missing {sentence:?} in {problems:#?}");
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
}

#[tokio::test]
async fn the_connection_test_labels_the_connection_with_the_tenant_and_its_environment() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let definition = Definition::load();
    let make = Make::new(&app, &definition, &tenant.key);
    let test = definition.file("connections/payymo/communication.json");
    let parameters = json!({"apiKey": tenant.key, "baseUrl": app.url("")});

    let me = make.send(test, &json!({"parameters": parameters}), Via::Absolute).await.unwrap();
    assert!(me["tenant_name"].is_string() && me["environment"].is_string(), "{me}");
    let label = fill(&test["response"]["metadata"]["value"], &json!({"body": me})).unwrap();
    assert_eq!(label, "Acme Ltd (test)");

    let refused = json!({"parameters": {"apiKey": "sk_test_not_a_key", "baseUrl": app.url("")}});
    let message = make.send(test, &refused, Via::Absolute).await.unwrap_err();
    assert!(message.starts_with("[401] "), "the error Make shows: {message}");
}

#[tokio::test]
async fn make_attaches_its_webhook_receives_invoice_paid_and_detaches() {
    let app = webhook_app().await;
    let tenant = app.tenant().await;
    let definition = Definition::load();
    let make = Make::new(&app, &definition, &tenant.key);
    // Stands in for the URL Make gives a new webhook.
    let hook = Receiver::start().await;

    let attach = definition.file("webhooks/invoicePaid/attach.json");
    let created = make.send(attach, &make.scope(json!({"webhook": {"url": hook.url}})), Via::Base).await.unwrap();
    let kept = fill(&attach["response"]["data"], &json!({"body": created})).unwrap();
    let hook_id = kept["externalHookId"].as_str().expect("attach keeps externalHookId").to_owned();
    let endpoint = get(&app, &tenant.key, &format!("/api/v1/webhook_endpoints/{hook_id}")).await;
    assert_eq!((&endpoint["url"], &endpoint["event_types"]), (&json!(hook.url), &json!(["invoice.paid"])));
    let _dispatcher = dispatch(&app, "make-test");

    // The invoice, created and then updated by its external id, as a CRM scenario would.
    let mut invoice = json!({"external_id": "crm-1042", "number": "INV-2026-1042", "currency": "GBP",
                             "amount_total": 125000, "payment_reference": "INV-2026-1042"});
    let created = make.run("createOrUpdateInvoice", &invoice).await;
    invoice["payment_reference"] = json!("ACME 1042");
    let updated = make.run("createOrUpdateInvoice", &invoice).await;
    assert_eq!(updated["id"], created["id"], "upserted by external id");
    assert_eq!((&updated["payment_reference"], &updated["status"]), (&json!("ACME 1042"), &json!("open")));
    let invoice_id = created["id"].as_str().unwrap().to_owned();

    // A credit quoting it, found by its text and matched to the invoice: the invoice is paid.
    let txns =
        credits(&app, &tenant.key, "GBP", &[json!({"amount": "1250.00", "description": "ACME 1042 thanks"})]).await;
    let found = make.run("findTransaction", &json!({"q": "ACME 1042", "amount_min": 125000})).await;
    assert_eq!(ids(&found), [txns[0].as_str()]);
    let allocations = json!([{"target_type": "invoice", "target_id": invoice_id}]);
    let matched =
        make.run("matchTransaction", &json!({"transaction_ids": [txns[0]], "allocations": allocations})).await;
    assert_eq!((&matched["status"], &matched["allocations"][0]["amount"]), (&json!("active"), &json!(125000)));

    let delivered = hook.wait_for(1, Duration::from_secs(15)).await;
    let event = delivered[0].json();
    assert_eq!(event["event_type"], "invoice.paid", "{event}");
    assert_eq!(event["data"]["id"], invoice_id);
    assert_eq!((&event["data"]["status"], &event["data"]["amount_due"]), (&json!("paid"), &json!(0)));
    // The webhook outputs the body as it came; the trigger's interface names what is in it.
    let output = fill(definition.file("webhooks/invoicePaid/communication.json"), &json!({"body": event})).unwrap();
    assert_eq!(output["output"], event);
    assert_carries(&event, definition.file("modules/watchInvoicePaid/interface.json"), "watchInvoicePaid");
    let paid = make.run("findInvoice", &json!({"number": "INV-2026-1042"})).await;
    assert_eq!(ids(&paid), [invoice_id.as_str()]);
    assert_eq!(paid[0]["status"], "paid");

    let detach = definition.file("webhooks/invoicePaid/detach.json");
    let webhook = json!({"webhook": {"url": hook.url, "externalHookId": hook_id}});
    make.send(detach, &make.scope(webhook), Via::Base).await.unwrap();
    let path = format!("/api/v1/webhook_endpoints/{hook_id}");
    let gone = app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap();
    assert_eq!(gone.status(), 404, "detach deletes the endpoint");
}

#[tokio::test]
async fn make_upserts_a_customer_excludes_a_transaction_and_records_one() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let definition = Definition::load();
    let make = Make::new(&app, &definition, &tenant.key);

    let customer = json!({"external_id": "hs-4411", "source": "hubspot", "name": "Acme Widgets Ltd",
                          "aliases": ["ACME WIDGETS LTD"], "bank_accounts": [{"iban": "GB82 WEST 1234 5698 7654 32"}]});
    let created = make.run("createOrUpdateCustomer", &customer).await;
    assert_eq!((&created["source"], &created["external_id"]), (&json!("hubspot"), &json!("hs-4411")));
    assert_eq!(created["bank_accounts"][0]["iban"], "GB82WEST12345698765432");
    let renamed = json!({"external_id": "hs-4411", "source": "hubspot", "name": "Acme Widgets plc"});
    let renamed = make.run("createOrUpdateCustomer", &renamed).await;
    assert_eq!((&renamed["id"], &renamed["name"]), (&created["id"], &json!("Acme Widgets plc")));

    let txns = credits(&app, &tenant.key, "GBP", &[json!({"amount": "500.00", "description": "From savings"})]).await;
    let excluded =
        make.run("excludeTransaction", &json!({"transaction_id": txns[0], "reason": "Our own transfer"})).await;
    assert_eq!(excluded, json!({"transaction_id": txns[0], "match_status": "excluded", "changed": true}));
    let found = make.run("findTransaction", &json!({"match_status": "excluded"})).await;
    assert_eq!(ids(&found), [txns[0].as_str()]);

    // A cash sale recorded in a manual account, twice: one transaction.
    let account = app
        .as_key(reqwest::Method::POST, "/api/v1/accounts", &tenant.key)
        .json(&json!({"name": "Till", "currency": "GBP"}))
        .send()
        .await
        .unwrap();
    let account: Value = account.json().await.unwrap();
    let sale = json!({"account_id": account["id"], "external_id": "pos-88", "amount": "31.50",
                      "booking_date": "2026-12-02", "description": "Cash sale", "reference": "CASH-SALE-88"});
    let recorded = make.run("createTransaction", &sale).await;
    assert_eq!((recorded["amount"].as_i64(), recorded["currency"].as_str()), (Some(3150), Some("GBP")), "{recorded}");
    let again = make.run("createTransaction", &sale).await;
    assert_eq!(again["id"], recorded["id"]);
}

fn ids(items: &Value) -> Vec<&str> {
    items.as_array().expect("a search outputs a list").iter().map(|item| item["id"].as_str().unwrap()).collect()
}

/// Asserts that `value` holds every field of a Make interface, nested collections included.
fn assert_carries(value: &Value, fields: &Value, at: &str) {
    for field in fields.as_array().into_iter().flatten() {
        let name = field["name"].as_str().unwrap();
        let inner = value.get(name).unwrap_or_else(|| panic!("{at}.{name} is not in {value}"));
        let Some(spec) = field.get("spec").filter(|spec| spec.is_array()) else { continue };
        match inner {
            Value::Object(_) => assert_carries(inner, spec, &format!("{at}.{name}")),
            Value::Array(items) => items.iter().for_each(|item| assert_carries(item, spec, &format!("{at}.{name}[]"))),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The definition, as files

/// The app's JSON files, by their path under `integrations/make/`.
#[derive(Default)]
struct Definition(BTreeMap<String, Value>);

impl Definition {
    fn load() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/make");
        let mut definition = Self::default();
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display())) {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|extension| extension == "json") {
                    let name = path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
                    let text = std::fs::read_to_string(&path).unwrap();
                    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
                    definition.add(&name, value);
                }
            }
        }
        definition
    }

    fn add(&mut self, name: &str, value: Value) {
        self.0.insert(name.to_owned(), value);
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    fn file(&self, name: &str) -> &Value {
        self.get(name).unwrap_or_else(|| panic!("integrations/make/{name} is missing"))
    }

    /// The names of the components of one kind (`connections`, `webhooks`, `modules`).
    fn components(&self, kind: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .keys()
            .filter_map(|file| file.strip_prefix(kind)?.strip_prefix('/')?.split_once('/'))
            .map(|(name, _)| name.to_owned())
            .collect();
        names.dedup();
        names
    }

    /// A component's parameters: static and mappable.
    fn parameters(&self, folder: &str) -> Vec<Value> {
        ["parameters.json", "mappable-parameters.json"]
            .iter()
            .filter_map(|file| self.get(&format!("{folder}/{file}"))?.as_array().cloned())
            .flatten()
            .collect()
    }
}

fn spec() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The static check

/// Everything in `definition` that does not fit `spec`, one sentence each, naming the file first.
fn check(definition: &Definition, spec: &Value) -> Vec<String> {
    let mut checker = Checker { spec, problems: Vec::new() };
    let connection = definition.parameters("connections/payymo");
    let base = definition.file("base.json");
    if !base["baseUrl"].as_str().is_some_and(|url| url.ends_with("/api/v1")) {
        checker.problem("base.json", "baseUrl must end in /api/v1: module URLs are read relative to it");
    }
    for (file, value) in &definition.0 {
        for name in every_reference(value, "connection") {
            if !connection.iter().any(|p| p["name"] == name) {
                checker.problem(file, &format!("connection.{name} is no parameter of the connection"));
            }
        }
    }
    if let Some(test) = definition.get("connections/payymo/communication.json") {
        checker.request("connections/payymo/communication.json", test, &connection, Via::Absolute);
    }
    for webhook in definition.components("webhooks") {
        checker.webhook(definition, &webhook);
    }
    for module in definition.components("modules") {
        checker.module(definition, &module);
    }
    checker.problems
}

struct Checker<'a> {
    spec: &'a Value,
    problems: Vec<String>,
}

/// How a request's `url` is read: after the base's `baseUrl`, or whole (the connection's test).
#[derive(Clone, Copy)]
enum Via {
    Base,
    Absolute,
}

impl Checker<'_> {
    fn problem(&mut self, file: &str, sentence: &str) {
        self.problems.push(format!("{file}: {sentence}"));
    }

    fn webhook(&mut self, definition: &Definition, name: &str) {
        let folder = format!("webhooks/{name}");
        let parameters = definition.parameters(&folder);
        let attach_file = format!("{folder}/attach.json");
        let Some(attach) = definition.get(&attach_file) else {
            return self.problem(&folder, "an attached webhook needs attach.json");
        };
        self.request(&attach_file, attach, &parameters, Via::Base);
        for event_type in attach["body"]["event_types"].as_array().into_iter().flatten() {
            let known = event_type.as_str().is_some_and(|t| t == "*" || self.spec["webhooks"].get(t).is_some());
            if !known || event_type == "ping" {
                self.problem(&attach_file, &format!("{event_type} is not an event type of the catalogue"));
            }
        }
        let kept = attach["response"]["data"].as_object().cloned().unwrap_or_default();
        if !kept.contains_key("externalHookId") {
            self.problem(&attach_file, "response.data must keep externalHookId, for detach");
        }
        let detach_file = format!("{folder}/detach.json");
        let Some(detach) = definition.get(&detach_file) else {
            return self.problem(&folder, "an attached webhook needs detach.json");
        };
        self.request(&detach_file, detach, &parameters, Via::Base);
        for name in every_reference(detach, "webhook") {
            if name != "url" && !kept.contains_key(&name) {
                self.problem(&detach_file, &format!("webhook.{name} is not kept by attach's response.data"));
            }
        }
    }

    fn module(&mut self, definition: &Definition, name: &str) {
        let folder = format!("modules/{name}");
        let metadata = definition.get(&format!("{folder}/metadata.json")).cloned().unwrap_or_default();
        let parameters = definition.parameters(&folder);
        let communication_file = format!("{folder}/communication.json");
        let requests: Vec<Value> = match definition.get(&communication_file) {
            Some(Value::Array(requests)) => requests.clone(),
            Some(request) => vec![request.clone()],
            None => vec![],
        };
        let mut answer = None;
        for request in &requests {
            answer = self.request(&communication_file, request, &parameters, Via::Base);
        }
        let last_response = requests.last().map(|r| r["response"].clone()).unwrap_or_default();
        let output = match metadata["typeId"].as_str() {
            Some("instant_trigger") => self.event_schema(definition, &folder, &metadata),
            Some("action") => answer.and_then(|answer| self.output_schema(&last_response, &answer)),
            Some("search") => {
                if last_response.get("iterate").is_none() {
                    self.problem(&communication_file, "a search iterates over what it finds (response.iterate)");
                }
                answer.and_then(|answer| self.output_schema(&last_response, &answer))
            }
            other => {
                self.problem(&format!("{folder}/metadata.json"), &format!("typeId {other:?} is not a module type"));
                None
            }
        };
        let interface_file = format!("{folder}/interface.json");
        let (Some(output), Some(interface)) = (output, definition.get(&interface_file)) else { return };
        self.fields(&interface_file, "", interface, &output);
        if let Some(Value::Object(sample)) = definition.get(&format!("{folder}/samples.json")) {
            for key in sample.keys().filter(|key| !interface.as_array().unwrap().iter().any(|f| f["name"] == **key)) {
                self.problem(&format!("{folder}/samples.json"), &format!("{key} is no field of the interface"));
            }
        }
    }

    /// What an instant trigger outputs: the event its webhook subscribes to, as delivered.
    fn event_schema(&mut self, definition: &Definition, folder: &str, metadata: &Value) -> Option<Value> {
        let file = format!("{folder}/metadata.json");
        let webhook = metadata["webhook"].as_str().unwrap_or_default();
        let Some(attach) = definition.get(&format!("webhooks/{webhook}/attach.json")) else {
            self.problem(&file, &format!("webhook {webhook:?} is not one of the app's webhooks"));
            return None;
        };
        if definition.get(&format!("{folder}/mappable-parameters.json")).is_some() {
            self.problem(folder, "an instant trigger has static parameters only");
        }
        let types = attach["body"]["event_types"].as_array()?;
        let [event_type] = types.as_slice() else { return None };
        let operation = self.spec["webhooks"].get(event_type.as_str()?)?;
        Some(operation["post"]["requestBody"]["content"]["application/json"]["schema"].clone())
    }

    /// Checks one request against its operation; returns the schema of the operation's answer.
    fn request(&mut self, file: &str, request: &Value, parameters: &[Value], via: Via) -> Option<Value> {
        let method = request["method"].as_str().unwrap_or("GET").to_uppercase();
        let url = request["url"].as_str().unwrap_or_default();
        let path = match via {
            Via::Base => format!("/api/v1{url}"),
            Via::Absolute => url.split_once("}}").map(|(_, rest)| rest.to_owned()).unwrap_or_default(),
        };
        let wanted: Vec<&str> = path.split('/').map(|s| if s.contains("{{") { "*" } else { s }).collect();
        let Some((template, operation)) = self.operation(&method, &wanted) else {
            self.problem(file, &format!("{method} {} is no operation of the API", wanted.join("/")));
            return None;
        };
        let operation_parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
        let parameter = |place: &str, name: &str| {
            operation_parameters.iter().find(|p| p["in"] == place && p["name"] == name).map(|p| p["schema"].clone())
        };
        for (segment, placeholder) in path.split('/').zip(template.split('/')) {
            if segment.contains("{{") {
                let name = placeholder.trim_matches(|c| c == '{' || c == '}');
                let schema = parameter("path", name).unwrap_or_default();
                self.text(file, &format!("url {name}"), segment, &schema, parameters);
            }
        }
        let operation_name = format!("{method} {template}");
        let query = |checker: &mut Self, qs: &Value| {
            for (name, value) in qs.as_object().into_iter().flatten() {
                match parameter("query", name) {
                    Some(schema) => checker.value(file, &format!("qs.{name}"), value, &schema, parameters),
                    None => checker.problem(file, &format!("qs.{name} is not a query parameter of {operation_name}")),
                }
            }
        };
        query(self, &request["qs"]);
        query(self, &request["pagination"]["qs"]);
        if let Some(body) = request.get("body") {
            let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            if schema.is_null() {
                self.problem(file, &format!("{operation_name} takes no JSON body"));
            } else {
                self.value(file, "body", body, schema, parameters);
            }
        }
        let answer = operation["responses"]
            .as_object()?
            .iter()
            .find(|(status, _)| status.starts_with('2'))
            .map(|(_, response)| response["content"]["application/json"]["schema"].clone())
            .filter(|schema| !schema.is_null())?;
        // What Make reads from a success (an error's message reads the problem instead).
        let mut response = request["response"].clone();
        response.as_object_mut().map(|fields| fields.remove("error"));
        for section in [&response, &request["pagination"]] {
            for path in every_reference(section, "body") {
                if let Err(missing) = self.at(&answer, &path) {
                    self.problem(file, &format!("body.{path}: {missing} is not in the answer of {operation_name}"));
                }
            }
        }
        Some(answer)
    }

    /// The spec's path template matching `wanted` (`*` for a segment Make fills), and its operation.
    fn operation(&self, method: &str, wanted: &[&str]) -> Option<(String, Value)> {
        self.spec["paths"].as_object()?.iter().find_map(|(template, item)| {
            let segments: Vec<&str> = template.split('/').collect();
            let fits = segments.len() == wanted.len()
                && segments
                    .iter()
                    .zip(wanted)
                    .all(|(segment, wanted)| if segment.starts_with('{') { *wanted == "*" } else { segment == wanted });
            fits.then(|| item.get(method.to_lowercase()).map(|operation| (template.clone(), operation.clone())))?
        })
    }

    /// Checks a value Make sends (part of a body or query) against the schema the API reads it with.
    fn value(&mut self, file: &str, at: &str, value: &Value, schema: &Value, parameters: &[Value]) {
        let schema = self.resolve(schema);
        let allowed = types(&schema);
        match value {
            Value::String(text) => self.text(file, at, text, &schema, parameters),
            Value::Object(fields) => {
                if !allows(&allowed, "object") {
                    return self.problem(file, &format!("{at} is an object; the API wants {}", allowed.join(" or ")));
                }
                for (name, value) in fields {
                    match schema["properties"].get(name) {
                        Some(field) => self.value(file, &format!("{at}.{name}"), value, field, parameters),
                        None if schema["properties"].is_object() => {
                            let known: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
                            let sentence = format!("{at}.{name} is not a field of the request body (it has {known:?})");
                            self.problem(file, &sentence);
                        }
                        None => {}
                    }
                }
            }
            Value::Array(items) => {
                if !allows(&allowed, "array") {
                    return self.problem(file, &format!("{at} is an array; the API wants {}", allowed.join(" or ")));
                }
                for (i, item) in items.iter().enumerate() {
                    self.value(file, &format!("{at}[{i}]"), item, &schema["items"], parameters);
                }
            }
            literal => {
                if !allows(&allowed, json_type(literal)) {
                    let sentence = format!("{at} is {literal}; the API wants {}", allowed.join(" or "));
                    self.problem(file, &sentence);
                }
            }
        }
    }

    /// A string Make sends: a literal, or IML that maps a parameter (whose type must fit).
    fn text(&mut self, file: &str, at: &str, text: &str, schema: &Value, parameters: &[Value]) {
        let schema = self.resolve(schema);
        let allowed = types(&schema);
        let mut mapped = Vec::new();
        for expression in expressions(text) {
            for path in references(expression, "parameters") {
                let name = path.split(['.', '[']).next().unwrap_or_default();
                match parameters.iter().find(|p| p["name"] == name) {
                    Some(parameter) => mapped.push((expression, path, parameter.clone())),
                    None => self.problem(file, &format!("{at} maps parameters.{name}, which is not defined")),
                }
            }
        }
        let whole = whole_expression(text);
        match mapped.as_slice() {
            // `{{parameters.x}}` alone sends the parameter's value as it is: its type must fit.
            [(expression, path, parameter)]
                if whole == Some(expression) && expression == &format!("parameters.{path}") =>
            {
                self.parameter(file, at, parameter, &schema)
            }
            [(expression, _, parameter)] if whole == Some(expression) && expression.starts_with("formatDate(") => {
                if parameter["type"] != "date" || !allows(&allowed, "string") {
                    self.problem(file, &format!("{at} formats a date from a {} parameter", parameter["type"]));
                }
            }
            _ if whole.is_some() => {}
            _ => {
                if !allows(&allowed, "string") {
                    self.problem(file, &format!("{at} is text; the API wants {}", allowed.join(" or ")));
                }
                let listed = schema["enum"].as_array();
                if listed.is_some_and(|values| !text.contains("{{") && !values.iter().any(|v| v == text)) {
                    self.problem(file, &format!("{at} is {text:?}, not one of {}", schema["enum"]));
                }
            }
        }
    }

    /// A Make parameter sent where the API reads `schema`: its type, and its options and fields.
    fn parameter(&mut self, file: &str, at: &str, parameter: &Value, schema: &Value) {
        let schema = self.resolve(schema);
        let allowed = types(&schema);
        let (name, make_type) =
            (parameter["name"].as_str().unwrap_or("(item)"), parameter["type"].as_str().unwrap_or(""));
        match json_types_of(make_type) {
            None => {
                return self.problem(file, &format!("{at}: parameter {name} has the unknown Make type {make_type:?}"));
            }
            Some(types) if !types.iter().any(|t| allows(&allowed, t)) => {
                let wanted = allowed.join(" or ");
                return self.problem(
                    file,
                    &format!("{at} maps parameters.{name}, of Make type {make_type}; the API wants {wanted}"),
                );
            }
            Some(_) => {}
        }
        match make_type {
            "date" if schema["format"] == "date" => self.problem(
                file,
                &format!(
                    "{at}: Make sends a date with its time; send parameters.{name} as formatDate(…, 'YYYY-MM-DD')"
                ),
            ),
            "select" => {
                let values: Vec<&Value> =
                    parameter["options"].as_array().into_iter().flatten().map(|o| &o["value"]).collect();
                if let Some(listed) = schema["enum"].as_array() {
                    for value in values.into_iter().filter(|v| !listed.contains(v)) {
                        self.problem(file, &format!("{at}: option {value} of {name} is not one of {}", schema["enum"]));
                    }
                }
            }
            "collection" => self.nested(file, at, &parameter["spec"], &schema),
            "array" => match &parameter["spec"] {
                Value::Object(_) => self.parameter(file, &format!("{at}[]"), &parameter["spec"], &schema["items"]),
                spec => self.nested(file, &format!("{at}[]"), spec, &schema["items"]),
            },
            _ => {}
        }
    }

    /// The fields of a collection parameter against the object schema it is sent as.
    fn nested(&mut self, file: &str, at: &str, spec: &Value, schema: &Value) {
        let schema = self.resolve(schema);
        for field in spec.as_array().into_iter().flatten() {
            let name = field["name"].as_str().unwrap_or_default();
            match schema["properties"].get(name) {
                Some(property) => self.parameter(file, &format!("{at}.{name}"), field, property),
                None => self.problem(file, &format!("{at}.{name} is not a field of the request body")),
            }
        }
    }

    /// A module's interface (its output fields) against the schema of what it outputs.
    fn fields(&mut self, file: &str, prefix: &str, fields: &Value, schema: &Value) {
        let schema = self.resolve(schema);
        for field in fields.as_array().into_iter().flatten() {
            let (name, make_type) = (field["name"].as_str().unwrap_or_default(), field["type"].as_str().unwrap_or(""));
            let Some(property) = schema["properties"].get(name).map(|p| self.resolve(p)) else {
                self.problem(file, &format!("{prefix}{name} is not in the answer"));
                continue;
            };
            let allowed = types(&property);
            match json_types_of(make_type) {
                None => self.problem(file, &format!("{prefix}{name} has the unknown Make type {make_type:?}")),
                Some(types) if !types.iter().any(|t| allows(&allowed, t)) => {
                    let sentence = format!("{prefix}{name} is {make_type}, the answer has {}", allowed.join(" or "));
                    self.problem(file, &sentence);
                }
                Some(_) => {}
            }
            if make_type == "date" && !matches!(property["format"].as_str(), Some("date" | "date-time")) {
                self.problem(file, &format!("{prefix}{name} is a date, the answer has no date there"));
            }
            match (make_type, &field["spec"]) {
                ("collection", Value::Array(_)) => {
                    self.fields(file, &format!("{prefix}{name}."), &field["spec"], &property)
                }
                ("array", Value::Array(_)) => {
                    self.fields(file, &format!("{prefix}{name}[]."), &field["spec"], &property["items"])
                }
                _ => {}
            }
        }
    }

    /// What a module outputs of `answer`: `{{body…}}`, or each `{{item}}` of `iterate`.
    fn output_schema(&self, response: &Value, answer: &Value) -> Option<Value> {
        let output = response["output"].as_str().unwrap_or("{{body}}");
        let path = match response["iterate"].as_str() {
            Some(iterate) if output == "{{item}}" => format!("{}[1]", whole_expression(iterate)?),
            Some(_) => return None,
            None => whole_expression(output)?.to_owned(),
        };
        match path.strip_prefix("body") {
            Some("") => Some(answer.clone()),
            Some(rest) => self.at(answer, rest.strip_prefix('.').unwrap_or(rest)).ok(),
            None => None,
        }
    }

    /// The schema at `path` (`data[1].id`) inside `schema`; Err names the first step missing.
    fn at(&self, schema: &Value, path: &str) -> Result<Value, String> {
        let mut schema = self.resolve(schema);
        for step in steps(path) {
            let next = match step {
                Step::Key(key) => schema["properties"].get(key).cloned(),
                Step::Index(_) => schema.get("items").cloned(),
            };
            schema = self.resolve(&next.ok_or_else(|| path.to_owned())?);
        }
        Ok(schema)
    }

    /// `schema` with `$ref` followed, `allOf` merged and a `oneOf` with null reduced to the other.
    fn resolve(&self, schema: &Value) -> Value {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.rsplit('/').next().unwrap_or_default();
            return self.resolve(&self.spec["components"]["schemas"][name]);
        }
        if let Some(parts) = schema["allOf"].as_array() {
            let mut properties = Map::new();
            for part in parts {
                properties.extend(self.resolve(part)["properties"].as_object().cloned().unwrap_or_default());
            }
            return json!({"type": "object", "properties": properties});
        }
        for key in ["oneOf", "anyOf"] {
            let options: Vec<&Value> =
                schema[key].as_array().into_iter().flatten().filter(|o| o["type"] != "null").collect();
            if let [only] = options.as_slice() {
                return self.resolve(only);
            }
        }
        schema.clone()
    }
}

/// The JSON types a schema allows, null aside; empty when it allows anything.
fn types(schema: &Value) -> Vec<String> {
    match &schema["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").map(str::to_owned).collect(),
        _ if schema.get("const").is_some() => vec![json_type(&schema["const"]).to_owned()],
        _ if schema.get("enum").is_some() => vec!["string".to_owned()],
        _ if schema.get("properties").is_some() => vec!["object".to_owned()],
        _ => vec![],
    }
}

fn allows(allowed: &[String], json_type: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|t| t == json_type || (t == "number" && json_type == "integer"))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The JSON types a Make parameter or output field of `make_type` may hold (`any`: all of them).
fn json_types_of(make_type: &str) -> Option<&'static [&'static str]> {
    Some(match make_type {
        "text" | "email" | "url" | "password" | "uuid" | "select" | "date" => &["string"],
        "number" | "integer" | "uinteger" => &["integer", "number"],
        "boolean" => &["boolean"],
        "array" => &["array"],
        "collection" => &["object"],
        "any" => &["string", "integer", "number", "boolean", "array", "object"],
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// IML, as far as the app uses it

/// The expressions inside a string's `{{…}}`.
fn expressions(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some((_, after)) = rest.split_once("{{") {
        let Some((expression, tail)) = after.split_once("}}") else { break };
        found.push(expression.trim());
        rest = tail;
    }
    found
}

/// The expression when the whole string is one `{{…}}`: its value is sent as it is, not as text.
fn whole_expression(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then(|| inner.trim())
}

/// The paths an expression reads under `root`: `parameters.due_date` in `formatDate(parameters.due_date, …)`.
fn references<'a>(expression: &'a str, root: &str) -> Vec<&'a str> {
    let prefix = format!("{root}.");
    let mut found = Vec::new();
    for (start, _) in expression.match_indices(&prefix) {
        let before = expression[..start].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let path = &expression[start + prefix.len()..];
        let end = path.find(|c: char| !(c.is_ascii_alphanumeric() || "_.[]".contains(c))).unwrap_or(path.len());
        found.push(&path[..end]);
    }
    found
}

/// Every path under `root` read anywhere in a JSON value's strings.
fn every_reference(value: &Value, root: &str) -> Vec<String> {
    match value {
        Value::String(text) => {
            expressions(text).into_iter().flat_map(|e| references(e, root)).map(str::to_owned).collect()
        }
        Value::Array(items) => items.iter().flat_map(|item| every_reference(item, root)).collect(),
        Value::Object(fields) => fields.values().flat_map(|v| every_reference(v, root)).collect(),
        _ => vec![],
    }
}

enum Step<'a> {
    Key(&'a str),
    /// IML counts from 1.
    Index(usize),
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|part| !part.is_empty()) {
        let mut pieces = part.split('[');
        let key = pieces.next().unwrap_or_default();
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        steps.extend(pieces.map(|index| Step::Index(index.trim_end_matches(']').parse().unwrap_or(1))));
    }
    steps
}

/// The value at `path` in `scope`, as IML reads it; None when absent (IML's undefined).
fn lookup(scope: &Value, path: &str) -> Option<Value> {
    let mut value = scope;
    for step in steps(path) {
        value = match step {
            Step::Key(key) => value.get(key)?,
            Step::Index(index) => value.get(index.checked_sub(1)?)?,
        };
    }
    Some(value.clone())
}

/// `value` with its IML filled from `scope`, as Make fills a request: a string that is one
/// expression becomes that expression's value, other strings have theirs written in, and what is
/// undefined is left out. Expressions are paths; a function of parameters nobody gave is
/// undefined, as Make's are, and any other function is beyond this test's IML.
fn fill(value: &Value, scope: &Value) -> Option<Value> {
    match value {
        Value::String(text) => match whole_expression(text) {
            Some(path) if is_path(path) => lookup(scope, path),
            // A date parameter as the API wants it: Make gives dates as ISO 8601 date-times.
            Some(expression) if as_day(expression).is_some() => {
                let value = lookup(scope, as_day(expression)?)?;
                Some(Value::String(value.as_str()?.chars().take(10).collect()))
            }
            Some(expression) => {
                let given =
                    references(expression, "parameters").iter().any(|p| lookup(&scope["parameters"], p).is_some());
                assert!(!given, "the test's IML runs paths only, not {expression}");
                None
            }
            None => {
                let mut filled = text.clone();
                for expression in expressions(text) {
                    assert!(is_path(expression), "the test's IML runs paths only, not {expression}");
                    let text = match lookup(scope, expression) {
                        Some(Value::String(s)) => s,
                        Some(other) => other.to_string(),
                        None => String::new(),
                    };
                    filled = filled.replacen(&format!("{{{{{expression}}}}}"), &text, 1);
                }
                Some(Value::String(filled))
            }
        },
        Value::Array(items) => Some(Value::Array(items.iter().filter_map(|item| fill(item, scope)).collect())),
        Value::Object(fields) => {
            Some(Value::Object(fields.iter().filter_map(|(k, v)| Some((k.clone(), fill(v, scope)?))).collect()))
        }
        literal => Some(literal.clone()),
    }
}

/// The path in `formatDate(path, 'YYYY-MM-DD')`, the one function the test's IML runs.
fn as_day(expression: &str) -> Option<&str> {
    let path = expression.strip_prefix("formatDate(")?.strip_suffix(", 'YYYY-MM-DD')")?;
    is_path(path).then_some(path)
}

fn is_path(expression: &str) -> bool {
    expression.chars().all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c))
}

// ---------------------------------------------------------------------------------------------
// Make's side of the wire

/// Sends the definition's requests to a test app as Make would, with one connection.
struct Make<'a> {
    app: &'a TestApp,
    definition: &'a Definition,
    connection: Value,
}

impl<'a> Make<'a> {
    fn new(app: &'a TestApp, definition: &'a Definition, api_key: &str) -> Self {
        Self { app, definition, connection: json!({"apiKey": api_key, "baseUrl": app.url("")}) }
    }

    /// `extra` (`parameters`, `webhook`) with the connection.
    fn scope(&self, mut extra: Value) -> Value {
        extra["connection"] = self.connection.clone();
        extra
    }

    /// Sends one request; answers its body, or the error message Make would show.
    async fn send(&self, request: &Value, scope: &Value, via: Via) -> Result<Value, String> {
        let base = self.definition.file("base.json");
        let filled = |value: &Value| fill(value, scope).unwrap_or_default();
        let (mut url, mut headers) = (filled(&request["url"]).as_str().unwrap_or_default().to_owned(), Map::new());
        if let Via::Base = via {
            url = format!("{}{url}", filled(&base["baseUrl"]).as_str().unwrap_or_default());
            headers.extend(filled(&base["headers"]).as_object().cloned().unwrap_or_default());
        }
        headers.extend(filled(&request["headers"]).as_object().cloned().unwrap_or_default());
        let method: Method = request["method"].as_str().unwrap_or("GET").parse().unwrap();
        let mut builder = self.app.client.request(method, url);
        for (name, value) in &headers {
            builder = builder.header(name, value.as_str().unwrap());
        }
        let query: Vec<(String, String)> = filled(&request["qs"])
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, value)| (name.clone(), value.as_str().map(str::to_owned).unwrap_or(value.to_string())))
            .collect();
        if !query.is_empty() {
            builder = builder.query(&query);
        }
        if let Some(body) = request.get("body") {
            builder = builder.json(&filled(body));
        }
        let response = builder.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let error = match &request["response"]["error"]["message"] {
            Value::Null => &base["response"]["error"]["message"],
            message => message,
        };
        let answer = json!({"statusCode": status, "body": body});
        Err(fill(error, &answer).and_then(|m| m.as_str().map(str::to_owned)).unwrap_or_default())
    }

    /// Runs a module's communication with `parameters` (defaults applied, as Make does); answers
    /// its output: one bundle, or for a search the list of them.
    async fn run(&self, module: &str, parameters: &Value) -> Value {
        let folder = format!("modules/{module}");
        let mut given = parameters.clone();
        for parameter in self.definition.parameters(&folder) {
            let name = parameter["name"].as_str().unwrap();
            if given.get(name).is_none() && parameter.get("default").is_some() {
                given[name] = parameter["default"].clone();
            }
        }
        let requests = match self.definition.file(&format!("{folder}/communication.json")) {
            Value::Array(requests) => requests.clone(),
            request => vec![request.clone()],
        };
        let mut scope = self.scope(json!({"parameters": given, "temp": {}}));
        let mut output = Value::Null;
        for request in &requests {
            let body = self.send(request, &scope, Via::Base).await.unwrap_or_else(|error| panic!("{module}: {error}"));
            scope["body"] = body.clone();
            let response = &request["response"];
            if let Some(Value::Object(temp)) = response.get("temp").and_then(|temp| fill(temp, &scope)) {
                scope["temp"].as_object_mut().unwrap().extend(temp);
            }
            output = match response.get("iterate").and_then(|iterate| fill(iterate, &scope)) {
                Some(Value::Array(items)) => Value::Array(
                    items
                        .into_iter()
                        .filter_map(|item| {
                            scope["item"] = item;
                            fill(response.get("output").unwrap_or(&json!("{{item}}")), &scope)
                        })
                        .collect(),
                ),
                _ => response.get("output").and_then(|o| fill(o, &scope)).unwrap_or(body),
            };
        }
        output
    }
}
