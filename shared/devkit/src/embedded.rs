//! The embedded store for the laptop run: the same port, the same
//! all-or-nothing conditional commits, held in memory behind one lock. It is
//! held to the same contract suite as DynamoDB (`tests/store_contract.rs`).
//! Like the table's stream, it tells subscribers of each committed change of
//! an action that someone watching would see (`changes`), in commit order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::broadcast;

use visitpay_app::ports::{
    AccountStore, ActionStore, AssignInputs, AssignStore, Commit, Expect, IdempotencyRecord, InvoiceStore,
    MessageStore, PaymentStore, PayoutPage, PayoutStore, ReconcileStore, SettingsStore, StoreError, Stored, Write,
};
use visitpay_aws::dynamodb::items::{self, MAX_ITEM_BYTES, MAX_TRANSACTION_BYTES, MAX_TRANSACTION_ITEMS};
use visitpay_domain::{AccountHealth, Payout, PayoutLine, StripeAccountId};
use visitpay_domain::{
    Action, ActionId, ClinicId, Invoice, InvoiceId, PatientId, PaymentIntentId, PaymentRef, PaymentSettings, SessionId,
    StrayPayment, VisitId,
};
use visitpay_domain::{ActionChanged, ActionStatus, Channel, MessageIntent, OptOut, Timestamp, UnsubscribeLink};

type InvoiceKey = (ClinicId, PatientId, InvoiceId);

/// The domain's values, each with the version the store counts its writes
/// by, as the DynamoDB adapter keeps it in the item.
#[derive(Default, Clone)]
struct Tables {
    settings: HashMap<ClinicId, PaymentSettings>,
    invoices: BTreeMap<InvoiceKey, Stored<Invoice>>,
    // By id alone, as on DynamoDB: ids are unique across clinics.
    actions: HashMap<ActionId, Stored<Action>>,
    idempotency: HashMap<(ClinicId, String), IdempotencyRecord>,
    payments: HashMap<PaymentIntentId, Stored<PaymentRef>>,
    stray_payments: HashMap<SessionId, StrayPayment>,
    messages: BTreeMap<(ActionId, String), Stored<MessageIntent>>,
    /// By (clinic, or every clinic), channel and digest.
    opt_outs: HashMap<(Option<ClinicId>, Channel, String), OptOut>,
    unsubscribe: HashMap<String, UnsubscribeLink>,
    account_health: HashMap<ClinicId, Stored<AccountHealth>>,
    account_owners: std::collections::BTreeSet<(StripeAccountId, ClinicId)>,
    catch_up: std::collections::BTreeMap<StripeAccountId, Stored<visitpay_app::ports::CatchUpCheckpoint>>,
    payouts: HashMap<(ClinicId, String), Stored<Payout>>,
    payout_lines: BTreeMap<(ClinicId, String, u32), PayoutLine>,
}

/// How many changes a subscriber may fall behind before it misses some
/// (and is told so: `broadcast::error::RecvError::Lagged`).
const CHANGES_KEPT: usize = 4096;

pub struct EmbeddedStore {
    tables: Mutex<Tables>,
    changes: broadcast::Sender<ActionChanged>,
}

impl Default for EmbeddedStore {
    fn default() -> Self {
        EmbeddedStore { tables: Mutex::default(), changes: broadcast::channel(CHANGES_KEPT).0 }
    }
}

