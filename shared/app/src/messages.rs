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
    /// Due, but left for the next run: this one was near its end.
    pub left: u32,
}

/// The ports a deliverer uses.
pub trait Deliverer: HasStore + HasClock + HasIds + HasConfig + HasMetrics + HasMessenger + HasPdf {}
impl<T: HasStore + HasClock + HasIds + HasConfig + HasMetrics + HasMessenger + HasPdf> Deliverer for T {}

/// A sweep takes no new message this close to the invocation's end: one
/// delivery (a PDF, two sends, two commits) fits well within it, and a
/// delivery cut short after sending is one that cannot be told apart from
/// one never sent.
const SWEEP_MARGIN: std::time::Duration = std::time::Duration::from_secs(15);

/// Delivers every message due now, oldest first, at most `limit`.
#[instrument(skip_all)]
pub async fn deliver_due(deps: &impl Deliverer, limit: usize) -> Result<Sweep, AppError> {
    let mut sweep = Sweep::default();
    for intent in deps.store().due_messages(deps.clock().now(), limit).await? {
        if crate::ports::deadline::remaining().is_some_and(|left| left < SWEEP_MARGIN) {
            sweep.left += 1;
            continue;
        }
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
                // What could not even be tried waits its turn again, behind the
                // others, and is given up on like any failure: one unreadable
                // message never holds the sweep's head.
                back_off(deps, &intent).await;
            }
        }
    }
    if sweep.due > 0 || sweep.left > 0 {
        tracing::info!(
            due = sweep.due,
            sent = sweep.sent,
            deferred = sweep.deferred,
            skipped = sweep.skipped,
            failed = sweep.failed,
            left = sweep.left,
            "messages swept"
        );
    }
    Ok(sweep)
}

