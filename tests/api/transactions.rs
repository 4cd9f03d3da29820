//! The transactions API over a synced sandbox bank: filters checked against the whole list,
//! sorts and cursors (with arrivals mid-paging and refused cursors), PATCH and its events,
//! statistics, and the CSV export.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    TestApp,
    bank::{all_transactions, connect, control, drain},
    json_of, problem,
    tenants::TestTenant,
};

/// A tenant with a linked sandbox bank, synced, plus a few transactions with known text.
async fn synced(app: &TestApp) -> (TestTenant, Vec<Value>) {
    let tenant = app.tenant().await;
    let connection = connect(app, &tenant).await;
    let account = connection["accounts"][0]["id"].as_str().unwrap().to_owned();
    let provider: String = sqlx::query_scalar("select provider_account_id from bank_accounts where id = $1")
        .bind(&account)
        .fetch_one(&app.superuser_pool().await)
        .await
        .unwrap();
    let today = chrono::Utc::now().date_naive();
    let day = |back: i64| (today - chrono::Duration::days(back)).to_string();
    control(
        app,
        &format!("/_sandbox/accounts/{provider}/transactions"),
        json!({"transactions": [
            {"booking_date": day(3), "amount": "-45.50", "counterparty": "Acme Widgets Ltd", "remittance": "Order 100%_done"},
            {"booking_date": day(4), "amount": "1250.00", "counterparty": "ACME Holdings", "remittance": "Invoice INV-7"},
            {"booking_date": day(5), "amount": "-0.01", "counterparty": "Tiny Fees", "remittance": "=HYPERLINK(\"http://x\")"},
            {"booking_date": day(0), "amount": "-12.00", "counterparty": "Corner Cafe", "remittance": "Card hold", "pending": true},
        ]}),
    )
    .await;
    drain(app).await;
    let all = all_transactions(app, &tenant, "").await;
    assert!(all.len() > 50, "the sandbox bank synced {} transactions", all.len());
    (tenant, all)
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect()
}

fn sorted_ids<'a>(rows: impl Iterator<Item = &'a Value>) -> BTreeSet<String> {
    rows.map(|t| t["id"].as_str().unwrap().to_owned()).collect()
}

/// Whether description, counterparty or reference contains `text` (case-insensitively).
fn mentions(t: &Value, text: &str) -> bool {
    ["description", "counterparty_name", "reference"]
        .iter()
        .any(|field| t[field].as_str().is_some_and(|v| v.to_lowercase().contains(text)))
}

fn date_of(t: &Value) -> String {
    t["booking_date"].as_str().or(t["value_date"].as_str()).unwrap().to_owned()
}

