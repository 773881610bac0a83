//! Messages to patients, on both stores, with the clock moved across days:
//! the link by email and text when staff assign and when they send it again,
//! reminders that wait out quiet hours and stop for good once the action is
//! paid, cancelled or expired, opt-outs (STOP, the unsubscribe link), no
//! duplicate under redelivery, and the receipt by email with its PDF. Every
//! message passes `kit::NoHealthData` on its way to the outbox.
//!
//! The clock starts at 2027-01-15T08:00:00Z: 03:00 in Toronto, the clinic's
//! time zone, inside the default quiet hours (20:00–09:00).

use std::sync::Arc;

use visitpay_app::actions::{assign, send_link, AssignRequest, Assigned, Reach as LinkReach};
use visitpay_app::messages::{self, Delivered, Sweep};
use visitpay_app::{invoices, settings, AppError};
use visitpay_devkit::outbox::{Outbox, OutboxMessage};
use visitpay_domain::{ActionStatus, Channel, Contacts, EmailAddress, Locale, PhoneNumber};

use crate::support::kit::{self, FixedClock};
use crate::support::*;

/// 2027-01-15T08:00:00Z.
const T0: i64 = 1_800_000_000;
const HOUR: i64 = 3600;
const EMAIL: &str = "patient@example.com";
const PHONE: &str = "+15145550199";
/// What the invoices say, which no message may.
const DESCRIPTION: &str = "Physiothérapie — entorse lombaire";
const SERVICE: &str = "Physiothérapie";
const PROVIDER: &str = "Dre Nadia Tremblay";

struct Reach {
    deps: TestDeps,
    clock: Arc<FixedClock>,
    outbox: Arc<Outbox>,
    metrics: Arc<visitpay_devkit::recorded_metrics::RecordedMetrics>,
    stripe: StripeFixture,
}

fn both() -> Contacts {
    Contacts { email: Some(EmailAddress::parse(EMAIL).unwrap()), sms: Some(PhoneNumber::parse(PHONE).unwrap()) }
}

/// Clinic c1 in Toronto with reminders at `reminder_hours`, Stripe on the
/// same clock, an outbox.
async fn reach(store: DynStore, reminder_hours: Vec<u32>) -> Reach {
    let stripe = stripe_emulator_at(None, T0).await;
    let (mut deps, clock) = deps_for_payments(store, &stripe, None);
    let outbox = kit::record_messages(&mut deps);
    let metrics = kit::record_metrics(&mut deps);
    let mut input = settings_input(true, "cad");
    input.reminder_hours = reminder_hours;
    input.time_zone = Some("America/Toronto".into());
    input.line_item_text = visitpay_domain::LineItemText::InvoiceDescription;
    settings::put(&deps, &support(), clinic("c1"), input).await.unwrap();
    Reach { deps, clock, outbox, metrics, stripe }
}

impl Reach {
    /// Invoice `id` (with its description, service and provider) assigned in
    /// French to a patient reachable at `notify`; the action and its link token.
    async fn assign(&self, id: &str, notify: Contacts) -> (StoredAction, String) {
        let mut input = invoice_input(4500, "cad");
        input.description = DESCRIPTION.into();
        input.receipt.service = Some(SERVICE.into());
        input.receipt.provider_name = Some(PROVIDER.into());
        input.receipt.profession = Some("Physiothérapeute".into());
        invoices::import(&self.deps, &clinic("c1"), &patient("p1"), &ids(&[id])[0], input).await.unwrap();
        invoices::select(&self.deps, &clinic("c1"), &patient("p1"), &ids(&[id])).await.unwrap();
        let request =
            AssignRequest { patient_id: patient("p1"), invoice_ids: ids(&[id]), locale: Locale::FrCa, notify };
        match assign(&self.deps, &staff("c1"), &clinic("c1"), &visit("v1"), request, None, first_answer).await.unwrap()
        {
            Assigned::Created { action, patient_url } => (action, patient_url.rsplit('/').next().unwrap().to_owned()),
            other => panic!("{other:?}"),
        }
    }

    async fn sweep(&self) -> Sweep {
        messages::deliver_due(&self.deps, 100).await.unwrap()
    }

    fn sent(&self) -> Vec<OutboxMessage> {
        self.outbox.of_clinic(&clinic("c1"))
    }

