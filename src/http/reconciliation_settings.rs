//! Reconciliation settings: read and change a tenant's thresholds, tolerances and signals. The
//! rules live in `reconciliation::settings`; this module extracts, calls and shapes.

use axum::{Extension, extract::State, response::IntoResponse};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    audit_trail::AuditResource,
    auth::{
        Needs,
        scopes::{ReconciliationRead, ReconciliationWrite},
    },
    error::{ApiError, Problem},
    json::ApiJson,
};
use crate::{
    auth::Principal,
    db::tenant::{begin_tenant, end_read},
    reconciliation::settings::{self, Settings, SettingsPatch},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get, update))
}

/// Get the reconciliation settings
///
/// The thresholds, tolerances and signals the engine uses for this tenant. A tenant that never
/// changed them has the defaults, and `updated_at` is null. `signals` always lists all eight.
#[utoipa::path(
    get,
    path = "/reconciliation/settings",
    tag = "reconciliation",
    responses((status = 200, body = Settings)),
    security(("api_key" = ["reconciliation:read"]), ("bearer" = ["reconciliation:read"]))
)]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationRead>,
) -> Result<ApiJson<Settings>, ApiError> {
    let mut tx = begin_tenant(&state.db, &principal.tenant.id).await?;
    let settings = settings::load(&mut tx, &principal.tenant.id).await?;
    end_read(tx);
    Ok(ApiJson(settings))
}

/// Update the reconciliation settings
///
/// Changes only the fields sent (in `signals`, only the signals named); answers with all the
/// settings. The result must hold together: `auto_match_threshold` from 0.5 to 1,
/// `suggest_threshold` from 0 to 1 and below it, `amount_tolerance` from 0 to 100,000,000 minor
/// units, `amount_tolerance_permille` from 0 to 100, `date_window_days` from 0 to 730,
/// `banking_delay_days` from 0 to 30; thresholds are kept to 4 decimal places. The `currency`
/// signal cannot be turned off. Any problem, an unknown field or signal included, is a 422
/// naming the field, and nothing changes. The new settings apply to what the engine looks at
/// next; matches already made stay.
#[utoipa::path(
    patch,
    path = "/reconciliation/settings",
    tag = "reconciliation",
    request_body = SettingsPatch,
    responses(
        (status = 200, body = Settings),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = ["reconciliation:write"]), ("bearer" = ["reconciliation:write"]))
)]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    _: Needs<ReconciliationWrite>,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = &principal.tenant.id;
    let mut tx = begin_tenant(&state.db, tenant).await?;
    let settings = settings::update(&mut tx, tenant, patch).await?;
    tx.commit().await?;
    let audit = AuditResource::new("reconciliation_settings", tenant.as_str());
    Ok((Extension(audit), ApiJson(settings)))
}
