//! Injected faults: Stripe answering 500 or too slowly, DynamoDB throttling
//! or cancelling transactions, a consumer dying before it deletes its
//! message, a poison message. Each must end in one payment, one session,
//! one refund, and no partial state.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use visitpay_app::ports::{EventQueue, Payments};
use visitpay_app::{actions, checkout, invoices, AppError};
use visitpay_devkit::embedded_queue::EmbeddedQueue;
use visitpay_domain::{ActionStatus, InvoiceStatus};
use visitpay_edge::lambda::consumer;
use visitpay_stripe::StripePayments;

fn post_to(path: &'static str) -> impl Fn(&str, &str, &axum::http::HeaderMap) -> bool + Send + Sync {
    move |method, p, _| method == "POST" && p.starts_with(path)
}

fn through(proxy: &FaultProxy, timeout: Duration) -> Arc<dyn Payments> {
    Arc::new(StripePayments::with_timeout(STRIPE_KEY, Some(&format!("{}/", proxy.base)), timeout).unwrap())
}

async fn sessions_at_stripe(stripe: &StripeFixture) -> usize {
    let res = reqwest::Client::new()
        .get(format!("{}/v1/checkout/sessions?limit=100", stripe.base))
        .bearer_auth(STRIPE_KEY)
        .header("Stripe-Account", ACCOUNT)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    body["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_lost_stripe_response_is_retried_into_the_same_session() {
    let stripe = stripe_emulator(None).await;
    let proxy = fault_proxy(&stripe.base, Fault::LoseResponse, 1, post_to("/v1/checkout/sessions")).await;
    let (mut deps, _clock) = deps_for_payments(Arc::new(crate::support::kit::embedded_store()), &stripe, None);
    deps.payments = through(&proxy, Duration::from_secs(5));
    let (_, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let link = checkout::open(&deps, &token).await.unwrap();
    assert_eq!(proxy.injected.load(Ordering::SeqCst), 1);
    assert_eq!(sessions_at_stripe(&stripe).await, 1, "Stripe created one session for two attempts");
    assert!(link.url.contains("/checkout/cs_"));
}

/// Stripe's rate limiter answers 429 ("Rate limits") before the request
/// runs, so nothing is kept under its key: the same key is sent again after
/// a backoff, one session is made, and each 429 is counted.
#[tokio::test]
async fn a_rate_limited_call_is_retried_under_its_key_and_counted() {
    let stripe = stripe_emulator(None).await;
    let (mut deps, _clock) = deps_for_payments(Arc::new(crate::support::kit::embedded_store()), &stripe, None);
    let metrics = crate::support::kit::record_metrics(&mut deps);
    let payments = StripePayments::new(STRIPE_KEY, Some(&format!("{}/", stripe.base))).unwrap();
    deps.payments = Arc::new(payments.with_metrics(metrics.clone()));
    let (_, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let limited = serde_json::json!({"method": "POST", "path": "/v1/checkout/sessions", "times": 2, "status": 429});
    stripe.control("/test/faults", limited).await;
    let link = checkout::open(&deps, &token).await.unwrap();
    assert!(link.url.contains("/checkout/cs_"));
    assert_eq!(sessions_at_stripe(&stripe).await, 1);
    let keys: Vec<serde_json::Value> = stripe
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/v1/checkout/sessions")
        .map(|r| r["idempotency_key"].clone())
        .collect();
    assert_eq!(keys.len(), 3, "two refusals and the call that went through");
    assert!(keys[0].is_string() && keys.iter().all(|k| *k == keys[0]), "one key: {keys:?}");
    let counted =
        metrics.signals().iter().filter(|(s, _)| *s == visitpay_app::ports::MoneySignal::StripeRateLimited).count();
    assert_eq!(counted, 2);
}

#[tokio::test]
async fn a_slow_stripe_times_out_and_the_retry_finds_the_same_session() {
    let stripe = stripe_emulator(None).await;
    let proxy =
        fault_proxy(&stripe.base, Fault::Delay(Duration::from_millis(1500)), 1, post_to("/v1/checkout/sessions")).await;
    let (mut deps, _clock) = deps_for_payments(Arc::new(crate::support::kit::embedded_store()), &stripe, None);
    deps.payments = through(&proxy, Duration::from_millis(500));
    let (_, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    checkout::open(&deps, &token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await; // let the slow first attempt land too
    assert_eq!(sessions_at_stripe(&stripe).await, 1);
}

#[tokio::test]
async fn stripe_down_answers_503_and_a_later_click_reuses_the_attempt() {
    let stripe = stripe_emulator(None).await;
    let refuse = Fault::Refuse { status: 500, body: r#"{"error":{"type":"api_error","message":"injected"}}"# };
    let proxy = fault_proxy(&stripe.base, refuse, 3, post_to("/v1/checkout/sessions")).await;
    let (mut deps, clock) = deps_for_payments(Arc::new(crate::support::kit::embedded_store()), &stripe, None);
    deps.payments = through(&proxy, Duration::from_secs(5));
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let e = checkout::open(&deps, &token).await.unwrap_err();
    assert!(matches!(e, AppError::Payments(visitpay_app::ports::PaymentsError::Unavailable(_))), "{e:?}");
    let stored = actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap();
    assert_eq!((stored.status(), stored.checkout().attempts()), (ActionStatus::Assigned, 1));
    clock.advance(5);
    checkout::open(&deps, &token).await.unwrap();
    let keys: std::collections::BTreeSet<String> = stripe
        .emulator
        .requests()
        .iter()
        .filter(|r| r["path"] == "/v1/checkout/sessions" && r["method"] == "POST")
        .map(|r| r["idempotency_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 1, "the retry reused the reserved attempt's key: {keys:?}");
    assert_eq!(sessions_at_stripe(&stripe).await, 1);
}

#[tokio::test]
async fn stripe_saying_do_not_retry_is_not_retried() {
    let stripe = stripe_emulator(None).await;
    let refuse = Fault::RefuseFinal { status: 500, body: r#"{"error":{"type":"api_error","message":"injected"}}"# };
    let proxy = fault_proxy(&stripe.base, refuse, 3, post_to("/v1/checkout/sessions")).await;
    let (mut deps, _clock) = deps_for_payments(Arc::new(crate::support::kit::embedded_store()), &stripe, None);
    deps.payments = through(&proxy, Duration::from_secs(5));
    let (_, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let e = checkout::open(&deps, &token).await.unwrap_err();
    assert!(matches!(e, AppError::Payments(visitpay_app::ports::PaymentsError::Unavailable(_))), "{e:?}");
    assert_eq!(proxy.injected.load(Ordering::SeqCst), 1, "one attempt: Stripe said the retry would fail too");
}

#[tokio::test]
async fn stripe_calls_share_one_connection() {
    let stripe = stripe_emulator(None).await;
    let (base, opened) = counting_relay(stripe.base.trim_start_matches("http://")).await;
    let (mut deps, _clock) = deps_for_payments(Arc::new(crate::support::kit::embedded_store()), &stripe, None);
    deps.payments = Arc::new(StripePayments::new(STRIPE_KEY, Some(&format!("{base}/"))).unwrap());
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let session = open_checkout(&deps, "c1", action.action_id(), &token).await;
    let account = visitpay_domain::StripeAccountId::parse(ACCOUNT).unwrap();
    for _ in 0..3 {
        deps.payments.retrieve_checkout(&account, &session).await.unwrap();
    }
    deps.payments.expire_checkout(&account, &session).await.unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 1, "five calls to Stripe, one TCP (and so one TLS) connection");
}

#[tokio::test]
async fn a_lost_refund_response_refunds_once() {
    let stripe = stripe_emulator(None).await;
    let (mut deps, _clock) = deps_for_payments(Arc::new(crate::support::kit::embedded_store()), &stripe, None);
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let session = open_checkout(&deps, "c1", action.action_id(), &token).await;
    stripe.pay(&session, "succeeded").await;
    for e in stripe.events().await {
        apply_stripe_event(&deps, &e.to_string()).await.unwrap();
    }
    let proxy = fault_proxy(&stripe.base, Fault::LoseResponse, 1, post_to("/v1/refunds")).await;
    deps.payments = through(&proxy, Duration::from_secs(5));
    let refunded = actions::refund(&deps, &staff("c1"), &clinic("c1"), action.action_id(), None).await.unwrap();
    assert_eq!((refunded.status(), refunded.refunds().records().len()), (ActionStatus::Refunded, 1));
    let refund_events = stripe.events().await.iter().filter(|e| e["type"] == "refund.created").count();
    assert_eq!(refund_events, 1, "one refund at Stripe for two attempts");
}

/// TestDeps on a prepared DynamoDB table (clinic on, two selected invoices),
/// whose store then goes through a proxy injecting `body` into the first
/// `times` requests of operation `target`.
async fn faulty_dynamodb(times: usize, target: &'static str, body: &'static str) -> (TestDeps, FaultProxy) {
    let direct = crate::support::kit::dynamodb_store("faults").await;
    let table = direct.table().to_owned();
    let mut deps = prepared(direct).await;
    let matches = move |_: &str, _: &str, headers: &axum::http::HeaderMap| {
        headers.get("x-amz-target").and_then(|v| v.to_str().ok()).is_some_and(|t| t.ends_with(target))
    };
    let proxy =
        fault_proxy(&crate::support::kit::moto_endpoint(), Fault::Refuse { status: 400, body }, times, matches).await;
    let client = crate::support::kit::dynamodb_client(&proxy.base).await;
    deps.store = Arc::new(visitpay_aws::dynamodb::DynamoStore::new(client, table));
    (deps, proxy)
}

const CONFLICT: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]","CancellationReasons":[{"Code":"None"},{"Code":"TransactionConflict"}]}"#;

async fn assign_one(deps: &TestDeps) -> Result<actions::Assigned, AppError> {
    let request = actions::AssignRequest {
        patient_id: patient("p1"),
        invoice_ids: ids(&["1", "2"]),
        locale: visitpay_domain::Locale::FrCa,
        notify: Default::default(),
    };
    actions::assign(deps, &staff("c1"), &clinic("c1"), &visit("v1"), request, None, first_answer).await
}

async fn prepared(store: visitpay_aws::dynamodb::DynamoStore) -> TestDeps {
    let (deps, _) = crate::support::kit::deps_with(Arc::new(store));
    enable_clinic(&deps, "c1").await;
    import(&deps, "c1", "p1", "1", 1000, "cad").await;
    import(&deps, "c1", "p1", "2", 500, "cad").await;
    invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&["1", "2"])).await.unwrap();
    deps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_throttling_is_retried_with_backoff() {
    let (deps, proxy) = faulty_dynamodb(2, "TransactWriteItems", DYNAMODB_THROTTLED).await;
    let assigned = assign_one(&deps).await.unwrap();
    assert!(matches!(assigned, actions::Assigned::Created { .. }));
    assert_eq!(proxy.injected.load(Ordering::SeqCst), 2, "two throttled attempts, then success");
    let st: Vec<InvoiceStatus> =
        invoices::list(&deps, &clinic("c1"), &patient("p1"), None).await.unwrap().iter().map(|i| i.status()).collect();
    assert_eq!(st, vec![InvoiceStatus::Pending; 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_throttling_answers_503_and_changes_nothing() {
    let (deps, _proxy) = faulty_dynamodb(100, "TransactWriteItems", DYNAMODB_THROTTLED).await;
    let e = assign_one(&deps).await.unwrap_err();
    let api = visitpay_edge::http::ApiError::from(e);
    assert_eq!((api.status.as_u16(), api.code), (503, "throttled"));
    let st: Vec<InvoiceStatus> =
        invoices::list(&deps, &clinic("c1"), &patient("p1"), None).await.unwrap().iter().map(|i| i.status()).collect();
    assert_eq!(st, vec![InvoiceStatus::Selected; 2], "no partial state");
    assert!(actions::list_for_visit(&deps, &clinic("c1"), &visit("v1")).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_transaction_is_decided_again() {
    let (deps, proxy) = faulty_dynamodb(2, "TransactWriteItems", CONFLICT).await;
    assert!(matches!(assign_one(&deps).await.unwrap(), actions::Assigned::Created { .. }));
    assert_eq!(proxy.injected.load(Ordering::SeqCst), 2);
    assert_eq!(
        actions::list_for_visit(&deps, &clinic("c1"), &visit("v1")).await.unwrap().len(),
        1,
        "one action, not three"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_dying_before_delete_changes_nothing_on_redelivery() {
    let stripe = stripe_emulator(None).await;
    let queue = Arc::new(EmbeddedQueue::new(5, Duration::from_millis(20)));
    let (deps, _clock) =
        deps_for_payments(Arc::new(crate::support::kit::dynamodb_store("crash").await), &stripe, Some(queue.clone()));
    let (action, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    let session = open_checkout(&deps, "c1", action.action_id(), &token).await;
    stripe.pay(&session, "succeeded").await;
    for e in stripe.events().await {
        queue
            .enqueue(&queued_stripe_event(e["id"].as_str().unwrap(), e["type"].as_str().unwrap(), e.to_string()))
            .await
            .unwrap();
    }
    // The first delivery commits, then "crashes": it reports every record failed, so nothing is deleted.
    let deliveries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let consumer = deps.clone();
    let seen = deliveries.clone();
    let q = queue.clone();
    let worker = tokio::spawn(async move {
        q.run(|event| {
            let consumer = consumer.clone();
            let seen = seen.clone();
            async move {
                let ids: Vec<String> = event.records.iter().map(|r| r.message_id.clone().unwrap_or_default()).collect();
                let response = consumer::handle(&consumer, event).await;
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    let mut crashed = aws_lambda_events::event::sqs::SqsBatchResponse::default();
                    for id in ids {
                        let mut f = aws_lambda_events::event::sqs::BatchItemFailure::default();
                        f.item_identifier = id;
                        crashed.batch_item_failures.push(f);
                    }
                    return crashed;
                }
                response
            }
        })
        .await
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while deliveries.load(Ordering::SeqCst) < 2 || queue.depth() > 0 {
        assert!(std::time::Instant::now() < deadline, "the message was not redelivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.abort();
    let paid = actions::get(&deps, &clinic("c1"), action.action_id()).await.unwrap();
    assert_eq!(paid.status(), ActionStatus::Paid);
    assert_eq!(
        paid.history()
            .entries()
            .iter()
            .filter(|h| h.to == ActionStatus::Paid && h.from != Some(ActionStatus::Paid))
            .count(),
        1,
        "applied once despite two deliveries"
    );
    assert!(queue.dead_letters().is_empty());
}

#[tokio::test]
async fn a_poison_message_reaches_the_embedded_dead_letter_list() {
    let queue = Arc::new(EmbeddedQueue::new(3, Duration::from_millis(10)));
    let (deps, _) = crate::support::kit::deps_with(Arc::new(crate::support::kit::embedded_store()));
    queue.enqueue(&queued_stripe_event("evt_bad", "checkout.session.completed", "{broken".into())).await.unwrap();
    let q = queue.clone();
    let consumer = deps.clone();
    let worker = tokio::spawn(async move { q.run(|e| consumer::handle(&consumer, e)).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while queue.dead_letters().is_empty() {
        assert!(std::time::Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.abort();
    let dead = queue.dead_letters();
    assert_eq!(
        (dead.len(), dead[0].receives, dead[0].body.as_str()),
        (1, 3, "{broken"),
        "after a bounded number of tries"
    );
    assert_eq!(queue.depth(), 0);
}

/// An answer far larger than anything Stripe sends (visitpay's biggest are
/// lists of 100 objects) is refused before it is held in memory, and not
/// asked for again.
#[tokio::test]
async fn an_answer_over_the_size_cap_is_refused() {
    let stripe = stripe_emulator(None).await;
    let huge: &'static str = Box::leak(format!("{{\"id\":\"{}\"}}", "x".repeat(3 * 1024 * 1024)).into_boxed_str());
    let proxy = fault_proxy(&stripe.base, Fault::Refuse { status: 200, body: huge }, 10, |m, p, _| {
        m == "GET" && p.contains("/checkout/sessions/")
    })
    .await;
    let payments = through(&proxy, Duration::from_secs(5));
    let account = visitpay_domain::StripeAccountId::parse(ACCOUNT).unwrap();
    let answer = payments.retrieve_checkout(&account, &sid("cs_test_1")).await;
    assert!(matches!(answer, Err(visitpay_app::ports::PaymentsError::Unexpected(_))), "{answer:?}");
    assert_eq!(proxy.injected.load(Ordering::SeqCst), 1, "a refused answer is not asked for again");
}

/// A secret key goes to Stripe over https only; plain http is for an
/// emulator, and only with a test key.
#[test]
fn a_live_key_never_goes_over_plain_http() {
    for key in ["sk_live_1", "rk_live_1", "sk_unknown"] {
        assert!(StripePayments::new(key, Some("http://127.0.0.1:9/")).is_err(), "{key}");
        assert!(StripePayments::new(key, Some("https://api.stripe.example/")).is_ok(), "{key}");
        assert!(StripePayments::new(key, None).is_ok(), "{key}: api.stripe.com is https");
    }
    for key in ["sk_test_1", "rk_test_1"] {
        assert!(StripePayments::new(key, Some("http://127.0.0.1:9/")).is_ok(), "{key}");
    }
}

/// Stripe slower than the request can wait: every call of the work in hand
/// ends by the work's deadline (a Lambda invocation's, less a margin), not
/// after three 8-second attempts each; the caller gets a 503 in time,
/// rather than Lambda killing the function at its timeout.
#[tokio::test]
async fn stripe_calls_end_by_the_requests_deadline() {
    let stripe = stripe_emulator(None).await;
    let proxy = fault_proxy(&stripe.base, Fault::Delay(Duration::from_secs(20)), 100, |_, _, _| true).await;
    let (mut deps, _clock) = deps_for_payments(Arc::new(crate::support::kit::embedded_store()), &stripe, None);
    let (_, token) = assigned_action(&deps, "c1", &[("1", 1000, "")]).await;
    deps.payments = through(&proxy, Duration::from_secs(8));
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs(2);
    let opened = visitpay_app::ports::deadline::within(deadline, checkout::open(&deps, &token)).await;
    let took = started.elapsed();
    assert!(
        matches!(opened, Err(AppError::Payments(visitpay_app::ports::PaymentsError::Unavailable(_)))),
        "{opened:?}"
    );
    assert!(took < Duration::from_secs(4), "ended by the deadline, not after 3 x 8 s: {took:?}");
}
