//! The patient's contacts and the messages sent to them: which messages the
//! action calls for (the link and its reminders at assignment, the link
//! again when staff send it, the receipt once paid), what a due one may
//! still do (`plan`), and what was sent. Contacts live only while the
//! action does: an ended action forgets them, a paid one once its receipt
//! went out.

use super::{stay, Action, ActionStatus, Step};
use crate::messaging::{MessageIntent, MessageKind, Plan, QuietHours, MAX_LINK_SENDS};
use crate::{Channel, ClinicTimeZone, Contacts, DomainError, Timestamp};

/// At most this many links minted for messages stay valid on an action:
/// one per message (the link, its sends again, reminders, the receipt).
pub const MAX_MESSAGE_LINKS: usize = 1 + MAX_LINK_SENDS as usize + crate::messaging::MAX_REMINDERS + 2;

/// A link a message carried: the SHA-256 of its token (each message, on
/// each channel, its own token, minted as it is sent; never stored), and the
/// channel it went by, so that replacing an address or a number takes back
/// the links it was sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageLink {
    pub channel: Channel,
    pub hash: String,
}

/// What was sent to the patient, and the links messages carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Messages {
    /// How many times the link was sent (its intents are `link-1`…).
    pub(crate) link_sends: u32,
    pub(crate) links: Vec<MessageLink>,
}

impl Messages {
    pub fn new(link_sends: u32, links: Vec<MessageLink>) -> Self {
        Messages { link_sends, links }
    }
    pub fn link_sends(&self) -> u32 {
        self.link_sends
    }
    pub fn links(&self) -> &[MessageLink] {
        &self.links
    }
}

impl Action {
    pub fn contacts(&self) -> &Contacts {
        &self.contacts
    }

    pub fn messages(&self) -> &Messages {
        &self.messages
    }

    /// The messages an action calls for when it is assigned: the link now,
    /// and a reminder at each of the clinic's reminder hours, if there is
    /// anyone to send them to.
    pub fn messages_at_assignment(&self) -> Vec<MessageIntent> {
        if self.contacts.is_empty() {
            return Vec::new();
        }
        let intent =
            |key: String, kind, due| MessageIntent::new(self.clinic_id.clone(), self.action_id.clone(), key, kind, due);
        let mut intents = vec![intent("link-1".into(), MessageKind::Link, self.created_at)];
        for hours in &self.terms.reminder_hours {
            let due = self.created_at + time::Duration::hours(i64::from(*hours));
            intents.push(intent(format!("reminder-{hours}"), MessageKind::Reminder, due));
        }
        intents
    }

    /// Staff send the link (again), to `contacts` as given now (replacing
    /// what the action had, channel by channel: an address or number
    /// replaced loses the links it was sent, a typo's stranger included).
    /// Refused once the action can no longer be paid, without anyone to send
    /// to, or past the bound.
    pub fn send_link(&self, contacts: &Contacts, now: Timestamp) -> Result<(Action, MessageIntent), DomainError> {
        self.payable(now)?;
        let updated = self.contacts.updated(contacts);
        if updated.is_empty() {
            return Err(DomainError::NoContact);
        }
        let sends = self.messages.link_sends;
        if sends >= MAX_LINK_SENDS {
            return Err(DomainError::TooManySends(sends));
        }
        let mut next = self.clone();
        let replaced = |channel| match channel {
            Channel::Email => self.contacts.email.is_some() && updated.email != self.contacts.email,
            Channel::Sms => self.contacts.sms.is_some() && updated.sms != self.contacts.sms,
        };
        next.messages.links.retain(|link| !replaced(link.channel));
        next.contacts = updated;
        next.messages.link_sends = sends + 1;
        let key = format!("link-{}", sends + 1);
        let intent = MessageIntent::new(self.clinic_id.clone(), self.action_id.clone(), key, MessageKind::Link, now);
        Ok((next, intent))
    }

