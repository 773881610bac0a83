//! The staff-side use cases on both stores: the flow, every refusal leaving
//! state untouched, idempotent assign, and 20 concurrent assigns.

use std::collections::HashMap;

use crate::support::kit::deps_with;
use crate::support::*;
use visitpay_app::actions::{self, AssignRequest, Assigned};
use visitpay_app::ports::{Expect, Write};
use visitpay_app::{invoices, settings, AppError, NotFound};
use visitpay_domain::hash_token;
use visitpay_domain::InvoiceEffect;
use visitpay_domain::{ActionStatus, DomainError, InvoiceStatus, Locale};

fn assign_req(p: &str, list: &[&str]) -> AssignRequest {
    AssignRequest { patient_id: patient(p), invoice_ids: ids(list), locale: Locale::FrCa, notify: Default::default() }
}

fn code(e: AppError) -> String {
    match e {
        // The code a client would see for it (`http::error` decides codes).
        AppError::Domain(d) => visitpay_edge::http::ApiError::from(d).code.to_owned(),
        AppError::NotFound(n) => format!("not_found:{n}"),
        other => format!("{other:?}"),
    }
}

async fn staff_flow_end_to_end(store: DynStore) {
    let (deps, _clock) = deps_with(store);
    enable_clinic(&deps, "c1").await;
    for (id, amount) in [("1042", 4500), ("1043", 1500), ("1044", 700)] {
        import(&deps, "c1", "p1", id, amount, "cad").await;
    }
    let unprocessed =
        invoices::list(&deps, &clinic("c1"), &patient("p1"), Some(InvoiceStatus::Unprocessed)).await.unwrap();
    assert_eq!(unprocessed.len(), 3);

    let (selected, total) =
        invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&["1042", "1043"])).await.unwrap();
    assert_eq!((selected.len(), total.amount, total.currency.code()), (2, 6000, "cad"));

    let Assigned::Created { action, patient_url } = actions::assign(
        &deps,
        &staff("c1"),
        &clinic("c1"),
        &visit("v1"),
        assign_req("p1", &["1042", "1043"]),
        None,
        first_answer,
    )
    .await
    .unwrap() else {
        panic!("expected a new action")
    };
    assert_eq!(
        (action.label(), action.total().amount, action.status()),
        ("Facturation privée", 6000, ActionStatus::Assigned)
    );
    let token = patient_url.rsplit('/').next().unwrap();
    assert!(token.len() >= 22, "at least 128 bits of base64url");
    assert_eq!(action.token_hash(), hash_token(token), "only the hash is stored");
    let stored = visitpay_aws::dynamodb::records::ActionRecord::of(&action, action.version);
    assert!(!serde_json::to_string(&stored).unwrap().contains(token));
    assert_eq!(actions::for_patient(&deps, token, actions::Reach::Pay).await.unwrap().action_id(), action.action_id());

    let s = invoice_states(&deps, "c1", "p1").await;
    assert_eq!(
        (s["1042"], s["1043"], s["1044"]),
        (InvoiceStatus::Pending, InvoiceStatus::Pending, InvoiceStatus::Unprocessed)
    );
    let listed = actions::list_for_visit(&deps, &clinic("c1"), &visit("v1")).await.unwrap();
    assert_eq!(listed.iter().map(|a| a.action_id()).collect::<Vec<_>>(), vec![action.action_id()]);

    let cancelled = actions::cancel(&deps, &staff("c1"), &clinic("c1"), action.action_id()).await.unwrap();
    assert_eq!(cancelled.status(), ActionStatus::Cancelled);
    assert_eq!(cancelled.history().entries().last().unwrap().actor, "staff:staff-1");
    let s = invoice_states(&deps, "c1", "p1").await;
    assert_eq!((s["1042"], s["1043"]), (InvoiceStatus::Selected, InvoiceStatus::Selected));
    let again = actions::cancel(&deps, &staff("c1"), &clinic("c1"), action.action_id()).await.unwrap_err();
    assert_eq!(code(again), "invalid_transition");

    // The released invoices can be assigned again.
    let r = actions::assign(
        &deps,
        &staff("c1"),
        &clinic("c1"),
        &visit("v1"),
        assign_req("p1", &["1042"]),
        None,
        first_answer,
    )
    .await;
    assert!(matches!(r, Ok(Assigned::Created { .. })));
}

