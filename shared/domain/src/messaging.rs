//! Messages to the patient: the link (at assignment, or sent again by
//! staff), reminders at the hours the clinic chose, and the receipt once
//! paid. Each is decided once, as an intent with a key unique on its action
//! (`link-1`, `reminder-24`, `receipt`), and delivered off the request path;
//! when it is due, what it may still do is decided again (`Plan`), so a
//! reminder never goes out after payment, cancellation, expiry or an
//! opt-out, nor inside the clinic's quiet hours.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ActionId, Channel, ClinicId, ClinicTimeZone, DomainError, Timestamp};

/// At most this many reminders per action.
pub const MAX_REMINDERS: usize = 3;
/// Staff may send the link this many times in all (the first included).
pub const MAX_LINK_SENDS: u32 = 5;

/// A time of day, `HH:MM`, 24-hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let refused = DomainError::InvalidSettings("quiet_hours.from and .to are times of day, HH:MM (24-hour)");
        let (h, m) = s.trim().split_once(':').ok_or(refused.clone())?;
        let two_digits = |p: &str| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return Err(refused);
        }
        let (h, m): (u16, u16) = (h.parse().map_err(|_| refused.clone())?, m.parse().map_err(|_| refused.clone())?);
        if h > 23 || m > 59 {
            return Err(refused);
        }
        Ok(TimeOfDay(h * 60 + m))
    }

    pub fn hour(self) -> i8 {
        (self.0 / 60) as i8
    }
    pub fn minute(self) -> i8 {
        (self.0 % 60) as i8
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TimeOfDay::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// When the clinic sends nothing, in its time zone: from `from` until `to`,
/// across midnight when `from` is later than `to` (the default, 20:00 to
/// 09:00). Equal times mean no quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub from: TimeOfDay,
    pub to: TimeOfDay,
}

impl Default for QuietHours {
    fn default() -> Self {
        QuietHours { from: TimeOfDay(20 * 60), to: TimeOfDay(9 * 60) }
    }
}

impl QuietHours {
    fn quiet_at(&self, t: TimeOfDay) -> bool {
        match self.from.cmp(&self.to) {
            std::cmp::Ordering::Equal => false,
            std::cmp::Ordering::Less => self.from <= t && t < self.to,
            std::cmp::Ordering::Greater => t >= self.from || t < self.to,
        }
    }

    /// The first moment at or after `at` outside quiet hours, in `zone`: `at`
    /// itself, or the end of the quiet hours `at` falls in (daylight saving
    /// moves it as the wall clock moves).
    pub fn next_allowed(&self, at: Timestamp, zone: &ClinicTimeZone) -> Timestamp {
        let tz = zone.tz();
        let Ok(instant) = jiff::Timestamp::from_second(at.unix_timestamp()) else { return at };
        let local = instant.to_zoned(tz.clone());
        let now = TimeOfDay((local.hour() as u16) * 60 + local.minute() as u16);
        if !self.quiet_at(now) {
            return at;
        }
        // The end is `to` today, or tomorrow when the quiet hours began today.
        let mut day = local.date();
        if now >= self.to && self.from > self.to {
            day = day.tomorrow().unwrap_or(day);
        }
        let end = day.at(self.to.hour(), self.to.minute(), 0, 0);
        match end.to_zoned(tz) {
            Ok(zoned) => time::OffsetDateTime::from_unix_timestamp(zoned.timestamp().as_second()).unwrap_or(at),
            Err(_) => at,
        }
    }
}

/// The hours after assignment at which to remind: at most three, each
/// within an action's longest life (720 hours), in order, none twice.
pub fn reminder_hours(mut hours: Vec<u32>) -> Result<Vec<u32>, DomainError> {
    hours.sort_unstable();
    let unique = hours.windows(2).all(|w| w[0] != w[1]);
    if hours.len() > MAX_REMINDERS || !unique || hours.iter().any(|h| !(1..=720).contains(h)) {
        return Err(DomainError::InvalidSettings("reminder_hours: at most 3 different hours, each 1 to 720"));
    }
    Ok(hours)
}

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// The patient link (at assignment, or sent again by staff).
    Link,
    /// The link again, at one of the clinic's reminder hours.
    Reminder,
    /// The receipt, once paid, with its PDF.
    Receipt,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Link => "link",
            MessageKind::Reminder => "reminder",
            MessageKind::Receipt => "receipt",
        }
    }
}

/// What became of one channel of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ChannelOutcome {
    /// Handed to SES or SNS, which answered with this id.
    Sent {
        channel: Channel,
        provider_id: String,
        #[serde(with = "time::serde::rfc3339")]
        at: Timestamp,
    },
    /// Not sent, and why (`opted_out`, `no_address`).
    Skipped { channel: Channel, reason: String },
}

impl ChannelOutcome {
    pub fn channel(&self) -> Channel {
        match self {
            ChannelOutcome::Sent { channel, .. } | ChannelOutcome::Skipped { channel, .. } => *channel,
        }
    }
}

