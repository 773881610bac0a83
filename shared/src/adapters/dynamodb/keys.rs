//! Every DynamoDB key shape, in one place. Ids cannot contain `#`
//! (`[A-Za-z0-9_-]`), so these keys cannot collide or be forged.

use crate::domain::{ActionId, ClinicId, InvoiceId, PatientId, Timestamp, VisitId};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const GSI1: &str = "gsi1";
pub const TTL: &str = "ttl";
pub const VERSION: &str = "version";

pub fn settings(clinic: &ClinicId) -> (String, String) {
    (format!("CLINIC#{clinic}"), "SETTINGS".into())
}

pub fn patient_partition(clinic: &ClinicId, patient: &PatientId) -> String {
    format!("CLINIC#{clinic}#PATIENT#{patient}")
}

pub const INVOICE_PREFIX: &str = "INVOICE#";

pub fn invoice(clinic: &ClinicId, patient: &PatientId, invoice: &InvoiceId) -> (String, String) {
    (patient_partition(clinic, patient), format!("{INVOICE_PREFIX}{invoice}"))
}

pub fn action(clinic: &ClinicId, action: &ActionId) -> (String, String) {
    (format!("CLINIC#{clinic}#ACTION#{action}"), "ACTION".into())
}

pub fn visit_partition(clinic: &ClinicId, visit: &VisitId) -> String {
    format!("CLINIC#{clinic}#VISIT#{visit}")
}

/// Sorts a visit's actions by creation time (RFC 3339 in UTC sorts as text).
pub fn visit_sort(created_at: Timestamp, action: &ActionId) -> String {
    let at = created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    format!("{at}#{action}")
}

pub fn link(token_hash: &str) -> (String, String) {
    (format!("LINK#{token_hash}"), "LINK".into())
}

pub fn idempotency(clinic: &ClinicId, key: &str) -> (String, String) {
    // The key is validated to [A-Za-z0-9_.:-], so no '#'.
    (format!("CLINIC#{clinic}#IDEMPOTENCY#{key}"), "IDEMPOTENCY".into())
}