    /// The receipt's message, when the action was just paid and has an
    /// address to send it to.
    pub fn receipt_message(&self, now: Timestamp) -> Option<MessageIntent> {
        (self.status.was_paid() && self.contacts.email.is_some()).then(|| {
            MessageIntent::new(
                self.clinic_id.clone(),
                self.action_id.clone(),
                "receipt".into(),
                MessageKind::Receipt,
                now,
            )
        })
    }

    /// What a due message may do now: the link and reminders only while the
    /// action can be paid, and never inside the clinic's quiet hours (a link
    /// staff just sent goes at once, the patient being with them; not one
    /// that failed and comes back later); the receipt once paid, by email.
    /// Opt-outs are the deliverer's to check.
    pub fn plan(&self, intent: &MessageIntent, now: Timestamp, quiet: &QuietHours, zone: &ClinicTimeZone) -> Plan {
        let kind = intent.kind;
        match kind {
            MessageKind::Link | MessageKind::Reminder => {
                if self.payable(now).is_err() {
                    return Plan::Skip("no_longer_payable");
                }
                if kind == MessageKind::Reminder || intent.failures > 0 {
                    let allowed = quiet.next_allowed(now, zone);
                    if allowed > now {
                        return if allowed < self.expires_at {
                            Plan::Defer(allowed)
                        } else {
                            Plan::Skip("quiet_hours")
                        };
                    }
                }
                match self.contacts.channels() {
                    channels if channels.is_empty() => Plan::Skip("no_address"),
                    channels => Plan::Send(channels),
                }
            }
            MessageKind::Receipt if !self.status.was_paid() => Plan::Skip("not_paid"),
            MessageKind::Receipt if self.contacts.email.is_none() => Plan::Skip("no_address"),
            MessageKind::Receipt => Plan::Send(vec![Channel::Email]),
        }
    }

    /// A link minted for a message on `channel` (`hash` of its token)
    /// becomes valid: written before the message is sent, so the link it
    /// carries works.
    pub fn add_message_link(&self, channel: Channel, hash: String) -> Action {
        let mut next = self.clone();
        if !next.messages.links.iter().any(|l| l.hash == hash) {
            next.messages.links.push(MessageLink { channel, hash });
            // Bounded: the oldest goes first.
            let extra = next.messages.links.len().saturating_sub(MAX_MESSAGE_LINKS);
            next.messages.links.drain(..extra);
        }
        next
    }

