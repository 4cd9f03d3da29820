//! The portal at `/app`, end to end in headless Chromium against the real server: what a
//! finance person does in a day, on nothing but the public API.

mod browser;
mod daily;
mod developers;
mod screens;
mod session;

use reqwest::Method;
use serde_json::Value;

use crate::support::{TestApp, json_of, tenants::PASSWORD, tenants::TestTenant};
use payymo::domain::scope::Role;

pub use browser::Browser;

pub(crate) async fn get(app: &TestApp, key: &str, path: &str) -> Value {
    json_of(app.as_key(Method::GET, path, key).send().await.unwrap(), 200).await
}

/// A new owner of `tenant`; returns the email (the password is the tests' `PASSWORD`).
pub(crate) async fn owner(app: &TestApp, tenant: &TestTenant) -> String {
    let email = format!("finance-{}@example.com", uuid::Uuid::now_v7().simple());
    app.user(tenant, &email, Role::Owner).await;
    email
}

/// A new owner of `tenant`, signed in through the browser's form.
pub(crate) async fn signed_in(app: &TestApp, tenant: &TestTenant, browser: &Browser) -> String {
    let email = owner(app, tenant).await;
    browser.sign_in(&email, PASSWORD).await;
    email
}
