//! A tenant's reconciliation settings: how sure the engine must be to match on its own or to
//! suggest, how far amounts and dates may stray, and which signals count. One row per tenant; a
//! tenant without one has the defaults ([`Settings::default`]), so nothing is written until a
//! tenant changes something.
//!
//! The thresholds are `numeric(5,4)` columns, read as `float8` and written rounded to 4 decimal
//! places ([`SettingsPatch`]), so what a tenant reads back is what the engine compares with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection};
use utoipa::ToSchema;

use super::ReconciliationError;
use crate::domain::{ids::TenantId, validation::FieldError};

/// Largest `amount_tolerance`, in minor units (1,000,000.00).
pub const MAX_AMOUNT_TOLERANCE: i64 = 100_000_000;
/// Largest `amount_tolerance_permille` (10 %).
pub const MAX_TOLERANCE_PERMILLE: i64 = 100;
/// Largest `date_window_days` (two years).
pub const MAX_DATE_WINDOW_DAYS: i64 = 730;
/// Largest `banking_delay_days`.
pub const MAX_BANKING_DELAY_DAYS: i64 = 30;

/// How the engine reconciles this tenant's transactions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ReconciliationSettings, example = json!({
    "auto_match_threshold": 0.9,
    "suggest_threshold": 0.4,
    "amount_tolerance": 0,
    "amount_tolerance_permille": 0,
    "date_window_days": 60,
    "banking_delay_days": 3,
    "signals": {"reference": true, "rf_reference": true, "bank_account": true, "name": true,
                "amount": true, "currency": true, "date": true, "stripe_trace": true},
    "updated_at": null
}))]
pub struct Settings {
    /// A candidate scoring at least this (0.5 to 1, default 0.9) is matched without asking
    /// anyone, when it is the only one that does.
    pub auto_match_threshold: f64,
    /// A candidate scoring at least this (0 to 1, below `auto_match_threshold`; default 0.4) is
    /// suggested to a person; below it, it is not shown.
    pub suggest_threshold: f64,
    /// How far, in minor units, an amount may differ from what is due and still count as equal
    /// (0 to 100,000,000; default 0).
    pub amount_tolerance: i64,
    /// The same, in thousandths of the amount due (0 to 100; default 0). The larger of the two
    /// tolerances applies.
    pub amount_tolerance_permille: i32,
    /// How many days before an invoice's issue date and after its due date a payment may arrive
    /// and still be its candidate (0 to 730; default 60).
    pub date_window_days: i32,
    /// How many days a bank may take to book a payment, or a Stripe payout to arrive (0 to 30;
    /// default 3).
    pub banking_delay_days: i32,
    /// Which signals count towards a score. Always all eight.
    pub signals: Signals,
    /// When the settings last changed; null while they are the defaults.
    pub updated_at: Option<DateTime<Utc>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            auto_match_threshold: 0.9,
            suggest_threshold: 0.4,
            amount_tolerance: 0,
            amount_tolerance_permille: 0,
            date_window_days: 60,
            banking_delay_days: 3,
            signals: Signals::default(),
            updated_at: None,
        }
    }
}

/// Which signals count towards a score: each on (`true`, the default) or off. A signal left out
/// of the stored object is on, so a signal added later starts on for everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
#[schema(as = ReconciliationSignals)]
pub struct Signals {
    /// The invoice's number or payment reference in the transaction's text.
    pub reference: bool,
    /// The invoice's ISO 11649 creditor reference (`RF…`) in the transaction's text.
    pub rf_reference: bool,
    /// The payer's bank account is one of the customer's.
    pub bank_account: bool,
    /// The payer's name resembles the customer's.
    pub name: bool,
    /// The amount equals what is due (within the tolerances).
    pub amount: bool,
    /// The currencies agree. Cannot be turned off: money in one currency never pays another.
    pub currency: bool,
    /// The payment arrived within the date window.
    pub date: bool,
    /// A Stripe payout's trace (its id or statement descriptor) in the transaction's text.
    pub stripe_trace: bool,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            reference: true,
            rf_reference: true,
            bank_account: true,
            name: true,
            amount: true,
            currency: true,
            date: true,
            stripe_trace: true,
        }
    }
}

