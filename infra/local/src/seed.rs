//! The demo data a fresh local run starts with. Seeded through the same use
//! cases the API calls, so it obeys every rule; but for the clinic's account,
//! which is the emulator's own demo account by construction (and is seeded
//! before the server, the emulator's included, answers anything).

use visitpay_app::{invoices, AppError, HasClock, HasStore};
use visitpay_domain::invoice::InvoiceInput;
use visitpay_domain::{
    ClinicId, DomainError, InvoiceId, Label, LineItemText, PatientId, PaymentSettings, SettingsInput, UserId,
};

pub const DEMO_CLINIC: &str = "demo-clinic";
pub const DEMO_PATIENT: &str = "demo-patient";
pub const DEMO_VISIT: &str = "demo-visit";
pub const DEMO_STRIPE_ACCOUNT: &str = "acct_1DemoClinic";
pub const DEMO_INVOICES: &[(&str, i64, &str)] = &[
    ("1042", 4500, "Follow-up consultation"),
    ("1043", 1500, "Medical note for employer"),
    ("1044", 12000, "Annual physical (private)"),
];

pub async fn seed(deps: &(impl HasStore + HasClock)) -> Result<(), AppError> {
    let clinic = ClinicId::parse(DEMO_CLINIC)?;
    let settings = PaymentSettings::from_input(
        clinic.clone(),
        SettingsInput {
            enabled: true,
            label: Label { en: "Private billing (Stripe)".into(), fr: "Facturation privée (Stripe)".into() },
            stripe_account_id: Some(DEMO_STRIPE_ACCOUNT.into()),
            currency: "cad".into(),
            checkout_ttl_minutes: 60,
            action_ttl_hours: 72,
            line_item_text: LineItemText::Generic,
            receipt_issuer: Default::default(),
            embed_origins: Vec::new(),
            time_zone: None,
            receipt_days: visitpay_domain::settings::DEFAULT_RECEIPT_DAYS,
            checkout_domain: None,
            // The demo reminds a day before the link's end; never at night in Toronto.
            reminder_hours: vec![48],
            quiet_hours: Default::default(),
        },
        deps.clock().now(),
        UserId::parse("demo-support")?,
    )?;
    deps.store().put_settings(&settings).await?;
    // Its undelivered events are read back by the catch-up, as any clinic's are.
    let account = visitpay_domain::StripeAccountId::parse(DEMO_STRIPE_ACCOUNT)?;
    visitpay_app::catch_up::follow(deps, &account, deps.clock().now()).await?;
    let patient = PatientId::parse(DEMO_PATIENT)?;
    for (id, amount, description) in DEMO_INVOICES {
        let input = InvoiceInput {
            amount: *amount,
            currency: "cad".into(),
            description: (*description).into(),
            service_date: "2026-11-20".into(),
            receipt: Default::default(),
        };
        match invoices::import(deps, &clinic, &patient, &InvoiceId::parse(id)?, input).await {
            // A persistent store (DynamoDB) may already hold them, possibly in use.
            Ok(_) | Err(AppError::Domain(DomainError::InvoiceLocked(_))) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
