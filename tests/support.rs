//! Helpers for the cross-cutting tests: fixtures built through the domain,
//! and a macro that runs one test body against both stores.

use std::sync::Arc;

use visitpay::app::{invoices, settings, Caller, Deps, Role};
use visitpay::domain::invoice::InvoiceInput;
use visitpay::domain::{ClinicId, InvoiceId, Label, LineItemText, PatientId, SettingsInput, UserId, VisitId};
use visitpay::ports::Store;

pub fn clinic(s: &str) -> ClinicId {
    ClinicId::parse(s).unwrap()
}
pub fn patient(s: &str) -> PatientId {
    PatientId::parse(s).unwrap()
}
pub fn visit(s: &str) -> VisitId {
    VisitId::parse(s).unwrap()
}
pub fn ids(list: &[&str]) -> Vec<InvoiceId> {
    list.iter().map(|s| InvoiceId::parse(s).unwrap()).collect()
}

pub fn staff(clinic_id: &str) -> Caller {
    Caller { sub: UserId::parse("staff-1").unwrap(), role: Role::Staff, clinic_id: Some(clinic(clinic_id)) }
}

pub fn support() -> Caller {
    Caller { sub: UserId::parse("support-1").unwrap(), role: Role::Support, clinic_id: None }
}

pub fn settings_input(enabled: bool, currency: &str) -> SettingsInput {
    SettingsInput {
        enabled,
        label: Label { en: "Private billing".into(), fr: "Facturation privée".into() },
        stripe_account_id: Some("acct_1Test".into()),
        currency: currency.into(),
        checkout_ttl_minutes: 60,
        action_ttl_hours: 72,
        line_item_text: LineItemText::Generic,
    }
}

pub async fn enable_clinic(deps: &Deps, clinic_id: &str) {
    settings::put(deps, &support(), clinic(clinic_id), settings_input(true, "cad")).await.unwrap();
}

pub fn invoice_input(amount: i64, currency: &str) -> InvoiceInput {
    InvoiceInput {
        amount,
        currency: currency.into(),
        description: "Consultation".into(),
        service_date: "2027-01-14".into(),
    }
}

pub async fn import(deps: &Deps, clinic_id: &str, patient_id: &str, invoice: &str, amount: i64, currency: &str) {
    invoices::import(
        deps,
        &clinic(clinic_id),
        &patient(patient_id),
        &ids(&[invoice])[0],
        invoice_input(amount, currency),
    )
    .await
    .unwrap();
}

/// Runs each listed `async fn(Arc<dyn Store>)` once on the embedded store and
/// once on DynamoDB (moto, a fresh table per test).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(std::sync::Arc::new(visitpay::testkit::embedded_store())).await
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let store = visitpay::testkit::dynamodb_store(stringify!($name)).await;
                    super::$name(std::sync::Arc::new(store)).await
                }
            )*
        }
    };
}

pub type DynStore = Arc<dyn Store>;
