//! Messages to the patient, delivered off the request path: the link when
//! staff assign or send it, reminders, the receipt. Each message was decided
//! with its action, as an intent (`Write::Message`); delivering it decides
//! again what it may still do (`Action::plan`: never once the action cannot
//! be paid, never inside quiet hours), checks the patient's opt-outs, mints
//! the link it carries (its hash written on the action before it is sent, so
//! the link works), sends, and records what went out in the action's
//! history — the channel and when, never the address.
//!
//! Two deliverers may race (the table's stream and the schedule's sweep):
//! the one that moves the intent's due time forward first (a claim, in the
//! same commit as the link) sends; the other finds it not due.

use tracing::instrument;

use super::{receipt, texts, with_retries, AppError, HasClock, HasConfig, HasIds, HasMessenger, HasMetrics, HasPdf};
use super::{HasStore, NotFound};
use crate::ports::{Attachment, Email, MessagingError, MoneySignal, ReceiptPdf, Sms, Stored, Write};
use visitpay_domain::messaging::UNSUBSCRIBE_LINK_DAYS;
use visitpay_domain::{
    hash_token, link_token, Action, ActionEvent, ActionId, Actor, Channel, ChannelOutcome, ClinicId, MessageIntent,
    MessageKind, OptOut, PaymentSettings, PhoneNumber, Plan, Timestamp, UnsubscribeLink,
};
use visitpay_words::fill;

/// How long a deliverer holds a message it is sending: another waits that
/// long before trying it (a crash meanwhile delays it by as much).
const CLAIM: time::Duration = time::Duration::minutes(2);

/// What delivering one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Not yet (its time, or another deliverer holds it).
    NotDue,
    /// Done already (a repeated prompt).
    Done,
    /// Sent on these channels (others skipped: opted out, refused).
    Sent(Vec<Channel>),
    /// Waits for the end of quiet hours.
    Deferred(Timestamp),
    /// Never sent, and why.
    Skipped(String),
    /// SES or SNS was unavailable: tried again later.
    Failed,
}

/// What a sweep of due messages did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sweep {
    pub due: u32,
    pub sent: u32,
    pub deferred: u32,
    pub skipped: u32,
    pub failed: u32,
}

/// The ports a deliverer uses.
pub trait Deliverer: HasStore + HasClock + HasIds + HasConfig + HasMetrics + HasMessenger + HasPdf {}
impl<T: HasStore + HasClock + HasIds + HasConfig + HasMetrics + HasMessenger + HasPdf> Deliverer for T {}

/// Delivers every message due now, oldest first, at most `limit`.
#[instrument(skip_all)]
pub async fn deliver_due(deps: &impl Deliverer, limit: usize) -> Result<Sweep, AppError> {
    let mut sweep = Sweep::default();
    for intent in deps.store().due_messages(deps.clock().now(), limit).await? {
        sweep.due += 1;
        match deliver(deps, &intent.action_id, &intent.key).await {
            Ok(Delivered::Sent(_)) => sweep.sent += 1,
            Ok(Delivered::Deferred(_)) => sweep.deferred += 1,
            Ok(Delivered::Skipped(_)) => sweep.skipped += 1,
            Ok(Delivered::Failed) => sweep.failed += 1,
            Ok(Delivered::NotDue | Delivered::Done) => {}
            Err(e) => {
                tracing::warn!(action_id = %intent.action_id, key = %intent.key, error = %e, "a message could not be delivered now");
                sweep.failed += 1;
            }
        }
    }
    if sweep.due > 0 {
        tracing::info!(
            due = sweep.due,
            sent = sweep.sent,
            deferred = sweep.deferred,
            skipped = sweep.skipped,
            failed = sweep.failed,
            "messages swept"
        );
    }
    Ok(sweep)
}

