//! The emulator's in-memory state: records, events, idempotency cache, request log, and the
//! state transitions shared by the API, the control routes and the hosted page.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::error::ApiError;
use crate::objects;
use crate::util::{random_id, system_now};
use crate::webhooks::WebhookTarget;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SessionStatus {
    Open,
    Complete,
    Expired,
}

impl SessionStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Complete => "complete",
            Self::Expired => "expired",
        }
    }
}

pub(crate) struct LineItem {
    pub id: String,
    pub price_id: String,
    pub product_id: String,
    pub name: String,
    pub currency: String,
    pub unit_amount: i64,
    pub quantity: i64,
    pub created: i64,
}

impl LineItem {
    pub(crate) fn amount(&self) -> i64 {
        self.unit_amount.saturating_mul(self.quantity)
    }
}

/// What `payment_intent_data` asked the future PaymentIntent to carry.
#[derive(Default)]
pub(crate) struct PaymentIntentData {
    pub metadata: Map<String, Value>,
    pub description: Option<String>,
    pub application_fee_amount: Option<i64>,
}

pub(crate) struct Session {
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub expires_at: i64,
    pub status: SessionStatus,
    pub paid: bool,
    pub currency: String,
    pub amount_total: i64,
    pub line_items: Vec<LineItem>,
    pub url: String,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub client_reference_id: Option<String>,
    pub customer_email: Option<String>,
    pub metadata: Map<String, Value>,
    pub locale: Option<String>,
    pub payment_method_types: Vec<String>,
    pub payment_intent_data: PaymentIntentData,
    pub payment_intent: Option<String>,
}

pub(crate) struct PaymentIntent {
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub status: &'static str,
    pub method_type: &'static str,
    pub payment_method: String,
    pub client_secret: String,
    pub metadata: Map<String, Value>,
    pub description: Option<String>,
    pub application_fee_amount: Option<i64>,
    pub latest_charge: Option<String>,
    pub failure_message: Option<String>,
    pub receipt_email: Option<String>,
}

pub(crate) struct Charge {
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub payment_intent: String,
    pub payment_method: String,
    pub method_type: String,
    pub amount_refunded: i64,
    pub refunds: Vec<String>,
    pub metadata: Map<String, Value>,
    pub description: Option<String>,
    pub application_fee_amount: Option<i64>,
    pub billing_email: Option<String>,
    pub balance_transaction: String,
}

pub(crate) struct Refund {
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub charge: String,
    pub payment_intent: String,
    pub payment_method: String,
    pub method_type: String,
    pub metadata: Map<String, Value>,
    pub reason: Option<String>,
    pub balance_transaction: String,
}

/// Which API request (if any) caused an event: Stripe's `event.request`.
#[derive(Clone, Default)]
pub(crate) struct Origin {
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
}

pub(crate) struct Event {
    pub id: String,
    pub account: Option<String>,
    pub created: i64,
    pub kind: String,
    /// Snapshot of the object at emission time, as Stripe does.
    pub object: Value,
    pub origin: Origin,
    pub pending_webhooks: i64,
}

/// The first response to an idempotent request, replayed for identical retries.
pub(crate) struct IdempotentResponse {
    pub method: String,
    pub path: String,
    pub params: Value,
    pub status: u16,
    pub body: Value,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Outcome {
    Succeeded,
    Declined,
    DelayedSucceeded,
    DelayedFailed,
}

impl Outcome {
    pub(crate) fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "succeeded" => Self::Succeeded,
            "declined" => Self::Declined,
            "delayed_succeeded" => Self::DelayedSucceeded,
            "delayed_failed" => Self::DelayedFailed,
            _ => return None,
        })
    }
}