/// A message decided for an action, delivered when due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageIntent {
    pub clinic_id: ClinicId,
    pub action_id: ActionId,
    /// Unique on the action: `link-1`, `reminder-24`, `receipt`.
    pub key: String,
    pub kind: MessageKind,
    pub due_at: Timestamp,
    pub created_at: Timestamp,
    /// `None` while it waits; why it ended once done (`sent`, or why not).
    pub done: Option<String>,
    /// Each channel's outcome, once tried.
    pub outcomes: Vec<ChannelOutcome>,
    /// Deliveries that failed (SES or SNS unavailable); the next waits longer.
    pub failures: u32,
    /// Claimed by a deliverer that may be sending it now. Found still set
    /// once the claim ran out, the deliverer stopped between sending and
    /// recording: whether it went out cannot be known, and it is not sent
    /// again (at most once: a patient never gets the same message twice).
    pub sending: bool,
}

impl MessageIntent {
    pub fn new(clinic_id: ClinicId, action_id: ActionId, key: String, kind: MessageKind, due_at: Timestamp) -> Self {
        MessageIntent {
            clinic_id,
            action_id,
            key,
            kind,
            due_at,
            created_at: due_at,
            done: None,
            outcomes: Vec::new(),
            failures: 0,
            sending: false,
        }
    }

    pub fn is_pending(&self) -> bool {
        self.done.is_none()
    }

    /// Whether `channel` is settled (sent, or skipped for good).
    pub fn settled(&self, channel: Channel) -> bool {
        self.outcomes.iter().any(|o| o.channel() == channel)
    }

    /// Ended, with `why`.
    pub fn finish(&self, why: &str) -> MessageIntent {
        MessageIntent { done: Some(why.to_owned()), sending: false, ..self.clone() }
    }

    /// Waits until `until` (the end of quiet hours).
    pub fn defer(&self, until: Timestamp) -> MessageIntent {
        MessageIntent { due_at: until, ..self.clone() }
    }

    /// Claimed until `until` by a deliverer about to send it.
    pub fn claim(&self, until: Timestamp) -> MessageIntent {
        MessageIntent { due_at: until, sending: true, ..self.clone() }
    }

    /// Whether a deliverer claimed it and stopped before recording what it
    /// sent (its claim ran out at `now`).
    pub fn abandoned(&self, now: Timestamp) -> bool {
        self.sending && self.is_pending() && self.due_at <= now
    }

    /// A delivery that failed with nothing sent: tried again after a backoff
    /// that doubles (2, 4, 8… minutes, at most an hour); given up after 8 in a row.
    pub fn failed(&self, now: Timestamp) -> MessageIntent {
        let failures = self.failures.saturating_add(1);
        if failures >= 8 {
            return MessageIntent { failures, done: Some("failed".into()), sending: false, ..self.clone() };
        }
        let backoff = time::Duration::minutes(1 << failures.min(6)).min(time::Duration::hours(1));
        MessageIntent { failures, due_at: now + backoff, sending: false, ..self.clone() }
    }

    /// `outcome` recorded (a channel tried); done once every channel is.
    pub fn with_outcome(&self, outcome: ChannelOutcome, channels: &[Channel]) -> MessageIntent {
        let mut next = self.clone();
        next.sending = false;
        next.outcomes.retain(|o| o.channel() != outcome.channel());
        next.outcomes.push(outcome);
        if channels.iter().all(|c| next.settled(*c)) {
            let any_sent = next.outcomes.iter().any(|o| matches!(o, ChannelOutcome::Sent { .. }));
            next.done = Some(if any_sent { "sent" } else { "skipped" }.into());
        }
        next
    }
}

/// A patient's word that a clinic (or every clinic) must stop messaging an
/// address or a number, kept by its digest. `opted_out: false` is the word
/// to start again (`START`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOut {
    /// `None`: every clinic. A text's STOP is: every clinic texts from the
    /// same number, so the carrier and the patient see one sender.
    pub clinic_id: Option<ClinicId>,
    pub channel: Channel,
    pub digest: String,
    pub opted_out: bool,
    pub at: Timestamp,
    /// How it was said: `sms_keyword`, `unsubscribe_link`.
    pub source: &'static str,
}

/// An email's unsubscribe link: its token (kept by its hash) names the
/// clinic and the address's digest, never the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeLink {
    pub token_hash: String,
    pub clinic_id: ClinicId,
    pub email_digest: String,
    pub expires_at: Timestamp,
}

/// How long an unsubscribe link works: longer than a receipt stays reachable.
pub const UNSUBSCRIBE_LINK_DAYS: i64 = 400;

/// What an inbound text means, by the carriers' usual keywords (the CTIA's
/// STOP set, and French ARRÊT/ARRET as Canadian carriers honour it): stop,
/// start again, or nothing.
pub fn sms_keyword(body: &str) -> Option<bool> {
    let word = body.trim().trim_end_matches(['.', '!']).to_uppercase();
    match word.as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "ARRÊT" | "ARRET" | "ARRÊTER" | "ARRETER" => {
            Some(true)
        }
        "START" | "UNSTOP" | "YES" | "DÉBUT" | "DEBUT" => Some(false),
        _ => None,
    }
}

