//! An action's Checkout Sessions at Stripe. At most one may be payable at
//! any instant, and none once the action is paid or has ended: sessions are
//! expired before they are replaced, when the action ends, and once it is
//! paid (all but the one that paid). Which sessions those are, the action
//! says itself (`Action::sessions_to_close`): visitpay never lists the clinic's
//! Stripe account, where other software keeps sessions of its own.

use std::collections::HashMap;

use super::{AppError, HasClock, HasConfig, HasPayments, HasStore};
use crate::ports::{CheckoutLine, CheckoutRequest, PaymentsError, SessionStatus, META_ACTION, META_CLINIC};
use visitpay_domain::{
    Action, Checkout, DomainError, InvoiceId, LineItemText, Locale, OpenSession, SessionId, SessionsClosed,
};

/// Expires a Checkout Session at Stripe. Already expired is fine; completed
/// means a payment is landing (`PaymentProcessing`), which must not be
/// cancelled away.
pub(crate) async fn expire_session(
    deps: &impl HasPayments,
    action: &Action,
    session_id: &SessionId,
) -> Result<(), AppError> {
    let payments = deps.payments();
    match payments.expire_checkout(action.stripe_account_id(), session_id).await {
        Ok(_) | Err(PaymentsError::NotFound) => Ok(()),
        Err(
            e @ (PaymentsError::Unavailable(_) | PaymentsError::Unexpected(_) | PaymentsError::AccountDisconnected),
        ) => Err(e.into()),
        // "Only Checkout Sessions with a status in ["open"] can be expired."
        Err(PaymentsError::Rejected { .. }) => {
            let session = payments.retrieve_checkout(action.stripe_account_id(), session_id).await?;
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

/// The id of an attempt's session whose answer never reached us (a timeout,
/// a crash before it was recorded): the attempt's request sent again under
/// its key, which Stripe answers with the same session. `None` when Stripe
/// kept a refusal under the key: no session was made.
async fn recover(
    deps: &(impl HasStore + HasConfig + HasPayments),
    action: &Action,
    session: &OpenSession,
) -> Result<Option<SessionId>, AppError> {
    let attempt = Checkout {
        attempt: session.attempt,
        reserved_at: action.created_at(),
        expires_at: session.expires_at,
        session_id: None,
        url: None,
    };
    let request = request_for(deps, action, &attempt).await?;
    let found = deps.payments().recover_checkout(&request).await?;
    if found.is_none() {
        tracing::info!(action_id = %action.action_id(), attempt = session.attempt, "Stripe kept a refusal under the attempt's key: no session was made");
    }
    Ok(found.map(|s| s.id))
}

/// Expires every session of `action` that may still be open but `except`
/// (the one that paid): those it recorded, found again by their attempt's
/// key when their id was never learnt. Returns what was closed (the current
/// session even if it had expired already), or `PaymentProcessing` once all
/// are tried if one of them was completed.
pub(crate) async fn close_open_sessions(
    deps: &(impl HasStore + HasConfig + HasPayments + HasClock),
    action: &Action,
    except: Option<&SessionId>,
) -> Result<SessionsClosed, AppError> {
    let mut closed = SessionsClosed::default();
    // One completed session does not leave the others open.
    let mut landing = None;
    for session in action.sessions_to_close(deps.clock().now()) {
        let id = match &session.session_id {
            Some(id) => id.clone(),
            None => match recover(deps, action, &session).await? {
                Some(id) => id,
                None => {
                    closed.attempts.push(session.attempt);
                    continue;
                }
            },
        };
        if Some(&id) == except {
            continue;
        }
        match expire_session(deps, action, &id).await {
            Ok(()) => {
                closed.attempts.push(session.attempt);
                closed.expired.push(id);
            }
            Err(e @ AppError::Domain(DomainError::PaymentProcessing)) => landing = Some(e),
            Err(e) => return Err(e),
        }
    }
    landing.map_or(Ok(closed), Err)
}

/// The line Checkout shows for an invoice without its description.
pub(crate) fn generic_name(invoice: &InvoiceId, locale: Locale) -> String {
    let lang = match locale {
        Locale::FrCa => visitpay_words::Lang::Fr,
        Locale::EnCa => visitpay_words::Lang::En,
    };
    lang.words().checkout.generic_line(invoice.as_str())
}

/// What the line items say at Stripe: generic ("Clinic services — invoice
/// 1042") from the action alone, or, only for a clinic that opted in, the
/// invoices' own descriptions (the one case that reads the invoices).
pub(crate) async fn checkout_lines(
    deps: &impl HasStore,
    action: &Action,
    locale: Locale,
) -> Result<Vec<CheckoutLine>, AppError> {
    let descriptions: HashMap<InvoiceId, String> = match action.terms().line_item_text {
        LineItemText::Generic => HashMap::new(),
        LineItemText::InvoiceDescription => deps
            .store()
            .list_invoices(action.clinic_id(), action.patient_id())
            .await?
            .into_iter()
            .filter(|i| i.action_id() == Some(action.action_id()) && !i.description.trim().is_empty())
            .map(|i| (i.invoice_id.clone(), i.description.trim().to_owned()))
            .collect(),
    };
    let lines: Vec<CheckoutLine> = action
        .lines()
        .iter()
        .map(|l| CheckoutLine {
            name: descriptions.get(&l.invoice_id).cloned().unwrap_or_else(|| generic_name(&l.invoice_id, locale)),
            amount: l.amount.amount,
        })
        .collect();
    if lines.iter().map(|l| l.amount).sum::<i64>() != action.total().amount {
        return Err(AppError::Inconsistent(format!("action {} total does not match its lines", action.action_id())));
    }
    Ok(lines)
}

/// The Checkout Session request of an attempt: the same for every send of
/// it (its key, its expiry, its lines), so Stripe answers each with the same
/// session.
pub(crate) async fn request_for(
    deps: &(impl HasStore + HasConfig),
    action: &Action,
    attempt: &Checkout,
) -> Result<CheckoutRequest, AppError> {
    let lines = checkout_lines(deps, action, action.locale()).await?;
    // Back to the page by the action id; the page finds the patient again by
    // the cookie it set when the link was opened (http::page).
    let back = deps.config().patient_links.return_url(action.action_id());
    Ok(CheckoutRequest {
        account: action.stripe_account_id().clone(),
        idempotency_key: format!("visitpay-checkout-{}-{}", action.action_id(), attempt.attempt),
        currency: action.currency(),
        lines,
        client_reference_id: action.action_id().to_string(),
        metadata: vec![
            (META_ACTION.to_owned(), action.action_id().to_string()),
            (META_CLINIC.to_owned(), action.clinic_id().to_string()),
        ],
        locale: action.locale(),
        expires_at: attempt.expires_at,
        success_url: format!("{back}?checkout=success&session_id={{CHECKOUT_SESSION_ID}}"),
        cancel_url: format!("{back}?checkout=cancelled"),
    })
}