impl EmbeddedStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// An independent copy of everything stored: the same starting point for
    /// two runs that must end alike (the webhook-burst benchmark).
    pub fn fork(&self) -> Self {
        EmbeddedStore { tables: Mutex::new(self.lock().clone()), ..Self::default() }
    }

    /// Every committed change of an action from now on, in commit order (as
    /// the table's stream gives publish-action-events in AWS).
    pub fn changes(&self) -> broadcast::Receiver<ActionChanged> {
        self.changes.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic elsewhere while holding the lock must not wedge the store;
        // commits validate everything before mutating, so the data is whole.
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// DynamoDB's limits, on the items DynamoDB would store for these writes
/// (`items`: the same mapping as the DynamoDB adapter's, sized by DynamoDB's
/// rules): an item over 400 KB is refused, as is a transaction over 100
/// items or 4 MB, with the DynamoDB adapter's error.
fn check_limits(written: impl Iterator<Item = items::Item>, count: usize) -> Result<(), StoreError> {
    if count > MAX_TRANSACTION_ITEMS {
        return Err(StoreError::TooLarge(format!(
            "Member must have length less than or equal to {MAX_TRANSACTION_ITEMS} ({count} items)"
        )));
    }
    let mut total = 0;
    for item in written {
        let size = items::item_size(&item);
        if size > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge(format!(
                "Item size has exceeded the maximum allowed size ({size} bytes)"
            )));
        }
        total += size;
    }
    if count > 1 && total > MAX_TRANSACTION_BYTES {
        return Err(StoreError::TooLarge(format!("Transaction request cannot exceed 4 MB ({total} bytes)")));
    }
    Ok(())
}

fn check(expect: Expect, current: Option<u64>) -> Result<(), StoreError> {
    match (expect, current) {
        (Expect::Absent, None) => Ok(()),
        (Expect::Version(v), Some(c)) if v == c => Ok(()),
        (Expect::Any, _) => Ok(()),
        _ => Err(StoreError::Conflict),
    }
}

#[async_trait]
impl SettingsStore for EmbeddedStore {
    async fn get_settings(&self, clinic: &ClinicId) -> Result<Option<PaymentSettings>, StoreError> {
        Ok(self.lock().settings.get(clinic).cloned())
    }

    async fn put_settings(&self, settings: &PaymentSettings) -> Result<(), StoreError> {
        check_limits(std::iter::once(items::settings_item(settings)), 1)?;
        self.lock().settings.insert(settings.clinic_id.clone(), settings.clone());
        Ok(())
    }
}

#[async_trait]
impl InvoiceStore for EmbeddedStore {
    async fn get_invoice(
        &self,
        clinic: &ClinicId,
        patient: &PatientId,
        invoice: &InvoiceId,
    ) -> Result<Option<Stored<Invoice>>, StoreError> {
        Ok(self.lock().invoices.get(&(clinic.clone(), patient.clone(), invoice.clone())).cloned())
    }

    async fn list_invoices(&self, clinic: &ClinicId, patient: &PatientId) -> Result<Vec<Stored<Invoice>>, StoreError> {
        let tables = self.lock();
        Ok(tables
            .invoices
            .iter()
            .filter(|((c, p, _), _)| c == clinic && p == patient)
            .map(|(_, i)| i.clone())
            .collect())
    }
}

#[async_trait]
impl ActionStore for EmbeddedStore {
    async fn get_action(&self, clinic: &ClinicId, action: &ActionId) -> Result<Option<Stored<Action>>, StoreError> {
        Ok(self.lock().actions.get(action).filter(|a| a.clinic_id() == clinic).cloned())
    }

    async fn list_visit_actions(&self, clinic: &ClinicId, visit: &VisitId) -> Result<Vec<Stored<Action>>, StoreError> {
        let tables = self.lock();
        let mut list: Vec<Stored<Action>> =
            tables.actions.values().filter(|a| a.clinic_id() == clinic && a.visit_id() == visit).cloned().collect();
        list.sort_by(|a, b| (a.created_at(), a.action_id()).cmp(&(b.created_at(), b.action_id())));
        Ok(list)
    }

    async fn find_action(&self, action: &ActionId) -> Result<Option<Stored<Action>>, StoreError> {
        Ok(self.lock().actions.get(action).cloned())
    }
}

#[async_trait]
impl AssignStore for EmbeddedStore {
    async fn get_idempotency(&self, clinic: &ClinicId, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.lock().idempotency.get(&(clinic.clone(), key.to_owned())).cloned())
    }

    async fn assign_inputs(
        &self,
        clinic: &ClinicId,
        patient: &PatientId,
        invoices: &[InvoiceId],
        idempotency_key: Option<&str>,
    ) -> Result<AssignInputs, StoreError> {
        let t = self.lock();
        Ok(AssignInputs {
            settings: t.settings.get(clinic).cloned(),
            account: t.account_health.get(clinic).cloned(),
            idempotency: idempotency_key.and_then(|k| t.idempotency.get(&(clinic.clone(), k.to_owned())).cloned()),
            invoices: invoices
                .iter()
                .filter_map(|id| t.invoices.get(&(clinic.clone(), patient.clone(), id.clone())).cloned())
                .collect(),
        })
    }
}

