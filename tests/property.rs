//! A property test across the whole lifecycle: random interleavings of
//! patient clicks and payments (card, delayed, declined), staff cancels and
//! refunds, dashboard refunds, refunds that fail at the bank, disputes and
//! their outcomes, sessions that expire, reconcile runs and a webhook
//! endpoint that is sometimes down, with Stripe's events held, shuffled and
//! duplicated by the emulator (at least once, in no order, retried with
//! backoff), outages of the endpoint up to four days (past Stripe's retries:
//! the catch-up recovers what it gave up on), Stripe answering 500s and,
//! on DynamoDB, the table throttling visitpay's requests for a while (the
//! test's own reads go around it).
//! After each step, at most one of visitpay's sessions per action is open;
//! after everything settles:
//!
//! - the money Stripe holds for an action is what the action shows it keeps
//!   (paid, less refunded, less what lost disputes took);
//! - no invoice is paid twice, or held by two live actions;
//! - every payment that is not a live action's own is recorded and flagged
//!   until Stripe has refunded all of it;
//! - no session of an ended action can still be paid;
//! - every payment an action keeps as its own knows how it was paid.
//!
//! Bounded and seeded: `VISITPAY_PROPERTY_SEED` replays a run (the seed is
//! printed), `VISITPAY_PROPERTY_STEPS` sets its length (default 120).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::support::*;
use serde_json::{json, Value};
use visitpay_app::ports::{EventQueue, PaymentsError, QueueMessage, StoreError};
use visitpay_app::reconcile::{self, ReconcileConfig};
use visitpay_app::{actions, checkout, invoices, AppError};
use visitpay_devkit::embedded_queue::EmbeddedQueue;
use visitpay_domain::{Action, ActionId, ActionStatus, InvoiceStatus};

/// splitmix64: small, fast, and the same sequence for the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

const CLINICS: [&str; 2] = ["pa", "pb"];

struct World {
    /// What visitpay runs with (on DynamoDB, through the throttling proxy).
    deps: TestDeps,
    /// The same store seen directly: the test's own reads and set-up, which
    /// throttling must not disturb.
    observer: TestDeps,
    /// DynamoDB's throttling, switched on for a number of requests at a time.
    throttle: Option<FaultProxy>,
    stripe: StripeFixture,
    queue: Arc<EmbeddedQueue>,
    endpoint_up: Arc<AtomicBool>,
    rng: Rng,
    seed: u64,
    /// (clinic, action, patient token), in the order assigned.
    actions: Vec<(String, ActionId, String)>,
    next_invoice: u32,
    /// Sessions visitpay handed out, by action.
    ours: BTreeMap<String, Vec<visitpay_domain::SessionId>>,
    log: Vec<String>,
}

impl World {
    fn fail(&self, what: impl std::fmt::Display) -> ! {
        let steps = self.log.join("\n  ");
        panic!(
            "seed {}: {what}\nsteps:\n  {steps}\nreplay: VISITPAY_PROPERTY_SEED={} scripts/test",
            self.seed, self.seed
        )
    }

