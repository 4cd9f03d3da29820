//! Members of a tenant (add, list, change role, remove, the owner rules) and the platform admin
//! API, against the real server and database.

use payymo::domain::scope::Role;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{
    TestApp, TestCluster, problem,
    tenants::{PASSWORD, TestTenant},
    test_config,
};

const JWT_SECRET: &str = "jwt-secret-for-tests-0123456789-abcdefghij";
const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789-abcdefghij";

async fn add_member(app: &TestApp, credential: &str, body: Value) -> reqwest::Response {
    app.as_key(Method::POST, "/api/v1/members", credential).json(&body).send().await.unwrap()
}

async fn set_role(app: &TestApp, credential: &str, user: &str, role: &str) -> reqwest::Response {
    app.as_key(Method::PATCH, &format!("/api/v1/members/{user}"), credential)
        .json(&json!({"role": role}))
        .send()
        .await
        .unwrap()
}

async fn remove(app: &TestApp, credential: &str, user: &str) -> reqwest::Response {
    app.as_key(Method::DELETE, &format!("/api/v1/members/{user}"), credential).send().await.unwrap()
}

/// Every member, following `next_cursor` with pages of `limit`; also returns the page count.
async fn all_members(app: &TestApp, tenant: &TestTenant, limit: u32) -> (Vec<Value>, usize) {
    let (mut members, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let mut path = format!("/api/v1/members?limit={limit}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let response = app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        pages += 1;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit as usize, "{page}");
        members.extend(data.iter().cloned());
        if page["has_more"] == true {
            assert_eq!(data.len(), limit as usize, "{page}");
            cursor = Some(page["next_cursor"].as_str().expect("next_cursor when has_more").to_owned());
        } else {
            assert_eq!(page["next_cursor"], Value::Null, "{page}");
            return (members, pages);
        }
    }
}

fn ids(members: &[Value]) -> Vec<String> {
    members.iter().map(|m| m["user_id"].as_str().unwrap().to_owned()).collect()
}

/// An app whose access-token signing secret the test knows, so it can act as any user.
async fn spawn_with_known_jwt_secret() -> TestApp {
    let mut config = test_config();
    config.jwt_secret = Some(SecretString::from(JWT_SECRET.to_owned()));
    TestApp::spawn_with(config, TestCluster::get().await.fresh_database().await).await
}

/// An access token for `user` in `tenant`, from a real sign-in (the server takes the scopes from
/// the current membership, not from the token).
async fn user_token(app: &TestApp, tenant: &TestTenant, user: &str) -> String {
    let email: String = sqlx::query_scalar("select email from users where id = $1")
        .bind(user)
        .fetch_one(&app.superuser_pool().await)
        .await
        .unwrap();
    app.login(tenant, &email).await["access_token"].as_str().unwrap().to_owned()
}

// --- Members ----------------------------------------------------------------------------------

#[tokio::test]
async fn members_are_added_and_new_users_need_a_real_password() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;

    // A new user needs a password of at least 12 characters.
    let response = add_member(&app, &tenant.key, json!({"email": "new@example.com", "role": "member"})).await;
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "password", "{body}");
    let response =
        add_member(&app, &tenant.key, json!({"email": "new@example.com", "role": "member", "password": "elevenchars"}))
            .await;
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "password", "{body}");
    // Other bad input.
    let response =
        add_member(&app, &tenant.key, json!({"email": "not-an-email", "role": "member", "password": PASSWORD})).await;
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "email", "{body}");
    let response =
        add_member(&app, &tenant.key, json!({"email": "new@example.com", "role": "emperor", "password": PASSWORD}))
            .await;
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "role", "{body}");

    let response = add_member(
        &app,
        &tenant.key,
        json!({"email": "new@example.com", "role": "member", "name": "New Person", "password": "twelve chars"}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let member: Value = response.json().await.unwrap();
    assert!(member["user_id"].as_str().unwrap().starts_with("usr_"), "{member}");
    assert_eq!(member["email"], "new@example.com", "{member}");
    assert_eq!(member["name"], "New Person", "{member}");
    assert_eq!(member["role"], "member", "{member}");
    assert!(member["created_at"].is_string(), "{member}");
    assert!(member.get("password").is_none() && member.get("password_hash").is_none(), "{member}");

    // A user who exists already (in another tenant) is added without a password.
    let other = app.tenant().await;
    let existing = app.user(&other, "known@example.com", Role::Viewer).await;
    let response = add_member(&app, &tenant.key, json!({"email": "Known@Example.com", "role": "viewer"})).await;
    assert_eq!(response.status(), 201);
    let member: Value = response.json().await.unwrap();
    assert_eq!(member["user_id"], existing.as_str(), "{member}");
    assert_eq!(member["email"], "known@example.com", "{member}");

    // Both can sign in: the new member with the password given, the existing one with theirs.
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "new@example.com", "password": "twelve chars", "tenant_id": tenant.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the new member signs in");
    app.login(&tenant, "known@example.com").await;
}

#[tokio::test]
async fn adding_a_member_twice_is_a_conflict() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let user = app.user(&tenant, "twice@example.com", Role::Member).await;

    for email in ["twice@example.com", "TWICE@example.com"] {
        let response = add_member(&app, &tenant.key, json!({"email": email, "role": "viewer"})).await;
        problem(response, 409, "conflict").await;
    }
    // The membership is unchanged.
    let (members, _) = all_members(&app, &tenant, 100).await;
    let member = members.iter().find(|m| m["user_id"] == user.as_str()).unwrap();
    assert_eq!(member["role"], "member");
}