#[tokio::test]
async fn filters_combine_and_select_exactly_the_matching_rows() {
    let app = TestApp::spawn().await;
    let (tenant, all) = synced(&app).await;
    let account = all[0]["account_id"].as_str().unwrap().to_owned();
    let mut dates: Vec<String> = all.iter().filter_map(|t| t["booking_date"].as_str().map(str::to_owned)).collect();
    dates.sort();
    let (from, to) = (dates[dates.len() / 4].clone(), dates[dates.len() * 3 / 4].clone());

    type Pick = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(String, Pick)> = vec![
        (format!("&booking_date_from={from}&booking_date_to={to}"), {
            let (from, to) = (from.clone(), to.clone());
            Box::new(move |t| t["booking_date"].as_str().is_some_and(|d| d >= from.as_str() && d <= to.as_str()))
        }),
        ("&direction=debit&amount_min=-5000".into(), Box::new(|t| (-5000..0).contains(&t["amount"].as_i64().unwrap()))),
        ("&direction=credit".into(), Box::new(|t| t["amount"].as_i64().unwrap() >= 0)),
        (
            "&amount_min=100&amount_max=100000".into(),
            Box::new(|t| (100..=100000).contains(&t["amount"].as_i64().unwrap())),
        ),
        ("&status=pending".into(), Box::new(|t| t["status"] == "pending")),
        (format!("&account_id={account}&status=booked"), {
            let account = account.clone();
            Box::new(move |t| t["account_id"] == account.as_str() && t["status"] == "booked")
        }),
        ("&currency=gbp&match_status=unmatched".into(), Box::new(|t| t["currency"] == "GBP")),
        // Case-insensitive, over description, counterparty and reference; % and _ are literal.
        ("&q=acme".into(), Box::new(|t| mentions(t, "acme"))),
        ("&q=100%25_done".into(), Box::new(|t| t["description"] == "Order 100%_done")),
        ("&q=acme&direction=credit".into(), Box::new(|t| mentions(t, "acme") && t["amount"].as_i64().unwrap() >= 0)),
    ];
    for (query, pick) in cases {
        let expected = sorted_ids(all.iter().filter(|t| pick(t)));
        assert!(!expected.is_empty(), "{query} selects something");
        let got = all_transactions(&app, &tenant, &query).await;
        assert_eq!(sorted_ids(got.iter()), expected, "{query}");
    }

    // Categories: set by PATCH, filtered by name or by their absence.
    for t in all.iter().take(3) {
        let path = format!("/api/v1/transactions/{}", t["id"].as_str().unwrap());
        json_of(
            app.as_key(Method::PATCH, &path, &tenant.key).json(&json!({"category": "rent"})).send().await.unwrap(),
            200,
        )
        .await;
    }
    let rent = all_transactions(&app, &tenant, "&category=rent").await;
    assert_eq!(sorted_ids(rent.iter()), sorted_ids(all.iter().take(3)));
    assert_eq!(all_transactions(&app, &tenant, "&category=uncategorized").await.len(), all.len() - 3);

    // updated_since: only what changed at or after the instant.
    let since = rent.iter().map(|t| t["updated_at"].as_str().unwrap()).min().unwrap().to_owned();
    let changed = all_transactions(&app, &tenant, &format!("&updated_since={}", since.replace('+', "%2B"))).await;
    assert!(sorted_ids(rent.iter()).is_subset(&sorted_ids(changed.iter())));
    assert!(changed.iter().all(|t| t["updated_at"].as_str().unwrap() >= since.as_str()));
}

#[tokio::test]
async fn sorts_page_in_order_and_cursors_survive_arrivals() {
    let app = TestApp::spawn().await;
    let (tenant, all) = synced(&app).await;

    // Default order: newest date first, id breaking ties the same way.
    let mut expected = all.clone();
    expected.sort_by(|a, b| (date_of(b), b["id"].as_str()).cmp(&(date_of(a), a["id"].as_str())));
    assert_eq!(ids(&all), ids(&expected));
    for (sort, descending) in [("amount", false), ("-amount", true), ("booking_date", false)] {
        let got = all_transactions(&app, &tenant, &format!("&sort={sort}")).await;
        let mut want = all.clone();
        if sort.ends_with("amount") {
            want.sort_by_key(|t| (t["amount"].as_i64().unwrap(), t["id"].as_str().unwrap().to_owned()));
        } else {
            want.sort_by_key(|t| (date_of(t), t["id"].as_str().unwrap().to_owned()));
        }
        if descending {
            want.reverse();
        }
        assert_eq!(ids(&got), ids(&want), "sort={sort}");
    }

    // Page through 10 at a time while new transactions arrive at both ends and in the middle:
    // every row that existed is seen exactly once.
    let first =
        json_of(app.as_key(Method::GET, "/api/v1/transactions?limit=10", &tenant.key).send().await.unwrap(), 200).await;
    let mut seen = ids(first["data"].as_array().unwrap());
    let superuser = app.superuser_pool().await;
    let middle = date_of(&all[all.len() / 2]);
    for (n, date) in [(1, "2099-01-01".to_owned()), (2, middle), (3, "2000-01-01".to_owned())] {
        sqlx::query(
            "insert into transactions (tenant_id, id, account_id, connection_id, provider_transaction_id, status,
                 amount, currency, booking_date, raw)
             select tenant_id, $2, account_id, connection_id, $3, 'booked', 100, currency, $4::date, '{}'
             from transactions where id = $1",
        )
        .bind(all[0]["id"].as_str().unwrap())
        .bind(payymo::domain::ids::TransactionId::generate().as_str())
        .bind(format!("arrival-{n}"))
        .bind(&date)
        .execute(&superuser)
        .await
        .unwrap();
    }
    let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let page = json_of(
            app.as_key(Method::GET, &format!("/api/v1/transactions?limit=10&cursor={c}"), &tenant.key)
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        seen.extend(ids(page["data"].as_array().unwrap()));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no row repeated");
    assert!(sorted_ids(all.iter()).iter().all(|id| unique.contains(id)), "no row skipped");

    // A cursor is bound to its filters, sort and tenant, and cannot be edited.
    let page = json_of(
        app.as_key(Method::GET, "/api/v1/transactions?limit=5&direction=debit", &tenant.key).send().await.unwrap(),
        200,
    )
    .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    for query in [
        format!("limit=5&cursor={cursor}"),
        format!("limit=5&direction=debit&sort=amount&cursor={cursor}"),
        format!("limit=5&direction=debit&cursor={}x", &cursor[..cursor.len() - 1]),
        "limit=5&direction=debit&cursor=not-a-cursor".to_owned(),
    ] {
        let body = problem(
            app.as_key(Method::GET, &format!("/api/v1/transactions?{query}"), &tenant.key).send().await.unwrap(),
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "cursor", "{query}");
    }
    let other = app.tenant().await;
    let body = problem(
        app.as_key(Method::GET, &format!("/api/v1/transactions?limit=5&direction=debit&cursor={cursor}"), &other.key)
            .send()
            .await
            .unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "cursor");
}

