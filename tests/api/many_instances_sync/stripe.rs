//! Stripe's events delivered to three instances at once: kept once, applied once.

use super::*;

/// The charge an event is about: a charge event carries it, a refund or dispute event names it.
fn charge_of(event: &Value) -> Option<&str> {
    let object = &event["data"]["object"];
    match object["object"].as_str() {
        Some("charge") => object["id"].as_str(),
        Some("refund" | "dispute") => object["charge"].as_str(),
        _ => None,
    }
}

/// The events of the account at Stripe that its webhook endpoint subscribes to, oldest first.
async fn subscribed_events(app: &TestApp, secret: &str) -> Vec<Value> {
    let endpoints = at_stripe(app, Method::GET, "/v1/webhook_endpoints", secret, &[]).await;
    let enabled: HashSet<&str> =
        endpoints["data"][0]["enabled_events"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = "/v1/events?limit=100".to_owned();
        if let Some(after) = &after {
            path.push_str(&format!("&starting_after={after}"));
        }
        let page = at_stripe(app, Method::GET, &path, secret, &[]).await;
        let data = page["data"].as_array().unwrap();
        events.extend(data.iter().filter(|e| enabled.contains(e["type"].as_str().unwrap())).cloned());
        after = data.last().map(|e| e["id"].as_str().unwrap().to_owned());
        if page["has_more"] != true {
            break;
        }
    }
    events.reverse();
    events
}

