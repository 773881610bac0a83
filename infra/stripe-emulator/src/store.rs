//! The emulator's in-memory state (its records, `records`; events, idempotency cache,
//! request log) and the state transitions shared by the API, the control routes and the
//! hosted page.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::clock::Clock;
use crate::error::ApiError;
use crate::objects;
use crate::records::{
    Account, AccountLink, BalanceTransaction, Charge, Dispute, Event, Fault, IdempotentResponse, Origin, Outcome,
    PaymentIntent, Payout, Refund, RefundStart, RefundStatus, Session, SessionStatus,
};
use crate::util::random_id;
use crate::webhooks::Deliveries;

/// "List events, going back up to 30 days"; an event is retrieved only "if it
/// was created in the last 30 days" (Stripe API reference, Events).
pub(crate) const KEPT_EVENT_SECS: i64 = 30 * 86_400;

impl State {
    /// The fault a request meets, if any (counting it).
    pub(crate) fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let index = self.faults.iter().position(|f| f.method == method && path.starts_with(&f.path))?;
        let fault = self.faults[index].clone();
        if self.faults[index].times <= 1 {
            self.faults.remove(index);
        } else {
            self.faults[index].times -= 1;
        }
        Some(fault)
    }
}

pub(crate) struct State {
    pub sessions: HashMap<String, Session>,
    /// Creation order, for newest-first listings.
    pub session_order: Vec<String>,
    pub payment_intents: HashMap<String, PaymentIntent>,
    pub charges: HashMap<String, Charge>,
    pub refunds: HashMap<String, Refund>,
    pub disputes: HashMap<String, Dispute>,
    /// Emission order.
    pub events: Vec<Event>,
    pub idempotency: HashMap<(Option<String>, String), IdempotentResponse>,
    /// Keys of requests executing right now (`idempotency_key_in_use` for a repeat).
    pub in_flight: std::collections::HashSet<(Option<String>, String)>,
    pub requests: Vec<Value>,
    /// The connected accounts that exist; a `Stripe-Account` naming any other is refused.
    pub accounts: BTreeMap<String, Account>,
    /// Account Links, by the id in their URL.
    pub account_links: HashMap<String, AccountLink>,
    /// Every balance transaction of every account, oldest first.
    pub balance: Vec<BalanceTransaction>,
    pub payouts: HashMap<String, Payout>,
    /// Objects and events are live mode (`POST /test/livemode`), else test mode.
    pub livemode: bool,
    pub refund_start: RefundStart,
    /// Emulated time each request takes (`POST /test/latency`), to make concurrent repeats observable.
    pub latency_ms: u64,
    /// Injected failures, consumed in order by matching requests.
    pub faults: Vec<Fault>,
    clock: Arc<Clock>,
    deliveries: Arc<Deliveries>,
}

impl State {
    pub(crate) fn new(clock: Arc<Clock>, deliveries: Arc<Deliveries>, accounts: &[String]) -> Self {
        Self {
            sessions: HashMap::new(),
            session_order: Vec::new(),
            payment_intents: HashMap::new(),
            charges: HashMap::new(),
            refunds: HashMap::new(),
            disputes: HashMap::new(),
            events: Vec::new(),
            idempotency: HashMap::new(),
            in_flight: Default::default(),
            requests: Vec::new(),
            accounts: accounts.iter().map(|a| (a.clone(), Account::ready(clock.now()))).collect(),
            account_links: HashMap::new(),
            balance: Vec::new(),
            payouts: HashMap::new(),
            livemode: false,
            refund_start: RefundStart::Succeeded,
            latency_ms: 0,
            faults: Vec::new(),
            clock,
            deliveries,
        }
    }

    /// Whether every webhook of the event was delivered (`delivery_success`):
    /// one sent to no endpoint (`pending_webhooks` 0 when made) had nothing to
    /// deliver, so it is neither "still pending" nor "failed all delivery
    /// attempts" (API reference, List all events).
    pub(crate) fn was_delivered(&self, event: &Event) -> bool {
        event.pending_webhooks == 0 || self.deliveries.was_delivered(&event.id)
    }

    /// The emulated "now" in unix seconds.

    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Idempotency keys "can be removed … after they're at least 24 hours old"
    /// (Stripe docs, Idempotent requests): the emulator removes them then.
    pub(crate) fn prune_idempotency(&mut self) {
        let horizon = self.now() - 24 * 3600;
        self.idempotency.retain(|_, r| r.created > horizon);
    }