    fn sent_on(&self, channel: Channel) -> Vec<OutboxMessage> {
        self.sent().into_iter().filter(|m| m.channel == channel).collect()
    }

    /// Moves the clock (and Stripe's) to `hours` after T0.
    fn at(&self, hours: i64) {
        let now = visitpay_app::ports::Clock::now(self.clock.as_ref()).unix_timestamp();
        self.clock.advance(T0 + hours * HOUR - now);
    }
}

/// Staff send the link again, without an Idempotency-Key.
async fn send_again(
    deps: &TestDeps,
    clinic: &visitpay_domain::ClinicId,
    action: &visitpay_domain::ActionId,
    contacts: Contacts,
) -> Result<StoredAction, AppError> {
    match send_link(deps, clinic, action, contacts, None, first_answer).await? {
        visitpay_app::actions::LinkSent::Decided(action) => Ok(action),
        other => panic!("no key, no replay: {other:?}"),
    }
}

/// The link a message carries, as its token.
fn link_in(body: &str) -> String {
    let start = body.find("/patient/actions/").expect("a link") + "/patient/actions/".len();
    body[start..].split(|c: char| c.is_whitespace()).next().unwrap().trim_end_matches(['.', ')']).to_owned()
}

async fn link_goes_out_at_once_by_email_and_text_in_the_visits_language(store: DynStore) {
    let r = reach(store, vec![]).await;
    let (action, _) = r.assign("1", both()).await;
    // Staff assigned at 03:00 Toronto time: the link is not a reminder; the patient is with them.
    let sweep = r.sweep().await;
    assert_eq!((sweep.due, sweep.sent), (1, 1), "{sweep:?}");
    let email = r.sent_on(Channel::Email).pop().expect("an email");
    let sms = r.sent_on(Channel::Sms).pop().expect("a text");
    assert_eq!((email.to.as_str(), sms.to.as_str()), (EMAIL, PHONE));
    assert_eq!(email.action_id, *action.action_id());
    let subject = email.subject.clone().unwrap();
    assert!(subject.contains("Facturation privée"), "the clinic's French label: {subject}");
    for body in [&email.body, &sms.body] {
        assert!(body.contains("45,00"), "the amount, written in French: {body}");
        // Each message's own link opens the action.
        let token = link_in(body);
        let opened = visitpay_app::actions::for_patient(&r.deps, &token, LinkReach::Pay).await.unwrap();
        assert_eq!(opened.action_id(), action.action_id());
    }
    assert!(email.body.contains("/unsubscribe/"), "an email carries its unsubscribe link: {}", email.body);
    // The history says what went out and when, never where to.
    let history = action_of(&r.deps, "c1", action.action_id()).await;
    let said: Vec<String> = history.history().entries().iter().map(|e| format!("{e:?}")).collect();
    assert!(said.iter().any(|e| e.contains("sent by email")), "{said:?}");
    assert!(said.iter().any(|e| e.contains("sent by sms")), "{said:?}");
    assert!(said.iter().all(|e| !e.contains(EMAIL) && !e.contains(PHONE)), "{said:?}");
    // Sent is sent: the sweep and the stream's prompt again find it done.
    assert_eq!(r.sweep().await.due, 0);
    assert_eq!(messages::deliver(&r.deps, action.action_id(), "link-1").await.unwrap(), Delivered::Done);
    assert_eq!(r.sent().len(), 2);
}

async fn staff_send_the_link_again_and_bad_input_changes_nothing(store: DynStore) {
    let r = reach(store, vec![]).await;
    let (action, _) = r.assign("1", Contacts::default()).await;
    assert_eq!(r.sweep().await.due, 0, "nobody to send to: no message at all");
    let before = action_of(&r.deps, "c1", action.action_id()).await;
    let code = |e: AppError| visitpay_edge::http::ApiError::from(e).code.to_owned();
    let nobody = send_again(&r.deps, &clinic("c1"), action.action_id(), Contacts::default()).await.unwrap_err();
    assert_eq!(code(nobody), "no_contact");
    assert_eq!(action_of(&r.deps, "c1", action.action_id()).await.version, before.version, "refused: nothing changed");
    let email_only = Contacts { email: Some(EmailAddress::parse(EMAIL).unwrap()), sms: None };
    for _ in 0..visitpay_domain::messaging::MAX_LINK_SENDS {
        send_again(&r.deps, &clinic("c1"), action.action_id(), email_only.clone()).await.unwrap();
    }
    let too_many = send_again(&r.deps, &clinic("c1"), action.action_id(), email_only.clone()).await.unwrap_err();
    assert_eq!(code(too_many), "too_many_sends");
    let sweep = r.sweep().await;
    assert_eq!(sweep.sent, visitpay_domain::messaging::MAX_LINK_SENDS, "{sweep:?}");
    assert!(r.sent_on(Channel::Sms).is_empty(), "no number was given");
    // Another clinic's staff cannot send it.
    let theirs = send_again(&r.deps, &clinic("c2"), action.action_id(), email_only).await.unwrap_err();
    assert_eq!(code(theirs), "action_not_found");
}