/// Thirty card payments, ten of them partly refunded: each of their events is delivered, signed,
/// to all three instances at once, and then again. Each is kept once (one delivery of the six
/// answered as new), applied once (its charge fetched once from Stripe), and each payment is
/// stored once with one `stripe_payment.succeeded`, and one `stripe_payment.refunded` if refunded.
#[tokio::test]
async fn stripe_events_delivered_to_three_instances_at_once_are_kept_once_and_applied_once() {
    const CHARGES: usize = 30;
    let stripe = Simulator::stripe().await;
    let options = TestCluster::get().await.fresh_database().await;
    let mut config = test_config();
    config.stripe_sandbox_url = Some(stripe.base.clone());
    let fixtures = TestApp::spawn_with(config, options.clone()).await;
    let tenant = fixtures.tenant().await;
    let (secret, _) = new_account(&fixtures, &tenant, "Three Instances Ltd").await;
    let connected = json_of(put(&fixtures, &tenant.key, &secret).await, 201).await;
    let connection = connected["id"].as_str().unwrap().to_owned();
    let account = connected["account_id"].as_str().unwrap().to_owned();
    let db = fixtures.superuser_pool().await;
    let servers =
        three(&options, &[("PAYYMO_WORKERS", "true"), ("PAYYMO_STRIPE_SANDBOX_URL", stripe.base.as_str())]).await;
    let pids = pids(&servers);
    // The three's first poll (and the connection's backfill) find nothing; the next poll is a
    // minute away, so what follows is kept from the webhooks alone.
    let polled =
        "select greatest(0, 1 - count(*)) from jobs where tenant_id = $1 and kind = 'stripe.poll' and status = 'done'";
    until_none(&db, polled, &tenant.id, Duration::from_secs(20)).await;
    let busy =
        "select count(*) from jobs where tenant_id = $1 and kind like 'stripe.%' and status in ('queued', 'running')";
    until_none(&db, busy, &tenant.id, Duration::from_secs(20)).await;

    let mut refunded = HashSet::new();
    for n in 0..CHARGES {
        let amount = (1_000 + n).to_string();
        let pay =
            [("amount", amount.as_str()), ("currency", "eur"), ("payment_method", "pm_card_visa"), ("confirm", "true")];
        let intent = at_stripe(&fixtures, Method::POST, "/v1/payment_intents", &secret, &pay).await;
        if n % 3 == 0 {
            let intent_id = intent["id"].as_str().unwrap();
            at_stripe(
                &fixtures,
                Method::POST,
                "/v1/refunds",
                &secret,
                &[("payment_intent", intent_id), ("amount", "100")],
            )
            .await;
            refunded.insert(intent["latest_charge"].as_str().unwrap().to_owned());
        }
    }
    let events = subscribed_events(&fixtures, &secret).await;
    let endpoints: Value = reqwest::Client::new()
        .get(format!("{}/_stripe/webhooks/endpoints", stripe.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoint = endpoints["endpoints"].as_array().unwrap().iter().find(|e| e["account"] == account.as_str());
    let signing = endpoint.unwrap()["secret"].as_str().unwrap().to_owned();

    // Each event to the three at once, sixteen events at a time; then all of them again.
    let client = client();
    let deliver = |event: &Value, base: &str| {
        let body = event.to_string();
        client
            .post(format!("{base}/api/v1/stripe/webhooks/{connection}"))
            .header("Stripe-Signature", signature(&signing, Utc::now().timestamp(), &body))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let (deliver, bases) = (&deliver, servers.each_ref().map(|s| s.base.as_str()));
    // For each event, the instances that answered it as new (not a duplicate).
    let mut new: HashMap<String, Vec<usize>> = HashMap::new();
    for _ in 0..2 {
        let rounds = futures_util::stream::iter(&events)
            .map(|event| async move {
                let answers = futures_util::future::join_all(bases.map(|base| deliver(event, base))).await;
                (event["id"].as_str().unwrap().to_owned(), answers)
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        for (id, answers) in rounds {
            let firsts = new.entry(id).or_default();
            for (instance, answer) in answers.into_iter().enumerate() {
                if json_of(answer.unwrap(), 200).await["duplicate"] == false {
                    firsts.push(instance);
                }
            }
        }
    }
    let unapplied = "select count(*) from stripe_events where tenant_id = $1 and applied_at is null";
    until_none(&db, unapplied, &tenant.id, Duration::from_secs(30)).await;
    until_none(&db, busy, &tenant.id, Duration::from_secs(30)).await;

    assert_eq!(new.len(), events.len());
    assert!(new.values().all(|firsts| firsts.len() == 1), "answered as new by: {new:?}");
    let winners: HashSet<usize> = new.values().flatten().copied().collect();
    assert!(winners.len() >= 2, "one instance kept every event first: the three did not race");
    let kept: Vec<(String, String)> =
        sqlx::query_as("select id, source from stripe_events where tenant_id = $1 order by id")
            .bind(&tenant.id)
            .fetch_all(&db)
            .await
            .unwrap();
    let sent: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(kept.iter().map(|(id, _)| id.as_str()).collect::<HashSet<_>>(), sent, "the inbox holds what was sent");
    assert!(kept.iter().all(|(_, source)| source == "webhook"), "{kept:?}");

    // One payment per charge, as Stripe has it.
    let charges = at_stripe(&fixtures, Method::GET, "/v1/charges?limit=100", &secret, &[]).await;
    let charges: HashMap<String, i64> = charges["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_owned(), c["amount_refunded"].as_i64().unwrap()))
        .collect();
    assert_eq!(charges.len(), CHARGES);
    let payments: HashMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("select id, amount_refunded from stripe_payments where tenant_id = $1")
            .bind(&tenant.id)
            .fetch_all(&db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(payments, charges, "stored payments against Stripe's charges");

    // One announcement per change, whichever instance applied which event.
    let announced: Vec<(String, String, i64)> = sqlx::query_as(
        "select event_type, data->>'id', count(*) from events
         where tenant_id = $1 and event_type like 'stripe_payment.%' group by 1, 2",
    )
    .bind(&tenant.id)
    .fetch_all(&db)
    .await
    .unwrap();
    let times = |event_type: &str, charge: &str| {
        announced.iter().find(|(t, c, _)| t == event_type && c == charge).map_or(0, |(_, _, n)| *n)
    };
    for charge in charges.keys() {
        assert_eq!(times("stripe_payment.succeeded", charge), 1, "{charge}");
        let refunds = i64::from(refunded.contains(charge));
        assert_eq!(times("stripe_payment.refunded", charge), refunds, "{charge}");
    }
    assert_eq!(announced.iter().map(|(_, _, n)| n).sum::<i64>() as usize, CHARGES + refunded.len(), "{announced:?}");

    // Applying an event fetches its charge: once per event naming the charge.
    let mut named: HashMap<String, usize> = HashMap::new();
    for charge in events.iter().filter_map(charge_of) {
        *named.entry(charge.to_owned()).or_default() += 1;
    }
    let mut fetched: HashMap<String, usize> = HashMap::new();
    for call in stripe.calls("GET", "/v1/charges/") {
        *fetched.entry(call.path.trim_start_matches("/v1/charges/").to_owned()).or_default() += 1;
    }
    assert_eq!(fetched, named, "charge fetches against the events naming each charge");
    let jobs: Vec<(String, i32, Option<String>)> =
        sqlx::query_as("select status, attempts, locked_by from jobs where tenant_id = $1 and kind = 'stripe.apply'")
            .bind(&tenant.id)
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(jobs.iter().all(|(status, _, _)| status == "done"), "{jobs:?}");
    let ran_on: HashSet<usize> =
        jobs.iter().filter_map(|(_, _, by)| by.as_deref()).map(|by| instance_of(&pids, by)).collect();
    let retried = jobs.iter().filter(|(_, attempts, _)| *attempts > 1).count();
    let kept_by: Vec<usize> = (0..3).map(|i| new.values().filter(|firsts| firsts[0] == i).count()).collect();
    println!(
        "{} events ({} naming a charge) delivered 6 times each, kept first by the three {kept_by:?}; \
         {} apply jobs on {} instances, {retried} retried",
        events.len(),
        named.values().sum::<usize>(),
        jobs.len(),
        ran_on.len()
    );
}
