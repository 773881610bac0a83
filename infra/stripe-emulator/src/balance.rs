//! Connected accounts' balances and payouts: every charge, refund and
//! dispute moves an account's balance (a balance transaction each, with
//! Stripe's fee), and a payout takes what is available to the bank, its own
//! transaction among those it pays out
//! (https://docs.stripe.com/payouts/reconciliation: the payout "is also a
//! transaction").

use serde_json::Value;

use crate::error::ApiError;
use crate::objects;
use crate::records::{BalanceTransaction, Origin, Payout};
use crate::store::State;
use crate::util::random_id;

/// What the account may now do, as Stripe would change it.
pub(crate) struct AccountChange {
    pub charges_enabled: Option<bool>,
    pub payouts_enabled: Option<bool>,
    pub details_submitted: Option<bool>,
    pub requirements_due: Option<Vec<String>>,
    /// `Some(None)` clears it.
    pub disabled_reason: Option<Option<String>>,
}

impl State {
    /// Changes a connected account and sends `account.updated` ("Occurs
    /// whenever an account status or property has changed", event types),
    /// with the account set on the event as for any connected account's.
    pub(crate) fn update_account(&mut self, id: &str, change: AccountChange) -> Result<Value, ApiError> {
        let account = self.accounts.get_mut(id).ok_or_else(|| ApiError::no_such("account", id, "account"))?;
        if let Some(v) = change.charges_enabled {
            account.charges_enabled = v;
        }
        if let Some(v) = change.payouts_enabled {
            account.payouts_enabled = v;
        }
        if let Some(v) = change.details_submitted {
            account.details_submitted = v;
        }
        if let Some(v) = change.requirements_due {
            account.requirements_due = v;
        }
        if let Some(v) = change.disabled_reason {
            account.disabled_reason = v;
        }
        let json = objects::account(id, account);
        self.emit("account.updated", json.clone(), Some(id.to_owned()), &Origin::default(), true);
        Ok(json)
    }

    /// Pays out each currency of `account`'s available balance not paid out
    /// yet: one payout per currency, `paid` (or `failed`, the bank refusing
    /// it: the money returns to the balance), with Stripe's event.
    pub(crate) fn pay_out(&mut self, account: &str, fail: bool) -> Result<Vec<Value>, ApiError> {
        if !self.accounts.get(account).is_some_and(|a| a.connected) {
            return Err(ApiError::no_such("account", account, "account"));
        }
        let now = self.now();
        let mut currencies: Vec<String> = self
            .balance
            .iter()
            .filter(|b| b.account.as_deref() == Some(account) && b.payout.is_none() && b.available_on <= now)
            .map(|b| b.currency.clone())
            .collect();
        currencies.sort();
        currencies.dedup();
        let mut made = Vec::new();
        for currency in currencies {
            let due = |b: &BalanceTransaction| {
                b.account.as_deref() == Some(account)
                    && b.payout.is_none()
                    && b.available_on <= now
                    && b.currency == currency
                    && b.kind != "payout"
            };
            let amount: i64 = self.balance.iter().filter(|b| due(b)).map(BalanceTransaction::net).sum();
            if amount <= 0 {
                continue; // nothing to pay out (a negative balance waits for more money)
            }
            let id = random_id("po_");
            let txn = random_id("txn_");
            for b in self.balance.iter_mut().filter(|b| due(b)) {
                b.payout = Some(id.clone());
            }
            // The payout's own transaction, paid out by itself.
            self.record_balance(&txn, &Some(account.to_owned()), -amount, 0, &currency, "payout", "payout", &id);
            if let Some(own) = self.balance.last_mut() {
                own.payout = Some(id.clone());
            }
            let mut payout = Payout {
                id: id.clone(),
                account: account.to_owned(),
                amount,
                currency: currency.clone(),
                created: now,
                arrival_date: now + 24 * 3600,
                status: "paid",
                failure_code: None,
                balance_transaction: txn,
                failure_balance_transaction: None,
            };
            let mut kinds = vec!["payout.paid"];
            if fail {
                // "A payout can fail … after `paid`" (Payouts, "Payout statuses"): the
                // money comes back to the balance with a `payout_failure`.
                let back = random_id("txn_");
                self.record_balance(
                    &back,
                    &Some(account.to_owned()),
                    amount,
                    0,
                    &currency,
                    "payout_failure",
                    "payout_reversal",
                    &id,
                );
                payout.status = "failed";
                payout.failure_code = Some("account_closed");
                payout.failure_balance_transaction = Some(back);
                kinds = vec!["payout.failed"];
            }
            let json = objects::payout(&payout, self.livemode);
            self.payouts.insert(id.clone(), payout);
            for kind in kinds {
                self.emit(kind, json.clone(), Some(account.to_owned()), &Origin::default(), true);
            }
            made.push(json);
        }
        if made.is_empty() {
            return Err(ApiError::invalid("The account has no available balance to pay out.", Some("account")));
        }
        Ok(made)
    }

    /// A balance transaction's source, as its id or (expanded) its object.
    pub(crate) fn balance_source(&self, t: &BalanceTransaction, expand: bool) -> Value {
        if !expand {
            return Value::String(t.source.clone());
        }
        let found = match t.source.split('_').next() {
            Some("ch") => self.charges.get(&t.source).map(|c| self.charge_json(c, false)),
            Some("re") => self.refunds.get(&t.source).map(|r| objects::refund(r, self.livemode)),
            Some("dp") => self.disputes.get(&t.source).map(|d| objects::dispute(d, self.livemode)),
            Some("po") => self.payouts.get(&t.source).map(|p| objects::payout(p, self.livemode)),
            _ => None,
        };
        found.unwrap_or_else(|| Value::String(t.source.clone()))
    }
}