#[tokio::test]
async fn bad_parameters_are_each_named() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    for (query, fields) in [
        ("booking_date_from=2026-02-30", vec!["booking_date_from"]),
        ("value_date_from=2026-03-02&value_date_to=2026-03-01", vec!["value_date_to"]),
        ("amount_min=500&amount_max=-500", vec!["amount_max"]),
        ("amount_max=123456789012345678901234", vec!["amount_max"]),
        ("amount_min=12.50&currency=pounds", vec!["amount_min", "currency"]),
        ("direction=sideways&status=maybe&match_status=kind_of", vec!["direction", "status", "match_status"]),
        ("q=ab", vec!["q"]),
        ("updated_since=2026-11-21", vec!["updated_since"]),
        ("sort=date", vec!["sort"]),
        ("limit=101", vec!["limit"]),
        ("bank_connection_id=ba_0192f3c4d5e6478fa1b2c3d4e5f60718", vec!["bank_connection_id"]),
        ("colour=blue", vec!["colour"]),
    ] {
        for endpoint in ["/api/v1/transactions", "/api/v1/transactions/stats", "/api/v1/transactions/export"] {
            if matches!(fields[0], "sort" | "limit") && endpoint.ends_with("stats") {
                continue;
            }
            if fields[0] == "limit" && endpoint.ends_with("export") {
                continue;
            }
            let response = app.as_key(Method::GET, &format!("{endpoint}?{query}"), &tenant.key).send().await.unwrap();
            let body = problem(response, 422, "validation_failed").await;
            let got: Vec<&str> =
                body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
            assert_eq!(got, fields, "{endpoint}?{query}");
        }
    }
}

