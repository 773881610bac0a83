//! An action's Checkout Sessions at Stripe. At most one may be payable at
//! any instant, and none once the action is paid or has ended: sessions are
//! expired before they are replaced, when the action ends, and once it is
//! paid (all but the one that paid).

use super::{AppError, HasClock, HasPayments};
use crate::domain::{Action, DomainError};
use crate::ports::{PaymentsError, SessionStatus, META_ACTION};

/// Stripe's longest Checkout Session lasts 24 hours; a session created
/// earlier cannot still be open (five minutes for clock skew).
const LONGEST_SESSION: time::Duration = time::Duration::minutes(24 * 60 + 5);

/// Expires a Checkout Session at Stripe. Already expired is fine; completed
/// means a payment is landing (`PaymentProcessing`), which must not be
/// cancelled away.
pub(crate) async fn expire_session(deps: &impl HasPayments, action: &Action, session_id: &str) -> Result<(), AppError> {
    let payments = deps.payments();
    match payments.expire_checkout(&action.stripe_account_id, session_id).await {
        Ok(_) | Err(PaymentsError::NotFound) => Ok(()),
        Err(
            e @ (PaymentsError::Unavailable(_) | PaymentsError::Unexpected(_) | PaymentsError::AccountDisconnected),
        ) => Err(e.into()),
        // "Only Checkout Sessions with a status in ["open"] can be expired."
        Err(PaymentsError::Rejected { .. }) => {
            let session = payments.retrieve_checkout(&action.stripe_account_id, session_id).await?;
            match session.status {
                SessionStatus::Expired => Ok(()),
                SessionStatus::Complete => Err(DomainError::PaymentProcessing.into()),
                SessionStatus::Open => {
                    Err(PaymentsError::Unexpected(format!("session {session_id} would not expire")).into())
                }
            }
        }
    }
}

/// Expires every session of `action` that may still be paid, but `except`:
/// its current one, and any Stripe lists as open with the action's metadata
/// (one created but never recorded, after a crash or a lost write). Returns
/// the sessions expired (the current one even if it had expired already), or
/// `PaymentProcessing` once all are tried if one of them was completed.
pub(crate) async fn close_open_sessions(
    deps: &(impl HasPayments + HasClock),
    action: &Action,
    except: Option<&str>,
) -> Result<Vec<String>, AppError> {
    if action.checkout_attempts == 0 {
        return Ok(Vec::new());
    }
    let since = action.created_at.max(deps.clock().now() - LONGEST_SESSION);
    let listed = deps.payments().list_open_checkouts(&action.stripe_account_id, since).await?;
    let mut sessions: Vec<String> = listed
        .into_iter()
        .filter(|s| s.metadata(META_ACTION) == Some(action.action_id.as_str()))
        .map(|s| s.id)
        .collect();
    if let Some(current) = action.checkout_session_id() {
        if !sessions.iter().any(|s| s == current) {
            sessions.push(current.to_owned());
        }
    }
    sessions.retain(|s| Some(s.as_str()) != except);
    // One completed session does not leave the others open.
    let mut landing = None;
    for session_id in &sessions {
        match expire_session(deps, action, session_id).await {
            Ok(()) => {}
            Err(e @ AppError::Domain(DomainError::PaymentProcessing)) => landing = Some(e),
            Err(e) => return Err(e),
        }
    }
    landing.map_or(Ok(sessions), Err)
}