#[async_trait]
impl PaymentStore for EmbeddedStore {
    async fn find_payment(&self, payment_intent: &PaymentIntentId) -> Result<Option<Stored<PaymentRef>>, StoreError> {
        Ok(self.lock().payments.get(payment_intent).cloned())
    }

    async fn find_stray_payment(&self, session_id: &SessionId) -> Result<Option<StrayPayment>, StoreError> {
        Ok(self.lock().stray_payments.get(session_id).cloned())
    }

    async fn action_and_payment(
        &self,
        clinic: &ClinicId,
        action: &ActionId,
        payment_intent: &PaymentIntentId,
    ) -> Result<(Option<Stored<Action>>, Option<Stored<PaymentRef>>), StoreError> {
        let t = self.lock();
        let action = t.actions.get(action).filter(|a| a.clinic_id() == clinic).cloned();
        Ok((action, t.payments.get(payment_intent).cloned()))
    }
}

#[async_trait]
impl ReconcileStore for EmbeddedStore {
    // In memory, a filter is the index: the same answers as DynamoDB's GSIs.
    async fn actions_awaiting_stripe(
        &self,
        untouched_since: Timestamp,
        limit: usize,
    ) -> Result<Vec<Stored<Action>>, StoreError> {
        let t = self.lock();
        let mut due: Vec<Stored<Action>> = t
            .actions
            .values()
            .filter(|a| matches!(a.status(), ActionStatus::CheckoutOpen | ActionStatus::Processing))
            .filter(|a| a.last_touched() < untouched_since)
            .cloned()
            .collect();
        due.sort_by_key(|a| a.last_touched());
        due.truncate(limit);
        Ok(due)
    }

    async fn actions_past_lifetime(&self, now: Timestamp, limit: usize) -> Result<Vec<Stored<Action>>, StoreError> {
        let t = self.lock();
        let mut due: Vec<Stored<Action>> = t
            .actions
            .values()
            .filter(|a| matches!(a.status(), ActionStatus::Assigned | ActionStatus::CheckoutOpen))
            .filter(|a| a.expires_at() < now)
            .cloned()
            .collect();
        due.sort_by_key(|a| a.expires_at());
        due.truncate(limit);
        Ok(due)
    }
}

#[async_trait]
impl MessageStore for EmbeddedStore {
    async fn get_message(&self, action: &ActionId, key: &str) -> Result<Option<Stored<MessageIntent>>, StoreError> {
        Ok(self.lock().messages.get(&(action.clone(), key.to_owned())).cloned())
    }

    // In memory, a filter is the index: the same answers as DynamoDB's gsi4.
    async fn due_messages(&self, now: Timestamp, limit: usize) -> Result<Vec<Stored<MessageIntent>>, StoreError> {
        let t = self.lock();
        let mut due: Vec<Stored<MessageIntent>> =
            t.messages.values().filter(|m| m.is_pending() && m.due_at <= now).cloned().collect();
        due.sort_by_key(|m| m.due_at);
        due.truncate(limit);
        Ok(due)
    }

    async fn opted_out(&self, clinic: &ClinicId, channel: Channel, digest: &str) -> Result<bool, StoreError> {
        let t = self.lock();
        Ok([Some(clinic.clone()), None]
            .into_iter()
            .any(|scope| t.opt_outs.get(&(scope, channel, digest.to_owned())).is_some_and(|o| o.opted_out)))
    }

    async fn get_unsubscribe(&self, token_hash: &str) -> Result<Option<UnsubscribeLink>, StoreError> {
        Ok(self.lock().unsubscribe.get(token_hash).cloned())
    }
}

#[async_trait]
impl AccountStore for EmbeddedStore {
    async fn account_health(&self, clinic: &ClinicId) -> Result<Option<Stored<AccountHealth>>, StoreError> {
        Ok(self.lock().account_health.get(clinic).cloned())
    }

