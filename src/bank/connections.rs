//! The life of a bank connection: create (agreement + requisition upstream), the consent
//! callback that links it, delete, manual refresh, and expiry.
//!
//! Provider calls always happen outside database transactions; each state change commits with
//! its event (and any sync jobs it queues) in one tenant-bound transaction.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;

use super::{
    budget,
    model::{ACCOUNT_COLUMNS, BankAccount, BankConnection, ConnectionError},
    sync,
};
use crate::{
    auth::TenantContext,
    db::tenant::{begin_tenant, end_read},
    domain::{
        ids::{BankAccountId, BankConnectionId, TenantId},
        money::{Currency, parse_minor_units},
        states::ConnectionStatus,
        validation::FieldError,
    },
    events,
    providers::gocardless::{ClientError, GoCardless, ProviderError, types::Institution},
    state::AppState,
};

/// Days before expiry at which `bank_connection.expiring` is announced.
pub const EXPIRY_WARNINGS: [i64; 3] = [7, 3, 1];

const CONNECTION_COLUMNS: &str = "id, institution_id, institution_name, status, consent_link, redirect_url,
    max_historical_days, access_valid_for_days, linked_at, expires_at, last_synced_at, error_code, error_detail,
    requisition_id, reference, created_at, updated_at";

/// A connection row, before its accounts and budget are attached.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConnectionRow {
    pub id: String,
    pub institution_id: String,
    pub institution_name: String,
    pub status: ConnectionStatus,
    pub consent_link: Option<String>,
    pub redirect_url: String,
    pub max_historical_days: i32,
    pub access_valid_for_days: i32,
    pub linked_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_detail: Option<String>,
    pub requisition_id: Option<String>,
    pub reference: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What `POST /bank_connections` asks for, validated.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub institution_id: String,
    pub redirect_url: String,
    pub max_historical_days: Option<i32>,
    pub access_valid_for_days: Option<i32>,
}

/// Why a bank connection operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// The request breaks a rule; each entry names the field.
    #[error("invalid input: {0:?}")]
    Invalid(Vec<FieldError>),
    #[error("no such bank connection")]
    NotFound,
    /// The consent ended: the account holder must authorise again.
    #[error("the bank connection has expired")]
    Expired,
    /// The connection is not linked (yet, or any more); the message says why.
    #[error("{0}")]
    NotLinked(String),
    /// The bank's daily calls for the account are spent.
    #[error("today's calls are spent; they reset in {resets_in_seconds} s")]
    BudgetSpent { resets_in_seconds: u64 },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl BankError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}

/// Creates the agreement and requisition upstream, then the pending connection.
pub async fn create(state: &AppState, tenant: &TenantContext, new: NewConnection) -> Result<BankConnection, BankError> {
    let client = state.gocardless.for_tenant(tenant).await?;
    let institution = match client.institution(&new.institution_id).await {
        Ok(institution) => institution,
        Err(ProviderError::NotFound(_)) | Err(ProviderError::Rejected { status: 400, .. }) => {
            return Err(BankError::invalid(
                "institution_id",
                "is not an institution the bank data provider knows; list them with GET /api/v1/institutions?country=GB",
            ));
        }
        Err(error) => return Err(error.into()),
    };
    let (history, access) = limits(&institution, &new)?;
    let id = BankConnectionId::generate();
    let reference = format!("{}.{}", tenant.id, id);
    let agreement = client.create_agreement(&institution.id, history, access).await?;
    let callback = format!("{}/api/v1/bank_connections/callback", state.public_url);
    let requisition = client.create_requisition(&callback, &institution.id, &reference, &agreement.id).await?;
    let mut tx = begin_tenant(&state.db, &tenant.id).await?;
    sqlx::query(
        "insert into bank_connections (tenant_id, id, institution_id, institution_name, redirect_url, reference,
             agreement_id, requisition_id, consent_link, max_historical_days, access_valid_for_days)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(tenant.id.as_str())
    .bind(id.as_str())
    .bind(&institution.id)
    .bind(&institution.name)
    .bind(&new.redirect_url)
    .bind(&reference)
    .bind(&agreement.id)
    .bind(&requisition.id)
    .bind(&requisition.link)
    .bind(history)
    .bind(access)
    .execute(&mut *tx)
    .await?;
    let connection = load(&mut tx, &tenant.id, &id).await?.ok_or(BankError::NotFound)?;
    events::record(&mut tx, &tenant.id, "bank_connection.created", &connection).await?;
    tx.commit().await?;
    Ok(connection)
}

