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
    fn deserializing_validates() {
        assert!(serde_json::from_str::<InvoiceId>("\"inv-1\"").is_ok());
        assert!(serde_json::from_str::<InvoiceId>("\"inv#1\"").is_err());
    }
}