#[tokio::test]
async fn the_member_list_paginates_with_cursors() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let mut expected = Vec::new();
    for (i, role) in [Role::Owner, Role::Admin, Role::Member, Role::Viewer].into_iter().enumerate() {
        expected.push(app.user(&tenant, &format!("user{i}@example.com"), role).await);
    }

    let response = app.as_key(Method::GET, "/api/v1/members?limit=1", &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let first: Value = response.json().await.unwrap();
    assert_eq!(first["data"].as_array().unwrap().len(), 1, "{first}");
    assert_eq!(first["has_more"], true, "{first}");
    assert!(first["next_cursor"].is_string(), "{first}");

    let (paged, pages) = all_members(&app, &tenant, 1).await;
    assert_eq!(pages, 4);
    let (whole, pages) = all_members(&app, &tenant, 100).await;
    assert_eq!(pages, 1);
    assert_eq!(ids(&paged), ids(&whole), "one page at a time lists the same members in the same order");
    let mut listed = ids(&paged);
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected, "every member exactly once");

    let (_, pages) = all_members(&app, &tenant, 3).await;
    assert_eq!(pages, 2);

    for bad in ["limit=0", "limit=101", "cursor=garbage", "colour=blue"] {
        let response = app.as_key(Method::GET, &format!("/api/v1/members?{bad}"), &tenant.key).send().await.unwrap();
        assert_eq!(response.status(), 422, "{bad}");
        problem(response, 422, "validation_failed").await;
    }
}

#[tokio::test]
async fn roles_change_and_removed_members_lose_access() {
    let app = spawn_with_known_jwt_secret().await;
    let tenant = app.tenant().await;
    let user = app.user(&tenant, "changing@example.com", Role::Viewer).await;
    let token = user_token(&app, &tenant, &user).await;
    // A viewer may not read members.
    let response = app.as_key(Method::GET, "/api/v1/members", &token).send().await.unwrap();
    problem(response, 403, "insufficient_scope").await;

    let response = set_role(&app, &tenant.key, &user, "member").await;
    assert_eq!(response.status(), 200);
    let member: Value = response.json().await.unwrap();
    assert_eq!(member["role"], "member", "{member}");
    assert_eq!(member["user_id"], user.as_str(), "{member}");
    let (members, _) = all_members(&app, &tenant, 100).await;
    assert_eq!(members.iter().find(|m| m["user_id"] == user.as_str()).unwrap()["role"], "member");
    // The member's session sees the new role (members may read members).
    let response = app.as_key(Method::GET, "/api/v1/members", &token).send().await.unwrap();
    assert_eq!(response.status(), 200);

    problem(set_role(&app, &tenant.key, &user, "emperor").await, 422, "validation_failed").await;

    let response = remove(&app, &tenant.key, &user).await;
    assert_eq!(response.status(), 204);
    let (members, _) = all_members(&app, &tenant, 100).await;
    assert!(members.iter().all(|m| m["user_id"] != user.as_str()));

    // Their session stops working here at once.
    let response = app.as_key(Method::GET, "/api/v1/me", &token).send().await.unwrap();
    let body = problem(response, 401, "unauthenticated").await;
    assert_eq!(body["detail"], "the credential has been revoked", "{body}");

    // Gone is gone: changing or removing them again is a 404, as is an id that never existed.
    problem(set_role(&app, &tenant.key, &user, "viewer").await, 404, "not_found").await;
    problem(remove(&app, &tenant.key, &user).await, 404, "not_found").await;
    problem(remove(&app, &tenant.key, "usr_0192f3c4d5e6478fa1b2c3d4e5f60718").await, 404, "not_found").await;
    problem(remove(&app, &tenant.key, "not-an-id").await, 404, "not_found").await;

    // And they can no longer sign in to this tenant.
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "changing@example.com", "password": PASSWORD, "tenant_id": tenant.id}))
        .send()
        .await
        .unwrap();
    problem(response, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn the_last_owner_can_be_neither_removed_nor_demoted() {
    let app = spawn_with_known_jwt_secret().await;
    let tenant = app.tenant().await;
    let first = app.user(&tenant, "first@example.com", Role::Owner).await;
    let first_token = user_token(&app, &tenant, &first).await;

    // Alone, the owner cannot leave or step down, whoever asks.
    for credential in [&tenant.key, &first_token] {
        problem(set_role(&app, credential, &first, "admin").await, 409, "conflict").await;
        problem(remove(&app, credential, &first).await, 409, "conflict").await;
    }

    // With a second owner, the first may step down; then the second is the last.
    let second = app.user(&tenant, "second@example.com", Role::Owner).await;
    let response = set_role(&app, &first_token, &first, "admin").await;
    assert_eq!(response.status(), 200);
    let second_token = user_token(&app, &tenant, &second).await;
    problem(set_role(&app, &second_token, &second, "member").await, 409, "conflict").await;
    problem(remove(&app, &second_token, &second).await, 409, "conflict").await;
    problem(remove(&app, &tenant.key, &second).await, 409, "conflict").await;

    // Promote the first again and the second can go.
    assert_eq!(set_role(&app, &second_token, &first, "owner").await.status(), 200);
    assert_eq!(remove(&app, &tenant.key, &second).await.status(), 204);
    let (members, _) = all_members(&app, &tenant, 100).await;
    let owners: Vec<&Value> = members.iter().filter(|m| m["role"] == "owner").collect();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0]["user_id"], first.as_str());
}

