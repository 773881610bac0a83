//! An action's status, who moved it, and the record of every move.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::{Timestamp, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    Assigned,
    CheckoutOpen,
    Processing,
    Paid,
    PartiallyRefunded,
    Refunded,
    Failed,
    Cancelled,
    Expired,
}

impl ActionStatus {
    /// A live action holds its invoices in `pending`.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Assigned | Self::CheckoutOpen | Self::Processing)
    }
    /// Still open to payment: a patient may open Checkout.
    pub fn is_open_to_payment(self) -> bool {
        matches!(self, Self::Assigned | Self::CheckoutOpen)
    }
    /// Paid, whatever was refunded since.
    pub fn was_paid(self) -> bool {
        matches!(self, Self::Paid | Self::PartiallyRefunded | Self::Refunded)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assigned => "assigned",
            Self::CheckoutOpen => "checkout_open",
            Self::Processing => "processing",
            Self::Paid => "paid",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who or what caused a transition, as recorded in history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", content = "id", rename_all = "snake_case")]
pub enum Actor {
    Staff(UserId),
    /// The patient, through their link.
    Patient,
    Stripe {
        event_id: String,
    },
    Reconcile,
    /// The deliverer of messages to the patient.
    Messages,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Staff(u) => write!(f, "staff:{u}"),
            Actor::Patient => f.write_str("patient"),
            Actor::Stripe { event_id } => write!(f, "stripe:{event_id}"),
            Actor::Reconcile => f.write_str("reconcile"),
            Actor::Messages => f.write_str("messages"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ActionStatus>,
    pub to: ActionStatus,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// A Checkout Session opened or expired: the patient coming back to pay.
    /// Such entries are kept only at the start and the end of a long history.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub routine: bool,
}

/// Routine history (a Checkout Session opened, or expired back to
/// `assigned`) kept at the start and at the end; between them, only counted.
/// Every other transition (money moved, the action ended, a dispute, a late
/// payment) is always kept.
pub const ROUTINE_HISTORY_HEAD: usize = 2;
pub const ROUTINE_HISTORY_TAIL: usize = 20;

/// Every transition, but for routine checkout churn beyond the first and
/// last few: bounded, so the action stays small over the longest life it
/// can have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub(crate) entries: Vec<HistoryEntry>,
    /// Routine entries dropped from the middle.
    pub(crate) omitted: u32,
}

impl History {
    pub fn new(entries: Vec<HistoryEntry>, omitted: u32) -> Self {
        History { entries, omitted }
    }

    pub fn entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    pub fn omitted(&self) -> u32 {
        self.omitted
    }

    /// When the last transition happened.
    pub fn last_at(&self) -> Option<Timestamp> {
        self.entries.last().map(|h| h.at)
    }

    /// Appends a transition, then drops the oldest routine entry past the
    /// head while more than head + tail routine entries are kept.
    pub(crate) fn record(&mut self, entry: HistoryEntry) {
        self.entries.push(entry);
        let routine = self.entries.iter().filter(|h| h.routine).count();
        if routine > ROUTINE_HISTORY_HEAD + ROUTINE_HISTORY_TAIL {
            let drop = self.entries.iter().enumerate().filter(|(_, h)| h.routine).nth(ROUTINE_HISTORY_HEAD);
            if let Some((index, _)) = drop {
                self.entries.remove(index);
                self.omitted += 1;
            }
        }
    }
}