async fn select_refusals_change_nothing(store: DynStore) {
    let (deps, _clock) = deps_with(store.clone());
    enable_clinic(&deps, "c1").await;
    import(&deps, "c1", "p1", "fresh", 100, "cad").await;
    import(&deps, "c1", "p1", "held", 200, "cad").await;
    import(&deps, "c1", "p1", "dollars", 300, "usd").await;
    import(&deps, "c1", "p2", "theirs", 400, "cad").await;
    invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&["held"])).await.unwrap();
    actions::assign(&deps, &staff("c1"), &clinic("c1"), &visit("v1"), assign_req("p1", &["held"]), None, first_answer)
        .await
        .unwrap();
    let before = invoice_states(&deps, "c1", "p1").await;

    let cases: &[(&[&str], &str)] = &[
        (&["fresh", "held"], "invoice_pending"),
        (&["fresh", "nope"], "not_found:invoice nope"),
        (&["fresh", "theirs"], "not_found:invoice theirs"),
        (&["fresh", "dollars"], "currency_mismatch"),
        (&["fresh", "fresh"], "duplicate_invoice_id"),
        (&[], "no_invoices"),
    ];
    for (list, expected) in cases {
        let e = invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(list)).await.unwrap_err();
        assert_eq!(code(e), *expected, "{list:?}");
        assert_eq!(invoice_states(&deps, "c1", "p1").await, before, "{list:?} changed something");
    }
    let too_many: Vec<String> = (0..51).map(|n| format!("i{n}")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let e = invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&too_many)).await.unwrap_err();
    assert_eq!(code(e), "too_many_invoices");
}

async fn assign_refusals_change_nothing(store: DynStore) {
    let (deps, _clock) = deps_with(store.clone());
    enable_clinic(&deps, "c1").await;
    for (id, currency) in [("ok", "cad"), ("raw", "cad"), ("held", "cad"), ("paid", "cad"), ("usd", "usd")] {
        import(&deps, "c1", "p1", id, 1000, currency).await;
    }
    import(&deps, "c1", "p2", "theirs", 1000, "cad").await;
    invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&["ok", "held", "paid"])).await.unwrap();
    invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&["usd"])).await.unwrap();
    invoices::select(&deps, &clinic("c1"), &patient("p2"), &ids(&["theirs"])).await.unwrap();
    actions::assign(&deps, &staff("c1"), &clinic("c1"), &visit("v0"), assign_req("p1", &["held"]), None, first_answer)
        .await
        .unwrap();
    // Pay "paid" through the domain, as the payment consumer will.
    let Assigned::Created { action, .. } = actions::assign(
        &deps,
        &staff("c1"),
        &clinic("c1"),
        &visit("v0"),
        assign_req("p1", &["paid"]),
        None,
        first_answer,
    )
    .await
    .unwrap() else {
        panic!()
    };
    let pending = store.get_invoice(&clinic("c1"), &patient("p1"), &ids(&["paid"])[0]).await.unwrap().unwrap();
    let paid = pending.follow(action.action_id(), InvoiceEffect::MarkPaid, deps.clock.now()).unwrap();
    store.commit(vec![Write::Invoice { invoice: paid, expect: Expect::Version(pending.version) }]).await.unwrap();

    let before = invoice_states(&deps, "c1", "p1").await;
    let visit_before = actions::list_for_visit(&deps, &clinic("c1"), &visit("v1")).await.unwrap().len();
    let cases: &[(&[&str], &str)] = &[
        (&["ok", "raw"], "invoice_not_selected"),
        (&["ok", "held"], "invoice_pending"),
        (&["ok", "paid"], "invoice_paid"),
        (&["ok", "ghost"], "not_found:invoice ghost"),
        (&["ok", "theirs"], "not_found:invoice theirs"),
        (&["usd"], "currency_mismatch"),
        (&["ok", "usd"], "currency_mismatch"),
    ];
    for (list, expected) in cases {
        let e = actions::assign(
            &deps,
            &staff("c1"),
            &clinic("c1"),
            &visit("v1"),
            assign_req("p1", list),
            None,
            first_answer,
        )
        .await
        .unwrap_err();
        assert_eq!(code(e), *expected, "{list:?}");
        assert_eq!(invoice_states(&deps, "c1", "p1").await, before, "{list:?} changed an invoice");
    }
    assert_eq!(actions::list_for_visit(&deps, &clinic("c1"), &visit("v1")).await.unwrap().len(), visit_before);

    // Switched off, or never configured: payments_disabled, nothing written.
    settings::put(&deps, &support(), clinic("c1"), settings_input(false, "cad")).await.unwrap();
    let e = actions::assign(
        &deps,
        &staff("c1"),
        &clinic("c1"),
        &visit("v1"),
        assign_req("p1", &["ok"]),
        None,
        first_answer,
    )
    .await;
    assert_eq!(code(e.unwrap_err()), "payments_disabled");
    let e = actions::assign(
        &deps,
        &staff("c9"),
        &clinic("c9"),
        &visit("v1"),
        assign_req("p1", &["ok"]),
        None,
        first_answer,
    )
    .await;
    assert_eq!(code(e.unwrap_err()), "payments_disabled");
    assert_eq!(invoice_states(&deps, "c1", "p1").await, before);
}

