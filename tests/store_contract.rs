//! The store contract: what every `Store` adapter must do. Each case runs on
//! the embedded store and on DynamoDB (moto), so the laptop run behaves as AWS.

use crate::support::*;
use time::OffsetDateTime;
use visitpay_app::ports::{Expect, IdempotencyRecord, StoreError, Stored, Write};
use visitpay_domain::action::{NewAction, Terms};
use visitpay_domain::{
    Action, ActionId, Actor, Currency, Invoice, InvoiceEffect, LineItemText, Locale, Money, PaymentIntentId,
    PaymentSettings, RefundId, StripeAccountId, UserId,
};
use visitpay_domain::{ChargeChange, ParkedEvent, PaymentRef};

/// A value as the store should hold it after `version` writes.
fn at_version<T>(value: T, version: u64) -> Option<Stored<T>> {
    Some(Stored { value, version })
}

fn pi(s: &str) -> PaymentIntentId {
    PaymentIntentId::parse(s).unwrap()
}

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
}

fn invoice(c: &str, p: &str, id: &str, amount: i64) -> Invoice {
    Invoice::import(None, clinic(c), patient(p), ids(&[id]).remove(0), invoice_input(amount, "cad"), at(0)).unwrap()
}

fn action(c: &str, v: &str, id: &str, created: i64) -> Action {
    Action::assign(
        NewAction {
            clinic_id: clinic(c),
            action_id: ActionId::parse(id).unwrap(),
            visit_id: visit(v),
            patient_id: patient("p1"),
            label: "Facturation privée".into(),
            locale: Locale::FrCa,
            lines: ids(&["1", "2"])
                .into_iter()
                .zip([4000, 2000])
                .map(|(invoice_id, amount)| {
                    visitpay_domain::ActionLine::new(
                        invoice_id,
                        Money::new(amount, Currency::parse("cad").unwrap()).unwrap(),
                    )
                })
                .collect(),
            total: Money::new(6000, Currency::parse("cad").unwrap()).unwrap(),
            token_hash: format!("hash-{id}"),
            expires_at: at(3600),
            terms: Terms {
                stripe_account_id: StripeAccountId::parse("acct_1Test").unwrap(),
                checkout_ttl_minutes: 60,
                line_item_text: LineItemText::Generic,
                receipt_issuer: Some(Default::default()),
                time_zone: Some(Default::default()),
                reminder_hours: Vec::new(),
            },
            contacts: Default::default(),
        },
        at(created),
        &Actor::Staff(UserId::parse("u1").unwrap()),
    )
}

async fn settings_round_trip(store: DynStore) {
    assert_eq!(store.get_settings(&clinic("c1")).await.unwrap(), None);
    let s = PaymentSettings::from_input(clinic("c1"), settings_input(true, "cad"), at(0), UserId::parse("s").unwrap())
        .unwrap();
    store.put_settings(&s).await.unwrap();
    assert_eq!(store.get_settings(&clinic("c1")).await.unwrap(), Some(s.clone()));
    let off = PaymentSettings { enabled: false, ..s };
    store.put_settings(&off).await.unwrap();
    assert_eq!(store.get_settings(&clinic("c1")).await.unwrap(), Some(off));
    assert_eq!(store.get_settings(&clinic("c2")).await.unwrap(), None, "settings are per clinic");
}

async fn invoice_writes_are_conditional(store: DynStore) {
    let inv = invoice("c1", "p1", "1042", 4500);
    store.commit(vec![Write::Invoice { invoice: inv.clone(), expect: Expect::Absent }]).await.unwrap();
    let again = store.commit(vec![Write::Invoice { invoice: inv.clone(), expect: Expect::Absent }]).await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    let selected = inv.select(at(1)).unwrap().unwrap();
    store.commit(vec![Write::Invoice { invoice: selected.clone(), expect: Expect::Version(1) }]).await.unwrap();
    let stale = store.commit(vec![Write::Invoice { invoice: selected.clone(), expect: Expect::Version(1) }]).await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
    let missing = invoice("c1", "p1", "9999", 1);
    let r = store.commit(vec![Write::Invoice { invoice: missing, expect: Expect::Version(1) }]).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "a version cannot match an absent item: {r:?}");
    let read = store.get_invoice(&clinic("c1"), &patient("p1"), &ids(&["1042"])[0]).await.unwrap();
    assert_eq!(read, at_version(selected, 2), "the store counts each write of an item");
}