/// Delivers one message, if it is due.
#[instrument(skip_all, fields(action_id = %action_id, key = %key))]
pub async fn deliver(deps: &impl Deliverer, action_id: &ActionId, key: &str) -> Result<Delivered, AppError> {
    let now = deps.clock().now();
    let Some(intent) = deps.store().get_message(action_id, key).await? else { return Ok(Delivered::Done) };
    if !intent.is_pending() {
        return Ok(Delivered::Done);
    }
    if intent.due_at > now {
        return Ok(Delivered::NotDue);
    }
    let Some(action) = deps.store().get_action(&intent.clinic_id, action_id).await? else {
        finish(deps, &intent, intent.finish("no_action")).await?;
        return Ok(Delivered::Skipped("no_action".into()));
    };
    let settings = deps.store().get_settings(action.clinic_id()).await?;
    let (quiet, zone) = match &settings {
        Some(s) => (s.quiet_hours, action.terms().time_zone.clone().unwrap_or_else(|| s.time_zone.clone())),
        None => Default::default(),
    };
    let channels = match action.plan(intent.kind, now, &quiet, &zone) {
        Plan::Skip(why) => {
            finish(deps, &intent, intent.finish(why)).await?;
            return Ok(Delivered::Skipped(why.into()));
        }
        Plan::Defer(until) => {
            finish(deps, &intent, intent.defer(until)).await?;
            return Ok(Delivered::Deferred(until));
        }
        Plan::Send(channels) => channels,
    };
    // The patient's word first: a channel they opted out of is settled, unsent.
    let mut next = intent.value.clone();
    let mut to_send = Vec::new();
    for channel in channels.iter().copied().filter(|c| !intent.settled(*c)) {
        let digest = match channel {
            Channel::Email => action.contacts().email.as_ref().map(|e| e.digest()),
            Channel::Sms => action.contacts().sms.as_ref().map(|p| p.digest()),
        };
        let reason = match &digest {
            Some(d) if deps.store().opted_out(action.clinic_id(), channel, d).await? => Some("opted_out"),
            Some(_) => None,
            None => Some("no_address"),
        };
        match reason {
            Some(reason) => {
                next = next.with_outcome(ChannelOutcome::Skipped { channel, reason: reason.into() }, &channels);
            }
            None => to_send.push(channel),
        }
    }
    if to_send.is_empty() {
        let done = if next.is_pending() { next.finish("opted_out") } else { next };
        let why = done.done.clone().unwrap_or_default();
        finish(deps, &intent, done).await?;
        return Ok(Delivered::Skipped(why));
    }
    // Claim it, and make the link it carries valid, before anything goes out.
    let secret = deps.ids().link_token();
    let token = link_token(action_id, &secret);
    let unsubscribe_token = deps.ids().link_token();
    let claimed = next.defer(now + CLAIM);
    let mut writes = vec![
        Write::Message { intent: claimed.clone(), expect: intent.expect() },
        Write::Action { action: action.add_message_link(hash_token(&token)), expect: action.expect() },
    ];
    if let (true, Some(email)) = (to_send.contains(&Channel::Email), &action.contacts().email) {
        writes.push(Write::Unsubscribe(UnsubscribeLink {
            token_hash: hash_token(&unsubscribe_token),
            clinic_id: action.clinic_id().clone(),
            email_digest: email.digest(),
            expires_at: now + time::Duration::days(UNSUBSCRIBE_LINK_DAYS),
        }));
    }
    if let (true, Some(phone)) = (to_send.contains(&Channel::Sms), &action.contacts().sms) {
        writes.push(Write::LastSms { phone_digest: phone.digest(), clinic_id: action.clinic_id().clone(), at: now });
    }
    match deps.store().commit(writes).await {
        Ok(()) => {}
        // Another deliverer claimed it, or the action moved: the next prompt decides again.
        Err(crate::ports::StoreError::Conflict) => return Ok(Delivered::NotDue),
        Err(e) => return Err(e.into()),
    }
    let claimed = Stored { value: claimed, version: intent.expect().next_version() };

    let composed = compose(deps, &action, settings.as_ref(), &zone, intent.kind, &token, &unsubscribe_token).await?;
    let mut outcome = claimed.value.clone();
    let mut sent = Vec::new();
    let mut unavailable = false;
    for channel in &to_send {
        let result = match channel {
            Channel::Email => match (&composed.email, &action.contacts().email) {
                (Some(email), Some(_)) => deps.messenger().send_email(email).await,
                _ => Err(MessagingError::Rejected("no email to send".into())),
            },
            Channel::Sms => match &action.contacts().sms {
                Some(to) => deps.messenger().send_sms(&sms(&action, to, &composed.sms)).await,
                None => Err(MessagingError::Rejected("no number".into())),
            },
        };
        match result {
            Ok(provider_id) => {
                tracing::info!(channel = channel.as_str(), kind = intent.kind.as_str(), "message sent");
                let sent_on = ChannelOutcome::Sent { channel: *channel, provider_id, at: now };
                outcome = outcome.with_outcome(sent_on, &channels);
                sent.push(*channel);
            }
            Err(MessagingError::Rejected(why)) => {
                tracing::warn!(channel = channel.as_str(), why = %why, "a message was refused");
                deps.metrics().signal(MoneySignal::MessageFailed, Some((action.clinic_id(), action_id)));
                let skipped = ChannelOutcome::Skipped { channel: *channel, reason: "rejected".into() };
                outcome = outcome.with_outcome(skipped, &channels);
            }
            Err(e @ MessagingError::Unavailable(_)) => {
                tracing::warn!(channel = channel.as_str(), error = %e, "messaging unavailable; tried again later");
                unavailable = true;
            }
        }
    }
    let outcome = if unavailable { outcome.failed(now) } else { outcome };
    if outcome.done.as_deref() == Some("failed") {
        deps.metrics().signal(MoneySignal::MessageFailed, Some((action.clinic_id(), action_id)));
    }
    record(deps, &claimed, outcome, &sent).await?;
    Ok(if unavailable && sent.is_empty() { Delivered::Failed } else { Delivered::Sent(sent) })
}

