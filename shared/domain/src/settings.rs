//! A clinic's private-payment settings. Only support changes them.

use serde::{Deserialize, Deserializer, Serialize};

use crate::messaging::QuietHours;

use super::{ClinicId, Currency, DomainError, Timestamp, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub en: String,
    pub fr: String,
}

/// The language of the visit, and so of the label and of Stripe's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Locale {
    #[serde(rename = "fr-CA")]
    FrCa,
    #[serde(rename = "en-CA")]
    EnCa,
}

impl Locale {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.to_ascii_lowercase().as_str() {
            "fr" | "fr-ca" => Ok(Locale::FrCa),
            "en" | "en-ca" => Ok(Locale::EnCa),
            _ => Err(DomainError::InvalidLocale),
        }
    }
}

impl<'de> Deserialize<'de> for Locale {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Locale::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Label {
    pub fn for_locale(&self, locale: Locale) -> &str {
        match locale {
            Locale::FrCa => &self.fr,
            Locale::EnCa => &self.en,
        }
    }
}

/// What a Checkout line item says. `Generic` keeps health information away
/// from Stripe ("Clinic services — invoice 1042"); descriptions only when the
/// clinic opted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LineItemText {
    #[default]
    Generic,
    InvoiceDescription,
}

/// A Stripe connected account id, `acct_…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StripeAccountId(String);