/// A change to the settings: fields left out keep their value. Unknown fields, and unknown
/// signal names, are refused.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UpdateReconciliationSettings, example = json!({
    "auto_match_threshold": 0.95,
    "amount_tolerance": 100,
    "signals": {"name": false}
}))]
pub struct SettingsPatch {
    pub auto_match_threshold: Option<f64>,
    pub suggest_threshold: Option<f64>,
    pub amount_tolerance: Option<i64>,
    pub amount_tolerance_permille: Option<i64>,
    pub date_window_days: Option<i64>,
    pub banking_delay_days: Option<i64>,
    pub signals: Option<SignalsPatch>,
}

/// Signals to turn on or off; those left out keep their value.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UpdateReconciliationSignals)]
pub struct SignalsPatch {
    pub reference: Option<bool>,
    pub rf_reference: Option<bool>,
    pub bank_account: Option<bool>,
    pub name: Option<bool>,
    pub amount: Option<bool>,
    /// Only `true`: the currency signal cannot be turned off.
    pub currency: Option<bool>,
    pub date: Option<bool>,
    pub stripe_trace: Option<bool>,
}

impl SettingsPatch {
    /// `current` with the changes applied, checked: every problem, each naming its field.
    pub fn apply_to(&self, current: &Settings) -> Result<Settings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut next = current.clone();
        if let Some(value) = self.auto_match_threshold {
            next.auto_match_threshold = round4(value);
        }
        if let Some(value) = self.suggest_threshold {
            next.suggest_threshold = round4(value);
        }
        if let Some(value) = self.amount_tolerance {
            next.amount_tolerance = value;
        }
        let mut int = |field: &str, value: Option<i64>, max: i64, slot: &mut i32| {
            if let Some(value) = value {
                match i32::try_from(value) {
                    Ok(value) if (0..=max).contains(&i64::from(value)) => *slot = value,
                    _ => errors.push(FieldError::new(field, format!("must be a whole number from 0 to {max}"))),
                }
            }
        };
        int(
            "amount_tolerance_permille",
            self.amount_tolerance_permille,
            MAX_TOLERANCE_PERMILLE,
            &mut next.amount_tolerance_permille,
        );
        int("date_window_days", self.date_window_days, MAX_DATE_WINDOW_DAYS, &mut next.date_window_days);
        int("banking_delay_days", self.banking_delay_days, MAX_BANKING_DELAY_DAYS, &mut next.banking_delay_days);
        if let Some(signals) = &self.signals {
            signals.apply_to(&mut next.signals);
        }
        // A field refused above kept its valid value, so `check` cannot name it again.
        errors.extend(check(&next));
        if errors.is_empty() { Ok(next) } else { Err(errors) }
    }
}

impl SignalsPatch {
    fn apply_to(&self, signals: &mut Signals) {
        let set = |slot: &mut bool, value: Option<bool>| {
            if let Some(value) = value {
                *slot = value;
            }
        };
        set(&mut signals.reference, self.reference);
        set(&mut signals.rf_reference, self.rf_reference);
        set(&mut signals.bank_account, self.bank_account);
        set(&mut signals.name, self.name);
        set(&mut signals.amount, self.amount);
        set(&mut signals.currency, self.currency);
        set(&mut signals.date, self.date);
        set(&mut signals.stripe_trace, self.stripe_trace);
    }
}

/// A threshold as stored: 4 decimal places.
fn round4(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

/// Every problem with `settings`, each naming its field; empty when they may be stored.
pub fn check(settings: &Settings) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let auto_in_range = (0.5..=1.0).contains(&settings.auto_match_threshold);
    if !auto_in_range {
        errors.push(FieldError::new("auto_match_threshold", "must be from 0.5 to 1"));
    }
    if !(0.0..=1.0).contains(&settings.suggest_threshold) {
        errors.push(FieldError::new("suggest_threshold", "must be from 0 to 1"));
    } else if auto_in_range && settings.suggest_threshold >= settings.auto_match_threshold {
        errors.push(FieldError::new(
            "suggest_threshold",
            format!("must be below auto_match_threshold ({})", settings.auto_match_threshold),
        ));
    }
    if !(0..=MAX_AMOUNT_TOLERANCE).contains(&settings.amount_tolerance) {
        errors
            .push(FieldError::new("amount_tolerance", format!("must be from 0 to {MAX_AMOUNT_TOLERANCE} minor units")));
    }
    let ranges = [
        ("amount_tolerance_permille", settings.amount_tolerance_permille, MAX_TOLERANCE_PERMILLE),
        ("date_window_days", settings.date_window_days, MAX_DATE_WINDOW_DAYS),
        ("banking_delay_days", settings.banking_delay_days, MAX_BANKING_DELAY_DAYS),
    ];
    for (field, value, max) in ranges {
        if !(0..=max).contains(&i64::from(value)) {
            errors.push(FieldError::new(field, format!("must be a whole number from 0 to {max}")));
        }
    }
    if !settings.signals.currency {
        errors.push(FieldError::new(
            "signals.currency",
            "cannot be turned off: money in one currency never pays an amount due in another",
        ));
    }
    errors
}