async fn assign_honours_idempotency_keys(store: DynStore) {
    let (deps, _clock) = deps_with(store);
    enable_clinic(&deps, "c1").await;
    import(&deps, "c1", "p1", "1", 1000, "cad").await;
    import(&deps, "c1", "p1", "2", 2000, "cad").await;
    invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&["1", "2"])).await.unwrap();
    let first = actions::assign(
        &deps,
        &staff("c1"),
        &clinic("c1"),
        &visit("v1"),
        assign_req("p1", &["1"]),
        Some("k-1"),
        first_answer,
    )
    .await
    .unwrap();
    let Assigned::Created { action, .. } = first else { panic!() };
    let repeat = actions::assign(
        &deps,
        &staff("c1"),
        &clinic("c1"),
        &visit("v1"),
        assign_req("p1", &["1"]),
        Some("k-1"),
        first_answer,
    )
    .await
    .unwrap();
    // The edge answers a replay with its first status, 201 (`handlers`).
    let Assigned::Replayed { body } = repeat else { panic!("a repeat must replay") };
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["action_id"].as_str(), Some(action.action_id().as_str()));
    assert_eq!(body["amount"], 1000);
    let other = actions::assign(
        &deps,
        &staff("c1"),
        &clinic("c1"),
        &visit("v1"),
        assign_req("p1", &["2"]),
        Some("k-1"),
        first_answer,
    )
    .await;
    assert!(matches!(other, Err(AppError::IdempotencyKeyReused)), "{other:?}");
    assert_eq!(
        invoice_states(&deps, "c1", "p1").await["2"],
        InvoiceStatus::Selected,
        "the refused repeat wrote nothing"
    );
    assert_eq!(actions::list_for_visit(&deps, &clinic("c1"), &visit("v1")).await.unwrap().len(), 1);
    // Keys are per clinic.
    enable_clinic(&deps, "c2").await;
    import(&deps, "c2", "p1", "1", 1000, "cad").await;
    invoices::select(&deps, &clinic("c2"), &patient("p1"), &ids(&["1"])).await.unwrap();
    let r = actions::assign(
        &deps,
        &staff("c2"),
        &clinic("c2"),
        &visit("v1"),
        assign_req("p1", &["1"]),
        Some("k-1"),
        first_answer,
    )
    .await;
    assert!(matches!(r, Ok(Assigned::Created { .. })));
}

async fn tenants_are_isolated(store: DynStore) {
    let (deps, _clock) = deps_with(store);
    enable_clinic(&deps, "a").await;
    enable_clinic(&deps, "b").await;
    import(&deps, "a", "p1", "1", 1000, "cad").await;
    invoices::select(&deps, &clinic("a"), &patient("p1"), &ids(&["1"])).await.unwrap();
    let Assigned::Created { action, .. } =
        actions::assign(&deps, &staff("a"), &clinic("a"), &visit("v1"), assign_req("p1", &["1"]), None, first_answer)
            .await
            .unwrap()
    else {
        panic!()
    };
    let b = clinic("b");
    assert!(matches!(actions::get(&deps, &b, action.action_id()).await, Err(AppError::NotFound(NotFound::Action))));
    assert!(matches!(
        actions::cancel(&deps, &staff("b"), &b, action.action_id()).await,
        Err(AppError::NotFound(NotFound::Action))
    ));
    assert!(actions::list_for_visit(&deps, &b, &visit("v1")).await.unwrap().is_empty());
    assert!(invoices::list(&deps, &b, &patient("p1"), None).await.unwrap().is_empty());
    let e = invoices::select(&deps, &b, &patient("p1"), &ids(&["1"])).await.unwrap_err();
    assert_eq!(code(e), "not_found:invoice 1");
    assert_eq!(actions::get(&deps, &clinic("a"), action.action_id()).await.unwrap().status(), ActionStatus::Assigned);
}