    /// Records an event and queues it for delivery; returns its id.
    pub(crate) fn emit(
        &mut self,
        kind: &str,
        object: Value,
        account: Option<String>,
        origin: &Origin,
        deliver: bool,
    ) -> String {
        let deliver = deliver && self.deliveries.url().is_some();
        let event = Event {
            id: random_id("evt_"),
            account,
            created: self.now(),
            kind: kind.to_owned(),
            object,
            origin: origin.clone(),
            pending_webhooks: i64::from(deliver),
            livemode: self.livemode,
        };
        if deliver {
            self.deliveries.schedule(&event.id, objects::event(&event).to_string());
        }
        let id = event.id.clone();
        self.events.push(event);
        // Stripe keeps events 30 days; ours are in creation order on a clock that only moves forward.
        let oldest = self.now() - KEPT_EVENT_SECS;
        let gone = self.events.partition_point(|e| e.created < oldest);
        self.events.drain(..gone);
        id
    }

    fn emit_session_event(&mut self, kind: &str, session_id: &str, origin: &Origin, deliver: bool) -> String {
        let session = &self.sessions[session_id];
        let (object, account) = (objects::session(session, self.livemode), session.account.clone());
        self.emit(kind, object, account, origin, deliver)
    }

    /// Lazily expires every open session whose `expires_at` has passed (each emits
    /// `checkout.session.expired` once, since it leaves the open state).
    pub(crate) fn expire_due(&mut self) {
        let now = self.now();
        let mut due: Vec<(i64, String)> = self
            .sessions
            .values()
            .filter(|s| s.status == SessionStatus::Open && s.expires_at <= now)
            .map(|s| (s.expires_at, s.id.clone()))
            .collect();
        due.sort();
        for (_, id) in due {
            self.expire(&id, &Origin::default(), true);
        }
    }

    /// Moves an open session to expired and emits the event. The caller checks it is open.
    pub(crate) fn expire(&mut self, id: &str, origin: &Origin, deliver: bool) -> String {
        if let Some(session) = self.sessions.get_mut(id) {
            session.status = SessionStatus::Expired;
        }
        self.emit_session_event("checkout.session.expired", id, origin, deliver)
    }

    /// The patient's attempt to pay (control route and hosted page). Returns the session and
    /// the ids of the events emitted, in order.
    pub(crate) fn pay(&mut self, id: &str, outcome: Outcome, deliver: bool) -> Result<(Value, Vec<String>), ApiError> {
        let session = self.sessions.get(id).ok_or_else(|| ApiError::no_such("checkout.session", id, "id"))?;
        if session.status != SessionStatus::Open {
            return Err(ApiError::invalid_code(
                "session_not_open",
                format!(
                    "This Checkout Session is not open (status: {}); it can no longer be paid.",
                    session.status.as_str()
                ),
                None,
            ));
        }
        let origin = Origin::default();
        let mut events = Vec::new();
        match outcome {
            // The card is refused on the page: nothing changes, the patient may try again.
            Outcome::Declined => {}
            Outcome::Succeeded => {
                let pi = self.create_payment_intent(id, "card");
                let charged = self.succeed_payment_intent(&pi);
                self.complete_session(id, &pi, true);
                events.push(self.emit_session_event("checkout.session.completed", id, &origin, deliver));
                // Stripe promises no order between the two; the charge's comes second here.
                events.extend(charged.map(|charge| self.emit_charge_succeeded(&charge, &origin, deliver)));
            }
            Outcome::DelayedSucceeded => {
                let pi = self.create_payment_intent(id, "acss_debit");
                self.complete_session(id, &pi, false);
                events.push(self.emit_session_event("checkout.session.completed", id, &origin, deliver));
                let charged = self.succeed_payment_intent(&pi);
                events.extend(charged.map(|charge| self.emit_charge_succeeded(&charge, &origin, deliver)));
                if let Some(session) = self.sessions.get_mut(id) {
                    session.paid = true;
                }
                events.push(self.emit_session_event("checkout.session.async_payment_succeeded", id, &origin, deliver));
            }
            Outcome::DelayedFailed => {
                let pi = self.create_payment_intent(id, "acss_debit");
                self.complete_session(id, &pi, false);
                events.push(self.emit_session_event("checkout.session.completed", id, &origin, deliver));
                if let Some(intent) = self.payment_intents.get_mut(&pi) {
                    intent.status = "requires_payment_method";
                    intent.failure_message = Some("The customer's bank account could not be debited.".into());
                }
                events.push(self.emit_session_event("checkout.session.async_payment_failed", id, &origin, deliver));
            }
        }
        Ok((objects::session(&self.sessions[id], self.livemode), events))
    }