#[tokio::test]
async fn only_owners_and_star_credentials_grant_or_touch_the_owner_role() {
    let app = spawn_with_known_jwt_secret().await;
    let tenant = app.tenant().await;
    let owner = app.user(&tenant, "owner@example.com", Role::Owner).await;
    let admin = app.user(&tenant, "admin@example.com", Role::Admin).await;
    let member = app.user(&tenant, "member@example.com", Role::Member).await;
    let admin_token = user_token(&app, &tenant, &admin).await;
    let member_token = user_token(&app, &tenant, &member).await;
    let members_key = app.key(&tenant, &["members:write"]).await;

    for credential in [&admin_token, &members_key] {
        // Granting owner, to a new or an existing member.
        let response =
            add_member(&app, credential, json!({"email": "coup@example.com", "role": "owner", "password": PASSWORD}))
                .await;
        let body = problem(response, 403, "insufficient_scope").await;
        assert_eq!(body["required_scope"], "*", "{body}");
        problem(set_role(&app, credential, &member, "owner").await, 403, "insufficient_scope").await;
        // Changing or removing an owner.
        problem(set_role(&app, credential, &owner, "viewer").await, 403, "insufficient_scope").await;
        problem(remove(&app, credential, &owner).await, 403, "insufficient_scope").await;
    }
    // Everything else about members is theirs to do.
    let response =
        add_member(&app, &admin_token, json!({"email": "helper@example.com", "role": "admin", "password": PASSWORD}))
            .await;
    assert_eq!(response.status(), 201);
    assert_eq!(set_role(&app, &members_key, &member, "viewer").await.status(), 200);

    // A member (no members:write) cannot manage members at all.
    let body = problem(set_role(&app, &member_token, &member, "admin").await, 403, "insufficient_scope").await;
    assert_eq!(body["required_scope"], "members:write", "{body}");

    // Owners and `*` keys can.
    let owner_token = user_token(&app, &tenant, &owner).await;
    assert_eq!(set_role(&app, &owner_token, &member, "owner").await.status(), 200);
    assert_eq!(set_role(&app, &tenant.key, &member, "member").await.status(), 200);
    let response =
        add_member(&app, &tenant.key, json!({"email": "coowner@example.com", "role": "owner", "password": PASSWORD}))
            .await;
    assert_eq!(response.status(), 201);

    // The owner is still an owner after the refused attempts.
    let (members, _) = all_members(&app, &tenant, 100).await;
    assert_eq!(members.iter().find(|m| m["user_id"] == owner.as_str()).unwrap()["role"], "owner");
    assert!(members.iter().all(|m| m["email"] != "coup@example.com"));
}

// --- The platform admin API -------------------------------------------------------------------

