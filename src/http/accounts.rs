//! Accounts: every account of the tenant, bank feed and manual, and creating manual accounts to
//! import transactions into.

use super::path_id::PathId;
use axum::{Extension, extract::State, http::StatusCode, response::IntoResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::{AuditResource, Probe},
    auth::{
        Needs,
        scopes::{TransactionsRead, TransactionsWrite},
    },
    error::{ApiError, FieldError, Problem},
    json::ApiJson,
    pagination::{self, Page},
    query::ApiQuery,
};
use crate::{
    auth::Principal,
    bank::model::{ACCOUNT_COLUMNS, BankAccount},
    db::tenant::{begin_tenant, end_read},
    domain::{ids::BankAccountId, money::Currency, states::AccountKind},
    http::reads::Reader,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(get))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Petty cash", "currency": "GBP", "iban": "GB33 BUKB 2020 1555 5555 55"}))]
pub struct CreateAccount {
    /// A name people recognise, 1 to 200 characters.
    pub name: String,
    /// ISO 4217 code; every imported row is in this currency.
    pub currency: String,
    /// The account's IBAN, if it has one (spaces allowed; stored without them, uppercase).
    pub iban: Option<String>,
}

/// A validated new manual account.
struct NewAccount {
    name: String,
    currency: Currency,
    iban: Option<String>,
}

impl CreateAccount {
    fn validate(self) -> Result<NewAccount, ApiError> {
        let mut errors = Vec::new();
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 || name.contains('\0') {
            errors.push(FieldError { field: "name".into(), message: "must be 1 to 200 characters".into() });
        }
        let currency = Currency::parse(&self.currency);
        if currency.is_none() {
            errors
                .push(FieldError { field: "currency".into(), message: "must be an ISO 4217 code such as EUR".into() });
        }
        let iban = self.iban.map(|i| i.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase());
        if iban.as_deref().is_some_and(|i| !is_iban(i)) {
            errors.push(FieldError {
                field: "iban".into(),
                message: "is not a valid IBAN (country code, check digits and account number; the checksum must match)"
                    .into(),
            });
        }
        match (errors.is_empty(), currency) {
            (true, Some(currency)) => Ok(NewAccount { name, currency, iban }),
            _ => Err(ApiError::validation(errors)),
        }
    }
}

/// ISO 13616: two letters, two check digits, up to 30 letters or digits, and the mod-97 check.
fn is_iban(iban: &str) -> bool {
    let bytes = iban.as_bytes();
    if !(15..=34).contains(&bytes.len())
        || !bytes[..2].iter().all(u8::is_ascii_uppercase)
        || !bytes[2..4].iter().all(u8::is_ascii_digit)
        || !bytes.iter().all(u8::is_ascii_alphanumeric)
    {
        return false;
    }
    let rearranged = bytes[4..].iter().chain(&bytes[..4]);
    let remainder = rearranged.fold(0_u32, |acc, &b| {
        if b.is_ascii_digit() {
            (acc * 10 + u32::from(b - b'0')) % 97
        } else {
            (acc * 100 + u32::from(b - b'A' + 10)) % 97
        }
    });
    remainder == 1
}

/// Create a manual account
///
/// An account no bank feed covers (cash, a bank without open banking, a card statement), to
/// import transactions into with `POST /transactions/import`. It has `kind: manual` and no bank
/// connection.
#[utoipa::path(
    post,
    path = "/accounts",
    tag = "accounts",
    request_body = CreateAccount,
    responses(
        (status = 201, body = BankAccount),
        (status = 422, description = "Bad name, currency or IBAN", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["transactions:write"]), ("bearer" = ["transactions:write"]))
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<TransactionsWrite>,
    ApiJson(body): ApiJson<CreateAccount>,
) -> Result<impl IntoResponse, ApiError> {
    let new = body.validate()?;
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let account: BankAccount = sqlx::query_as(&format!(
        "insert into bank_accounts (tenant_id, id, kind, status, name, currency, iban)
         values ($1, $2, 'manual', 'ready', $3, $4, $5) returning {ACCOUNT_COLUMNS}"
    ))
    .bind(principal.tenant.id.as_str())
    .bind(BankAccountId::generate().as_str())
    .bind(&new.name)
    .bind(new.currency.as_str())
    .bind(&new.iban)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let audit = AuditResource::new("bank_account", &account.id);
    Ok((StatusCode::CREATED, Extension(audit), ApiJson(account)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountFilters {
    /// Only accounts of this kind.
    pub kind: Option<AccountKind>,
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<super::pagination::Limit>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl super::query::QueryParams for AccountFilters {}

/// List accounts
///
/// Every account of the tenant, newest first: bank-feed accounts (reached through a bank
/// connection) and manual ones.
#[utoipa::path(
    get,
    path = "/accounts",
    tag = "accounts",
    params(AccountFilters),
    responses((status = 200, body = Page<BankAccount>), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["transactions:read"]), ("bearer" = ["transactions:read"]))
)]
async fn list(
    State(state): State<AppState>,
    reader: Reader,
    principal: Principal,
    _: Needs<TransactionsRead>,
    ApiQuery(f): ApiQuery<AccountFilters>,
) -> Result<ApiJson<Page<BankAccount>>, ApiError> {
    let cursors = pagination::Cursors::of(&state).await?;
    let limit = pagination::limit(f.limit);
    let after = cursors.after(f.cursor.as_deref(), BankAccountId::parse)?;
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let rows: Vec<BankAccount> = sqlx::query_as(&format!(
        "select {ACCOUNT_COLUMNS} from bank_accounts
         where tenant_id = $1 and ($2::text is null or kind = $2) and ($3::text is null or id < $3)
         order by id desc limit $4"
    ))
    .bind(principal.tenant.id.as_str())
    .bind(f.kind)
    .bind(after.as_ref().map(BankAccountId::as_str))
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await?;
    end_read(tx);
    Ok(ApiJson(cursors.page(rows, limit, |a| a.id.clone())))
}

/// Get an account
///
/// A bank-feed account (with its balances as last fetched) or a manual one.
#[utoipa::path(
    get,
    path = "/accounts/{id}",
    tag = "accounts",
    params(("id" = String, Path, description = "The account's id (`ba_…`)")),
    responses((status = 200, body = BankAccount), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["transactions:read"]), ("bearer" = ["transactions:read"]))
)]
async fn get(
    reader: Reader,
    principal: Principal,
    _: Needs<TransactionsRead>,
    PathId(parsed): PathId<BankAccountId>,
) -> Result<ApiJson<BankAccount>, ApiError> {
    let id = parsed.as_str();
    let mut tx = reader.begin(&principal.tenant.id).await?;
    let account: Option<BankAccount> =
        sqlx::query_as(&format!("select {ACCOUNT_COLUMNS} from bank_accounts where tenant_id = $1 and id = $2"))
            .bind(principal.tenant.id.as_str())
            .bind(parsed.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    end_read(tx);
    match account {
        Some(account) => Ok(ApiJson(account)),
        None => Err(ApiError::not_found_in(Probe::Accounts, id)),
    }
}

#[cfg(test)]
mod tests {
    use super::is_iban;

    #[test]
    fn ibans_are_checked() {
        assert!(is_iban("GB33BUKB20201555555555"));
        assert!(is_iban("DE89370400440532013000"));
        assert!(!is_iban("GB34BUKB20201555555555"), "checksum");
        assert!(!is_iban("GB33"), "too short");
        assert!(!is_iban("gb33BUKB20201555555555"), "normalised to uppercase before");
    }
}