    /// A `processing` PaymentIntent for the session's total, as Checkout creates on confirmation.
    fn create_payment_intent(&mut self, session_id: &str, method_type: &'static str) -> String {
        let now = self.now();
        let session = &self.sessions[session_id];
        let id = random_id("pi_");
        let pm_prefix = if method_type == "card" { "pm_" } else { "pm_acss_" };
        let intent = PaymentIntent {
            client_secret: format!("{id}_secret_{}", random_id("")),
            id: id.clone(),
            account: session.account.clone(),
            created: now,
            amount: session.amount_total,
            currency: session.currency.clone(),
            status: "processing",
            method_type,
            payment_method: random_id(pm_prefix),
            metadata: session.payment_intent_data.metadata.clone(),
            description: session.payment_intent_data.description.clone(),
            application_fee_amount: session.payment_intent_data.application_fee_amount,
            latest_charge: None,
            failure_message: None,
            receipt_email: session.customer_email.clone(),
        };
        self.payment_intents.insert(id.clone(), intent);
        id
    }

    /// Marks the PaymentIntent succeeded and creates its successful Charge.
    /// The payment's charge succeeds; returns the charge's id.
    fn succeed_payment_intent(&mut self, pi_id: &str) -> Option<String> {
        let now = self.now();
        let intent = self.payment_intents.get_mut(pi_id)?;
        let charge = Charge {
            id: random_id("ch_"),
            account: intent.account.clone(),
            created: now,
            amount: intent.amount,
            currency: intent.currency.clone(),
            payment_intent: intent.id.clone(),
            payment_method: intent.payment_method.clone(),
            method_type: intent.method_type.to_owned(),
            refunds: Vec::new(),
            metadata: intent.metadata.clone(),
            description: intent.description.clone(),
            application_fee_amount: intent.application_fee_amount,
            billing_email: intent.receipt_email.clone(),
            balance_transaction: random_id("txn_"),
            dispute: None,
        };
        intent.status = "succeeded";
        intent.latest_charge = Some(charge.id.clone());
        let id = charge.id.clone();
        let fee = crate::fees::card_fee(charge.amount);
        self.record_balance(
            &charge.balance_transaction,
            &charge.account,
            charge.amount,
            fee,
            &charge.currency,
            "charge",
            "charge",
            &id,
        );
        self.charges.insert(charge.id.clone(), charge);
        Some(id)
    }

    /// `charge.succeeded` ("Occurs whenever a charge is successful", Stripe's
    /// event types), carrying the charge's `payment_method_details` (a card's
    /// brand and last 4, or the bank debit), which a Checkout Session does not.
    fn emit_charge_succeeded(&mut self, charge_id: &str, origin: &Origin, deliver: bool) -> String {
        let charge = &self.charges[charge_id];
        let (json, account) = (objects::charge(charge, 0, None, self.livemode), charge.account.clone());
        self.emit("charge.succeeded", json, account, origin, deliver)
    }

    fn complete_session(&mut self, id: &str, pi_id: &str, paid: bool) {
        if let Some(session) = self.sessions.get_mut(id) {
            session.status = SessionStatus::Complete;
            session.paid = paid;
            session.payment_intent = Some(pi_id.to_owned());
        }
    }

    /// What a charge has refunded: its refunds that are on their way back or
    /// there (pending, requires_action, succeeded); a failed or canceled one
    /// gives its amount back to the charge.
    pub(crate) fn amount_refunded(&self, charge: &Charge) -> i64 {
        charge
            .refunds
            .iter()
            .filter_map(|id| self.refunds.get(id))
            .filter(|r| r.status.counts())
            .map(|r| r.amount)
            .sum()
    }

    /// The charge JSON. "The Charge object no longer auto-expands refunds"
    /// (Stripe changelog, 2022-11-15): the `refunds` list is there only when
    /// asked for (`expand[]=refunds`), newest first; webhook payloads are never expanded.
    pub(crate) fn charge_json(&self, charge: &Charge, expand_refunds: bool) -> Value {
        let refunds = expand_refunds.then(|| {
            charge
                .refunds
                .iter()
                .rev()
                .filter_map(|id| self.refunds.get(id))
                .map(|r| objects::refund(r, self.livemode))
                .collect()
        });
        objects::charge(charge, self.amount_refunded(charge), refunds, self.livemode)
    }

