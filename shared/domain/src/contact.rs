//! How a patient is reached: an email address and a mobile number, checked
//! at the edge, kept on the action only while it lives, never logged. Opt-outs
//! are kept by a digest of the address, per clinic: the address itself is not
//! kept once the action ends.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::DomainError;

/// An email address a message can go to: `local@domain`, at most 254
/// characters, a dot-atom local part (RFC 5322 §3.2.3, no quoted strings,
/// no comments) and a DNS host name of at least two labels. Nothing that
/// could end a mail header (no spaces, no CR or LF, no `<>`, no `,`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        let bad = || DomainError::InvalidEmail;
        if s.is_empty() || s.len() > 254 {
            return Err(bad());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local.split('.').all(|part| !part.is_empty() && part.chars().all(atext));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
        if !local_ok || !domain_ok {
            return Err(bad());
        }
        Ok(EmailAddress(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What an opt-out is kept by: a digest, not the address.
    pub fn digest(&self) -> String {
        digest(&self.0.to_ascii_lowercase())
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for EmailAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EmailAddress::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A mobile number in E.164: `+`, a country code and the number, 8 to 15
/// digits in all, the first not 0 (ITU-T E.164; what SNS and End User
/// Messaging take). Spaces, dots, dashes and parentheses a person types are
/// dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.len() > 40 {
            return Err(DomainError::InvalidPhone);
        }
        let compact: String = s.trim().chars().filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')')).collect();
        let digits = compact.strip_prefix('+').ok_or(DomainError::InvalidPhone)?;
        let valid =
            (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0');
        if !valid {
            return Err(DomainError::InvalidPhone);
        }
        Ok(PhoneNumber(compact))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What an opt-out is kept by: a digest, not the number.
    pub fn digest(&self) -> String {
        digest(&self.0)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PhoneNumber::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the patient of an action is reached; either may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Contacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<PhoneNumber>,
}

impl Contacts {
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.sms.is_none()
    }

    /// The channels these contacts reach.
    pub fn channels(&self) -> Vec<Channel> {
        let mut channels = Vec::new();
        if self.email.is_some() {
            channels.push(Channel::Email);
        }
        if self.sms.is_some() {
            channels.push(Channel::Sms);
        }
        channels
    }

    /// `self` with what `newer` gives replacing it.
    pub fn updated(&self, newer: &Contacts) -> Contacts {
        Contacts {
            email: newer.email.clone().or_else(|| self.email.clone()),
            sms: newer.sms.clone().or_else(|| self.sms.clone()),
        }
    }
}

/// How a message reaches the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_addresses_and_nothing_that_ends_a_header() {
        for good in ["patient@example.com", "a.b+visit@mail.example.ca", "O'Brien@Example.COM"] {
            assert!(EmailAddress::parse(good).is_ok(), "{good}");
        }
        assert_eq!(EmailAddress::parse(" Ann@Example.COM ").unwrap().as_str(), "Ann@example.com");
        for bad in [
            "",
            "patient",
            "@example.com",
            "patient@",
            "patient@example",
            "pa tient@example.com",
            "patient@example.com\r\nBcc: all@example.com",
            "<patient@example.com>",
            "a,b@example.com",
            "a..b@example.com",
            ".a@example.com",
            "a@-example.com",
            "a@example.c0m",
            &format!("{}@example.com", "a".repeat(65)),
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn phone_numbers_are_e164() {
        assert_eq!(PhoneNumber::parse("+1 (514) 555-0100").unwrap().as_str(), "+15145550100");
        assert!(PhoneNumber::parse("+33612345678").is_ok());
        for bad in ["5145550100", "+0514555010", "+1514", "+1514555010012345", "+1514555O100", "", "+"] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn opt_outs_are_kept_by_digest_whatever_the_case_of_the_address() {
        let a = EmailAddress::parse("Ann@Example.com").unwrap();
        let b = EmailAddress::parse("ann@example.com").unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.digest().len(), 64);
        assert!(!a.digest().contains("ann"));
    }
}