/// A stored row.
#[derive(Debug, FromRow)]
struct Row {
    auto_match_threshold: f64,
    suggest_threshold: f64,
    amount_tolerance: i64,
    amount_tolerance_permille: i32,
    date_window_days: i32,
    banking_delay_days: i32,
    signals: sqlx::types::Json<Signals>,
    updated_at: DateTime<Utc>,
}

impl From<Row> for Settings {
    fn from(row: Row) -> Self {
        Self {
            auto_match_threshold: row.auto_match_threshold,
            suggest_threshold: row.suggest_threshold,
            amount_tolerance: row.amount_tolerance,
            amount_tolerance_permille: row.amount_tolerance_permille,
            date_window_days: row.date_window_days,
            banking_delay_days: row.banking_delay_days,
            signals: row.signals.0,
            updated_at: Some(row.updated_at),
        }
    }
}

/// The columns [`Row`] reads.
const COLUMNS: &str =
    "auto_match_threshold::float8 as auto_match_threshold, suggest_threshold::float8 as suggest_threshold,
    amount_tolerance, amount_tolerance_permille, date_window_days, banking_delay_days, signals, updated_at";

/// The tenant's settings, or the defaults when it never changed them. One query; call it once
/// per run or request, inside a tenant-bound transaction.
pub async fn load(conn: &mut PgConnection, tenant: &TenantId) -> Result<Settings, ReconciliationError> {
    let row: Option<Row> =
        sqlx::query_as(&format!("select {COLUMNS} from reconciliation_settings where tenant_id = $1"))
            .bind(tenant.as_str())
            .fetch_optional(conn)
            .await?;
    Ok(row.map(Settings::from).unwrap_or_default())
}