async fn invoices_are_listed_per_patient_in_order(store: DynStore) {
    let writes = vec![
        invoice("c1", "p1", "b2", 200),
        invoice("c1", "p1", "a1", 100),
        invoice("c1", "p2", "a1", 300),
        invoice("c2", "p1", "a1", 400),
    ]
    .into_iter()
    .map(|invoice| Write::Invoice { invoice, expect: Expect::Absent })
    .collect();
    store.commit(writes).await.unwrap();
    let list = store.list_invoices(&clinic("c1"), &patient("p1")).await.unwrap();
    let seen: Vec<(&str, i64)> = list.iter().map(|i| (i.invoice_id.as_str(), i.amount)).collect();
    assert_eq!(seen, vec![("a1", 100), ("b2", 200)]);
    assert!(store.list_invoices(&clinic("c3"), &patient("p1")).await.unwrap().is_empty());
}

async fn commit_is_all_or_nothing(store: DynStore) {
    let (a, b) = (invoice("c1", "p1", "1", 100), invoice("c1", "p1", "2", 200));
    store.commit(vec![Write::Invoice { invoice: a.clone(), expect: Expect::Absent }]).await.unwrap();
    let a2 = a.select(at(1)).unwrap().unwrap();
    // b is fine, a2 fine, but the action expects to be absent and a stale invoice write fails.
    let stale_a = Write::Invoice { invoice: a2.clone(), expect: Expect::Version(7) };
    let r = store
        .commit(vec![
            Write::Invoice { invoice: b.clone(), expect: Expect::Absent },
            Write::Action { action: action("c1", "v1", "act_1", 0), expect: Expect::Absent },
            stale_a,
        ])
        .await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    assert_eq!(store.get_invoice(&clinic("c1"), &patient("p1"), &b.invoice_id).await.unwrap(), None);
    assert_eq!(store.get_action(&clinic("c1"), &ActionId::parse("act_1").unwrap()).await.unwrap(), None);
    assert_eq!(store.get_invoice(&clinic("c1"), &patient("p1"), &a.invoice_id).await.unwrap(), at_version(a, 1));
}

async fn actions_and_idempotency_round_trip(store: DynStore) {
    let act = action("c1", "v1", "act_1", 0);
    let record = IdempotencyRecord {
        clinic_id: clinic("c1"),
        key: "key-1".into(),
        request_hash: "h".into(),
        action_id: act.action_id().clone(),
        response: r#"{"action_id":"act_1"}"#.into(),
        expires_at: at(86400),
    };
    store
        .commit(vec![Write::Action { action: act.clone(), expect: Expect::Absent }, Write::Idempotency(record.clone())])
        .await
        .unwrap();
    assert_eq!(store.get_action(&clinic("c1"), act.action_id()).await.unwrap(), at_version(act.clone(), 1));
    assert_eq!(store.get_action(&clinic("c2"), act.action_id()).await.unwrap(), None, "another clinic sees nothing");
    assert_eq!(
        store.find_action(act.action_id()).await.unwrap(),
        at_version(act.clone(), 1),
        "by id alone, for the patient link"
    );
    assert_eq!(store.find_action(&ActionId::parse("act_9").unwrap()).await.unwrap(), None);
    let same_id_elsewhere = action("c2", "v1", "act_1", 0);
    let r = store.commit(vec![Write::Action { action: same_id_elsewhere, expect: Expect::Absent }]).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "action ids are unique across clinics: {r:?}");
    assert_eq!(store.get_idempotency(&clinic("c1"), "key-1").await.unwrap(), Some(record.clone()));
    assert_eq!(store.get_idempotency(&clinic("c2"), "key-1").await.unwrap(), None);
    let r = store.commit(vec![Write::Idempotency(record)]).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "idempotency records are write-once: {r:?}");
    // A transition round-trips with its history.
    let cancelled = act
        .apply(&visitpay_domain::ActionEvent::Cancel { closed: Default::default() }, at(5), &Actor::Reconcile)
        .unwrap()
        .action;
    store.commit(vec![Write::Action { action: cancelled.clone(), expect: Expect::Version(1) }]).await.unwrap();
    assert_eq!(store.get_action(&clinic("c1"), act.action_id()).await.unwrap(), at_version(cancelled.clone(), 2));
    let stale = store.commit(vec![Write::Action { action: cancelled, expect: Expect::Version(1) }]).await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "the version moved on: {stale:?}");
}