#[tokio::test]
async fn patch_annotates_and_announces_previous_values() {
    let app = TestApp::spawn().await;
    let (tenant, all) = synced(&app).await;
    let id = all[0]["id"].as_str().unwrap();
    let path = format!("/api/v1/transactions/{id}");
    let patch = |body: Value| app.as_key(Method::PATCH, &path, &tenant.key).json(&body).send();

    let updated = json_of(
        patch(json!({"category": "  travel ", "notes": "Taxi to client", "tags": ["q4", "q4", "vat"],
            "metadata": {"trip": "NYC", "cost_centre": "42"}}))
        .await
        .unwrap(),
        200,
    )
    .await;
    assert_eq!(updated["category"], "travel");
    assert_eq!(updated["category_source"], "user");
    assert_eq!(updated["tags"], json!(["q4", "vat"]));
    assert_eq!(updated["metadata"], json!({"cost_centre": "42", "trip": "NYC"}));
    assert_eq!(updated["amount"], all[0]["amount"], "nothing else changes");

    // Metadata merges; null or "" removes a key.
    let updated =
        json_of(patch(json!({"metadata": {"trip": null, "cost_centre": "", "project": "apollo"}})).await.unwrap(), 200)
            .await;
    assert_eq!(updated["metadata"], json!({"project": "apollo"}));
    assert_eq!(updated["notes"], "Taxi to client");

    // Each change is one transaction.updated carrying the previous values of what changed.
    let superuser = app.superuser_pool().await;
    let events: Vec<Value> = sqlx::query_scalar(
        "select data from events where tenant_id = $1 and event_type = 'transaction.updated' and data->>'id' = $2 order by id",
    )
    .bind(&tenant.id)
    .bind(id)
    .fetch_all(&superuser)
    .await
    .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0]["previous_attributes"],
        json!({"category": null, "category_source": null, "notes": null, "tags": [], "metadata": {}})
    );
    assert_eq!(events[1]["previous_attributes"], json!({"metadata": {"cost_centre": "42", "trip": "NYC"}}));
    assert_eq!(events[1]["metadata"], json!({"project": "apollo"}));

    // The same values again change nothing and announce nothing.
    json_of(patch(json!({"category": "travel", "notes": "Taxi to client"})).await.unwrap(), 200).await;
    let count: i64 = sqlx::query_scalar(
        "select count(*) from events where tenant_id = $1 and event_type = 'transaction.updated' and data->>'id' = $2",
    )
    .bind(&tenant.id)
    .bind(id)
    .fetch_one(&superuser)
    .await
    .unwrap();
    assert_eq!(count, 2);

    // Clearing the category hands it back to the rules.
    let cleared = json_of(patch(json!({"category": null})).await.unwrap(), 200).await;
    assert_eq!(cleared["category"], Value::Null);
    assert_eq!(cleared["category_source"], Value::Null);

    // Bad bodies are refused whole, each problem named; nothing changes.
    let many: BTreeMap<String, String> = (0..51).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    for (body, fields) in [
        (json!({}), vec!["body"]),
        (json!({"category": ""}), vec!["category"]),
        (json!({"category": "x".repeat(101)}), vec!["category"]),
        (json!({"notes": "x".repeat(5001)}), vec!["notes"]),
        (json!({"tags": ["ok", ""]}), vec!["tags[1]"]),
        (json!({"tags": (0..21).map(|i| format!("t{i}")).collect::<Vec<_>>()}), vec!["tags"]),
        (json!({"metadata": many}), vec!["metadata"]),
        (json!({"metadata": {"a[b]": "x", "long": "v".repeat(501)}}), vec!["metadata.a[b]", "metadata.long"]),
    ] {
        let body = problem(patch(body.clone()).await.unwrap(), 422, "validation_failed").await;
        let got: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(got, fields);
    }
    let body = problem(patch(json!({"amount": 1})).await.unwrap(), 422, "validation_failed").await;
    assert!(body.to_string().contains("amount"), "{body}");
    let now = json_of(app.as_key(Method::GET, &path, &tenant.key).send().await.unwrap(), 200).await;
    assert_eq!(now["metadata"], json!({"project": "apollo"}));

    // Read-only credentials cannot; another tenant sees nothing.
    let reader = app.key(&tenant, &["transactions:read"]).await;
    let response = app.as_key(Method::PATCH, &path, &reader).json(&json!({"notes": "x"})).send().await.unwrap();
    problem(response, 403, "insufficient_scope").await;
    let other = app.tenant().await;
    let response = app.as_key(Method::PATCH, &path, &other.key).json(&json!({"notes": "x"})).send().await.unwrap();
    problem(response, 404, "not_found").await;
    problem(app.as_key(Method::GET, &path, &other.key).send().await.unwrap(), 404, "not_found").await;
}