    /// A refund's status changes (a test control, or a bank's answer), with
    /// Stripe's events: `refund.updated` always, `refund.failed` for a
    /// failure, and the charge's `amount_refunded` gives back what failed.
    pub(crate) fn set_refund_status(
        &mut self,
        id: &str,
        to: RefundStatus,
        failure_reason: Option<String>,
    ) -> Result<Value, ApiError> {
        let refund = self.refunds.get(id).ok_or_else(|| ApiError::no_such("refund", id, "id"))?;
        let allowed = match (refund.status, to) {
            (RefundStatus::Pending, RefundStatus::Succeeded | RefundStatus::Failed | RefundStatus::Canceled) => true,
            // "Cancels a refund with a status of requires_action" (API reference, Cancel a refund).
            (RefundStatus::RequiresAction, RefundStatus::Succeeded | RefundStatus::Failed | RefundStatus::Canceled) => {
                true
            }
            // A bank can return a refund it first took: it fails after succeeding.
            (RefundStatus::Succeeded, RefundStatus::Failed) => true,
            _ => false,
        };
        if !allowed {
            return Err(ApiError::invalid(
                format!("A refund in status {} cannot become {}.", refund.status.as_str(), to.as_str()),
                Some("status"),
            ));
        }
        let failing = matches!(to, RefundStatus::Failed | RefundStatus::Canceled);
        let (account, charge_id) = {
            let refund = self.refunds.get_mut(id).expect("checked above");
            refund.status = to;
            if failing {
                refund.failure_reason = Some(failure_reason.unwrap_or_else(|| {
                    if to == RefundStatus::Canceled { "merchant_request" } else { "declined" }.to_owned()
                }));
            }
            (refund.account.clone(), refund.charge.clone())
        };
        if failing {
            // The money comes back to the balance: its own transaction (the
            // refund object's `failure_balance_transaction`).
            let r = &self.refunds[id];
            let (txn, amount, currency) = (objects::refund_failure_transaction(&r.id), r.amount, r.currency.clone());
            self.record_balance(&txn, &account, amount, 0, &currency, "refund_failure", "refund_failure", id);
        }
        let json = objects::refund(&self.refunds[id], self.livemode);
        self.emit("refund.updated", json.clone(), account.clone(), &Origin::default(), true);
        if to == RefundStatus::Failed {
            self.emit("refund.failed", json.clone(), account.clone(), &Origin::default(), true);
        }
        let _ = charge_id;
        Ok(json)
    }

    /// Opens a dispute on a PaymentIntent's charge: `charge.dispute.created`.
    pub(crate) fn open_dispute(
        &mut self,
        payment_intent: &str,
        reason: &str,
        amount: Option<i64>,
    ) -> Result<Value, ApiError> {
        let intent = self
            .payment_intents
            .get(payment_intent)
            .ok_or_else(|| ApiError::no_such("payment_intent", payment_intent, "payment_intent"))?;
        let charge_id =
            intent.latest_charge.clone().filter(|_| intent.status == "succeeded").ok_or_else(|| {
                ApiError::invalid("Only a succeeded payment can be disputed.", Some("payment_intent"))
            })?;
        let charge = &self.charges[&charge_id];
        if charge.dispute.is_some() {
            return Err(ApiError::invalid("This charge is already disputed.", Some("payment_intent")));
        }
        let dispute = Dispute {
            id: random_id("dp_"),
            account: charge.account.clone(),
            created: self.now(),
            // A refunded payment can still be disputed, for its whole amount: the
            // bank does not know of the refund ("Respond to disputes": evidence of
            // the refund is the clinic's answer).
            amount: amount.unwrap_or(charge.amount).min(charge.amount),
            currency: charge.currency.clone(),
            charge: charge_id.clone(),
            payment_intent: payment_intent.to_owned(),
            reason: reason.to_owned(),
            status: "needs_response".into(),
            balance_transactions: Vec::new(),
        };
        let (id, account) = (dispute.id.clone(), dispute.account.clone());
        self.disputes.insert(id.clone(), dispute);
        if let Some(charge) = self.charges.get_mut(&charge_id) {
            charge.dispute = Some(id.clone());
        }
        let json = objects::dispute(&self.disputes[&id], self.livemode);
        self.emit("charge.dispute.created", json.clone(), account, &Origin::default(), true);
        Ok(json)
    }