async fn visit_actions_are_scoped_and_ordered(store: DynStore) {
    let writes = vec![
        action("c1", "v1", "act_b", 20),
        action("c1", "v1", "act_a", 10),
        action("c1", "v2", "act_c", 5),
        action("c2", "v1", "act_d", 1),
    ]
    .into_iter()
    .map(|action| Write::Action { action, expect: Expect::Absent })
    .collect();
    store.commit(writes).await.unwrap();
    let list = store.list_visit_actions(&clinic("c1"), &visit("v1")).await.unwrap();
    let seen: Vec<&str> = list.iter().map(|a| a.action_id().as_str()).collect();
    assert_eq!(seen, vec!["act_a", "act_b"]);
}

async fn racing_writers_exactly_one_wins(store: DynStore) {
    let inv = invoice("c1", "p1", "1", 100);
    store.commit(vec![Write::Invoice { invoice: inv.clone(), expect: Expect::Absent }]).await.unwrap();
    let selected = inv.select(at(1)).unwrap().unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = store.clone();
            let mut mine = selected.clone();
            mine.description = format!("writer {n}");
            tokio::spawn(async move {
                store.commit(vec![Write::Invoice { invoice: mine, expect: Expect::Version(1) }]).await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1);
    let stored = store.get_invoice(&clinic("c1"), &patient("p1"), &inv.invoice_id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
}

async fn assign_inputs_come_in_one_read(store: DynStore) {
    let none = store.assign_inputs(&clinic("c1"), &patient("p1"), &ids(&["1"]), Some("k")).await.unwrap();
    assert_eq!(none, visitpay_app::ports::AssignInputs::default());
    let s = PaymentSettings::from_input(clinic("c1"), settings_input(true, "cad"), at(0), UserId::parse("s").unwrap())
        .unwrap();
    store.put_settings(&s).await.unwrap();
    let act = action("c1", "v1", "act_1", 0);
    let record = IdempotencyRecord {
        clinic_id: clinic("c1"),
        key: "k".into(),
        request_hash: "h".into(),
        action_id: act.action_id().clone(),
        response: "{}".into(),
        expires_at: at(86400),
    };
    let writes = vec![
        Write::Invoice { invoice: invoice("c1", "p1", "1", 100), expect: Expect::Absent },
        Write::Invoice { invoice: invoice("c1", "p1", "2", 200), expect: Expect::Absent },
        Write::Invoice { invoice: invoice("c1", "p2", "3", 300), expect: Expect::Absent },
        Write::Idempotency(record.clone()),
    ];
    store.commit(writes).await.unwrap();
    let got = store.assign_inputs(&clinic("c1"), &patient("p1"), &ids(&["2", "1", "3", "9"]), Some("k")).await.unwrap();
    assert_eq!(got.settings, Some(s.clone()));
    assert_eq!(got.idempotency, Some(record));
    let mut found: Vec<&str> = got.invoices.iter().map(|i| i.invoice_id.as_str()).collect();
    found.sort_unstable();
    assert_eq!(found, vec!["1", "2"], "only this patient's, only those that exist");
    let without_key = store.assign_inputs(&clinic("c1"), &patient("p1"), &ids(&["1"]), None).await.unwrap();
    assert_eq!((without_key.idempotency, without_key.invoices.len()), (None, 1));
    let other_clinic = store.assign_inputs(&clinic("c2"), &patient("p1"), &ids(&["1"]), Some("k")).await.unwrap();
    assert_eq!(other_clinic, visitpay_app::ports::AssignInputs::default());
}

/// `Write::HeldInvoice` moves an invoice exactly as `Invoice::follow` would,
/// without a read, and only from the state it expects, held by that action.
async fn held_invoices_follow_their_action_unread(store: DynStore) {
    let a = ActionId::parse("act_1").unwrap();
    let other = ActionId::parse("act_2").unwrap();
    let pending = invoice("c1", "p1", "1", 100).select(at(1)).unwrap().unwrap().reserve_for(&a, at(2)).unwrap();
    let selected = invoice("c1", "p1", "2", 200).select(at(1)).unwrap().unwrap();
    for i in [&pending, &selected] {
        store.commit(vec![Write::Invoice { invoice: i.clone(), expect: Expect::Absent }]).await.unwrap();
    }
    let follow = |invoice: &Invoice, action: &ActionId, effect: InvoiceEffect, secs: i64| Write::HeldInvoice {
        clinic_id: invoice.clinic_id.clone(),
        patient_id: invoice.patient_id.clone(),
        invoice_id: invoice.invoice_id.clone(),
        action_id: action.clone(),
        effect,
        at: at(secs),
    };
    let read = |i: &Invoice| {
        let (store, i) = (store.clone(), i.clone());
        async move { store.get_invoice(&i.clinic_id, &i.patient_id, &i.invoice_id).await.unwrap() }
    };
    // Refused, and nothing changes, whenever the invoice is not where the move starts.
    let missing = invoice("c1", "p1", "9", 100);
    for refused in [
        vec![follow(&pending, &other, InvoiceEffect::MarkPaid, 3)],
        vec![follow(&pending, &a, InvoiceEffect::Reopen, 3)],
        vec![follow(&pending, &a, InvoiceEffect::Unchanged, 3)],
        vec![follow(&missing, &a, InvoiceEffect::Release, 3)],
        vec![follow(&pending, &a, InvoiceEffect::MarkPaid, 3), follow(&selected, &a, InvoiceEffect::MarkPaid, 3)],
    ] {
        let r = store.commit(refused.clone()).await;
        assert!(matches!(r, Err(StoreError::Conflict)), "{refused:?}: {r:?}");
        assert_eq!(read(&pending).await, at_version(pending.clone(), 1));
        assert_eq!(read(&selected).await, at_version(selected.clone(), 1));
    }
    // Paid, then reopened after a refund: the same invoices `follow` gives.
    let paid = pending.follow(&a, InvoiceEffect::MarkPaid, at(4)).unwrap();
    let act = action("c1", "v1", "act_1", 0);
    store
        .commit(vec![
            Write::Action { action: act.clone(), expect: Expect::Absent },
            follow(&pending, &a, InvoiceEffect::MarkPaid, 4),
        ])
        .await
        .unwrap();
    assert_eq!(read(&pending).await, at_version(paid.clone(), 2), "an unread move counts as a write");
    assert_eq!(store.get_action(&clinic("c1"), &a).await.unwrap(), at_version(act, 1), "in the same commit");
    let again = store.commit(vec![follow(&pending, &a, InvoiceEffect::MarkPaid, 5)]).await;
    assert!(matches!(again, Err(StoreError::Conflict)), "a move happens once: {again:?}");
    store.commit(vec![follow(&pending, &a, InvoiceEffect::Reopen, 6)]).await.unwrap();
    assert_eq!(read(&pending).await, at_version(paid.follow(&a, InvoiceEffect::Reopen, at(6)).unwrap(), 3));
    // A versioned write after an unread move sees the bumped version.
    let reselected = paid.follow(&a, InvoiceEffect::Reopen, at(6)).unwrap().select(at(7)).unwrap().unwrap();
    let stale = Expect::Version(2);
    let r = store.commit(vec![Write::Invoice { invoice: reselected.clone(), expect: stale }]).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{r:?}");
    store.commit(vec![Write::Invoice { invoice: reselected.clone(), expect: Expect::Version(3) }]).await.unwrap();
    assert_eq!(read(&pending).await, at_version(reselected, 4));
}

/// Payment records: written on condition of the version they replace, and
/// read together with their action.
async fn payment_records_are_conditional_and_read_with_their_action(store: DynStore) {
    let act = action("c1", "v1", "act_1", 0);
    store.commit(vec![Write::Action { action: act.clone(), expect: Expect::Absent }]).await.unwrap();
    let event = |id: &str, change: ChargeChange, secs: i64| ParkedEvent { event_id: id.into(), change, at: at(secs) };
    let dispute = event("evt_1", ChargeChange::Disputed, 1);
    let parked = PaymentRef::park(&pi("pi_1"), None, dispute.clone()).unwrap();
    store.commit(vec![Write::Payment { payment: parked.clone(), expect: Expect::Absent }]).await.unwrap();
    let again = store.commit(vec![Write::Payment { payment: parked.clone(), expect: Expect::Absent }]).await;
    assert!(matches!(again, Err(StoreError::Conflict)), "a second first version: {again:?}");
    assert_eq!(PaymentRef::park(&pi("pi_1"), Some(&parked), dispute), None, "an event is parked once");
    let refund = ChargeChange::Refunded {
        refunds: vec![visitpay_domain::RefundRecord::new(
            RefundId::parse("re_1").unwrap(),
            100,
            visitpay_domain::RefundState::Succeeded,
        )],
    };
    let two = PaymentRef::park(&pi("pi_1"), Some(&parked), event("evt_2", refund, 2)).unwrap();
    store.commit(vec![Write::Payment { payment: two.clone(), expect: Expect::Version(1) }]).await.unwrap();
    assert_eq!(store.find_payment(&pi("pi_1")).await.unwrap(), at_version(two.clone(), 2));
    let stale = PaymentRef::park(&pi("pi_1"), Some(&parked), event("evt_3", ChargeChange::Disputed, 3)).unwrap();
    let r = store.commit(vec![Write::Payment { payment: stale, expect: Expect::Version(1) }]).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "built on an old version: {r:?}");
    let owned = PaymentRef::owned(&pi("pi_1"), clinic("c1"), act.action_id().clone());
    store.commit(vec![Write::Payment { payment: owned.clone(), expect: Expect::Version(2) }]).await.unwrap();
    let read = |c: &str, payment: &str| {
        let (store, c, payment, id) = (store.clone(), clinic(c), pi(payment), act.action_id().clone());
        async move { store.action_and_payment(&c, &id, &payment).await.unwrap() }
    };
    assert_eq!(read("c1", "pi_1").await, (at_version(act.clone(), 1), at_version(owned.clone(), 3)));
    assert_eq!(read("c2", "pi_1").await, (None, at_version(owned, 3)), "another clinic's action is not read");
    assert_eq!(read("c1", "pi_none").await, (at_version(act, 1), None));
}

/// An invoice whose item is about `bytes` long: DynamoDB's limits are on
/// items, whatever the domain allows (descriptions stop at 500 characters).
fn invoice_of_size(id: &str, bytes: usize) -> Invoice {
    let mut i = invoice("c1", "p-big", id, 100);
    i.description = "x".repeat(bytes);
    i
}

/// DynamoDB refuses an item over 400 KB (moto near 405,000 bytes by its own
/// measure, DynamoDB at 409,600 by its published rules), a transaction of
/// more than 100 items or over 4 MB: "ValidationException: Item size has
/// exceeded the maximum allowed size" (Developer Guide, quotas; API
/// reference, TransactWriteItems). Both stores answer `TooLarge` and write
/// nothing; an item comfortably under the limit is stored whole.
async fn writes_over_dynamodbs_limits_are_refused_whole(store: DynStore) {
    let (c, p) = (clinic("c1"), patient("p-big"));
    let big = invoice_of_size("big", 395_000);
    store.commit(vec![Write::Invoice { invoice: big.clone(), expect: Expect::Absent }]).await.unwrap();
    assert_eq!(store.get_invoice(&c, &p, &big.invoice_id).await.unwrap(), at_version(big, 1));

    let too_big = invoice_of_size("too-big", 415_000);
    let r = store.commit(vec![Write::Invoice { invoice: too_big.clone(), expect: Expect::Absent }]).await;
    assert!(matches!(r, Err(StoreError::TooLarge(_))), "a single put: {r:?}");
    let small = invoice("c1", "p-big", "small", 100);
    let r = store
        .commit(vec![
            Write::Invoice { invoice: small.clone(), expect: Expect::Absent },
            Write::Invoice { invoice: too_big.clone(), expect: Expect::Absent },
        ])
        .await;
    assert!(matches!(r, Err(StoreError::TooLarge(_))), "in a transaction: {r:?}");

    let many: Vec<Write> = (0..101)
        .map(|n| Write::Invoice { invoice: invoice("c1", "p-big", &format!("n{n}"), 100), expect: Expect::Absent })
        .collect();
    let r = store.commit(many).await;
    assert!(matches!(r, Err(StoreError::TooLarge(_))), "101 items: {r:?}");

    let heavy: Vec<Write> = (0..11)
        .map(|n| Write::Invoice { invoice: invoice_of_size(&format!("h{n}"), 390_000), expect: Expect::Absent })
        .collect();
    let r = store.commit(heavy).await;
    assert!(matches!(r, Err(StoreError::TooLarge(_))), "11 × 390 KB is over 4 MB: {r:?}");

    let ids: Vec<String> =
        store.list_invoices(&c, &p).await.unwrap().into_iter().map(|i| i.invoice_id.to_string()).collect();
    assert_eq!(ids, vec!["big"], "nothing refused was written");
}

/// `Write::AccountTakesPayments` writes nothing and holds a commit back
/// while the clinic's stored health says its account cannot charge (as
/// `AccountHealth::can_take_payments` decides); no health yet, or health of
/// another account, lets it through. On DynamoDB it is a ConditionCheck,
/// which "checks the existence and state of an item" in a transaction
/// without writing it, and cancels the whole transaction when false
/// (TransactWriteItems, DynamoDB API Reference).
async fn a_commit_can_require_the_account_to_take_payments(store: DynStore) {
    let account = StripeAccountId::parse("acct_1Test").unwrap();
    let check = || Write::AccountTakesPayments { clinic_id: clinic("c1"), account: account.clone() };
    let health = |id: &str, charges: bool, version: Expect| Write::AccountHealth {
        clinic_id: clinic("c1"),
        health: visitpay_domain::AccountHealth::new(
            StripeAccountId::parse(id).unwrap(),
            charges,
            charges,
            true,
            Vec::new(),
            None,
            at(0),
        ),
        expect: version,
    };
    let act = |id: &str| Write::Action { action: action("c1", "v1", id, 0), expect: Expect::Absent };
    let found = |id: &'static str| {
        let store = store.clone();
        async move { store.get_action(&clinic("c1"), &ActionId::parse(id).unwrap()).await.unwrap().is_some() }
    };

    // No health stored yet: the commit goes through.
    store.commit(vec![act("act_1"), check()]).await.unwrap();
    assert!(found("act_1").await);
    // Charges enabled: through.
    store.commit(vec![health("acct_1Test", true, Expect::Absent)]).await.unwrap();
    store.commit(vec![act("act_2"), check()]).await.unwrap();
    assert!(found("act_2").await);
    // Restricted: refused whole, nothing written.
    store.commit(vec![health("acct_1Test", false, Expect::Version(1))]).await.unwrap();
    let refused = store.commit(vec![act("act_3"), check()]).await;
    assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
    assert!(!found("act_3").await, "nothing of a refused commit is written");
    // The health of another account (the clinic moved to a new one): through.
    store.commit(vec![health("acct_1Other", false, Expect::Version(2))]).await.unwrap();
    store.commit(vec![act("act_4"), check()]).await.unwrap();
    assert!(found("act_4").await);
    // The check wrote nothing: the health is as it was.
    let kept = store.account_health(&clinic("c1")).await.unwrap().unwrap();
    assert_eq!((kept.value.id.as_str(), kept.version), ("acct_1Other", 3));
}