#[tokio::test]
async fn stats_sum_per_currency_and_agree_with_the_list() {
    let app = TestApp::spawn().await;
    let (tenant, all) = synced(&app).await;
    let path = format!("/api/v1/transactions/{}", all[1]["id"].as_str().unwrap());
    json_of(
        app.as_key(Method::PATCH, &path, &tenant.key).json(&json!({"category": "fees"})).send().await.unwrap(),
        200,
    )
    .await;

    for query in ["", "?direction=debit", "?q=acme"] {
        let stats = json_of(
            app.as_key(Method::GET, &format!("/api/v1/transactions/stats{query}"), &tenant.key).send().await.unwrap(),
            200,
        )
        .await;
        let rows = all_transactions(&app, &tenant, &query.replace('?', "&")).await;
        assert_eq!(stats["count"], rows.len(), "{query}");
        assert_eq!(stats["time_zone"], "Europe/London", "the test tenant's");
        for c in stats["currencies"].as_array().unwrap() {
            let mine: Vec<&Value> = rows.iter().filter(|t| t["currency"] == c["currency"]).collect();
            let inflow: i64 = mine.iter().map(|t| t["amount"].as_i64().unwrap()).filter(|a| *a >= 0).sum();
            let outflow: i64 = -mine.iter().map(|t| t["amount"].as_i64().unwrap()).filter(|a| *a < 0).sum::<i64>();
            assert_eq!(
                (c["count"].as_u64().unwrap() as usize, c["inflow"].as_i64().unwrap(), c["outflow"].as_i64().unwrap()),
                (mine.len(), inflow, outflow),
                "{query} {}",
                c["currency"]
            );
            assert_eq!(c["net"].as_i64().unwrap(), inflow - outflow);
            // Every breakdown partitions the currency's totals.
            for breakdown in ["by_category", "by_month", "by_match_status"] {
                let parts = c[breakdown].as_array().unwrap();
                let sum = |field: &str| parts.iter().map(|p| p[field].as_i64().unwrap()).sum::<i64>();
                assert_eq!(
                    (sum("count"), sum("inflow"), sum("outflow")),
                    (mine.len() as i64, inflow, outflow),
                    "{breakdown}"
                );
            }
            let months: Vec<&str> =
                c["by_month"].as_array().unwrap().iter().map(|m| m["month"].as_str().unwrap()).collect();
            let mut sorted = months.clone();
            sorted.sort();
            assert_eq!(months, sorted);
            if query.is_empty() {
                let fees = c["by_category"].as_array().unwrap().iter().find(|p| p["category"] == "fees");
                assert_eq!(fees.is_some(), all[1]["currency"] == c["currency"]);
            }
        }
    }
}