async fn reminders_wait_out_quiet_hours_and_never_come_twice(store: DynStore) {
    let r = reach(store, vec![2, 30]).await;
    let (action, _) = r.assign("1", both()).await;
    r.sweep().await;
    assert_eq!(r.sent().len(), 2, "the link");
    // Two hours later (05:00 Toronto): the reminder is due, but it is night.
    r.at(2);
    let sweep = r.sweep().await;
    assert_eq!((sweep.due, sweep.deferred, sweep.sent), (1, 1, 0), "{sweep:?}");
    // 08:59: still quiet, and not even due (deferred to 09:00).
    r.at(5);
    r.clock.advance(59 * 60);
    assert_eq!(r.sweep().await.due, 0);
    // 09:00: out it goes, once, whatever prompts it again.
    r.clock.advance(60);
    assert_eq!(r.sweep().await.sent, 1);
    assert_eq!(r.sweep().await.due, 0);
    assert_eq!(messages::deliver(&r.deps, action.action_id(), "reminder-2").await.unwrap(), Delivered::Done);
    assert_eq!(r.sent().len(), 4, "link and reminder, each by email and text");
    // The next day: the 30-hour reminder falls at 14:00 Toronto time, inside the day.
    r.at(30);
    assert_eq!(r.sweep().await.sent, 1);
    assert_eq!(r.sent().len(), 6);
}

async fn no_reminder_after_payment_and_the_receipt_comes_by_email_with_its_pdf(store: DynStore) {
    let r = reach(store, vec![24]).await;
    let (action, token) = r.assign("1", both()).await;
    r.sweep().await;
    // Paid that morning (10:00 Toronto).
    r.at(7);
    let session = open_checkout(&r.deps, "c1", action.action_id(), &token).await;
    r.stripe.pay(&session, "succeeded").await;
    deliver_all(&r.deps, &r.stripe).await;
    assert_eq!(action_of(&r.deps, "c1", action.action_id()).await.status(), ActionStatus::Paid);
    let sweep = r.sweep().await;
    assert_eq!(sweep.sent, 1, "the receipt: {sweep:?}");
    let receipt = r.sent_on(Channel::Email).pop().unwrap();
    let pdf = receipt.attachments.first().expect("the receipt's PDF");
    assert_eq!(pdf.content_type, "application/pdf");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(&pdf.content_base64).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    assert!(receipt.body.contains("/receipt"), "the lasting receipt link: {}", receipt.body);
    assert_eq!(r.sent_on(Channel::Sms).len(), 1, "the receipt goes by email only");
    // The next day's reminder: never, the action is paid; and the contacts are gone.
    r.at(24 + 6);
    let sweep = r.sweep().await;
    assert_eq!((sweep.due, sweep.skipped, sweep.sent), (1, 1, 0), "{sweep:?}");
    let paid = action_of(&r.deps, "c1", action.action_id()).await;
    assert!(paid.contacts().is_empty(), "nothing kept to reach the patient once the receipt went out");
    // A redelivered payment event sends no second receipt.
    deliver_all(&r.deps, &r.stripe).await;
    assert_eq!(r.sweep().await.due, 0);
    assert_eq!(r.sent().len(), 3);
}