on_both_stores!(
    a_commit_can_require_the_account_to_take_payments,
    writes_over_dynamodbs_limits_are_refused_whole,
    assign_inputs_come_in_one_read,
    settings_round_trip,
    invoice_writes_are_conditional,
    invoices_are_listed_per_patient_in_order,
    commit_is_all_or_nothing,
    actions_and_idempotency_round_trip,
    visit_actions_are_scoped_and_ordered,
    racing_writers_exactly_one_wins,
    held_invoices_follow_their_action_unread,
    payment_records_are_conditional_and_read_with_their_action,
);

/// The embedded store's fork (the webhook-burst benchmark's two worlds):
/// equal at first, then independent.
#[tokio::test]
async fn an_embedded_fork_starts_equal_and_then_goes_its_own_way() {
    use visitpay_app::ports::{Commit, InvoiceStore};
    let store = crate::support::kit::embedded_store();
    store
        .commit(vec![Write::Invoice { invoice: invoice("c1", "p1", "1", 100), expect: Expect::Absent }])
        .await
        .unwrap();
    let fork = store.fork();
    let (c, p) = (clinic("c1"), patient("p1"));
    assert_eq!(fork.list_invoices(&c, &p).await.unwrap(), store.list_invoices(&c, &p).await.unwrap());
    fork.commit(vec![Write::Invoice { invoice: invoice("c1", "p1", "2", 200), expect: Expect::Absent }]).await.unwrap();
    assert_eq!(store.list_invoices(&c, &p).await.unwrap().len(), 1, "the original is untouched");
    assert_eq!(fork.list_invoices(&c, &p).await.unwrap().len(), 2);
}

/// The HTTPS client every Lambda uses (`config::https_client`: compiled-in
/// roots, no OS certificate store) builds its connector and talks to DynamoDB.
#[tokio::test]
async fn the_lambda_https_client_reaches_dynamodb() {
    use visitpay_app::ports::SettingsStore;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(visitpay_edge::config::https_client().expect("a TLS context from the compiled-in roots"))
        .endpoint_url(crate::support::kit::moto_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await;
    let table = format!("https-client-{}", std::process::id());
    let store = visitpay_aws::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    visitpay_devkit::setup::ensure_table(&store, &visitpay_aws::tables::main_table()).await.unwrap();
    assert_eq!(store.get_settings(&clinic("c1")).await.unwrap(), None);
}