/// A message whose delivery failed before it was claimed: its next try later.
async fn back_off(deps: &(impl HasStore + HasClock + HasMetrics), intent: &Stored<MessageIntent>) {
    let now = deps.clock().now();
    let Ok(Some(current)) = deps.store().get_message(&intent.action_id, &intent.key).await else { return };
    if !current.is_pending() || current.sending || current.due_at > now {
        return; // claimed, done or moved on meanwhile: not this one's to touch
    }
    let next = current.failed(now);
    if next.done.is_some() {
        deps.metrics().signal(MoneySignal::MessageFailed, Some((&current.clinic_id, &current.action_id)));
    }
    if let Err(e) = settle(deps, &current, next).await {
        tracing::warn!(action_id = %intent.action_id, key = %intent.key, error = %e, "a failed message could not be put back");
    }
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
    if intent.abandoned(now) {
        // Its deliverer stopped between sending and recording: it may have
        // gone out. At most once: it is not sent again, and someone looks.
        tracing::warn!(kind = intent.kind.as_str(), "a message's delivery was cut short; it is not sent again");
        deps.metrics().signal(MoneySignal::MessageFailed, Some((&intent.clinic_id, action_id)));
        settle(deps, &intent, intent.finish("unknown")).await?;
        return Ok(Delivered::Skipped("unknown".into()));
    }
    let Some(action) = deps.store().get_action(&intent.clinic_id, action_id).await? else {
        settle(deps, &intent, intent.finish("no_action")).await?;
        return Ok(Delivered::Skipped("no_action".into()));
    };
    let settings = deps.store().get_settings(action.clinic_id()).await?;
    let (quiet, zone) = match &settings {
        Some(s) => (s.quiet_hours, action.terms().time_zone.clone().unwrap_or_else(|| s.time_zone.clone())),
        None => Default::default(),
    };
    let channels = match action.plan(&intent, now, &quiet, &zone) {
        Plan::Skip(why) => {
            settle(deps, &intent, intent.finish(why)).await?;
            return Ok(Delivered::Skipped(why.into()));
        }
        Plan::Defer(until) => {
            settle(deps, &intent, intent.defer(until)).await?;
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
        settle(deps, &intent, done).await?;
        return Ok(Delivered::Skipped(why));
    }
    // Claim it, and make the links it carries valid (one per channel, so that
    // a replaced address's links can be taken back), before anything goes out.
    let tokens: Vec<(Channel, String)> =
        to_send.iter().map(|c| (*c, link_token(action_id, &deps.ids().link_token()))).collect();
    let unsubscribe_token = deps.ids().link_token();
    let claimed = next.claim(now + CLAIM);
    let linked =
        tokens.iter().fold(action.value.clone(), |a, (channel, token)| a.add_message_link(*channel, hash_token(token)));
    let mut writes = vec![
        Write::Message { intent: claimed.clone(), expect: intent.expect() },
        Write::Action { action: linked, expect: action.expect() },
    ];
    if let (true, Some(email)) = (to_send.contains(&Channel::Email), &action.contacts().email) {
        writes.push(Write::Unsubscribe(UnsubscribeLink {
            token_hash: hash_token(&unsubscribe_token),
            clinic_id: action.clinic_id().clone(),
            email_digest: email.digest(),
            expires_at: now + time::Duration::days(UNSUBSCRIBE_LINK_DAYS),
        }));
    }
    match deps.store().commit(writes).await {
        Ok(()) => {}
        // Another deliverer claimed it, or the action moved: the next prompt decides again.
        Err(crate::ports::StoreError::Conflict) => return Ok(Delivered::NotDue),
        Err(e) => return Err(e.into()),
    }
    let claimed = Stored { value: claimed, version: intent.expect().next_version() };

    // Ours now: whatever stops it before a send is a failure, tried again later.
    let composed =
        match compose(deps, &action, settings.as_ref(), &zone, intent.kind, &tokens, &unsubscribe_token).await {
            Ok(composed) => composed,
            Err(e) => {
                let retry = claimed.value.failed(now);
                if retry.done.is_some() {
                    deps.metrics().signal(MoneySignal::MessageFailed, Some((action.clinic_id(), action_id)));
                }
                record(deps, &claimed, retry, &[]).await?;
                return Err(e);
            }
        };
    let mut outcome = claimed.value.clone();
    let mut sent = Vec::new();
    let mut unavailable = false;
    for channel in &to_send {
        let result = match channel {
            Channel::Email => match (&composed.email, &action.contacts().email) {
                (Some(email), Some(_)) => deps.messenger().send_email(email).await,
                _ => Err(MessagingError::Rejected("no email to send".into())),
            },
            Channel::Sms => match (&composed.sms, &action.contacts().sms) {
                (Some(text), Some(to)) => deps.messenger().send_sms(&sms(&action, to, text)).await,
                _ => Err(MessagingError::Rejected("no text to send".into())),
            },
        };
        match result {
            Ok(provider_id) => {
                tracing::info!(channel = channel.as_str(), kind = intent.kind.as_str(), "message sent");
                let sent_on = ChannelOutcome::Sent { channel: *channel, provider_id, at: now };
                outcome = outcome.with_outcome(sent_on, &channels);
                sent.push(*channel);
            }
            Err(e @ (MessagingError::Rejected(_) | MessagingError::Unknown(_))) => {
                // The error carries the service's code, never the address or number.
                tracing::warn!(channel = channel.as_str(), error = %e, "a message was not sent, and is not tried again");
                deps.metrics().signal(MoneySignal::MessageFailed, Some((action.clinic_id(), action_id)));
                let reason = if matches!(e, MessagingError::Unknown(_)) { "unknown" } else { "rejected" };
                outcome = outcome
                    .with_outcome(ChannelOutcome::Skipped { channel: *channel, reason: reason.into() }, &channels);
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

/// Writes what became of a message that went nowhere (or not now). A receipt
/// settled for good, sent or not, takes the address off its action.
async fn settle(deps: &impl HasStore, intent: &Stored<MessageIntent>, next: MessageIntent) -> Result<(), AppError> {
    let mut writes = Vec::new();
    if next.kind == MessageKind::Receipt && next.done.is_some() {
        if let Some(action) = deps.store().get_action(&intent.clinic_id, &intent.action_id).await? {
            if !action.contacts().is_empty() {
                writes.push(Write::Action { action: action.receipt_settled(), expect: action.expect() });
            }
        }
    }
    writes.push(Write::Message { intent: next, expect: intent.expect() });
    match deps.store().commit(writes).await {
        // Another deliverer (or the action's own change) got there first: the
        // next prompt decides again.
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
        if claimed.kind == MessageKind::Receipt && outcome.done.is_some() {
            action = action.receipt_settled();
        }
        let mut writes = vec![Write::Message { intent: outcome.clone(), expect: claimed.expect() }];
        if action != current.value {
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
/// a link (each channel its own): nothing of health (no service, description
/// or provider).
struct Composed {
    email: Option<Email>,
    sms: Option<String>,
}

async fn compose(
    deps: &impl Deliverer,
    action: &Stored<Action>,
    settings: Option<&PaymentSettings>,
    zone: &visitpay_domain::ClinicTimeZone,
    kind: MessageKind,
    tokens: &[(Channel, String)],
    unsubscribe_token: &str,
) -> Result<Composed, AppError> {
    let words = texts::words(action.locale());
    let m = &words.messages;
    let clinic = settings
        .and_then(|s| s.receipt_issuer.legal_name.clone())
        .or_else(|| action.terms().receipt_issuer.as_ref().and_then(|i| i.legal_name.clone()))
        .unwrap_or_else(|| action.label().to_owned());
    // A name is one line: it goes into the subject and the sender's name.
    let clinic: String = clinic.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let amount = texts::money(action.total().amount, action.currency(), action.locale());
    let links = &deps.config().patient_links;
    let link_for = |channel: Channel| {
        tokens.iter().find(|(c, _)| *c == channel).map(|(_, token)| match kind {
            MessageKind::Receipt => format!("{}/receipt", links.link(token)),
            _ => links.link(token),
        })
    };
    let until = texts::date(action.expires_at(), action.locale(), zone);
    let unsubscribe = links.unsubscribe_url(unsubscribe_token);
    let (subject, body, sms) = match kind {
        MessageKind::Link => (m.link_subject, m.link_email, m.link_sms),
        MessageKind::Reminder => (m.reminder_subject, m.reminder_email, m.reminder_sms),
        MessageKind::Receipt => (m.receipt_subject, m.receipt_email, ""),
    };
    let fill_with = |text: &str, link: &str| {
        fill(text, &[("clinic", clinic.as_str()), ("amount", &amount), ("link", link), ("until", &until)])
    };
    let email = match (link_for(Channel::Email), action.contacts().email.clone()) {
        (Some(link), Some(to)) => {
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
            Some(Email {
                clinic_id: action.clinic_id().clone(),
                action_id: action.action_id().clone(),
                to,
                from_name: clinic.clone(),
                subject: fill_with(subject, &link),
                text: format!("{}\n\n--\n{footer}\n", fill_with(body, &link)),
                attachments,
                unsubscribe_url: unsubscribe.clone(),
            })
        }
        _ => None,
    };
    let sms = link_for(Channel::Sms).filter(|_| !sms.is_empty()).map(|link| fill_with(sms, &link));
    Ok(Composed { email, sms })
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
/// every further text to that number, from every clinic: they all text from
/// the same number, which is the one the patient answers and the carrier
/// stops. START undoes it. Anything else is not ours to read.
#[instrument(skip_all)]
pub async fn sms_received(
    deps: &(impl HasStore + HasClock),
    from: &PhoneNumber,
    body: &str,
) -> Result<Option<bool>, AppError> {
    let Some(opted_out) = visitpay_domain::messaging::sms_keyword(body) else { return Ok(None) };
    let record = OptOut {
        clinic_id: None,
        channel: Channel::Sms,
        digest: from.digest(),
        opted_out,
        at: deps.clock().now(),
        source: "sms_keyword",
    };
    deps.store().commit(vec![Write::OptOut(record)]).await?;
    tracing::info!(opted_out, "a patient's word on texts recorded");
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