    /// A use case's refusal is part of the game; anything else is a defect.
    fn expected<T>(&self, step: &str, result: Result<T, AppError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(AppError::Domain(_) | AppError::NotFound(_) | AppError::Contended) => None,
            Err(AppError::Payments(PaymentsError::Rejected { .. } | PaymentsError::Unavailable(_))) => None,
            // DynamoDB refused the request (after the SDK's own retries): the
            // caller is told to try again, nothing was written.
            Err(AppError::Store(StoreError::Throttled)) if self.throttle.is_some() => None,
            Err(e) => self.fail(format!("{step}: unexpected {e:?}")),
        }
    }

    async fn action(&self, clinic: &str, id: &ActionId) -> StoredAction {
        action_of(&self.observer, clinic, id).await
    }

    async fn all_actions(&self) -> Vec<StoredAction> {
        let mut all = Vec::new();
        for (c, id, _) in &self.actions {
            all.push(self.action(c, id).await);
        }
        all
    }

    async fn pick_action(&mut self, want: impl Fn(&Action) -> bool) -> Option<StoredAction> {
        let all = self.all_actions().await;
        let fitting: Vec<StoredAction> = all.into_iter().filter(|a| want(a)).collect();
        self.rng.pick(&fitting).cloned()
    }

    fn token_of(&self, id: &ActionId) -> String {
        self.actions.iter().find(|(_, a, _)| a == id).map(|(_, _, t)| t.clone()).expect("known action")
    }

    async fn assign(&mut self) {
        let c = *self.rng.pick(&CLINICS).unwrap();
        // New invoices, or ones a full refund made owed again.
        let owed: Vec<String> = invoice_states(&self.observer, c, "p1")
            .await
            .into_iter()
            .filter(|(_, s)| matches!(s, InvoiceStatus::Unprocessed | InvoiceStatus::Selected))
            .map(|(id, _)| id)
            .collect();
        let mut chosen: Vec<String> = Vec::new();
        if let (true, Some(id)) = (self.rng.chance(40), self.rng.pick(&owed)) {
            chosen.push(id.clone());
        }
        for _ in 0..=self.rng.below(2) {
            self.next_invoice += 1;
            let id = format!("inv{}", self.next_invoice);
            import(&self.observer, c, "p1", &id, 50 + 50 * self.rng.below(80) as i64, "cad").await;
            chosen.push(id);
        }
        let list: Vec<&str> = chosen.iter().map(String::as_str).collect();
        let selected = invoices::select(&self.deps, &clinic(c), &patient("p1"), &ids(&list)).await;
        if self.expected("select", selected).is_none() {
            return;
        }
        let request = actions::AssignRequest {
            patient_id: patient("p1"),
            invoice_ids: ids(&list),
            locale: visitpay_domain::Locale::FrCa,
            notify: Default::default(),
        };
        let assigned =
            actions::assign(&self.deps, &staff(c), &clinic(c), &visit("v1"), request, None, first_answer).await;
        if let Some(actions::Assigned::Created { action, patient_url }) = self.expected("assign", assigned) {
            let token = patient_url.rsplit('/').next().unwrap().to_owned();
            self.log.push(format!("assign {} {list:?} = {}", action.action_id(), action.total().amount));
            self.actions.push((c.to_owned(), action.action_id().clone(), token));
        }
    }

    async fn open(&mut self) {
        let Some(a) = self.pick_action(|a| a.status().is_live()).await else { return };
        let token = self.token_of(a.action_id());
        let opened = checkout::open(&self.deps, &token).await;
        self.log.push(format!(
            "open {} -> {:?}",
            a.action_id(),
            opened.as_ref().map(|l| l.session_id.clone()).map_err(|e| e.to_string())
        ));
        if let Some(link) = self.expected("open", opened) {
            let ours = self.ours.entry(a.action_id().to_string()).or_default();
            if !ours.contains(&link.session_id) {
                ours.push(link.session_id);
            }
        }
    }

    async fn pay(&mut self) {
        let open: Vec<Value> = self.sessions().await.into_iter().filter(|s| s["status"] == "open").collect();
        let Some(session) = self.rng.pick(&open).cloned() else { return };
        let outcome = *self
            .rng
            .pick(&["succeeded", "succeeded", "succeeded", "delayed_succeeded", "delayed_failed", "declined"])
            .unwrap();
        let id = session["id"].as_str().unwrap();
        // Stripe sends its events (held, shuffled and doubled by the delivery mode).
        let body = json!({"outcome": outcome, "send_webhooks": true});
        let status = self.control_status(&format!("/test/checkout_sessions/{id}/pay"), body).await;
        self.log.push(format!("pay {id} {outcome} -> {status}"));
    }

    /// A session of a live action that visitpay never recorded (a click that
    /// crashed), or one for another amount carrying its metadata.
    async fn stray(&mut self) {
        let Some(a) = self.pick_action(|a| a.status().is_live()).await else { return };
        let amount = if self.rng.chance(50) { a.total().amount } else { 50 + 50 * self.rng.below(10) as i64 };
        let made = try_session_at_stripe(&self.stripe, ACCOUNT, &a, amount).await;
        self.log.push(format!("stray session {made:?} for {} ({amount})", a.action_id()));
    }

    async fn cancel(&mut self) {
        let Some(a) = self.pick_action(|a| a.status().is_live()).await else { return };
        let c = a.clinic_id().to_string();
        let done = actions::cancel(&self.deps, &staff(&c), &clinic(&c), a.action_id()).await;
        self.log.push(format!(
            "cancel {} -> {:?}",
            a.action_id(),
            done.as_ref().map(|a| a.status()).map_err(|e| e.to_string())
        ));
        self.expected("cancel", done);
    }

    async fn staff_refund(&mut self) {
        let Some(a) = self.pick_action(|a| a.refundable().amount > 0).await else { return };
        let c = a.clinic_id().to_string();
        let amount =
            if self.rng.chance(40) { None } else { Some(1 + self.rng.below(a.refundable().amount as usize) as i64) };
        let done = actions::refund(&self.deps, &staff(&c), &clinic(&c), a.action_id(), amount).await;
        self.log.push(format!(
            "refund {} {amount:?} -> {:?}",
            a.action_id(),
            done.as_ref().map(|a| a.status()).map_err(|e| e.to_string())
        ));
        self.expected("refund", done);
    }

    async fn dashboard_refund(&mut self) {
        let intents = self.paid_intents().await;
        let Some((pi, left)) = self.rng.pick(&intents).cloned() else { return };
        if left <= 0 {
            return;
        }
        let amount = 1 + self.rng.below(left as usize) as i64;
        let form = format!("payment_intent={pi}&amount={amount}");
        let (status, _) = self.stripe_post("/v1/refunds", &form).await;
        self.log.push(format!("dashboard refund {pi} {amount} -> {status}"));
    }

    async fn bank_answers_a_refund(&mut self) {
        let (_, list) = self.stripe_get("/v1/refunds?limit=100").await;
        let pending: Vec<String> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| matches!(r["status"].as_str(), Some("pending" | "requires_action" | "succeeded")))
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        let Some(id) = self.rng.pick(&pending).cloned() else { return };
        let status = *self.rng.pick(&["succeeded", "failed", "failed", "canceled"]).unwrap();
        let res = self.control_status(&format!("/test/refunds/{id}"), json!({"status": status})).await;
        self.log.push(format!("bank: refund {id} {status} -> {res}"));
    }

    async fn refunds_start(&mut self) {
        let start = *self.rng.pick(&["succeeded", "pending", "pending"]).unwrap();
        self.stripe.control("/test/refunds/behaviour", json!({"start": start})).await;
        self.log.push(format!("refunds now start {start}"));
    }

    async fn dispute(&mut self) {
        let intents = self.paid_intents().await;
        let Some((pi, _)) = self.rng.pick(&intents).cloned() else { return };
        let res = self.control_status(&format!("/test/payment_intents/{pi}/dispute"), json!({})).await;
        self.log.push(format!("dispute {pi} -> {res}"));
    }

    async fn dispute_step(&mut self) {
        let intents = self.paid_intents().await;
        let mut open = Vec::new();
        for (pi, _) in intents {
            if let Some(d) = self.dispute_of(&pi).await {
                if !matches!(d["status"].as_str(), Some("won" | "lost" | "warning_closed" | "prevented")) {
                    open.push(d["id"].as_str().unwrap().to_owned());
                }
            }
        }
        let Some(id) = self.rng.pick(&open).cloned() else { return };
        let (step, body) = match self.rng.below(4) {
            0 => ("funds_withdrawn", json!({})),
            1 => ("update", json!({"status": "under_review"})),
            2 => ("close", json!({"status": "won"})),
            _ => ("close", json!({"status": "lost"})),
        };
        let res = self.control_status(&format!("/test/disputes/{id}/{step}"), body.clone()).await;
        self.log.push(format!("dispute {id} {step} {body} -> {res}"));
    }

    async fn advance(&mut self) {
        let secs = *self.rng.pick(&[30, 120, 600, 1_500, 2_400, 4_000]).unwrap();
        self.stripe.emulator.advance_clock(secs);
        self.log.push(format!("clock +{secs}s"));
    }

    async fn reconcile(&mut self) {
        let config = ReconcileConfig { min_age: time::Duration::seconds(60), batch: 50 };
        let report = reconcile::run(&self.deps, config).await;
        self.log.push(format!("reconcile -> {report:?}"));
        match report {
            // Throttled: the next run (a minute later in AWS) does it.
            Err(AppError::Store(StoreError::Throttled)) if self.throttle.is_some() => {}
            Err(e) => self.fail(format!("reconcile failed: {e}")),
            Ok(_) => {}
        }
    }

    /// Stripe delivers what it holds (shuffled, some twice); failed
    /// deliveries are retried on its backoff.
    async fn deliver(&mut self) {
        let pass = self.stripe.emulator.flush_webhooks().await;
        self.log.push(format!("deliver -> {} delivered, {} failed", pass.delivered, pass.failed));
    }

    /// The consumer applies what is queued; a retryable failure goes back on
    /// the queue, a permanent one is a defect (a person would have to look).
    async fn consume(&mut self) {
        for _ in 0..5 {
            let bodies = self.queue.take_all();
            if bodies.is_empty() {
                return;
            }
            for body in bodies {
                let about: String = serde_json::from_str::<Value>(&body)
                    .map(|v| {
                        format!(
                            "{} {}",
                            v["type"].as_str().unwrap_or("signal"),
                            v["data"]["object"]["id"].as_str().unwrap_or("")
                        )
                    })
                    .unwrap_or_default();
                match visitpay_edge::lambda::consumer::apply_message(&self.deps, Some(&body)).await {
                    Ok(outcome) => self.log.push(format!("  consumer: {about} -> {outcome:?}")),
                    Err(visitpay_edge::lambda::consumer::MessageError::Apply(e)) if e.is_retryable() => {
                        self.log.push(format!("consumer retries: {e}"));
                        let message = QueueMessage::from_body(&body).unwrap();
                        self.queue.enqueue(&message).await.unwrap();
                    }
                    Err(e) => self.fail(format!("the consumer refused a message for good: {e}\n{body}")),
                }
            }
        }
    }

    /// A broken release: our endpoint down for six hours to four days while
    /// Stripe retries on its backoff and, past three days, gives up. What it
    /// gave up on comes back through the catch-up (reconcile's next runs).
    async fn long_outage(&mut self) {
        // Half of them past Stripe's three days of retries.
        let hours =
            if self.rng.below(2) == 0 { 74 + 2 * self.rng.below(12) as i64 } else { 6 + 2 * self.rng.below(32) as i64 };
        self.endpoint_up.store(false, Ordering::SeqCst);
        self.log.push(format!("webhook endpoint down for {hours} h"));
        for span in 0..hours / 2 {
            self.stripe.emulator.advance_clock(2 * 3600);
            // Stripe's side goes on meanwhile: patients pay, the clinic
            // refunds in its dashboard, banks answer, disputes move.
            if span % 6 == 0 {
                match self.rng.below(5) {
                    0 => self.pay().await,
                    1 => self.dashboard_refund().await,
                    2 => self.bank_answers_a_refund().await,
                    3 => self.dispute().await,
                    _ => self.dispute_step().await,
                }
            }
            self.deliver().await;
        }
        self.endpoint_up.store(true, Ordering::SeqCst);
        self.log.push("webhook endpoint up".into());
    }

    /// Stripe answers 500 to the next calls of one kind (an incident at
    /// Stripe, hours long as visitpay sees it): clicks, refunds, reconcile
    /// and the catch-up meet them.
    async fn stripe_errors(&mut self) {
        // Paths the test's own reads (session lists, intents, charges) do not
        // take, so its invariants still see Stripe as it is.
        let (method, path) =
            *self.rng.pick(&[("POST", "/v1/"), ("GET", "/v1/checkout/sessions/"), ("GET", "/v1/events")]).unwrap();
        let times = *self.rng.pick(&[5, 20, 60]).unwrap();
        let body = json!({"method": method, "path": path, "times": times});
        let res = self.control_status("/test/faults", body).await;
        self.log.push(format!("stripe answers 500 to the next {times} {method} {path}… -> {res}"));
    }

    /// DynamoDB throttles the next requests visitpay makes, whichever they
    /// are (a hot partition, a burst over the table's limits): the consumer
    /// and reconcile meet them at once, and clicks and staff actions what
    /// is left, in the middle of what they do. The SDK retries each request
    /// up to three times first.
    async fn dynamodb_throttles(&mut self) {
        let Some(proxy) = &self.throttle else { return };
        let requests = *self.rng.pick(&[5, 15, 40]).unwrap();
        proxy.allow_more(requests);
        self.log.push(format!("dynamodb throttles the next {requests} requests"));
        self.consume().await;
        self.reconcile().await;
    }

    fn toggle_endpoint(&mut self) {
        let up = !self.endpoint_up.load(Ordering::SeqCst);
        self.endpoint_up.store(up, Ordering::SeqCst);
        self.log.push(format!("webhook endpoint {}", if up { "up" } else { "down" }));
    }

    async fn step(&mut self) {
        match self.rng.below(100) {
            0..=11 => self.assign().await,
            12..=25 => self.open().await,
            26..=39 => self.pay().await,
            40..=42 => self.stray().await,
            43..=48 => self.cancel().await,
            49..=55 => self.staff_refund().await,
            56..=59 => self.dashboard_refund().await,
            60..=64 => self.bank_answers_a_refund().await,
            65..=66 => self.refunds_start().await,
            67..=69 => self.dispute().await,
            70..=73 => self.dispute_step().await,
            74..=79 => self.advance().await,
            80..=83 => self.reconcile().await,
            84..=91 => self.deliver().await,
            92..=94 => self.consume().await,
            95..=96 => self.dynamodb_throttles().await,
            97 => self.toggle_endpoint(),
            98 => self.long_outage().await,
            _ => self.stripe_errors().await,
        }
        self.at_most_one_of_ours_open().await;
    }

    /// Stripe settles everything it can: every event delivered, every
    /// finding applied, every lifetime over.
    async fn settle(&mut self) {
        self.endpoint_up.store(true, Ordering::SeqCst);
        let cleared = reqwest::Client::new().delete(format!("{}/test/faults", self.stripe.base)).send().await.unwrap();
        self.log.push(format!("settle (Stripe's errors over: {})", cleared.status()));
        if let Some(proxy) = &self.throttle {
            proxy.stop();
        }
        for round in 0..8 {
            self.deliver().await;
            self.consume().await;
            self.stripe.emulator.advance_clock(if round < 6 { 600 } else { 4 * 3600 });
            self.reconcile().await;
            self.consume().await;
        }
        // Stripe's last retries come within three days.
        for _ in 0..12 {
            self.deliver().await;
            self.consume().await;
            if self.stripe.emulator.pending_webhooks() == 0 && self.queue.depth() == 0 {
                break;
            }
            self.stripe.emulator.advance_clock(6 * 3600);
        }
        if self.stripe.emulator.pending_webhooks() > 0 {
            self.fail("events still pending after settling");
        }
        // What Stripe gave up on (an outage over three days) is the catch-up's
        // to feed: every account's checkpoint has passed it by now.
        let given_up = self.stripe.emulator.undelivered();
        self.log.push(format!("given up by Stripe: {}", given_up.len()));
        self.stripe.emulator.advance_clock(3600);
        self.reconcile().await;
        self.consume().await;
        let now = self.deps.clock.now();
        for c in self.observer.store.catch_up_checkpoints().await.unwrap() {
            if now - c.value.through > visitpay_app::catch_up::SETTLE + time::Duration::minutes(1) {
                self.fail(format!("the catch-up of {} is behind: {:?}", c.value.account.as_str(), c.value));
            }
        }
    }

    async fn stripe_get(&self, path: &str) -> (u16, Value) {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", self.stripe.base))
            .bearer_auth(STRIPE_KEY)
            .header("Stripe-Account", ACCOUNT)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or_default())
    }

    async fn stripe_post(&self, path: &str, form: &str) -> (u16, Value) {
        let res = reqwest::Client::new()
            .post(format!("{}{path}", self.stripe.base))
            .bearer_auth(STRIPE_KEY)
            .header("Stripe-Account", ACCOUNT)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or_default())
    }

    /// A test control whose refusal (a dispute already closed) is part of the game.
    async fn control_status(&self, path: &str, body: Value) -> u16 {
        let res = reqwest::Client::new().post(format!("{}{path}", self.stripe.base)).json(&body).send().await.unwrap();
        res.status().as_u16()
    }

    /// Every Checkout Session on the account, as Stripe lists them.
    async fn sessions(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = String::new();
        loop {
            let (_, page) = self.stripe_get(&format!("/v1/checkout/sessions?limit=100{after}")).await;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            if let Some(last) = data.last() {
                after = format!("&starting_after={}", last["id"].as_str().unwrap());
            }
            all.extend(data);
            if page["has_more"] != true {
                return all;
            }
        }
    }

    /// PaymentIntents whose money Stripe took, with what is left to refund.
    async fn paid_intents(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for s in self.sessions().await {
            if s["payment_status"] == "paid" {
                if let Some(pi) = s["payment_intent"].as_str() {
                    let charge = self.charge_of(pi).await;
                    out.push((
                        pi.to_owned(),
                        charge["amount"].as_i64().unwrap() - charge["amount_refunded"].as_i64().unwrap(),
                    ));
                }
            }
        }
        out
    }

    async fn charge_of(&self, pi: &str) -> Value {
        let (_, intent) = self.stripe_get(&format!("/v1/payment_intents/{pi}")).await;
        let charge = intent["latest_charge"].as_str().unwrap_or_else(|| self.fail(format!("{pi} has no charge")));
        self.stripe_get(&format!("/v1/charges/{charge}")).await.1
    }

    async fn dispute_of(&self, pi: &str) -> Option<Value> {
        let (_, list) = self.stripe_get(&format!("/v1/disputes?payment_intent={pi}")).await;
        list["data"].as_array().and_then(|d| d.first()).cloned()
    }

    /// What Stripe holds of a payment: charged, less refunds that moved
    /// money, plus the dispute's balance movements (a withdrawal is negative).
    async fn held_at_stripe(&self, pi: &str) -> i64 {
        let charge = self.charge_of(pi).await;
        let disputed: i64 = match self.dispute_of(pi).await {
            Some(d) => {
                d["balance_transactions"].as_array().unwrap().iter().map(|t| t["amount"].as_i64().unwrap()).sum()
            }
            None => 0,
        };
        charge["amount"].as_i64().unwrap() - charge["amount_refunded"].as_i64().unwrap() + disputed
    }

    async fn at_most_one_of_ours_open(&self) {
        let open: BTreeSet<String> = self
            .sessions()
            .await
            .into_iter()
            .filter(|s| s["status"] == "open")
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        for (action, sessions) in &self.ours {
            let payable: Vec<&visitpay_domain::SessionId> =
                sessions.iter().filter(|s| open.iter().any(|o| *s == o.as_str())).collect();
            if payable.len() > 1 {
                self.fail(format!("action {action} has {} payable sessions at once: {payable:?}", payable.len()));
            }
        }
    }

    async fn check_invariants(&self) {
        let all = self.all_actions().await;
        let by_id: BTreeMap<String, &Action> = all.iter().map(|a| (a.action_id().to_string(), &a.value)).collect();
        let paid_family = |a: &Action| {
            matches!(a.status(), ActionStatus::Paid | ActionStatus::PartiallyRefunded | ActionStatus::Refunded)
        };

        // Money: what Stripe holds is what each action shows.
        for a in &all {
            if let Some(pi) = a.payment_intent_id() {
                // The receipt says how the patient paid: Stripe's answer was
                // waited for through throttling and retries alike.
                if a.payment_method().is_none() {
                    self.fail(format!("{}: paid by {pi}, its payment method never learned", a.action_id()));
                }
                let held = self.held_at_stripe(pi.as_str()).await;
                if held != a.kept().amount {
                    self.fail(format!(
                        "{}: Stripe holds {held} of its payment, the action shows {} kept ({a:?})",
                        a.action_id(),
                        a.kept().amount
                    ));
                }
            }
            for late in a.late().payments() {
                let Some(pi) = &late.payment_intent else { continue };
                let held = self.held_at_stripe(pi.as_str()).await;
                if (held > 0) == late.refunded {
                    self.fail(format!(
                        "{}: late payment {pi}: Stripe holds {held}, flagged {}",
                        a.action_id(),
                        !late.refunded
                    ));
                }
            }
        }
        // Every payment Stripe took for an action is its own or flagged.
        for s in self.sessions().await {
            let Some(action) = s["metadata"]["visitpay_action_id"].as_str() else { continue };
            let a = by_id.get(action).unwrap_or_else(|| self.fail(format!("a session for an unknown action {action}")));
            if s["payment_status"] == "paid" {
                let pi = s["payment_intent"].as_str().unwrap();
                let own = a.payment_intent_id().is_some_and(|p| p == pi) && paid_family(a);
                let flagged = a.late().payments().iter().any(|p| p.payment_intent.as_ref().is_some_and(|p| p == pi));
                if !own && !flagged {
                    self.fail(format!("{action}: payment {pi} is neither its own nor flagged ({a:?})"));
                }
            }
            if s["status"] == "open" && !matches!(a.status(), ActionStatus::Assigned | ActionStatus::CheckoutOpen) {
                self.fail(format!("{action} is {} but session {} can still be paid", a.status(), s["id"]));
            }
        }
        // Invoices: held by at most one live action, paid by at most one.
        for c in CLINICS {
            let list = invoices::list(&self.observer, &clinic(c), &patient("p1"), None).await.unwrap();
            for invoice in list {
                let id = &invoice.invoice_id;
                let listing: Vec<&Action> =
                    all.iter().map(|a| &a.value).filter(|a| a.invoice_ids().any(|i| i == id)).collect();
                let live: Vec<_> = listing.iter().filter(|a| a.status().is_live()).collect();
                if live.len() > 1 {
                    self.fail(format!("invoice {id} is held by {} live actions", live.len()));
                }
                let keeping: Vec<_> = listing
                    .iter()
                    .filter(|a| {
                        paid_family(a)
                            && a.refunded().amount < a.total().amount
                            && !a.late().collected_elsewhere().contains(id)
                    })
                    .collect();
                if keeping.len() > 1 {
                    let which: Vec<String> = keeping.iter().map(|a| a.action_id().to_string()).collect();
                    self.fail(format!("invoice {id} is paid by {which:?}"));
                }
                match invoice.status() {
                    InvoiceStatus::Pending => {
                        let holder = invoice.action_id().and_then(|h| by_id.get(h.as_str()));
                        if !holder.is_some_and(|h| h.status().is_live()) {
                            self.fail(format!(
                                "invoice {id} is pending for {:?}, not a live action",
                                invoice.action_id()
                            ));
                        }
                    }
                    InvoiceStatus::Paid => {
                        let holder = invoice.action_id().and_then(|h| by_id.get(h.as_str()));
                        if !holder.is_some_and(|h| paid_family(h) && h.status() != ActionStatus::Refunded) {
                            self.fail(format!(
                                "invoice {id} is paid by {:?}, which does not keep the money",
                                invoice.action_id()
                            ));
                        }
                    }
                    InvoiceStatus::Unprocessed | InvoiceStatus::Selected => {
                        if let Some(a) = keeping.first() {
                            self.fail(format!("invoice {id} is owed although {} keeps its payment", a.action_id()));
                        }
                    }
                }
            }
        }
    }
}