/// Applies `patch` to the tenant's settings and stores the result (creating the row on the first
/// change). Refused whole, with every problem named, when the result would be invalid. Two
/// concurrent changes to different fields both land: the row is locked between read and write.
pub async fn update(
    conn: &mut PgConnection,
    tenant: &TenantId,
    patch: SettingsPatch,
) -> Result<Settings, ReconciliationError> {
    // A row to lock; rolled back with the rest if the change is refused.
    sqlx::query("insert into reconciliation_settings (tenant_id) values ($1) on conflict do nothing")
        .bind(tenant.as_str())
        .execute(&mut *conn)
        .await?;
    let current: Row =
        sqlx::query_as(&format!("select {COLUMNS} from reconciliation_settings where tenant_id = $1 for update"))
            .bind(tenant.as_str())
            .fetch_one(&mut *conn)
            .await?;
    let next = patch.apply_to(&Settings::from(current)).map_err(ReconciliationError::Invalid)?;
    let row: Row = sqlx::query_as(&format!(
        "update reconciliation_settings set auto_match_threshold = $2, suggest_threshold = $3, amount_tolerance = $4,
             amount_tolerance_permille = $5, date_window_days = $6, banking_delay_days = $7, signals = $8
         where tenant_id = $1
         returning {COLUMNS}"
    ))
    .bind(tenant.as_str())
    .bind(next.auto_match_threshold)
    .bind(next.suggest_threshold)
    .bind(next.amount_tolerance)
    .bind(next.amount_tolerance_permille)
    .bind(next.date_window_days)
    .bind(next.banking_delay_days)
    .bind(sqlx::types::Json(next.signals))
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(patch: serde_json::Value) -> Vec<String> {
        let patch: SettingsPatch = serde_json::from_value(patch).unwrap();
        patch.apply_to(&Settings::default()).unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn the_defaults_are_valid_and_render_every_signal() {
        let defaults = Settings::default();
        assert!(check(&defaults).is_empty());
        let json = serde_json::to_value(&defaults).unwrap();
        assert_eq!(json["signals"].as_object().unwrap().len(), 8);
        assert_eq!(json["updated_at"], serde_json::Value::Null);
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let patch: SettingsPatch =
            serde_json::from_value(serde_json::json!({"amount_tolerance": 250, "signals": {"name": false}})).unwrap();
        let next = patch.apply_to(&Settings::default()).unwrap();
        assert_eq!(next.amount_tolerance, 250);
        assert!(!next.signals.name);
        assert_eq!(Settings { amount_tolerance: 0, signals: Signals::default(), ..next }, Settings::default());
    }

    #[test]
    fn each_range_is_checked_and_named() {
        assert_eq!(fields(serde_json::json!({"auto_match_threshold": 0.49})), ["auto_match_threshold"]);
        assert_eq!(fields(serde_json::json!({"auto_match_threshold": 1.01})), ["auto_match_threshold"]);
        assert_eq!(fields(serde_json::json!({"suggest_threshold": -0.1})), ["suggest_threshold"]);
        assert_eq!(fields(serde_json::json!({"suggest_threshold": 0.9})), ["suggest_threshold"], "not below auto");
        assert_eq!(fields(serde_json::json!({"amount_tolerance": -1})), ["amount_tolerance"]);
        assert_eq!(fields(serde_json::json!({"amount_tolerance": 100_000_001})), ["amount_tolerance"]);
        assert_eq!(fields(serde_json::json!({"amount_tolerance_permille": 101})), ["amount_tolerance_permille"]);
        assert_eq!(fields(serde_json::json!({"date_window_days": 731})), ["date_window_days"]);
        assert_eq!(fields(serde_json::json!({"banking_delay_days": 5_000_000_000_i64})), ["banking_delay_days"]);
        assert_eq!(fields(serde_json::json!({"signals": {"currency": false}})), ["signals.currency"]);
        assert_eq!(
            fields(serde_json::json!({"auto_match_threshold": 0.3, "date_window_days": -1})),
            ["date_window_days", "auto_match_threshold"]
        );
    }

    #[test]
    fn the_edges_of_each_range_are_accepted() {
        let patch: SettingsPatch = serde_json::from_value(serde_json::json!({
            "auto_match_threshold": 0.5, "suggest_threshold": 0, "amount_tolerance": 100_000_000,
            "amount_tolerance_permille": 100, "date_window_days": 730, "banking_delay_days": 0
        }))
        .unwrap();
        assert!(patch.apply_to(&Settings::default()).is_ok());
    }

    #[test]
    fn thresholds_are_kept_to_four_decimal_places_before_they_are_compared() {
        let patch: SettingsPatch =
            serde_json::from_value(serde_json::json!({"auto_match_threshold": 0.876_54})).unwrap();
        assert_eq!(patch.apply_to(&Settings::default()).unwrap().auto_match_threshold, 0.8765);
        let patch: SettingsPatch = serde_json::from_value(serde_json::json!({
            "auto_match_threshold": 0.800_01, "suggest_threshold": 0.799_99
        }))
        .unwrap();
        assert_eq!(
            patch.apply_to(&Settings::default()).unwrap_err()[0].field,
            "suggest_threshold",
            "both round to 0.8"
        );
    }

    #[test]
    fn unknown_fields_and_signals_are_refused() {
        assert!(serde_json::from_value::<SettingsPatch>(serde_json::json!({"colour": 1})).is_err());
        let error = serde_json::from_value::<SettingsPatch>(serde_json::json!({"signals": {"vibes": true}}));
        assert!(error.unwrap_err().to_string().contains("unknown field `vibes`"));
    }

    #[test]
    fn a_stored_object_missing_a_signal_has_it_on() {
        let signals: Signals = serde_json::from_value(serde_json::json!({"name": false})).unwrap();
        assert_eq!(signals, Signals { name: false, ..Signals::default() });
    }
}