/// The history and access periods: the request's, bounded by what the bank offers.
fn limits(institution: &Institution, new: &NewConnection) -> Result<(i32, i32), BankError> {
    let history_max = institution.history_days().clamp(1, 730);
    let access_max = institution.max_access_days().clamp(1, 730);
    let history = new.max_historical_days.unwrap_or(90.min(history_max));
    let access = new.access_valid_for_days.unwrap_or(90.min(access_max));
    let mut errors = Vec::new();
    if !(1..=history_max).contains(&history) {
        let message = format!("must be between 1 and {history_max} for {}", institution.name);
        errors.push(FieldError::new("max_historical_days", message));
    }
    if !(1..=access_max).contains(&access) {
        let message = format!("must be between 1 and {access_max} for {}", institution.name);
        errors.push(FieldError::new("access_valid_for_days", message));
    }
    if errors.is_empty() { Ok((history, access)) } else { Err(BankError::Invalid(errors)) }
}

/// One connection with its accounts and today's budget.
pub async fn load(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &BankConnectionId,
) -> Result<Option<BankConnection>, sqlx::Error> {
    let Some(row) = load_row(conn, tenant, id).await? else { return Ok(None) };
    Ok(Some(assemble(conn, tenant, row).await?))
}

/// Attaches accounts and budget to a row.
pub async fn assemble(
    conn: &mut PgConnection,
    tenant: &TenantId,
    row: ConnectionRow,
) -> Result<BankConnection, sqlx::Error> {
    let accounts: Vec<BankAccount> = sqlx::query_as(&format!(
        "select {ACCOUNT_COLUMNS} from bank_accounts where tenant_id = $1 and connection_id = $2 order by id"
    ))
    .bind(tenant.as_str())
    .bind(&row.id)
    .fetch_all(&mut *conn)
    .await?;
    let account_ids: Vec<String> = accounts.iter().map(|a| a.id.clone()).collect();
    let sync_budget = if accounts.is_empty() { None } else { Some(budget::summary(conn, tenant, &account_ids).await?) };
    let expiring_in_days = match (row.status, row.expires_at) {
        (ConnectionStatus::Linked, Some(expires)) => {
            let left = (expires - Utc::now()).num_days();
            (left < EXPIRY_WARNINGS[0]).then_some(left.max(0))
        }
        _ => None,
    };
    let error = row
        .error_code
        .clone()
        .map(|code| ConnectionError { code, detail: row.error_detail.clone().unwrap_or_default() });
    Ok(BankConnection {
        id: row.id,
        institution_id: row.institution_id,
        institution_name: row.institution_name,
        status: row.status,
        consent_link: row.consent_link,
        redirect_url: row.redirect_url,
        max_historical_days: row.max_historical_days,
        access_valid_for_days: row.access_valid_for_days,
        linked_at: row.linked_at,
        expires_at: row.expires_at,
        expiring_in_days,
        last_synced_at: row.last_synced_at,
        error,
        accounts,
        sync_budget,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// A page of connections, newest first.
pub async fn list(
    state: &AppState,
    tenant: &TenantId,
    status: Option<ConnectionStatus>,
    after: Option<&BankConnectionId>,
    limit: u32,
) -> Result<Vec<BankConnection>, sqlx::Error> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let rows: Vec<ConnectionRow> = sqlx::query_as(&format!(
        "select {CONNECTION_COLUMNS} from bank_connections
         where tenant_id = $1 and ($2::text is null or status = $2) and ($3::text is null or id < $3)
         order by id desc limit $4"
    ))
    .bind(tenant.as_str())
    .bind(status)
    .bind(after.map(BankConnectionId::as_str))
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *tx)
    .await?;
    let mut connections = Vec::with_capacity(rows.len());
    for row in rows {
        connections.push(assemble(&mut tx, tenant, row).await?);
    }
    end_read(tx);
    Ok(connections)
}

/// Where the consent callback sends the account holder next.
pub struct CallbackOutcome {
    pub redirect_to: String,
}

/// Handles `GET /bank_connections/callback?ref=…[&error=…&details=…]`: finalises the connection
/// named by the reference and sends the browser on to the tenant's `redirect_url`, with
/// `bank_connection_id` and `status` (and `error`) added to its query. Calling it again (a
/// reload) changes nothing and redirects the same way.
pub async fn callback(
    state: &AppState,
    reference: &str,
    error: Option<&str>,
    details: Option<&str>,
) -> Result<CallbackOutcome, BankError> {
    let (tenant_id, id) = reference
        .split_once('.')
        .and_then(|(t, c)| Some((TenantId::parse(t)?, BankConnectionId::parse(c)?)))
        .ok_or(BankError::NotFound)?;
    let tenant = tenant_context(state, &tenant_id).await?.ok_or(BankError::NotFound)?;
    let mut tx = begin_tenant(&state.db, &tenant.id).await?;
    let row = load_row(&mut tx, &tenant.id, &id).await?.ok_or(BankError::NotFound)?;
    end_read(tx);
    if row.reference != reference {
        return Err(BankError::NotFound);
    }
    if row.status != ConnectionStatus::Pending {
        return Ok(outcome(&row.redirect_url, &row.id, row.status, row.error_code.as_deref()));
    }
    if let Some(error) = error {
        let detail =
            details.unwrap_or("the account holder did not complete the consent").chars().take(500).collect::<String>();
        let code: String = error.chars().filter(|c| c.is_ascii_alphanumeric()).take(100).collect();
        reject(state, &tenant, &row, &code, &detail).await?;
        return Ok(outcome(&row.redirect_url, &row.id, ConnectionStatus::Rejected, Some(&code)));
    }
    let client = state.gocardless.for_tenant(&tenant).await?;
    let requisition_id =
        row.requisition_id.clone().ok_or_else(|| BankError::Internal(anyhow::anyhow!("no requisition")))?;
    let requisition = client.requisition(&requisition_id).await?;
    match requisition.status.as_str() {
        "LN" => {}
        "RJ" => {
            reject(state, &tenant, &row, "UserSessionRejected", "the bank rejected the consent").await?;
            return Ok(outcome(&row.redirect_url, &row.id, ConnectionStatus::Rejected, Some("UserSessionRejected")));
        }
        _ => return Ok(outcome(&row.redirect_url, &row.id, ConnectionStatus::Pending, None)),
    }
    link(state, &tenant, &client, &row, &requisition.accounts).await?;
    Ok(outcome(&row.redirect_url, &row.id, ConnectionStatus::Linked, None))
}

fn outcome(redirect_url: &str, id: &str, status: ConnectionStatus, error: Option<&str>) -> CallbackOutcome {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("bank_connection_id", id).append_pair("status", status.as_str());
    if let Some(error) = error {
        query.append_pair("error", error);
    }
    let separator = if redirect_url.contains('?') { '&' } else { '?' };
    CallbackOutcome { redirect_to: format!("{redirect_url}{separator}{}", query.finish()) }
}

async fn reject(
    state: &AppState,
    tenant: &TenantContext,
    row: &ConnectionRow,
    code: &str,
    detail: &str,
) -> Result<(), BankError> {
    let mut tx = begin_tenant(&state.db, &tenant.id).await?;
    let changed = sqlx::query(
        "update bank_connections set status = 'rejected', error_code = $3, error_detail = $4
         where tenant_id = $1 and id = $2 and status = 'pending'",
    )
    .bind(tenant.id.as_str())
    .bind(&row.id)
    .bind(code)
    .bind(detail)
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() == 1 {
        announce(&mut tx, &tenant.id, &row.id, "bank_connection.updated").await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Fetches each account's metadata, details and balances, then links the connection, stores the
/// accounts and queues their first sync, all in one transaction.
async fn link(
    state: &AppState,
    tenant: &TenantContext,
    client: &GoCardless,
    row: &ConnectionRow,
    provider_accounts: &[String],
) -> Result<(), BankError> {
    let mut fetched = Vec::new();
    for provider_id in provider_accounts {
        let metadata = client.account(provider_id).await?;
        // Details and balances are budgeted by the bank; a failure here leaves them to the sync.
        let details = client.details(provider_id).await.inspect_err(|e| tracing::warn!(%e, "account details")).ok();
        let balances = client.balances(provider_id).await.inspect_err(|e| tracing::warn!(%e, "account balances")).ok();
        fetched.push((metadata, details, balances));
    }
    let mut tx = begin_tenant(&state.db, &tenant.id).await?;
    let linked = sqlx::query(
        "update bank_connections set status = 'linked', linked_at = now(),
             expires_at = now() + make_interval(days => access_valid_for_days), consent_link = null
         where tenant_id = $1 and id = $2 and status = 'pending'",
    )
    .bind(tenant.id.as_str())
    .bind(&row.id)
    .execute(&mut *tx)
    .await?;
    if linked.rows_affected() == 0 {
        // Another callback (a double click) linked it first.
        tx.rollback().await?;
        return Ok(());
    }
    for (metadata, details, balances) in fetched {
        let account = details.as_ref().map(|d| &d.body.account);
        let currency = account.and_then(|a| a.currency.as_deref()).and_then(Currency::parse);
        let balances_json = balances.as_ref().map(|b| balances_of(&b.body.balances));
        let account_id: String = sqlx::query_scalar(
            "insert into bank_accounts (tenant_id, id, connection_id, provider_account_id, status, iban, owner_name,
                 name, currency, balances, balances_fetched_at)
             values ($1, $2, $3, $4, 'ready', $5, $6, $7, $8, coalesce($9, '[]'::jsonb), case when $9 is null then null else now() end)
             on conflict (tenant_id, provider_account_id) do update set connection_id = excluded.connection_id,
                 status = 'ready'
             returning id",
        )
        .bind(tenant.id.as_str())
        .bind(BankAccountId::generate().as_str())
        .bind(&row.id)
        .bind(&metadata.id)
        .bind(account.and_then(|a| a.iban.clone()).or(metadata.iban.clone()))
        .bind(account.and_then(|a| a.owner_name.clone()).or(metadata.owner_name.clone()))
        .bind(account.and_then(|a| a.name.clone().or(a.display_name.clone())).or(metadata.name.clone()))
        .bind(currency.map(|c| c.as_str().to_owned()))
        .bind(balances_json)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(details) = &details {
            budget::record_use(&mut tx, &tenant.id, &account_id, budget::Endpoint::Details, &details.limits).await?;
        }
        if let Some(balances) = &balances {
            budget::record_use(&mut tx, &tenant.id, &account_id, budget::Endpoint::Balances, &balances.limits).await?;
        }
        sync::enqueue(&mut tx, &tenant.id, &account_id).await?;
    }
    announce(&mut tx, &tenant.id, &row.id, "bank_connection.updated").await?;
    tx.commit().await?;
    Ok(())
}

/// Balances in our shape, to bind as `jsonb`; entries that do not convert exactly are dropped
/// (and logged).
pub fn balances_of(
    balances: &[crate::providers::gocardless::types::Balance],
) -> sqlx::types::Json<Vec<super::model::Balance>> {
    let converted = balances
        .iter()
        .filter_map(|b| {
            let currency = Currency::parse(&b.balance_amount.currency)?;
            let amount = parse_minor_units(&b.balance_amount.amount, currency)
                .inspect_err(|e| tracing::warn!(%e, "ignoring a balance"))
                .ok()?;
            Some(super::model::Balance {
                balance_type: b.balance_type.chars().take(50).collect(),
                amount,
                currency: currency.as_str().to_owned(),
                reference_date: b.reference_date.as_deref().and_then(|d| d.parse().ok()),
            })
        })
        .collect();
    sqlx::types::Json(converted)
}

/// Records `event_type` with the connection as it now is.
pub async fn announce(
    tx: &mut PgConnection,
    tenant: &TenantId,
    id: &str,
    event_type: &'static str,
) -> Result<(), sqlx::Error> {
    let id = BankConnectionId::from_db(id.to_owned());
    if let Some(connection) = load(tx, tenant, &id).await? {
        events::record(tx, tenant, event_type, &connection).await?;
    }
    Ok(())
}

async fn load_row(
    conn: &mut PgConnection,
    tenant: &TenantId,
    id: &BankConnectionId,
) -> Result<Option<ConnectionRow>, sqlx::Error> {
    sqlx::query_as(&format!("select {CONNECTION_COLUMNS} from bank_connections where tenant_id = $1 and id = $2"))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
}

/// The tenant's context for work that runs without a request (callbacks, jobs).
pub async fn tenant_context(state: &AppState, tenant: &TenantId) -> Result<Option<TenantContext>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        environment: crate::auth::Environment,
        plan: crate::auth::Plan,
    }
    let row: Option<Row> = sqlx::query_as("select environment, plan from tenants where id = $1")
        .bind(tenant.as_str())
        .fetch_optional(&state.db)
        .await?;
    Ok(row.map(|row| TenantContext { id: tenant.clone(), environment: row.environment, plan: row.plan }))
}