    /// A dispute's next step, with Stripe's event: `update` (a new status),
    /// `funds_withdrawn`, `close` (won or lost). Funds are reinstated only
    /// when a dispute is won ("Occurs when funds are reinstated to your
    /// account after a dispute is closed"), so a won dispute whose funds were
    /// withdrawn reinstates them.
    pub(crate) fn dispute_step(&mut self, id: &str, step: &str, status: Option<&str>) -> Result<Value, ApiError> {
        let dispute = self.disputes.get(id).ok_or_else(|| ApiError::no_such("dispute", id, "id"))?;
        let closed = matches!(dispute.status.as_str(), "won" | "lost" | "warning_closed" | "prevented");
        if closed {
            return Err(ApiError::invalid(format!("This dispute is closed ({}).", dispute.status), None));
        }
        let withdrawn: i64 = dispute.balance_transactions.iter().map(|(_, a)| *a).sum();
        let mut events: Vec<&'static str> = Vec::new();
        let d = self.disputes.get_mut(id).expect("checked above");
        match (step, status) {
            (
                "update",
                Some(s @ ("needs_response" | "under_review" | "warning_needs_response" | "warning_under_review")),
            ) => {
                d.status = s.to_owned();
                events.push("charge.dispute.updated");
            }
            // Funds are withdrawn once, when the dispute opens (and reinstated if it is won).
            ("funds_withdrawn", _) if d.balance_transactions.is_empty() => {
                d.balance_transactions.push((random_id("txn_"), -d.amount));
                events.push("charge.dispute.funds_withdrawn");
            }
            ("close", Some(outcome @ ("won" | "lost"))) => {
                d.status = outcome.to_owned();
                events.push("charge.dispute.closed");
                if outcome == "won" && withdrawn < 0 {
                    d.balance_transactions.push((random_id("txn_"), -withdrawn));
                    events.push("charge.dispute.funds_reinstated");
                }
                if outcome == "lost" && withdrawn == 0 {
                    // A lost dispute takes the funds, if they were not taken yet.
                    d.balance_transactions.push((random_id("txn_"), -d.amount));
                    events.insert(0, "charge.dispute.funds_withdrawn");
                }
            }
            _ => {
                return Err(ApiError::invalid(
                    format!("Cannot {step} this dispute (status {}, {} withdrawn).", d.status, -withdrawn),
                    Some("step"),
                ))
            }
        }
        let account = d.account.clone();
        // Each movement of money a dispute makes, in the account's balance:
        // withdrawn with Stripe's dispute fee, reinstated when won.
        let recorded = self.balance.iter().filter(|b| b.source == id).count();
        let movements: Vec<(String, i64)> =
            self.disputes[id].balance_transactions.iter().skip(recorded).cloned().collect();
        let currency = self.disputes[id].currency.clone();
        for (txn, amount) in movements {
            let (fee, category) =
                if amount < 0 { (crate::fees::DISPUTE_FEE, "dispute") } else { (0, "dispute_reversal") };
            self.record_balance(&txn, &account, amount, fee, &currency, "adjustment", category, id);
        }
        let json = objects::dispute(&self.disputes[id], self.livemode);
        for kind in events {
            self.emit(kind, json.clone(), account.clone(), &Origin::default(), true);
        }
        Ok(json)
    }

    /// A movement of an account's balance; available at once (the emulator
    /// has no settlement delay: a payout may follow right away).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_balance(
        &mut self,
        id: &str,
        account: &Option<String>,
        amount: i64,
        fee: i64,
        currency: &str,
        kind: &'static str,
        reporting_category: &'static str,
        source: &str,
    ) {
        let now = self.now();
        self.balance.push(BalanceTransaction {
            id: id.to_owned(),
            account: account.clone(),
            created: now,
            available_on: now,
            amount,
            fee,
            currency: currency.to_owned(),
            kind,
            reporting_category,
            source: source.to_owned(),
            payout: None,
        });
    }

    /// A JSON line for `requests()`.
    pub(crate) fn log_request(
        &mut self,
        method: &str,
        path: &str,
        account: Option<&str>,
        key: Option<&str>,
        params: &Value,
    ) {
        self.requests.push(json!({
            "method": method,
            "path": path,
            "account": account,
            "idempotency_key": key,
            "params": params,
        }));
    }
}