fn seed() -> u64 {
    std::env::var("VISITPAY_PROPERTY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    })
}

fn steps() -> usize {
    std::env::var("VISITPAY_PROPERTY_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(120)
}

/// On the embedded store nothing throttles; on DynamoDB visitpay's client
/// goes through a proxy that throttles when the test says, and the test
/// reads the table directly.
async fn the_lifecycle_keeps_its_invariants_under_any_interleaving(
    store: DynStore,
    throttled: Option<(DynStore, FaultProxy)>,
) {
    let seed = seed();
    println!("property seed: {seed} (replay with VISITPAY_PROPERTY_SEED={seed}), {} steps", steps());
    let stripe = stripe_emulator(None).await;
    let queue = Arc::new(EmbeddedQueue::new(5, std::time::Duration::from_millis(10)));
    let (deps, _clock) = deps_for_payments(store, &stripe, Some(queue.clone()));
    let (observer, throttle) = match throttled {
        Some((direct, proxy)) => (TestDeps { store: direct, ..deps.clone() }, Some(proxy)),
        None => (deps.clone(), None),
    };
    for c in CLINICS {
        let mut s = settings_input(true, "cad");
        (s.checkout_ttl_minutes, s.action_ttl_hours) = (30, 2);
        visitpay_app::settings::put(&observer, &support(), clinic(c), s).await.unwrap();
    }
    let endpoint_up = Arc::new(AtomicBool::new(true));
    let url = webhook_endpoint(deps.clone(), endpoint_up.clone()).await;
    stripe.emulator.set_webhook_url(Some(url));
    stripe.emulator.set_delivery_mode(stripe_emulator::DeliveryMode {
        shuffle: true,
        duplicate_every: 3,
        delay_secs: 0,
        hold: true,
        seed,
        endpoint_down: false,
    });
    let mut world = World {
        deps,
        observer,
        throttle,
        stripe,
        queue,
        endpoint_up,
        rng: Rng(seed),
        seed,
        actions: Vec::new(),
        next_invoice: 0,
        ours: BTreeMap::new(),
        log: Vec::new(),
    };
    for _ in 0..steps() {
        world.step().await;
    }
    world.settle().await;
    world.check_invariants().await;
    let all = world.all_actions().await;
    let count = |s: ActionStatus| all.iter().filter(|a| a.status() == s).count();
    println!(
        "{} actions: {} paid, {} partially refunded, {} refunded, {} cancelled, {} expired, {} failed; {} flagged for refund, {} disputed",
        all.len(),
        count(ActionStatus::Paid),
        count(ActionStatus::PartiallyRefunded),
        count(ActionStatus::Refunded),
        count(ActionStatus::Cancelled),
        count(ActionStatus::Expired),
        count(ActionStatus::Failed),
        all.iter().filter(|a| a.refund_needed()).count(),
        all.iter().filter(|a| !a.disputes().records().is_empty()).count(),
    );
    let outages = world.log.iter().filter(|l| l.starts_with("webhook endpoint down for")).count();
    let errors = world.log.iter().filter(|l| l.starts_with("stripe answers 500")).count();
    let throttled = match &world.throttle {
        Some(proxy) => format!(
            "{} DynamoDB throttling incidents ({} requests throttled)",
            world.log.iter().filter(|l| l.starts_with("dynamodb throttles")).count(),
            proxy.injected.load(Ordering::SeqCst)
        ),
        None => "no throttling (the embedded store)".to_owned(),
    };
    println!(
        "{outages} outages of hours to days, {errors} Stripe incidents, {} events Stripe gave up on, {throttled}",
        world.stripe.emulator.undelivered().len(),
    );
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_lifecycle_keeps_its_invariants_under_any_interleaving() {
        let store = std::sync::Arc::new(crate::support::kit::embedded_store());
        super::the_lifecycle_keeps_its_invariants_under_any_interleaving(store, None).await
    }
}

mod dynamodb {
    use crate::support::{fault_proxy, kit, Fault, DYNAMODB_THROTTLED};
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_lifecycle_keeps_its_invariants_under_any_interleaving() {
        let direct = kit::dynamodb_store("property").await;
        let table = direct.table().to_owned();
        // Every DynamoDB request (they all name their operation in X-Amz-Target).
        let any = |_: &str, _: &str, headers: &axum::http::HeaderMap| headers.contains_key("x-amz-target");
        let refuse = Fault::Refuse { status: 400, body: DYNAMODB_THROTTLED };
        let proxy = fault_proxy(&kit::moto_endpoint(), refuse, 0, any).await;
        let system = visitpay_aws::dynamodb::DynamoStore::new(kit::dynamodb_client(&proxy.base).await, table);
        super::the_lifecycle_keeps_its_invariants_under_any_interleaving(
            Arc::new(system),
            Some((Arc::new(direct), proxy)),
        )
        .await
    }
}