/// Deletes the requisition upstream and marks the connection `deleted`; accounts and
/// transactions stay. Deleting a deleted connection changes nothing.
pub async fn delete(
    state: &AppState,
    tenant: &TenantContext,
    id: &BankConnectionId,
) -> Result<Option<BankConnection>, BankError> {
    let mut tx = begin_tenant(&state.db, &tenant.id).await?;
    let Some(row) = load_row(&mut tx, &tenant.id, id).await? else { return Ok(None) };
    end_read(tx);
    if row.status != ConnectionStatus::Deleted
        && let Some(requisition) = &row.requisition_id
    {
        let client = state.gocardless.for_tenant(tenant).await?;
        client.delete_requisition(requisition).await?;
    }
    let mut tx = begin_tenant(&state.db, &tenant.id).await?;
    let changed = sqlx::query(
        "update bank_connections set status = 'deleted', deleted_at = now(), consent_link = null
         where tenant_id = $1 and id = $2 and status <> 'deleted'",
    )
    .bind(tenant.id.as_str())
    .bind(id.as_str())
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() == 1 {
        announce(&mut tx, &tenant.id, id.as_str(), "bank_connection.updated").await?;
    }
    let connection = load(&mut tx, &tenant.id, id).await?;
    tx.commit().await?;
    Ok(connection)
}