#[tokio::test]
async fn export_streams_every_selected_row_as_safe_csv() {
    let app = TestApp::spawn().await;
    let (tenant, all) = synced(&app).await;
    let target = all.iter().find(|t| t["description"] == "=HYPERLINK(\"http://x\")").unwrap();
    let path = format!("/api/v1/transactions/{}", target["id"].as_str().unwrap());
    json_of(
        app.as_key(Method::PATCH, &path, &tenant.key)
            .json(&json!({"notes": "+cmd|' /C calc'!A0", "tags": ["a", "b"], "metadata": {"k": "v"}}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;

    let response = app.as_key(Method::GET, "/api/v1/transactions/export", &tenant.key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let text = response.text().await.unwrap();
    assert!(text.ends_with("\r\n"));
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header[..8],
        ["id", "account_id", "bank_connection_id", "status", "booking_date", "value_date", "amount", "currency"]
    );
    let rows: Vec<BTreeMap<String, String>> = reader.deserialize().map(Result::unwrap).collect();
    assert_eq!(rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(), ids(&all), "same rows, same order");

    let fee = rows.iter().find(|r| r["id"] == target["id"].as_str().unwrap()).unwrap();
    assert_eq!(fee["amount"], "-0.01", "a decimal in the currency's exponent, not neutralised");
    assert_eq!(fee["description"], "'=HYPERLINK(\"http://x\")");
    assert_eq!(fee["notes"], "'+cmd|' /C calc'!A0");
    assert_eq!(fee["tags"], "a;b");
    assert_eq!(fee["metadata"], r#"{"k":"v"}"#);
    for (row, t) in rows.iter().zip(&all) {
        let minor: i64 = row["amount"].replace('.', "").parse().unwrap();
        assert_eq!(minor, t["amount"].as_i64().unwrap(), "{row:?}");
    }

    // The same filters as the list.
    let response =
        app.as_key(Method::GET, "/api/v1/transactions/export?q=acme&sort=amount", &tenant.key).send().await.unwrap();
    let text = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let exported: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_owned()).collect();
    let listed = all_transactions(&app, &tenant, "&q=acme&sort=amount").await;
    assert!(listed.len() >= 2);
    assert_eq!(exported, ids(&listed));
    let reader = app.key(&tenant, &["bank_connections:read"]).await;
    problem(
        app.as_key(Method::GET, "/api/v1/transactions/export", &reader).send().await.unwrap(),
        403,
        "insufficient_scope",
    )
    .await;
}

/// A search walks the newest rows first and turns to the trigram index when they hold less than a
/// page (`query::SEARCH_WALK`): either way every page is the newest matches, in order, and
/// paging finds every match once: a frequent term (found in the walk), a term found only past the
/// walk (the index), and one that fills a page partly in the walk and partly past it.
#[tokio::test]
async fn a_search_finds_the_newest_matches_within_the_walk_and_past_it() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    let response = app
        .as_key(Method::POST, "/api/v1/accounts", &tenant.key)
        .json(&json!({"name": "Walked", "currency": "EUR"}))
        .send()
        .await
        .unwrap();
    let account = json_of(response, 201).await["id"].as_str().unwrap().to_owned();
    let rows = payymo::transactions::query::SEARCH_WALK + 1_500;
    // Row n is booked n days after 2000-01-01 (the newest has the largest n). "common" is in every
    // 7th row; "rarely" only in 3 rows older than the walk; "straddle" in 60 rows: 20 among the
    // newest and 40 past the walk.
    sqlx::query(
        "insert into transactions (tenant_id, id, account_id, provider_transaction_id, status, amount, currency,
             booking_date, description, raw, source, external_id)
         select $1, 'txn_' || lpad(to_hex(n), 32, '0'), $2, 'seed-' || n, 'booked', -100 - n, 'EUR',
                date '2000-01-01' + n,
                'Row ' || n || case when n % 7 = 0 then ' common' else '' end
                            || case when n in (10, 20, 30) then ' rarely' else '' end
                            || case when n > $3::int - 20 or n <= 40 then ' straddle' else '' end,
                '{}', 'import', 'seed-' || n
         from generate_series(1, $3::int) as n",
    )
    .bind(&tenant.id)
    .bind(&account)
    .bind(rows)
    .execute(&app.superuser_pool().await)
    .await
    .unwrap();
    let numbers = |found: &[Value]| -> Vec<i64> {
        found.iter().map(|t| t["description"].as_str().unwrap().split(' ').nth(1).unwrap().parse().unwrap()).collect()
    };
    for (term, expected) in [
        ("common", (1..=rows).rev().filter(|n| n % 7 == 0).collect::<Vec<_>>()),
        ("rarely", vec![30, 20, 10]),
        ("straddle", (1..=rows).rev().filter(|n| *n > rows - 20 || *n <= 40).collect()),
    ] {
        let first = json_of(
            app.as_key(Method::GET, &format!("/api/v1/transactions?q={term}&limit=50"), &tenant.key)
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        let page = numbers(first["data"].as_array().unwrap());
        assert_eq!(page, expected[..expected.len().min(50)], "{term}: the first page is the newest matches");
        let all = all_transactions(&app, &tenant, &format!("&q={term}")).await;
        assert_eq!(numbers(&all), expected, "{term}: paging finds every match once, in order");
    }
    // The same through the other sort, whose walk follows the amount index.
    let by_amount = all_transactions(&app, &tenant, "&q=straddle&sort=amount").await;
    let mut expected: Vec<i64> = (1..=rows).filter(|n| *n > rows - 20 || *n <= 40).collect();
    expected.reverse(); // amount = -100 - n: ascending amount is descending n
    assert_eq!(numbers(&by_amount), expected);
}