/// 20 staff assign at once over overlapping invoices: every invoice ends in at
/// most one live action, and each pending invoice points at the action that
/// holds it.
async fn twenty_concurrent_assigns_never_share_an_invoice(store: DynStore) {
    let (deps, _clock) = deps_with(store.clone());
    enable_clinic(&deps, "c1").await;
    let names: Vec<String> = (0..10).map(|n| format!("inv{n}")).collect();
    for n in &names {
        import(&deps, "c1", "p1", n, 1000, "cad").await;
    }
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    invoices::select(&deps, &clinic("c1"), &patient("p1"), &ids(&all)).await.unwrap();

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let deps = deps.clone();
            let pick: Vec<String> = [i % 10, (i + 1) % 10, (i + 3) % 10].iter().map(|n| format!("inv{n}")).collect();
            tokio::spawn(async move {
                let pick: Vec<&str> = pick.iter().map(String::as_str).collect();
                actions::assign(
                    &deps,
                    &staff("c1"),
                    &clinic("c1"),
                    &visit("v1"),
                    assign_req("p1", &pick),
                    None,
                    first_answer,
                )
                .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(Assigned::Created { action, .. }) => winners.push(action),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(AppError::Domain(DomainError::InvoicePending(_))) | Err(AppError::Contended) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert!(!winners.is_empty(), "some assign must succeed");
    let mut holder: HashMap<String, String> = HashMap::new();
    for a in &winners {
        let stored = actions::get(&deps, &clinic("c1"), a.action_id()).await.unwrap();
        assert!(stored.status().is_live());
        for inv in stored.invoice_ids() {
            let previous = holder.insert(inv.to_string(), a.action_id().to_string());
            assert!(previous.is_none(), "{inv} is in two live actions: {previous:?} and {}", a.action_id());
        }
    }
    for inv in invoices::list(&deps, &clinic("c1"), &patient("p1"), None).await.unwrap() {
        match holder.get(inv.invoice_id.as_str()) {
            Some(action) => {
                assert_eq!(inv.status(), InvoiceStatus::Pending);
                assert_eq!(inv.action_id().map(|a| a.to_string()).as_ref(), Some(action));
            }
            None => assert_eq!(inv.status(), InvoiceStatus::Selected, "{} was not taken", inv.invoice_id),
        }
    }
    let total: i64 = winners.iter().map(|a| a.total().amount).sum();
    assert_eq!(total, 1000 * holder.len() as i64, "every amount is the sum of its own invoices");
}

/// Where a clinic's money goes is its Stripe account. Support may point it
/// at another only if Stripe knows that account (it is connected to the
/// platform); the change raises the alarm's metric, and an account Stripe
/// does not know is refused with a clear code, changing nothing.
async fn changing_the_stripe_account_is_checked_and_leaves_a_trace(store: DynStore) {
    let stripe = stripe_emulator(None).await;
    let (mut deps, _clock) = deps_for_payments(store, &stripe, None);
    let metrics = crate::support::kit::record_metrics(&mut deps);
    let first = settings::put(&deps, &support(), clinic("c1"), settings_input(true, "cad")).await.unwrap();
    assert_eq!(first.settings.stripe_account_id.as_ref().map(|a| a.as_str()), Some(ACCOUNT));
    assert!(metrics.signals().is_empty(), "a clinic's first account is no change of where its money goes");

    let mut unknown = settings_input(true, "cad");
    unknown.stripe_account_id = Some("acct_1NotConnected".into());
    let refused = settings::put(&deps, &support(), clinic("c1"), unknown).await.unwrap_err();
    assert_eq!(code(refused), "stripe_account_unknown");
    let kept = settings::get(&deps, &clinic("c1")).await.unwrap();
    assert_eq!(kept, first, "nothing changed");
    assert!(metrics.signals().is_empty());

    stripe.emulator.connect_account("acct_1Second");
    let mut second = settings_input(true, "cad");
    second.stripe_account_id = Some("acct_1Second".into());
    let moved = settings::put(&deps, &support(), clinic("c1"), second.clone()).await.unwrap();
    assert_eq!(moved.settings.stripe_account_id.as_ref().map(|a| a.as_str()), Some("acct_1Second"));
    assert_eq!(metrics.signals(), vec![(visitpay_app::ports::MoneySignal::AccountChanged, None)]);
    // The same account again is no change: no Stripe call, no signal.
    let calls = stripe.emulator.requests().len();
    settings::put(&deps, &support(), clinic("c1"), second).await.unwrap();
    assert_eq!((stripe.emulator.requests().len(), metrics.signals().len()), (calls, 1));
}

on_both_stores!(
    changing_the_stripe_account_is_checked_and_leaves_a_trace,
    staff_flow_end_to_end,
    select_refusals_change_nothing,
    assign_refusals_change_nothing,
    assign_honours_idempotency_keys,
    tenants_are_isolated,
    twenty_concurrent_assigns_never_share_an_invoice,
);