async fn no_reminder_after_cancellation_or_expiry(store: DynStore) {
    let r = reach(store, vec![10, 80]).await;
    let (cancelled, _) = r.assign("1", both()).await;
    let (expiring, _) = r.assign("2", both()).await;
    r.sweep().await;
    assert_eq!(r.sent().len(), 4);
    visitpay_app::actions::cancel(&r.deps, &staff("c1"), &clinic("c1"), cancelled.action_id()).await.unwrap();
    // 10 hours later (13:00 Toronto): the cancelled action's reminder is skipped, the other's sent.
    r.at(10);
    let sweep = r.sweep().await;
    assert_eq!((sweep.sent, sweep.skipped), (1, 1), "{sweep:?}");
    let to_cancelled = r.sent().iter().filter(|m| m.action_id == *cancelled.action_id()).count();
    assert_eq!(to_cancelled, 2, "the cancelled action's link (email and text), and no reminder");
    // The action lives 72 hours: at 80 it has expired, and its reminder never
    // goes (nor the cancelled one's).
    r.at(80);
    let sweep = r.sweep().await;
    assert_eq!((sweep.sent, sweep.skipped), (0, 2), "{sweep:?}");
    assert_eq!(r.sent().iter().filter(|m| m.action_id == *expiring.action_id()).count(), 4);
}

async fn stop_and_unsubscribe_are_honoured_until_start(store: DynStore) {
    let r = reach(store, vec![6, 30]).await;
    let (action, _) = r.assign("1", both()).await;
    r.sweep().await;
    // The patient answers the text.
    let phone = PhoneNumber::parse(PHONE).unwrap();
    assert_eq!(messages::sms_received(&r.deps, &phone, "ARRÊT").await.unwrap(), Some(true));
    assert_eq!(messages::sms_received(&r.deps, &phone, "merci!").await.unwrap(), None, "not ours to read");
    r.at(6);
    r.sweep().await;
    let reminder: Vec<_> = r.sent().into_iter().skip(2).collect();
    assert_eq!(reminder.iter().map(|m| m.channel).collect::<Vec<_>>(), [Channel::Email], "no text after ARRÊT");
    // The email's unsubscribe link: its page changes nothing; confirming does.
    let url = reminder[0].body.split_whitespace().find(|w| w.contains("/unsubscribe/")).unwrap().to_owned();
    let token = url.rsplit('/').next().unwrap();
    messages::unsubscribe_link(&r.deps, token).await.unwrap();
    messages::unsubscribe(&r.deps, token).await.unwrap();
    assert!(matches!(messages::unsubscribe_link(&r.deps, "x".repeat(43).as_str()).await, Err(AppError::NotFound(_))));
    r.at(30);
    let sweep = r.sweep().await;
    assert_eq!((sweep.sent, sweep.skipped), (0, 1), "opted out of both: {sweep:?}");
    // Staff may still send the link: the patient's word stands.
    send_again(&r.deps, &clinic("c1"), action.action_id(), both()).await.unwrap();
    assert_eq!(r.sweep().await.sent, 0);
    // START brings texts back.
    assert_eq!(messages::sms_received(&r.deps, &phone, "START").await.unwrap(), Some(false));
    send_again(&r.deps, &clinic("c1"), action.action_id(), both()).await.unwrap();
    r.sweep().await;
    assert_eq!(r.sent().last().unwrap().channel, Channel::Sms);
    assert_eq!(r.sent().len(), 4);
}

async fn a_redelivered_prompt_sends_once(store: DynStore) {
    let r = reach(store, vec![]).await;
    let (action, _) = r.assign("1", both()).await;
    // The stream and the sweep race for the same message.
    let (a, b) = tokio::join!(
        messages::deliver(&r.deps, action.action_id(), "link-1"),
        messages::deliver(&r.deps, action.action_id(), "link-1"),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Delivered::Sent(_))).count(), 1, "{outcomes:?}");
    assert_eq!(r.sent().len(), 2);
    for _ in 0..3 {
        messages::deliver(&r.deps, action.action_id(), "link-1").await.unwrap();
        r.sweep().await;
    }
    assert_eq!(r.sent().len(), 2);
}