impl StripeAccountId {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let rest = s.strip_prefix("acct_").unwrap_or("");
        if !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::InvalidSettings("stripe_account_id must look like acct_…"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for StripeAccountId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        StripeAccountId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The clinic's time zone, an IANA name (`America/Vancouver`): every date a
/// patient, an insurer or staff reads is a day there, not in UTC (a payment
/// at 21:00 in Vancouver is dated that day). Checked against the IANA time
/// zone database (bundled: a Lambda has none of its own to rely on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ClinicTimeZone(String);

/// Where most of visitpay's first clinics are.
pub const DEFAULT_TIME_ZONE: &str = "America/Toronto";

impl ClinicTimeZone {
    pub fn parse(name: &str) -> Result<Self, DomainError> {
        let refused = DomainError::InvalidSettings("time_zone must be an IANA time zone name, like America/Toronto");
        let name = name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(refused);
        }
        jiff::tz::db().get(name).map_err(|_| refused)?;
        Ok(ClinicTimeZone(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The zone's rules (UTC if the name is not in the database: stored
    /// names were checked when written).
    pub(crate) fn tz(&self) -> jiff::tz::TimeZone {
        jiff::tz::db().get(&self.0).unwrap_or(jiff::tz::TimeZone::UTC)
    }

    /// The calendar day `at` falls on in this zone.
    pub fn date_of(&self, at: Timestamp) -> time::Date {
        let zone = self.tz();
        let offset = jiff::Timestamp::from_second(at.unix_timestamp())
            .map(|instant| zone.to_offset(instant).seconds())
            .unwrap_or(0);
        (at + time::Duration::seconds(i64::from(offset))).date()
    }
}

impl Default for ClinicTimeZone {
    fn default() -> Self {
        ClinicTimeZone(DEFAULT_TIME_ZONE.to_owned())
    }
}

/// Stored names were checked when they were written; reading them back
/// does not consult the database (the functions that never show a date do
/// not carry it).
impl<'de> Deserialize<'de> for ClinicTimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ClinicTimeZone(String::deserialize(d)?))
    }
}

/// Where the clinic's Stripe Checkout pages are served: Stripe's own host,
/// or the clinic's Checkout custom domain (`pay.clinic.example`). The
/// patient page's Pay form is allowed to go there (its CSP `form-action`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CheckoutDomain(String);

pub const STRIPE_CHECKOUT_DOMAIN: &str = "checkout.stripe.com";

impl CheckoutDomain {
    pub fn parse(host: &str) -> Result<Self, DomainError> {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let labels_ok = host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if host.len() > 253 || host.split('.').count() < 2 || !labels_ok {
            return Err(DomainError::InvalidSettings(
                "checkout_domain must be a host name, like checkout.stripe.com or pay.clinic.example",
            ));
        }
        Ok(CheckoutDomain(host))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for CheckoutDomain {
    fn default() -> Self {
        CheckoutDomain(STRIPE_CHECKOUT_DOMAIN.to_owned())
    }
}

impl<'de> Deserialize<'de> for CheckoutDomain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        CheckoutDomain::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// How long a paid action's receipt stays reachable through the patient's
/// link (staff can always reach it): insurers take claims for a year or
/// more after the service.
pub const RECEIPT_DAYS: std::ops::RangeInclusive<u32> = 30..=3650;
pub const DEFAULT_RECEIPT_DAYS: u32 = 548;

pub const CHECKOUT_TTL_MINUTES: std::ops::RangeInclusive<u32> = 30..=1440;
pub const ACTION_TTL_HOURS: std::ops::RangeInclusive<u32> = 1..=720;
const MAX_LABEL_CHARS: usize = 80;

/// The body of `PUT /clinics/{clinic_id}/payment-settings`: a full replacement.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    pub enabled: bool,
    pub label: Label,
    #[serde(default)]
    pub stripe_account_id: Option<String>,
    pub currency: String,
    #[serde(default = "default_checkout_ttl")]
    pub checkout_ttl_minutes: u32,
    #[serde(default = "default_action_ttl")]
    pub action_ttl_hours: u32,
    #[serde(default)]
    pub line_item_text: LineItemText,
    #[serde(default)]
    pub receipt_issuer: ReceiptIssuer,
    /// Origins that may show the patient's page in a frame (the EMR's visit
    /// window), e.g. `https://emr.example.com`; none by default.
    #[serde(default)]
    pub embed_origins: Vec<String>,
    /// IANA name; `America/Toronto` by default.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Days a paid action's receipt stays reachable by the patient's link.
    #[serde(default = "default_receipt_days")]
    pub receipt_days: u32,
    /// The host of the clinic's Stripe Checkout pages; `checkout.stripe.com` by default.
    #[serde(default)]
    pub checkout_domain: Option<String>,
    /// Hours after assignment at which the patient is reminded (at most 3); none by default.
    #[serde(default)]
    pub reminder_hours: Vec<u32>,
    /// When nothing is sent, in the clinic's time zone; 20:00 to 09:00 by default.
    #[serde(default)]
    pub quiet_hours: QuietHours,
}

fn default_receipt_days() -> u32 {
    DEFAULT_RECEIPT_DAYS
}

const MAX_EMBED_ORIGINS: usize = 10;

/// Exact `https://host[:port]` origins (no path, no wildcard), lower-cased:
/// they go into the page's `frame-ancestors` as they are.
fn embed_origins(list: Vec<String>) -> Result<Vec<String>, DomainError> {
    let refused = DomainError::InvalidSettings(
        "embed_origins must be at most 10 origins, each https://host[:port] with no path or wildcard",
    );
    if list.len() > MAX_EMBED_ORIGINS {
        return Err(refused);
    }
    list.into_iter()
        .map(|origin| {
            let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
            let host = origin.strip_prefix("https://").ok_or(refused.clone())?;
            let valid = !host.is_empty()
                && host.len() <= 253
                && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
            if valid {
                Ok(origin)
            } else {
                Err(refused.clone())
            }
        })
        .collect()
}

/// Who issues the patient's receipt, as insurers ask: the clinic's legal
/// name, address and phone. Each optional; a receipt says which is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptIssuer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl ReceiptIssuer {
    fn validate(self) -> Result<Self, DomainError> {
        let field = |v| {
            super::invoice::optional_text(v, 200)
                .filter(|t| !t.as_deref().unwrap_or_default().chars().any(|c| c.is_control() && c != '\n'))
                .ok_or(DomainError::InvalidSettings("receipt_issuer fields are each at most 200 printable characters"))
        };
        Ok(ReceiptIssuer {
            legal_name: field(self.legal_name)?,
            address: field(self.address)?,
            phone: field(self.phone)?,
        })
    }
}

fn default_checkout_ttl() -> u32 {
    60
}
fn default_action_ttl() -> u32 {
    72
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSettings {
    pub clinic_id: ClinicId,
    pub enabled: bool,
    pub label: Label,
    pub stripe_account_id: Option<StripeAccountId>,
    pub currency: Currency,
    pub checkout_ttl_minutes: u32,
    pub action_ttl_hours: u32,
    pub line_item_text: LineItemText,
    pub receipt_issuer: ReceiptIssuer,
    pub embed_origins: Vec<String>,
    pub time_zone: ClinicTimeZone,
    pub receipt_days: u32,
    pub checkout_domain: CheckoutDomain,
    pub reminder_hours: Vec<u32>,
    pub quiet_hours: QuietHours,
    pub updated_at: Timestamp,
    pub updated_by: UserId,
}

impl PaymentSettings {
    /// Validates a support request into settings. A clinic cannot be switched
    /// on without a label in both languages and a Stripe account.
    pub fn from_input(
        clinic_id: ClinicId,
        input: SettingsInput,
        at: Timestamp,
        by: UserId,
    ) -> Result<Self, DomainError> {
        let label = Label { en: input.label.en.trim().to_owned(), fr: input.label.fr.trim().to_owned() };
        for text in [&label.en, &label.fr] {
            if text.is_empty() || text.chars().count() > MAX_LABEL_CHARS || text.chars().any(char::is_control) {
                return Err(DomainError::InvalidSettings(
                    "label.en and label.fr must each be 1 to 80 printable characters",
                ));
            }
        }
        let stripe_account_id = input.stripe_account_id.as_deref().map(StripeAccountId::parse).transpose()?;
        if input.enabled && stripe_account_id.is_none() {
            return Err(DomainError::InvalidSettings("a clinic needs stripe_account_id to be enabled"));
        }
        if !CHECKOUT_TTL_MINUTES.contains(&input.checkout_ttl_minutes) {
            return Err(DomainError::InvalidSettings(
                "checkout_ttl_minutes must be between 30 and 1440 (Stripe's limits)",
            ));
        }
        if !ACTION_TTL_HOURS.contains(&input.action_ttl_hours) {
            return Err(DomainError::InvalidSettings("action_ttl_hours must be between 1 and 720"));
        }
        if !RECEIPT_DAYS.contains(&input.receipt_days) {
            return Err(DomainError::InvalidSettings("receipt_days must be between 30 and 3650"));
        }
        Ok(PaymentSettings {
            clinic_id,
            enabled: input.enabled,
            label,
            stripe_account_id,
            currency: Currency::parse(&input.currency)?,
            checkout_ttl_minutes: input.checkout_ttl_minutes,
            action_ttl_hours: input.action_ttl_hours,
            line_item_text: input.line_item_text,
            receipt_issuer: input.receipt_issuer.validate()?,
            embed_origins: embed_origins(input.embed_origins)?,
            time_zone: input.time_zone.as_deref().map(ClinicTimeZone::parse).transpose()?.unwrap_or_default(),
            receipt_days: input.receipt_days,
            checkout_domain: input
                .checkout_domain
                .as_deref()
                .map(CheckoutDomain::parse)
                .transpose()?
                .unwrap_or_default(),
            reminder_hours: crate::messaging::reminder_hours(input.reminder_hours)?,
            quiet_hours: input.quiet_hours,
            updated_at: at,
            updated_by: by,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embed_origins_are_exact_https_origins() {
        let ok = embed_origins(vec!["https://EMR.example.com/".into(), "https://emr.example.com:8443".into()]);
        assert_eq!(ok.unwrap(), vec!["https://emr.example.com", "https://emr.example.com:8443"]);
        for bad in [
            "http://emr.example.com",
            "https://*.example.com",
            "https://emr.example.com/visit",
            "https://",
            "https://a b",
        ] {
            assert!(embed_origins(vec![bad.into()]).is_err(), "{bad}");
        }
        assert!(embed_origins(vec!["https://a.example".into(); 11]).is_err());
    }

    fn input(json: serde_json::Value) -> SettingsInput {
        serde_json::from_value(json).unwrap()
    }

    fn build(json: serde_json::Value) -> Result<PaymentSettings, DomainError> {
        PaymentSettings::from_input(
            ClinicId::parse("c1").unwrap(),
            input(json),
            time::OffsetDateTime::UNIX_EPOCH,
            UserId::parse("support-1").unwrap(),
        )
    }

    #[test]
    fn defaults_apply_and_currency_normalises() {
        let s = build(serde_json::json!({
            "enabled": true, "label": {"en": " Pay ", "fr": "Payer"},
            "stripe_account_id": "acct_123", "currency": "CAD"
        }))
        .unwrap();
        assert_eq!(s.label.en, "Pay");
        assert_eq!(s.currency.code(), "cad");
        assert_eq!((s.checkout_ttl_minutes, s.action_ttl_hours), (60, 72));
        assert_eq!(s.line_item_text, LineItemText::Generic);
    }

    #[test]
    fn enabling_needs_a_stripe_account() {
        let err = build(serde_json::json!({"enabled": true, "label": {"en": "a", "fr": "b"}, "currency": "cad"}));
        assert!(matches!(err, Err(DomainError::InvalidSettings(_))));
        assert!(
            build(serde_json::json!({"enabled": false, "label": {"en": "a", "fr": "b"}, "currency": "cad"})).is_ok()
        );
    }

    #[test]
    fn ttls_respect_stripe_limits() {
        for (ck, act) in [(29, 72), (1441, 72), (60, 0), (60, 721)] {
            let r = build(serde_json::json!({
                "enabled": false, "label": {"en": "a", "fr": "b"}, "currency": "cad",
                "checkout_ttl_minutes": ck, "action_ttl_hours": act
            }));
            assert!(r.is_err(), "{ck} {act}");
        }
    }

    #[test]
    fn labels_pick_the_visit_language() {
        let l = Label { en: "Pay".into(), fr: "Payer".into() };
        assert_eq!(l.for_locale(Locale::parse("fr").unwrap()), "Payer");
        assert_eq!(l.for_locale(Locale::parse("en-CA").unwrap()), "Pay");
        assert!(Locale::parse("de").is_err());
    }

    #[test]
    fn time_zones_are_iana_names_and_days_are_theirs() {
        let vancouver = ClinicTimeZone::parse("America/Vancouver").unwrap();
        // 21:00 in Vancouver on 1 December is 05:00 UTC on the 2nd.
        let at = time::macros::datetime!(2026-12-02 05:00 UTC);
        assert_eq!(vancouver.date_of(at), time::macros::date!(2026 - 12 - 01));
        assert_eq!(ClinicTimeZone::default().date_of(at), time::macros::date!(2026 - 12 - 02), "Toronto: midnight");
        // Daylight saving: 03:30 UTC on 1 July is 23:30 the day before in Toronto (UTC-4).
        let summer = time::macros::datetime!(2026-07-01 03:30 UTC);
        assert_eq!(ClinicTimeZone::default().date_of(summer), time::macros::date!(2026 - 06 - 30));
        for bad in ["", "Mars/Olympus", "../etc/passwd", &"a".repeat(80)] {
            assert!(ClinicTimeZone::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ClinicTimeZone::parse(" Asia/Kolkata ").unwrap().as_str(), "Asia/Kolkata");
    }

    #[test]
    fn new_settings_have_defaults_and_limits() {
        let base = serde_json::json!({"enabled": false, "label": {"en": "a", "fr": "b"}, "currency": "cad"});
        let s = build(base.clone()).unwrap();
        assert_eq!(
            (s.time_zone.as_str(), s.receipt_days, s.checkout_domain.as_str()),
            ("America/Toronto", 548, "checkout.stripe.com")
        );
        let with = |field: &str, value: serde_json::Value| {
            let mut json = base.clone();
            json[field] = value;
            build(json)
        };
        assert_eq!(
            with("checkout_domain", "Pay.Clinic.Example".into()).unwrap().checkout_domain.as_str(),
            "pay.clinic.example"
        );
        for bad in ["localhost", "pay clinic.example", "-pay.example", "https://pay.example", "pay..example"] {
            assert!(with("checkout_domain", bad.into()).is_err(), "{bad}");
        }
        assert!(with("receipt_days", 29.into()).is_err() && with("receipt_days", 3651.into()).is_err());
        assert_eq!(with("receipt_days", 365.into()).unwrap().receipt_days, 365);
        assert!(with("time_zone", "Nowhere/Town".into()).is_err());
    }
}