async fn admin_app() -> TestApp {
    let mut config = test_config();
    config.admin_token = Some(SecretString::from(ADMIN_TOKEN.to_owned()));
    TestApp::spawn_with(config, TestCluster::get().await.fresh_database().await).await
}

fn as_admin(app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.client.request(method, app.url(path)).bearer_auth(ADMIN_TOKEN)
}

async fn created(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_admin_api_does_not_exist_without_a_token() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let body = json!({"name": "Acme", "environment": "test"});
    for token in [None, Some(ADMIN_TOKEN), Some("")] {
        let mut request = app.client.post(app.url("/admin/v1/tenants")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        problem(request.send().await.unwrap(), 404, "not_found").await;
    }
    let response = app.client.get(app.url(&format!("/admin/v1/tenants/{}", tenant.id))).send().await.unwrap();
    problem(response, 404, "not_found").await;
}

#[tokio::test]
async fn the_admin_api_refuses_a_missing_or_wrong_token() {
    let app = admin_app().await;
    let tenant = app.tenant().await;
    let body = json!({"name": "Acme", "environment": "test"});
    let wrong = format!("{ADMIN_TOKEN}x");
    let short = &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1];
    let cases: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some(format!("Bearer {wrong}")),
        Some(format!("Bearer {short}")),
        Some(format!("Basic {ADMIN_TOKEN}")),
        Some(ADMIN_TOKEN.to_owned()),
        // A tenant's `*` key is not an admin token.
        Some(format!("Bearer {}", tenant.key)),
    ];
    for authorization in cases {
        let mut request = app.client.post(app.url("/admin/v1/tenants")).json(&body);
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert!(response.headers().contains_key("www-authenticate"), "{authorization:?}");
        problem(response, 401, "unauthenticated").await;
    }
    // Nothing was created, and the right token works.
    let response = as_admin(&app, Method::POST, "/admin/v1/tenants").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn the_admin_api_sets_up_a_tenant_its_first_user_and_key() {
    let app = admin_app().await;

    let tenant = created(
        as_admin(&app, Method::POST, "/admin/v1/tenants")
            .json(
                &json!({"name": "  Globex  ", "environment": "live", "plan": "standard", "time_zone": "Europe/Paris"}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = tenant["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ten_"), "{tenant}");
    assert_eq!(tenant["name"], "Globex", "{tenant}");
    assert_eq!(tenant["environment"], "live", "{tenant}");
    assert_eq!(tenant["plan"], "standard", "{tenant}");
    assert_eq!(tenant["time_zone"], "Europe/Paris", "{tenant}");

    let response = as_admin(&app, Method::GET, &format!("/admin/v1/tenants/{id}")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let fetched: Value = response.json().await.unwrap();
    assert_eq!(fetched, tenant);

    // Defaults: the free plan, UTC.
    let minimal = created(
        as_admin(&app, Method::POST, "/admin/v1/tenants")
            .json(&json!({"name": "Initech", "environment": "test"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(minimal["plan"], "free", "{minimal}");
    assert_eq!(minimal["time_zone"], "UTC", "{minimal}");

    // The first user, who can then sign in.
    let member = created(
        as_admin(&app, Method::POST, &format!("/admin/v1/tenants/{id}/members"))
            .json(&json!({"email": "founder@globex.example", "password": PASSWORD, "name": "Hank", "role": "owner"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(member["email"], "founder@globex.example", "{member}");
    assert_eq!(member["role"], "owner", "{member}");
    let user = member["user_id"].as_str().unwrap().to_owned();
    // Adding them twice is a conflict.
    let response = as_admin(&app, Method::POST, &format!("/admin/v1/tenants/{id}/members"))
        .json(&json!({"email": "founder@globex.example", "role": "admin"}))
        .send()
        .await
        .unwrap();
    problem(response, 409, "conflict").await;

    // The first key, which works on the tenant's API.
    let key = created(
        as_admin(&app, Method::POST, &format!("/admin/v1/tenants/{id}/api_keys"))
            .json(&json!({"label": "bootstrap", "scopes": ["*"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let secret = key["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk_live_"), "a live tenant's key: {key}");
    assert_eq!(key["label"], "bootstrap", "{key}");
    assert_eq!(key["scopes"], json!(["*"]), "{key}");
    let response = app.as_key(Method::GET, "/api/v1/me", &secret).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["tenant_id"], id.as_str(), "{me}");
    assert_eq!(me["environment"], "live", "{me}");
    assert_eq!(me["actor_type"], "api_key", "{me}");
    assert_eq!(me["actor_id"], key["id"], "{me}");
    assert_eq!(me["scopes"], json!(["*"]), "{me}");

    // The key sees the member, and the admin's actions are in the tenant's audit log.
    let response = app.as_key(Method::GET, "/api/v1/members", &secret).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let members: Value = response.json().await.unwrap();
    assert_eq!(members["data"][0]["user_id"], user.as_str(), "{members}");
    let response = app.as_key(Method::GET, "/api/v1/audit_logs", &secret).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let log: Value = response.json().await.unwrap();
    let actions: Vec<&str> = log["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"admin.members.add"), "{log}");
    assert!(actions.contains(&"admin.api_keys.create"), "{log}");
    assert_eq!(actions.last(), Some(&"admin.tenants.create"), "the log starts with the tenant's creation: {log}");

    // A test tenant's key is a test key.
    let minimal_id = minimal["id"].as_str().unwrap();
    let key = created(
        as_admin(&app, Method::POST, &format!("/admin/v1/tenants/{minimal_id}/api_keys"))
            .json(&json!({"label": "ci", "scopes": ["api_keys:read"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(key["secret"].as_str().unwrap().starts_with("sk_test_"), "{key}");

    // The first user signs in to their new tenant.
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "founder@globex.example", "password": PASSWORD, "tenant_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the admin-created owner signs in");
    let session: Value = response.json().await.unwrap();
    assert_eq!(session["user_id"], user.as_str(), "{session}");
    assert_eq!(session["role"], "owner", "{session}");
    let me: Value = app
        .as_key(Method::GET, "/api/v1/me", session["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["tenant_id"], id.as_str(), "{me}");
    assert_eq!(me["user"]["name"], "Hank", "{me}");
}

#[tokio::test]
async fn the_admin_api_validates_its_input() {
    let app = admin_app().await;
    let post_tenant = |body: Value| as_admin(&app, Method::POST, "/admin/v1/tenants").json(&body).send();

    let cases = [
        (json!({"name": "Acme", "environment": "staging"}), "environment"),
        (json!({"name": "Acme", "environment": "test", "time_zone": "Mars/Base"}), "time_zone"),
        (json!({"name": "Acme", "environment": "test", "plan": "platinum"}), "plan"),
        (json!({"name": "   ", "environment": "test"}), "name"),
        (json!({"environment": "test"}), "name"),
        (json!({"name": "Acme", "environment": "test", "owner": "me"}), "owner"),
    ];
    for (body, field) in cases {
        let problem_body = problem(post_tenant(body.clone()).await.unwrap(), 422, "validation_failed").await;
        assert_eq!(problem_body["errors"][0]["field"], field, "{body}: {problem_body}");
    }

    let tenant = created(post_tenant(json!({"name": "Acme", "environment": "test"})).await.unwrap()).await;
    let id = tenant["id"].as_str().unwrap();

    // Members: a new user needs a good password; roles must exist.
    let post_member =
        |body: Value| as_admin(&app, Method::POST, &format!("/admin/v1/tenants/{id}/members")).json(&body).send();
    for (body, field) in [
        (json!({"email": "a@example.com", "role": "owner"}), "password"),
        (json!({"email": "a@example.com", "role": "owner", "password": "short"}), "password"),
        (json!({"email": "a@example.com", "role": "king", "password": PASSWORD}), "role"),
        (json!({"email": "nope", "role": "owner", "password": PASSWORD}), "email"),
    ] {
        let problem_body = problem(post_member(body.clone()).await.unwrap(), 422, "validation_failed").await;
        assert_eq!(problem_body["errors"][0]["field"], field, "{body}: {problem_body}");
    }

    // Keys: scopes must exist.
    let response = as_admin(&app, Method::POST, &format!("/admin/v1/tenants/{id}/api_keys"))
        .json(&json!({"label": "x", "scopes": ["everything"]}))
        .send()
        .await
        .unwrap();
    let body = problem(response, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "scopes", "{body}");

    // Unknown tenants are 404s.
    for path in
        ["/admin/v1/tenants/ten_0192f3c4d5e6478fa1b2c3d4e5f60718".to_owned(), "/admin/v1/tenants/not-an-id".to_owned()]
    {
        problem(as_admin(&app, Method::GET, &path).send().await.unwrap(), 404, "not_found").await;
        let response = as_admin(&app, Method::POST, &format!("{path}/api_keys"))
            .json(&json!({"label": "x", "scopes": ["*"]}))
            .send()
            .await
            .unwrap();
        problem(response, 404, "not_found").await;
        let response = as_admin(&app, Method::POST, &format!("{path}/members"))
            .json(&json!({"email": "a@example.com", "role": "owner", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        problem(response, 404, "not_found").await;
    }
}