pub(crate) struct State {
    pub sessions: HashMap<String, Session>,
    /// Creation order, for newest-first listings.
    pub session_order: Vec<String>,
    pub payment_intents: HashMap<String, PaymentIntent>,
    pub charges: HashMap<String, Charge>,
    pub refunds: HashMap<String, Refund>,
    /// Emission order.
    pub events: Vec<Event>,
    pub idempotency: HashMap<(Option<String>, String), IdempotentResponse>,
    pub requests: Vec<Value>,
    /// Seconds added to the wall clock (`POST /test/clock/advance`), to reach expiry without waiting.
    clock_offset: i64,
    webhooks: Arc<WebhookTarget>,
    outbox: UnboundedSender<String>,
}

impl State {
    pub(crate) fn new(webhooks: Arc<WebhookTarget>, outbox: UnboundedSender<String>) -> Self {
        Self {
            sessions: HashMap::new(),
            session_order: Vec::new(),
            payment_intents: HashMap::new(),
            charges: HashMap::new(),
            refunds: HashMap::new(),
            events: Vec::new(),
            idempotency: HashMap::new(),
            requests: Vec::new(),
            clock_offset: 0,
            webhooks,
            outbox,
        }
    }

    /// The emulated "now" in unix seconds.
    pub(crate) fn now(&self) -> i64 {
        system_now() + self.clock_offset
    }

    pub(crate) fn advance_clock(&mut self, seconds: i64) -> i64 {
        self.clock_offset += seconds;
        self.now()
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
        let deliver = deliver && self.webhooks.url().is_some();
        let event = Event {
            id: random_id("evt_"),
            account,
            created: self.now(),
            kind: kind.to_owned(),
            object,
            origin: origin.clone(),
            pending_webhooks: i64::from(deliver),
        };
        if deliver {
            // The receiver lives as long as the delivery task; a send error only means shutdown.
            let _ = self.outbox.send(objects::event(&event).to_string());
        }
        let id = event.id.clone();
        self.events.push(event);
        id
    }

    fn emit_session_event(&mut self, kind: &str, session_id: &str, origin: &Origin, deliver: bool) -> String {
        let session = &self.sessions[session_id];
        let (object, account) = (objects::session(session), session.account.clone());
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
                self.succeed_payment_intent(&pi);
                self.complete_session(id, &pi, true);
                events.push(self.emit_session_event("checkout.session.completed", id, &origin, deliver));
            }
            Outcome::DelayedSucceeded => {
                let pi = self.create_payment_intent(id, "acss_debit");
                self.complete_session(id, &pi, false);
                events.push(self.emit_session_event("checkout.session.completed", id, &origin, deliver));
                self.succeed_payment_intent(&pi);
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
        Ok((objects::session(&self.sessions[id]), events))
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
    fn succeed_payment_intent(&mut self, pi_id: &str) {
        let now = self.now();
        let Some(intent) = self.payment_intents.get_mut(pi_id) else { return };
        let charge = Charge {
            id: random_id("ch_"),
            account: intent.account.clone(),
            created: now,
            amount: intent.amount,
            currency: intent.currency.clone(),
            payment_intent: intent.id.clone(),
            payment_method: intent.payment_method.clone(),
            method_type: intent.method_type.to_owned(),
            amount_refunded: 0,
            refunds: Vec::new(),
            metadata: intent.metadata.clone(),
            description: intent.description.clone(),
            application_fee_amount: intent.application_fee_amount,
            billing_email: intent.receipt_email.clone(),
            balance_transaction: random_id("txn_"),
        };
        intent.status = "succeeded";
        intent.latest_charge = Some(charge.id.clone());
        self.charges.insert(charge.id.clone(), charge);
    }

    fn complete_session(&mut self, id: &str, pi_id: &str, paid: bool) {
        if let Some(session) = self.sessions.get_mut(id) {
            session.status = SessionStatus::Complete;
            session.paid = paid;
            session.payment_intent = Some(pi_id.to_owned());
        }
    }

    /// The charge JSON, with its refunds inlined (newest first, as Stripe lists them).
    pub(crate) fn charge_json(&self, charge: &Charge) -> Value {
        let refunds = charge.refunds.iter().rev().filter_map(|id| self.refunds.get(id)).map(objects::refund).collect();
        objects::charge(charge, refunds)
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