    /// The hashes of the link tokens that open this action: the visit's
    /// link, and each one a message carried.
    pub fn link_hashes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.token_hash.as_str()).chain(self.messages.links.iter().map(|l| l.hash.as_str()))
    }

    /// The receipt's message is settled (sent or not): the address it went
    /// to is kept no longer.
    pub fn receipt_settled(&self) -> Action {
        let mut next = self.clone();
        next.contacts = Contacts::default();
        next
    }

    /// A message went out on `channel`: the history says so (never where to).
    pub(crate) fn message_sent(&mut self, kind: MessageKind, channel: Channel) -> Step {
        if kind == MessageKind::Receipt {
            // The receipt is the last message: the address is not kept after it.
            self.contacts = Contacts::default();
        }
        stay(self.status, format!("{} sent by {}", kind.as_str(), channel.as_str()), None)
    }

    /// An ended action keeps nothing to reach the patient by; a paid one
    /// keeps the address its receipt goes to.
    pub(crate) fn forget_contacts_on(&mut self, to: ActionStatus) {
        match to {
            ActionStatus::Cancelled | ActionStatus::Expired | ActionStatus::Failed => {
                self.contacts = Contacts::default()
            }
            ActionStatus::Paid => self.contacts.sms = None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::{ActionEvent, EmailAddress, NewAction, PhoneNumber};

    fn contacts() -> Contacts {
        Contacts {
            email: Some(EmailAddress::parse("patient@example.com").unwrap()),
            sms: Some(PhoneNumber::parse("+15145550100").unwrap()),
        }
    }

    /// The fixture action with contacts and reminders at 24 and 48 hours.
    fn reachable(ttl_hours: i64) -> Action {
        let a = action();
        let mut terms = a.terms().clone();
        terms.reminder_hours = vec![24, 48];
        Action::assign(
            NewAction {
                clinic_id: a.clinic_id().clone(),
                action_id: a.action_id().clone(),
                visit_id: a.visit_id().clone(),
                patient_id: a.patient_id().clone(),
                label: a.label().to_owned(),
                locale: a.locale(),
                lines: a.lines().to_vec(),
                total: a.total(),
                token_hash: "h".into(),
                expires_at: t(ttl_hours * 3600),
                terms,
                contacts: contacts(),
            },
            t(0),
            &stripe(),
        )
    }

    fn message(kind: MessageKind, channel: Channel) -> ActionEvent {
        ActionEvent::MessageSent { key: kind.as_str().into(), kind, channel }
    }

    /// A message of `kind` due now for the fixture action.
    fn due(kind: MessageKind) -> MessageIntent {
        let a = action();
        MessageIntent::new(a.clinic_id().clone(), a.action_id().clone(), kind.as_str().into(), kind, t(0))
    }

    #[test]
    fn an_action_with_contacts_calls_for_its_link_and_reminders() {
        let keys: Vec<_> = reachable(72).messages_at_assignment().into_iter().map(|i| (i.key, i.due_at)).collect();
        assert_eq!(
            keys,
            [
                ("link-1".to_owned(), t(0)),
                ("reminder-24".to_owned(), t(24 * 3600)),
                ("reminder-48".to_owned(), t(48 * 3600))
            ]
        );
        assert!(action().messages_at_assignment().is_empty(), "nobody to send to");
    }

    #[test]
    fn staff_send_the_link_again_while_it_can_be_paid_a_bounded_number_of_times() {
        let a = reachable(72);
        let (again, intent) = a.send_link(&Contacts::default(), t(10)).unwrap();
        assert_eq!((intent.key.as_str(), again.messages().link_sends()), ("link-2", 2));
        let new_phone = Contacts { email: None, sms: Some(PhoneNumber::parse("+15145550199").unwrap()) };
        let (moved, _) = again.send_link(&new_phone, t(20)).unwrap();
        assert_eq!(moved.contacts().sms, new_phone.sms, "the number given now replaces the old one");
        assert_eq!(moved.contacts().email, contacts().email, "the address stays");
        let mut many = moved;
        while many.messages().link_sends() < MAX_LINK_SENDS {
            many = many.send_link(&Contacts::default(), t(30)).unwrap().0;
        }
        assert_eq!(many.send_link(&Contacts::default(), t(40)).unwrap_err(), DomainError::TooManySends(MAX_LINK_SENDS));
        assert_eq!(action().send_link(&Contacts::default(), t(10)).unwrap_err(), DomainError::NoContact);
        let paid = step(&a, paid("cs")).action;
        assert_eq!(paid.send_link(&contacts(), t(10)).unwrap_err(), DomainError::AlreadyPaid);
        assert_eq!(a.send_link(&contacts(), t(72 * 3600)).unwrap_err(), DomainError::ActionExpired);
    }

    #[test]
    fn a_reminder_waits_out_quiet_hours_and_never_goes_once_the_action_cannot_be_paid() {
        let a = reachable(72);
        let zone = ClinicTimeZone::default();
        let quiet = QuietHours::default();
        // t(0) is 2027-01-15T08:00:00Z: 03:00 in Toronto, inside quiet hours.
        assert!(
            matches!(a.plan(&due(MessageKind::Reminder), t(0), &quiet, &zone), Plan::Defer(at) if at == t(6 * 3600))
        );
        assert_eq!(
            a.plan(&due(MessageKind::Link), t(0), &quiet, &zone),
            Plan::Send(vec![Channel::Email, Channel::Sms]),
            "a link staff send goes at once"
        );
        assert_eq!(
            a.plan(&due(MessageKind::Reminder), t(6 * 3600), &quiet, &zone),
            Plan::Send(vec![Channel::Email, Channel::Sms])
        );
        let paid = step(&a, paid("cs")).action;
        assert_eq!(paid.plan(&due(MessageKind::Reminder), t(6 * 3600), &quiet, &zone), Plan::Skip("no_longer_payable"));
        let cancelled = step(&a, cancel()).action;
        assert_eq!(
            cancelled.plan(&due(MessageKind::Reminder), t(6 * 3600), &quiet, &zone),
            Plan::Skip("no_longer_payable")
        );
        assert_eq!(a.plan(&due(MessageKind::Reminder), t(72 * 3600), &quiet, &zone), Plan::Skip("no_longer_payable"));
        // Quiet hours that end after the action does: never.
        let short = reachable(3);
        assert_eq!(short.plan(&due(MessageKind::Reminder), t(0), &quiet, &zone), Plan::Skip("quiet_hours"));
        // A link that failed and comes back at night waits for the morning too.
        let retried = due(MessageKind::Link).failed(t(0));
        assert!(matches!(a.plan(&retried, t(0), &quiet, &zone), Plan::Defer(at) if at == t(6 * 3600)));
    }

    #[test]
    fn contacts_live_only_while_the_action_does() {
        let a = reachable(72);
        assert!(step(&a, cancel()).action.contacts().is_empty(), "cancelled: forgotten");
        let paid = step(&a, paid("cs")).action;
        assert_eq!(
            (paid.contacts().email.is_some(), paid.contacts().sms.is_none()),
            (true, true),
            "the receipt's address stays"
        );
        let zone = ClinicTimeZone::default();
        assert_eq!(
            paid.plan(&due(MessageKind::Receipt), t(20), &QuietHours::default(), &zone),
            Plan::Send(vec![Channel::Email])
        );
        let receipt = paid.receipt_message(t(20)).unwrap();
        assert_eq!(receipt.key, "receipt");
        let sent = step(&paid, message(MessageKind::Receipt, Channel::Email));
        assert!(sent.changed && sent.action.contacts().is_empty(), "after the receipt, nothing is kept");
        assert!(sent.action.history().entries().last().unwrap().reason.contains("receipt sent by email"));
        assert!(sent.action.receipt_message(t(30)).is_none());
        assert!(action().receipt_message(t(20)).is_none(), "unpaid");
    }

    #[test]
    fn message_links_open_the_action_and_are_bounded() {
        let mut a = reachable(72);
        for n in 0..MAX_MESSAGE_LINKS + 2 {
            a = a.add_message_link(Channel::Email, format!("hash-{n}"));
        }
        let hashes: Vec<&str> = a.link_hashes().collect();
        assert_eq!(hashes.len(), 1 + MAX_MESSAGE_LINKS);
        assert_eq!(hashes[0], "h", "the visit's link stays");
        assert!(!hashes.contains(&"hash-1") && hashes.contains(&"hash-12"), "the oldest went first");
    }

    /// Staff typed the address wrong, then corrected it: the links the
    /// stranger got open nothing any more (after payment, its receipt would
    /// name the services); the number's links, unchanged, still work.
    #[test]
    fn replacing_an_address_takes_back_the_links_it_was_sent() {
        let a = reachable(72)
            .add_message_link(Channel::Email, "to-the-typo".into())
            .add_message_link(Channel::Sms, "to-the-phone".into());
        let same = a.send_link(&contacts(), t(10)).unwrap().0;
        assert_eq!(same.link_hashes().count(), 3, "the same contacts again take nothing back");
        let corrected = Contacts { email: Some(EmailAddress::parse("right@example.com").unwrap()), sms: None };
        let fixed = a.send_link(&corrected, t(10)).unwrap().0;
        let hashes: Vec<&str> = fixed.link_hashes().collect();
        assert_eq!(hashes, ["h", "to-the-phone"]);
    }

    #[test]
    fn a_settled_receipt_forgets_the_address_whatever_became_of_it() {
        let paid = step(&reachable(72), paid("cs")).action;
        assert!(paid.contacts().email.is_some());
        assert!(paid.receipt_settled().contacts().is_empty());
    }
}