/// One number, every clinic: they all text from the same number, so the
/// patient's STOP to one clinic's text stops every clinic's texts to it
/// (the carrier and the patient see one sender); email is each clinic's own.
async fn stop_from_a_number_stops_every_clinic(store: DynStore) {
    let r = reach(store, vec![]).await;
    let mut other = settings_input(true, "cad");
    other.time_zone = Some("America/Toronto".into());
    settings::put(&r.deps, &support(), clinic("c2"), other).await.unwrap();
    r.assign("1", both()).await;
    r.sweep().await;
    let phone = PhoneNumber::parse(PHONE).unwrap();
    assert_eq!(messages::sms_received(&r.deps, &phone, "STOP").await.unwrap(), Some(true));
    // Clinic c2 assigns to the same patient's number and address.
    import(&r.deps, "c2", "p1", "9", 2000, "cad").await;
    invoices::select(&r.deps, &clinic("c2"), &patient("p1"), &ids(&["9"])).await.unwrap();
    let request =
        AssignRequest { patient_id: patient("p1"), invoice_ids: ids(&["9"]), locale: Locale::EnCa, notify: both() };
    assign(&r.deps, &staff("c2"), &clinic("c2"), &visit("v9"), request, None, first_answer).await.unwrap();
    r.sweep().await;
    let theirs = r.outbox.of_clinic(&clinic("c2"));
    assert_eq!(theirs.iter().map(|m| m.channel).collect::<Vec<_>>(), [Channel::Email], "no text after STOP");
}

/// A deliverer that stopped between sending and recording (a crash, a
/// timeout) leaves its claim: when it runs out, the message may have gone,
/// so it is not sent again (at most once), and the alarm's signal says so.
async fn a_delivery_cut_short_is_never_sent_twice(store: DynStore) {
    use visitpay_app::ports::{MoneySignal, Write};
    let r = reach(store.clone(), vec![]).await;
    let (action, _) = r.assign("1", both()).await;
    let intent = store.get_message(action.action_id(), "link-1").await.unwrap().unwrap();
    // Claimed by a deliverer that never came back.
    let claimed = intent.value.claim(visitpay_app::ports::Clock::now(r.clock.as_ref()) + time::Duration::minutes(2));
    store.commit(vec![Write::Message { intent: claimed, expect: intent.expect() }]).await.unwrap();
    assert_eq!(r.sweep().await.due, 0, "claimed: not due");
    r.clock.advance(121);
    let sweep = r.sweep().await;
    assert_eq!((sweep.due, sweep.sent, sweep.skipped), (1, 0, 1), "{sweep:?}");
    assert!(r.sent().is_empty(), "not sent again");
    let done = store.get_message(action.action_id(), "link-1").await.unwrap().unwrap();
    assert_eq!(done.done.as_deref(), Some("unknown"));
    let failed = r.metrics.signals().iter().filter(|(s, _)| *s == MoneySignal::MessageFailed).count();
    assert_eq!(failed, 1, "someone is told");
}

/// A receipt that cannot go (the address unsubscribed) still takes the
/// address off the paid action: contacts live no longer than they serve.
async fn an_unsent_receipt_still_forgets_the_address(store: DynStore) {
    let r = reach(store, vec![]).await;
    let (action, token) = r.assign("1", Contacts { email: Some(EmailAddress::parse(EMAIL).unwrap()), sms: None }).await;
    r.sweep().await;
    let unsubscribe = r.sent()[0].body.split_whitespace().find(|w| w.contains("/unsubscribe/")).unwrap().to_owned();
    messages::unsubscribe(&r.deps, unsubscribe.rsplit('/').next().unwrap()).await.unwrap();
    let session = open_checkout(&r.deps, "c1", action.action_id(), &token).await;
    r.stripe.pay(&session, "succeeded").await;
    deliver_all(&r.deps, &r.stripe).await;
    let sweep = r.sweep().await;
    assert_eq!((sweep.sent, sweep.skipped), (0, 1), "{sweep:?}");
    assert!(action_of(&r.deps, "c1", action.action_id()).await.contacts().is_empty());
}

on_both_stores!(
    stop_from_a_number_stops_every_clinic,
    a_delivery_cut_short_is_never_sent_twice,
    an_unsent_receipt_still_forgets_the_address,
    link_goes_out_at_once_by_email_and_text_in_the_visits_language,
    staff_send_the_link_again_and_bad_input_changes_nothing,
    reminders_wait_out_quiet_hours_and_never_come_twice,
    no_reminder_after_payment_and_the_receipt_comes_by_email_with_its_pdf,
    no_reminder_after_cancellation_or_expiry,
    stop_and_unsubscribe_are_honoured_until_start,
    a_redelivered_prompt_sends_once,
);
