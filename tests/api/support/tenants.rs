//! Fixtures: tenants, API keys and users, created through the same code the admin API uses.

use payymo::{
    auth::{Environment, Plan},
    db::tenant::{begin_platform, begin_tenant},
    domain::{ids::TenantId, scope::Role},
    tenancy::{self, KeySpec, NewTenant},
};

use super::TestApp;

/// A tenant with an all-powerful (`*`) API key.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: String,
    pub key: String,
    pub key_id: String,
    pub environment: Environment,
}

pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// A test-mode premium tenant (premium, so ordinary tests stay far from its rate limit).
    pub async fn tenant(&self) -> TestTenant {
        self.tenant_with(Environment::Test, Plan::Premium).await
    }

    pub async fn tenant_with(&self, environment: Environment, plan: Plan) -> TestTenant {
        self.tenant_named_with("Acme Ltd", environment, plan).await
    }

    /// A test-mode premium tenant called `name`, for tests where tenants are told apart by name.
    pub async fn tenant_named(&self, name: &str) -> TestTenant {
        self.tenant_named_with(name, Environment::Test, Plan::Premium).await
    }

    async fn tenant_named_with(&self, name: &str, environment: Environment, plan: Plan) -> TestTenant {
        let mut tx = begin_platform(&self.db).await.unwrap();
        let tenant = tenancy::create_tenant(
            &mut tx,
            NewTenant { name: name.into(), environment, plan: Some(plan), time_zone: Some("Europe/London".into()) },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let mut t = TestTenant { id: tenant.id, key: String::new(), key_id: String::new(), environment };
        let (id, key) = self.key_with_id(&t, &["*"]).await;
        (t.key, t.key_id) = (key, id);
        t
    }

    /// A new API key of `tenant` holding `scopes`.
    pub async fn key(&self, tenant: &TestTenant, scopes: &[&str]) -> String {
        self.key_with_id(tenant, scopes).await.1
    }

    pub async fn key_with_id(&self, tenant: &TestTenant, scopes: &[&str]) -> (String, String) {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        let spec = KeySpec::parse("fixture", &scopes, None, &[]).unwrap();
        let id = TenantId::parse(&tenant.id).unwrap();
        let mut tx = begin_tenant(&self.db, &id).await.unwrap();
        let (key, secret) = tenancy::create_api_key(&mut tx, &id, tenant.environment, &spec, None).await.unwrap();
        tx.commit().await.unwrap();
        (key.id, secret)
    }

    /// A user with `role` in `tenant`, password [`PASSWORD`]; returns the user id.
    pub async fn user(&self, tenant: &TestTenant, email: &str, role: Role) -> String {
        let id = TenantId::parse(&tenant.id).unwrap();
        let mut tx = begin_tenant(&self.db, &id).await.unwrap();
        let user = tenancy::ensure_user(&mut tx, email, Some("Test User"), Some(PASSWORD.into())).await.unwrap();
        tenancy::add_member(&mut tx, &id, &user.id, role).await.unwrap();
        tx.commit().await.unwrap();
        user.id
    }

    /// A request with `key` as the bearer credential.
    pub fn as_key(&self, method: reqwest::Method, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    /// Signs `email` in to `tenant` and returns the session JSON.
    pub async fn login(&self, tenant: &TestTenant, email: &str) -> serde_json::Value {
        let response = self
            .client
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"email": email, "password": PASSWORD, "tenant_id": tenant.id}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "login failed");
        response.json().await.unwrap()
    }
}