    async fn clinics_of_account(&self, account: &StripeAccountId) -> Result<Vec<ClinicId>, StoreError> {
        Ok(self.lock().account_owners.iter().filter(|(a, _)| a == account).map(|(_, c)| c.clone()).collect())
    }

    async fn catch_up_checkpoints(&self) -> Result<Vec<Stored<visitpay_app::ports::CatchUpCheckpoint>>, StoreError> {
        Ok(self.lock().catch_up.values().cloned().collect())
    }
}

#[async_trait]
impl PayoutStore for EmbeddedStore {
    async fn get_payout(
        &self,
        clinic: &ClinicId,
        payout_id: &str,
    ) -> Result<Option<(Stored<Payout>, Vec<PayoutLine>)>, StoreError> {
        let t = self.lock();
        let Some(summary) = t.payouts.get(&(clinic.clone(), payout_id.to_owned())).cloned() else { return Ok(None) };
        let lines: Vec<PayoutLine> = (0..summary.line_count)
            .map(|i| t.payout_lines.get(&(clinic.clone(), payout_id.to_owned(), i)).cloned())
            .collect::<Option<_>>()
            .ok_or_else(|| StoreError::Corrupt("a payout without all its lines".into()))?;
        Ok(Some((summary, lines)))
    }

    async fn list_payouts(
        &self,
        clinic: &ClinicId,
        limit: usize,
        after: Option<&str>,
    ) -> Result<PayoutPage, StoreError> {
        let t = self.lock();
        // As gsi1 sorts them: by `<time>#<payout id>`, newest first.
        let mut all: Vec<(String, Stored<Payout>)> = t
            .payouts
            .iter()
            .filter(|((c, _), _)| c == clinic)
            .map(|(_, p)| (visitpay_aws::dynamodb::keys::payout_listing(clinic, p.created, &p.payout_id).1, p.clone()))
            .collect();
        all.sort_by(|a, b| b.0.cmp(&a.0));
        let rest: Vec<(String, Stored<Payout>)> = match after {
            Some(cursor) => all.into_iter().filter(|(k, _)| k.as_str() < cursor).collect(),
            None => all,
        };
        let more = rest.len() > limit;
        let page: Vec<(String, Stored<Payout>)> = rest.into_iter().take(limit).collect();
        let next = if more { page.last().map(|(k, _)| k.clone()) } else { None };
        Ok(PayoutPage { payouts: page.into_iter().map(|(_, p)| p).collect(), next })
    }
}