/// Writes what became of a message that went nowhere (or not now).
async fn finish(deps: &impl HasStore, intent: &Stored<MessageIntent>, next: MessageIntent) -> Result<(), AppError> {
    match deps.store().commit(vec![Write::Message { intent: next, expect: intent.expect() }]).await {
        // Another deliverer got there first: its word stands.
        Ok(()) | Err(crate::ports::StoreError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Records what went out: the message's outcome, and in the action's
/// history each channel sent (re-read on a conflict: the consumer may have
/// moved the action meanwhile; nothing is sent again).
async fn record(
    deps: &(impl HasStore + HasClock),
    claimed: &Stored<MessageIntent>,
    outcome: MessageIntent,
    sent: &[Channel],
) -> Result<(), AppError> {
    with_retries!({
        let current = deps
            .store()
            .get_action(&claimed.clinic_id, &claimed.action_id)
            .await?
            .ok_or(AppError::NotFound(NotFound::Action))?;
        let mut action = current.value.clone();
        for channel in sent {
            let event = ActionEvent::MessageSent { key: claimed.key.clone(), kind: claimed.kind, channel: *channel };
            action = action.apply(&event, deps.clock().now(), &Actor::Messages)?.action;
        }
        let mut writes = vec![Write::Message { intent: outcome.clone(), expect: claimed.expect() }];
        if !sent.is_empty() {
            writes.push(Write::Action { action, expect: current.expect() });
        }
        match deps.store().commit(writes).await {
            // The intent moved under us: another deliverer's claim ran out and it
            // took over. What we sent is in its history only if we wrote it.
            Err(crate::ports::StoreError::Conflict)
                if deps.store().get_message(&claimed.action_id, &claimed.key).await?.map(|m| m.version)
                    != Some(claimed.version) =>
            {
                tracing::warn!("a message was taken over while it was being sent");
                Ok(())
            }
            other => other.map_err(AppError::from),
        }
    })
}

/// A message in the patient's language, from the clinic, with the amount and
/// the link: nothing of health (no service, description or provider).
struct Composed {
    email: Option<Email>,
    sms: String,
}

async fn compose(
    deps: &impl Deliverer,
    action: &Stored<Action>,
    settings: Option<&PaymentSettings>,
    zone: &visitpay_domain::ClinicTimeZone,
    kind: MessageKind,
    token: &str,
    unsubscribe_token: &str,
) -> Result<Composed, AppError> {
    let words = texts::words(action.locale());
    let m = &words.messages;
    let clinic = settings
        .and_then(|s| s.receipt_issuer.legal_name.clone())
        .or_else(|| action.terms().receipt_issuer.as_ref().and_then(|i| i.legal_name.clone()))
        .unwrap_or_else(|| action.label().to_owned());
    let amount = texts::money(action.total().amount, action.currency(), action.locale());
    let links = &deps.config().patient_links;
    let link = match kind {
        MessageKind::Receipt => format!("{}/receipt", links.link(token)),
        _ => links.link(token),
    };
    let until = texts::date(action.expires_at(), action.locale(), zone);
    let unsubscribe = links.unsubscribe_url(unsubscribe_token);
    let vars = [("clinic", clinic.as_str()), ("amount", &amount), ("link", &link), ("until", &until)];
    let (subject, body, sms) = match kind {
        MessageKind::Link => (m.link_subject, m.link_email, m.link_sms),
        MessageKind::Reminder => (m.reminder_subject, m.reminder_email, m.reminder_sms),
        MessageKind::Receipt => (m.receipt_subject, m.receipt_email, ""),
    };
    let mut attachments = Vec::new();
    if kind == MessageKind::Receipt {
        let document = receipt::document(&receipt::of_action(deps, action, None).await?);
        let bytes = deps.pdf().render(&document).map_err(|e| AppError::Inconsistent(e.to_string()))?;
        attachments.push(Attachment {
            filename: format!("{}-{}.pdf", m.receipt_file, document.number),
            content_type: "application/pdf".into(),
            bytes,
        });
    }
    let footer = fill(m.email_footer, &[("clinic", clinic.as_str()), ("unsubscribe", &unsubscribe)]);
    let email = action.contacts().email.clone().map(|to| Email {
        clinic_id: action.clinic_id().clone(),
        action_id: action.action_id().clone(),
        to,
        from_name: clinic.clone(),
        subject: fill(subject, &vars),
        text: format!("{}\n\n--\n{footer}\n", fill(body, &vars)),
        attachments,
        unsubscribe_url: unsubscribe,
    });
    Ok(Composed { email, sms: fill(sms, &vars) })
}

fn sms(action: &Action, to: &PhoneNumber, text: &str) -> Sms {
    Sms {
        clinic_id: action.clinic_id().clone(),
        action_id: action.action_id().clone(),
        to: to.clone(),
        text: text.to_owned(),
    }
}

/// A text from a patient (the SMS service's two-way channel; locally,
/// `POST /_local/sms/inbound`): STOP (and the carriers' other words) stops
/// every further text to that number from the clinic that last texted it
/// (from every clinic when that is not known); START undoes it. Anything
/// else is not ours to read.
#[instrument(skip_all)]
pub async fn sms_received(
    deps: &(impl HasStore + HasClock),
    from: &PhoneNumber,
    body: &str,
) -> Result<Option<bool>, AppError> {
    let Some(opted_out) = visitpay_domain::messaging::sms_keyword(body) else { return Ok(None) };
    let digest = from.digest();
    let clinic = deps.store().last_sms_clinic(&digest).await?;
    let record = OptOut {
        clinic_id: clinic.clone(),
        channel: Channel::Sms,
        digest,
        opted_out,
        at: deps.clock().now(),
        source: "sms_keyword",
    };
    deps.store().commit(vec![Write::OptOut(record)]).await?;
    tracing::info!(opted_out, clinic_known = clinic.is_some(), "a patient's word on texts recorded");
    Ok(Some(opted_out))
}

/// An email's unsubscribe link, if it is one (its page asks to confirm:
/// mail scanners open links, and opening must change nothing).
pub async fn unsubscribe_link(deps: &(impl HasStore + HasClock), token: &str) -> Result<UnsubscribeLink, AppError> {
    let link = deps.store().get_unsubscribe(&hash_token(token)).await?;
    link.filter(|l| l.expires_at > deps.clock().now()).ok_or(AppError::NotFound(NotFound::Unsubscribe))
}

/// The patient confirms (or their mail client posts RFC 8058's one-click
/// unsubscribe): no more email from that clinic to that address.
#[instrument(skip_all)]
pub async fn unsubscribe(deps: &(impl HasStore + HasClock), token: &str) -> Result<ClinicId, AppError> {
    let link = unsubscribe_link(deps, token).await?;
    let record = OptOut {
        clinic_id: Some(link.clinic_id.clone()),
        channel: Channel::Email,
        digest: link.email_digest,
        opted_out: true,
        at: deps.clock().now(),
        source: "unsubscribe_link",
    };
    deps.store().commit(vec![Write::OptOut(record)]).await?;
    tracing::info!(clinic_id = %link.clinic_id, "an address unsubscribed");
    Ok(link.clinic_id)
}

/// Renders a receipt as a PDF (the receipt-pdf function and the receipt's email).
pub fn receipt_pdf(pdf: &dyn ReceiptPdf, receipt: &receipt::Receipt) -> Result<Vec<u8>, AppError> {
    pdf.render(&receipt::document(receipt)).map_err(|e| AppError::Inconsistent(e.to_string()))
}
