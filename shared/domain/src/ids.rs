//! Identifiers validated once, at the edge: `[A-Za-z0-9_-]{1,64}`.
//!
//! Keeping the alphabet this small means an id can never smuggle a key
//! separator (`#`) into a DynamoDB key or a path into a URL.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

use super::DomainError;

pub const MAX_ID_LEN: usize = 64;

pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, DomainError> {
                if is_valid_id(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(DomainError::InvalidId { what: $what })
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A clinic (tenant). Every stored key starts with it.
    ClinicId,
    "clinic_id"
);
id_type!(PatientId, "patient_id");
id_type!(
    /// The clinic's own invoice number, unique within a patient's private billing.
    InvoiceId,
    "invoice_id"
);
id_type!(VisitId, "visit_id");
id_type!(ActionId, "action_id");
id_type!(
    /// The staff or support user (`sub` claim), recorded in history.
    UserId,
    "sub"
);

/// Stripe's object ids (`cs_test_a1…`, `pi_3…`, `re_3…`, `dp_1…`): what
/// Stripe sent, checked to be an id and nothing else (`[A-Za-z0-9_]`, at most
/// 255), so none can carry a key separator into a stored key or a path.
macro_rules! stripe_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, DomainError> {
                let valid = !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if valid {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(DomainError::InvalidId { what: $what })
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

stripe_id!(
    /// A Checkout Session.
    SessionId,
    "checkout session id"
);
stripe_id!(
    /// A PaymentIntent: a payment, the key refunds and disputes are found by.
    PaymentIntentId,
    "payment intent id"
);
stripe_id!(RefundId, "refund id");
stripe_id!(DisputeId, "dispute id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert!(ClinicId::parse("clinic_A-1").is_ok());
        assert!(ClinicId::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn rejects_everything_else() {
        for bad in ["", "a#b", "a b", "é", "a/b", "a.b", &"a".repeat(65)] {
            assert!(ClinicId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn stripe_ids_are_ids_and_nothing_else() {
        for good in ["cs_test_a1B2c3", "pi_3OtherSoftware0001", "re_1", "dp_1Q"] {
            assert!(SessionId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "cs#1", "cs 1", "cs/1", "cs-1", &"a".repeat(256)] {
            assert!(PaymentIntentId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<InvoiceId>("\"inv-1\"").is_ok());
        assert!(serde_json::from_str::<InvoiceId>("\"inv#1\"").is_err());
    }
}