#[async_trait]
impl Commit for EmbeddedStore {
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut t = self.lock();
        // Validate every condition first, then apply: all or nothing.
        let mut followed = Vec::new();
        for w in &writes {
            match w {
                Write::HeldInvoice { clinic_id, patient_id, invoice_id, action_id, effect, at } => {
                    let key = (clinic_id.clone(), patient_id.clone(), invoice_id.clone());
                    let moved = t.invoices.get(&key).and_then(|i| {
                        let version = i.version + 1;
                        i.follow(action_id, *effect, *at).map(|value| Stored { value, version })
                    });
                    followed.push(moved.ok_or(StoreError::Conflict)?);
                }
                Write::Invoice { invoice: i, expect } => {
                    let key = (i.clinic_id.clone(), i.patient_id.clone(), i.invoice_id.clone());
                    check(*expect, t.invoices.get(&key).map(|x| x.version))?
                }
                Write::Action { action: a, expect } => {
                    // Another clinic's action under the same id counts as present: ids never repeat.
                    check(*expect, t.actions.get(a.action_id()).map(|x| x.version))?
                }
                Write::Idempotency(r) => {
                    check(Expect::Absent, t.idempotency.get(&(r.clinic_id.clone(), r.key.clone())).map(|_| 0))?
                }
                Write::Payment { payment: p, expect } => {
                    check(*expect, t.payments.get(&p.payment_intent).map(|x| x.version))?
                }
                Write::StrayPayment(p) => check(Expect::Absent, t.stray_payments.get(&p.session_id).map(|_| 0))?,
                Write::Message { intent, expect } => {
                    let key = (intent.action_id.clone(), intent.key.clone());
                    check(*expect, t.messages.get(&key).map(|m| m.version))?
                }
                Write::Unsubscribe(link) => check(Expect::Absent, t.unsubscribe.get(&link.token_hash).map(|_| 0))?,
                Write::OptOut(_) | Write::PayoutLine { .. } | Write::AccountOwner { .. } => {}
                Write::AccountHealth { clinic_id, expect, .. } => {
                    check(*expect, t.account_health.get(clinic_id).map(|h| h.version))?
                }
                Write::AccountTakesPayments { clinic_id, account } => {
                    let health = t.account_health.get(clinic_id).filter(|h| &h.value.id == account);
                    if health.is_some_and(|h| h.value.can_take_payments().is_err()) {
                        return Err(StoreError::Conflict);
                    }
                }
                Write::Payout { clinic_id, payout, expect } => {
                    let key = (clinic_id.clone(), payout.payout_id.clone());
                    check(*expect, t.payouts.get(&key).map(|p| p.version))?
                }
                Write::CatchUp { checkpoint, expect } => {
                    check(*expect, t.catch_up.get(&checkpoint.account).map(|c| c.version))?
                }
            }
        }
        let moved = followed.iter().map(|i| items::invoice_item(i, i.version));
        check_limits(writes.iter().filter_map(items::put_item).map(|(item, _)| item).chain(moved), writes.len())?;
        for i in followed {
            t.invoices.insert((i.clinic_id.clone(), i.patient_id.clone(), i.invoice_id.clone()), i);
        }
        for w in writes {
            match w {
                Write::HeldInvoice { .. } => {}
                Write::Invoice { invoice: i, expect } => {
                    let key = (i.clinic_id.clone(), i.patient_id.clone(), i.invoice_id.clone());
                    t.invoices.insert(key, Stored { value: i, version: expect.next_version() });
                }
                Write::Action { action: a, expect } => {
                    let version = expect.next_version();
                    // Only when someone listens (not on the benchmark's hot path);
                    // sent under the lock, so subscribers see commits in order.
                    let change = (self.changes.receiver_count() > 0)
                        .then(|| {
                            let previous = t.actions.get(a.action_id()).map(|p| (&p.value, p.version));
                            ActionChanged::between(previous, &a, version)
                        })
                        .flatten();
                    t.actions.insert(a.action_id().clone(), Stored { value: a, version });
                    if let Some(change) = change {
                        let _ = self.changes.send(change);
                    }
                }
                Write::Idempotency(r) => {
                    t.idempotency.insert((r.clinic_id.clone(), r.key.clone()), r);
                }
                Write::Payment { payment: p, expect } => {
                    t.payments.insert(p.payment_intent.clone(), Stored { value: p, version: expect.next_version() });
                }
                Write::StrayPayment(p) => {
                    t.stray_payments.insert(p.session_id.clone(), p);
                }
                Write::Message { intent, expect } => {
                    let key = (intent.action_id.clone(), intent.key.clone());
                    t.messages.insert(key, Stored { value: intent, version: expect.next_version() });
                }
                Write::OptOut(o) => {
                    t.opt_outs.insert((o.clinic_id.clone(), o.channel, o.digest.clone()), o);
                }
                Write::Unsubscribe(link) => {
                    t.unsubscribe.insert(link.token_hash.clone(), link);
                }
                Write::AccountHealth { clinic_id, health, expect } => {
                    t.account_health.insert(clinic_id, Stored { value: health, version: expect.next_version() });
                }
                Write::AccountOwner { account, clinic_id } => {
                    t.account_owners.insert((account, clinic_id));
                }
                Write::AccountTakesPayments { .. } => {}
                Write::Payout { clinic_id, payout, expect } => {
                    let key = (clinic_id, payout.payout_id.clone());
                    t.payouts.insert(key, Stored { value: payout, version: expect.next_version() });
                }
                Write::PayoutLine { clinic_id, payout_id, index, line } => {
                    t.payout_lines.insert((clinic_id, payout_id, index), line);
                }
                Write::CatchUp { checkpoint, expect } => {
                    let version = expect.next_version();
                    t.catch_up.insert(checkpoint.account.clone(), Stored { value: checkpoint, version });
                }
            }
        }
        Ok(())
    }
}
