//! Every state enum (`payymo::domain::states`, `auth::Environment`, `auth::Plan`) lists exactly the
//! values its column's `check` constraint allows: a state added on one side only fails here.

use std::collections::BTreeSet;

use payymo::{
    auth::{Environment, Plan},
    domain::states::{
        AccountKind, ConnectionStatus, DeliveryStatus, JobStatus, MatchStatus, RunStatus, TransactionStatus,
    },
};

use payymo::stripe::connection::StripeConnectionMethod;

use payymo::reconciliation::rules::{RuleAction, RuleField, RuleOperator, RulePreference};

use crate::support::TestApp;

/// The values `table.column`'s check constraint lists (`column in ('a', 'b')`).
async fn allowed(pool: &sqlx::PgPool, table: &str, column: &str) -> BTreeSet<String> {
    let definitions: Vec<String> = sqlx::query_scalar(
        "select pg_get_constraintdef(oid) from pg_constraint where conrelid = $1::regclass and contype = 'c'",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap();
    let prefix = format!("CHECK (({column} = ANY (ARRAY[");
    let definition = definitions
        .iter()
        .find(|d| d.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no check on {table}.{column} listing its values: {definitions:?}"));
    definition.split('\'').skip(1).step_by(2).map(str::to_owned).collect()
}

fn names<'a>(values: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    values.into_iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn every_state_enum_lists_what_its_column_allows() {
    let app = TestApp::spawn().await;
    let pool = app.superuser_pool().await;
    let cases: Vec<(&str, &str, BTreeSet<String>)> = vec![
        ("bank_connections", "status", names(ConnectionStatus::ALL.iter().map(|s| s.as_str()))),
        ("bank_accounts", "kind", names(AccountKind::ALL.iter().map(|s| s.as_str()))),
        ("transactions", "status", names(TransactionStatus::ALL.iter().map(|s| s.as_str()))),
        ("transactions", "match_status", names(MatchStatus::ALL.iter().map(|s| s.as_str()))),
        ("webhook_deliveries", "status", names(DeliveryStatus::ALL.iter().map(|s| s.as_str()))),
        ("jobs", "status", names(JobStatus::ALL.iter().map(|s| s.as_str()))),
        ("imports", "status", names(RunStatus::ALL.iter().map(|s| s.as_str()))),
        ("categorization_rule_runs", "status", names(RunStatus::ALL.iter().map(|s| s.as_str()))),
        ("tenants", "environment", names([Environment::Live, Environment::Test].map(Environment::as_str))),
        ("tenants", "plan", names([Plan::Free, Plan::Standard, Plan::Premium].map(Plan::as_str))),
        ("stripe_connections", "method", names(StripeConnectionMethod::ALL.iter().map(|s| s.as_str()))),
        ("reconciliation_rules", "field", names(RuleField::ALL.iter().map(|s| s.as_str()))),
        ("reconciliation_rules", "operator", names(RuleOperator::ALL.iter().map(|s| s.as_str()))),
        ("reconciliation_rules", "action", names(RuleAction::ALL.iter().map(|s| s.as_str()))),
        ("reconciliation_rules", "prefer", names(RulePreference::ALL.iter().map(|s| s.as_str()))),
    ];
    for (table, column, values) in cases {
        assert_eq!(allowed(&pool, table, column).await, values, "{table}.{column}");
    }
}

/// The committed OpenAPI document spells every state as the API does (`bank_charge`, not
/// `BankCharge`): clients generate their enums from it.
#[test]
fn every_state_enum_is_documented_as_it_is_spelled() {
    use payymo::reconciliation::matches::AdjustmentKind;
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("openapi/openapi.json").unwrap()).unwrap();
    let documented = |schema: &str| -> BTreeSet<String> {
        let values = spec["components"]["schemas"][schema]["enum"].as_array();
        let values = values.unwrap_or_else(|| panic!("{schema} has no enum in the spec"));
        values.iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    let cases: Vec<(&str, BTreeSet<String>)> = vec![
        ("ConnectionStatus", names(ConnectionStatus::ALL.iter().map(|s| s.as_str()))),
        ("AccountKind", names(AccountKind::ALL.iter().map(|s| s.as_str()))),
        ("TransactionStatus", names(TransactionStatus::ALL.iter().map(|s| s.as_str()))),
        ("MatchStatus", names(MatchStatus::ALL.iter().map(|s| s.as_str()))),
        ("DeliveryStatus", names(DeliveryStatus::ALL.iter().map(|s| s.as_str()))),
        ("RunStatus", names(RunStatus::ALL.iter().map(|s| s.as_str()))),
        ("StripeConnectionMethod", names(StripeConnectionMethod::ALL.iter().map(|s| s.as_str()))),
        ("RuleField", names(RuleField::ALL.iter().map(|s| s.as_str()))),
        ("RuleOperator", names(RuleOperator::ALL.iter().map(|s| s.as_str()))),
        ("RuleAction", names(RuleAction::ALL.iter().map(|s| s.as_str()))),
        ("AdjustmentKind", names(AdjustmentKind::ALL.iter().map(|s| s.as_str()))),
    ];
    for (schema, values) in cases {
        assert_eq!(documented(schema), values, "{schema}");
    }
}