/// Queues a sync of every account now (202), unless the connection cannot sync or the bank's
/// budget for today is spent.
pub async fn refresh(
    state: &AppState,
    tenant: &TenantContext,
    id: &BankConnectionId,
) -> Result<Option<BankConnection>, BankError> {
    let mut tx = begin_tenant(&state.db, &tenant.id).await?;
    let Some(connection) = load(&mut tx, &tenant.id, id).await? else { return Ok(None) };
    match connection.status {
        ConnectionStatus::Linked => {}
        ConnectionStatus::Expired => return Err(BankError::Expired),
        status => {
            return Err(BankError::NotLinked(format!("the bank connection is {status}, so there is nothing to sync")));
        }
    }
    let spent = connection.sync_budget.as_ref().is_some_and(|b| b.transactions_remaining <= 0);
    if spent {
        let resets = connection.sync_budget.as_ref().map_or(86_400, |b| (b.resets_at - Utc::now()).num_seconds());
        return Err(BankError::BudgetSpent { resets_in_seconds: resets.max(1).unsigned_abs() });
    }
    for account in &connection.accounts {
        sync::enqueue(&mut tx, &tenant.id, &account.id).await?;
    }
    tx.commit().await?;
    Ok(Some(connection))
}

/// Marks connections whose consent ran out `expired`, and announces those about to (7, 3 and 1
/// days before), each warning once. Runs periodically on one instance at a time.
pub async fn sweep_expiry(state: &AppState) -> anyhow::Result<usize> {
    let mut platform = crate::db::tenant::begin_platform(&state.db).await?;
    #[derive(sqlx::FromRow)]
    struct Due {
        tenant_id: String,
        id: String,
        expires_at: DateTime<Utc>,
        expiry_warned_days: Option<i32>,
    }
    let due: Vec<Due> = sqlx::query_as(
        "select tenant_id, id, expires_at, expiry_warned_days from bank_connections
         where status = 'linked' and expires_at < now() + interval '7 days'
         order by expires_at limit 1000",
    )
    .fetch_all(&mut *platform)
    .await?;
    end_read(platform);
    let mut changed = 0;
    for Due { tenant_id, id, expires_at, expiry_warned_days: warned } in due {
        let tenant = TenantId::from_db(tenant_id);
        let mut tx = begin_tenant(&state.db, &tenant).await?;
        let left = expires_at - Utc::now();
        if left <= Duration::zero() {
            let expired = sqlx::query(
                "update bank_connections set status = 'expired', error_code = 'consent_expired',
                     error_detail = 'the consent ran out: ask the account holder to re-authorise'
                 where tenant_id = $1 and id = $2 and status = 'linked'",
            )
            .bind(tenant.as_str())
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            if expired.rows_affected() == 1 {
                announce(&mut tx, &tenant, &id, "bank_connection.expired").await?;
                changed += 1;
            }
        } else {
            // The smallest threshold the time left is within, announced if not already.
            let days_left = left.num_seconds() as f64 / 86_400.0;
            let threshold = EXPIRY_WARNINGS.iter().rev().find(|d| days_left <= **d as f64).copied();
            if let Some(threshold) = threshold
                && warned.is_none_or(|w| i64::from(w) > threshold)
            {
                sqlx::query("update bank_connections set expiry_warned_days = $3 where tenant_id = $1 and id = $2")
                    .bind(tenant.as_str())
                    .bind(&id)
                    .bind(threshold as i32)
                    .execute(&mut *tx)
                    .await?;
                announce(&mut tx, &tenant, &id, "bank_connection.expiring").await?;
                changed += 1;
            }
        }
        tx.commit().await?;
    }
    Ok(changed)
}

/// Marks a connection expired after the provider said so during a sync.
pub async fn mark(
    state: &AppState,
    tenant: &TenantId,
    id: &str,
    status: ConnectionStatus,
    code: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let changed = sqlx::query(
        "update bank_connections set status = $3, error_code = $4, error_detail = $5
         where tenant_id = $1 and id = $2 and status = 'linked'",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(status)
    .bind(code)
    .bind(detail)
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() == 1 {
        let event =
            if status == ConnectionStatus::Expired { "bank_connection.expired" } else { "bank_connection.updated" };
        announce(&mut tx, tenant, id, event).await?;
    }
    tx.commit().await
}