/// What to do with a due message now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Send on these channels.
    Send(Vec<Channel>),
    /// Not now: quiet hours end at this moment.
    Defer(Timestamp),
    /// Never: the action can no longer be paid, or has nothing to send to.
    Skip(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Timestamp {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    }

    #[test]
    fn quiet_hours_defer_to_their_end_in_the_clinics_zone() {
        let toronto = ClinicTimeZone::default();
        let quiet = QuietHours::default();
        // 14:00 in Toronto (EST, UTC-5): allowed.
        assert_eq!(quiet.next_allowed(utc("2026-12-01T19:00:00Z"), &toronto), utc("2026-12-01T19:00:00Z"));
        // 21:30 in Toronto: the next 09:00 there.
        assert_eq!(quiet.next_allowed(utc("2026-12-02T02:30:00Z"), &toronto), utc("2026-12-02T14:00:00Z"));
        // 06:00 in Toronto: 09:00 the same day.
        assert_eq!(quiet.next_allowed(utc("2026-12-02T11:00:00Z"), &toronto), utc("2026-12-02T14:00:00Z"));
        // 20:00 exactly is quiet, 09:00 exactly is not.
        assert_eq!(quiet.next_allowed(utc("2026-12-02T01:00:00Z"), &toronto), utc("2026-12-02T14:00:00Z"));
        assert_eq!(quiet.next_allowed(utc("2026-12-02T14:00:00Z"), &toronto), utc("2026-12-02T14:00:00Z"));
        // Across the spring change (8 March 2026): 09:00 EDT is 13:00 UTC.
        assert_eq!(quiet.next_allowed(utc("2026-03-08T05:00:00Z"), &toronto), utc("2026-03-08T13:00:00Z"));
        // In Vancouver in July (UTC-7), 21:00 local is 04:00 UTC: deferred to 09:00 there (16:00 UTC).
        let vancouver = ClinicTimeZone::parse("America/Vancouver").unwrap();
        assert_eq!(quiet.next_allowed(utc("2026-07-02T04:00:00Z"), &vancouver), utc("2026-07-02T16:00:00Z"));
        // A daytime window, and none at all.
        let lunch = QuietHours { from: TimeOfDay::parse("12:00").unwrap(), to: TimeOfDay::parse("13:00").unwrap() };
        assert_eq!(lunch.next_allowed(utc("2026-12-01T17:30:00Z"), &toronto), utc("2026-12-01T18:00:00Z"));
        let none = QuietHours { from: TimeOfDay::parse("08:00").unwrap(), to: TimeOfDay::parse("08:00").unwrap() };
        assert_eq!(none.next_allowed(utc("2026-12-02T02:30:00Z"), &toronto), utc("2026-12-02T02:30:00Z"));
    }

    #[test]
    fn texts_that_stop_and_start_again() {
        for stop in ["STOP", "stop", " Stop. ", "ARRÊT", "arrêt", "ARRET", "Unsubscribe", "QUIT"] {
            assert_eq!(sms_keyword(stop), Some(true), "{stop}");
        }
        for start in ["START", "unstop", "Début"] {
            assert_eq!(sms_keyword(start), Some(false), "{start}");
        }
        for other in ["stop please", "merci", "", "STOPPED"] {
            assert_eq!(sms_keyword(other), None, "{other}");
        }
    }

    #[test]
    fn times_and_reminder_hours_are_checked() {
        assert_eq!(TimeOfDay::parse("07:05").unwrap().to_string(), "07:05");
        for bad in ["7:05", "24:00", "12:60", "noon", "12-00", ""] {
            assert!(TimeOfDay::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(reminder_hours(vec![48, 24]).unwrap(), [24, 48]);
        assert!(reminder_hours(vec![]).unwrap().is_empty());
        for bad in [vec![1, 2, 3, 4], vec![24, 24], vec![0], vec![721]] {
            assert!(reminder_hours(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_intent_is_done_once_every_channel_is_settled_and_backs_off_when_it_fails() {
        let t0 = utc("2026-12-01T15:00:00Z");
        let intent = MessageIntent::new(
            ClinicId::parse("c").unwrap(),
            ActionId::parse("a").unwrap(),
            "link-1".into(),
            MessageKind::Link,
            t0,
        );
        let both = [Channel::Email, Channel::Sms];
        let email = ChannelOutcome::Sent { channel: Channel::Email, provider_id: "m-1".into(), at: t0 };
        let half = intent.with_outcome(email, &both);
        assert!(half.is_pending() && half.settled(Channel::Email) && !half.settled(Channel::Sms));
        let done =
            half.with_outcome(ChannelOutcome::Skipped { channel: Channel::Sms, reason: "opted_out".into() }, &both);
        assert_eq!(done.done.as_deref(), Some("sent"));
        let once = intent.failed(t0);
        assert_eq!((once.failures, once.due_at), (1, t0 + time::Duration::minutes(2)));
        let given_up = (0..8).fold(intent.clone(), |i, _| i.failed(t0));
        assert_eq!(given_up.done.as_deref(), Some("failed"));
    }
}
