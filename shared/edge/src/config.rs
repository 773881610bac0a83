//! Configuration read once per cold start.

use std::sync::Arc;

use crate::system::{RandomIds, SystemClock};
use secrecy::{ExposeSecret, SecretString};
use visitpay_app::{AppConfig, Deps, Outbox, Queue, Stripe};
use visitpay_aws::dynamodb::DynamoStore;
use visitpay_aws::emf::{EmfMetrics, Sink};
use visitpay_aws::messaging::{SenderSettings, SesSnsMessenger};
pub use visitpay_aws::sdk::SecretSource;
use visitpay_aws::sdk::{secret, SetupError};
use visitpay_aws::sqs::SqsQueue;
use visitpay_aws::tables;
use visitpay_stripe::StripePayments;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error(transparent)]
    Aws(#[from] SetupError),
    #[error("building the Stripe client")]
    Stripe(#[source] visitpay_app::ports::PaymentsError),
    #[error("{0}")]
    Invalid(String),
}

/// The patient links from `VISITPAY_PATIENT_LINK_BASE`, else `default`;
/// a base that is not `http(s)://host[/base path]/patient/actions` stops the start.
pub fn patient_links(default: &str) -> Result<visitpay_app::PatientLinks, ConfigError> {
    let base = std::env::var("VISITPAY_PATIENT_LINK_BASE").unwrap_or_else(|_| default.to_owned());
    visitpay_app::PatientLinks::parse(&base).map_err(ConfigError::Invalid)
}

/// Webhook signing secrets: `STRIPE_WEBHOOK_SECRET`, comma-separated during
/// a rotation (old and new both verify).
pub fn webhook_secrets(value: &SecretString) -> Vec<SecretString> {
    value.expose_secret().split(',').map(str::trim).filter(|s| !s.is_empty()).map(SecretString::from).collect()
}

/// The DynamoDB store named by the table definition's env var (`VISITPAY_TABLE`),
/// with the SDK configured from the environment (the local runner).
pub async fn dynamo_store(sdk: &aws_config::SdkConfig) -> DynamoStore {
    DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), LambdaSettings::from_env().table)
}

pub use visitpay_aws::sdk::{https_client, lambda_sdk};

/// Everything a Lambda function reads from its environment, once per cold
/// start; each function's wiring requires only what it uses.
#[derive(Debug, Clone)]
pub struct LambdaSettings {
    /// `VISITPAY_TABLE` (else the table definition's default name).
    pub table: String,
    /// `VISITPAY_PATIENT_LINK_BASE`, without a trailing slash.
    pub patient_link_base: Option<String>,
    /// `VISITPAY_EVENTS_QUEUE_URL`.
    pub events_queue_url: Option<String>,
    /// `STRIPE_SECRET_KEY_PARAM` or `STRIPE_SECRET_KEY`.
    pub stripe_secret_key: SecretSource,
    /// `STRIPE_API_BASE`: another Stripe base URL (an emulator).
    pub stripe_api_base: Option<String>,
    /// `STRIPE_WEBHOOK_SECRET_PARAM` or `STRIPE_WEBHOOK_SECRET`.
    pub webhook_secret: SecretSource,
    /// `VISITPAY_METRICS_NAMESPACE` (default `visitpay`): the money signals' CloudWatch namespace.
    pub metrics_namespace: String,
    /// `VISITPAY_EVENT_BUS`: the EventBridge bus status events go to.
    pub event_bus: Option<String>,
    /// `VISITPAY_EDGE_SECRET`: what the edge sends in `x-visitpay-edge`.
    pub edge_secret: Option<SecretString>,
    /// `VISITPAY_EMAIL_FROM`: the verified SES address email comes from.
    pub email_from: Option<String>,
    /// `VISITPAY_SES_CONFIGURATION_SET`: suppression and event destinations.
    pub ses_configuration_set: Option<String>,
    /// `VISITPAY_SMS_ORIGINATION`: the SMS origination number or sender id, if any.
    pub sms_origination: Option<String>,
    /// `VISITPAY_ONBOARDING_PAGE`: where Stripe's hosted onboarding sends the person back.
    pub onboarding_page: Option<String>,
}

fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn secret_source(name: &str, param_var: &str) -> SecretSource {
    match (optional(param_var), optional(name)) {
        (Some(parameter), _) => SecretSource::Ssm { parameter },
        (None, Some(value)) => SecretSource::Value(value.into()),
        (None, None) => SecretSource::Unset,
    }
}

impl LambdaSettings {
    pub fn from_env() -> Self {
        let def = tables::main_table();
        LambdaSettings {
            table: optional(&def.env).unwrap_or(def.default_name),
            patient_link_base: optional("VISITPAY_PATIENT_LINK_BASE").map(|b| b.trim_end_matches('/').to_owned()),
            events_queue_url: optional("VISITPAY_EVENTS_QUEUE_URL"),
            stripe_secret_key: secret_source("STRIPE_SECRET_KEY", "STRIPE_SECRET_KEY_PARAM"),
            stripe_api_base: optional("STRIPE_API_BASE"),
            webhook_secret: secret_source("STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET_PARAM"),
            metrics_namespace: optional("VISITPAY_METRICS_NAMESPACE").unwrap_or_else(|| "visitpay".into()),
            event_bus: optional("VISITPAY_EVENT_BUS"),
            edge_secret: optional("VISITPAY_EDGE_SECRET").map(SecretString::from),
            email_from: optional("VISITPAY_EMAIL_FROM"),
            ses_configuration_set: optional("VISITPAY_SES_CONFIGURATION_SET"),
            sms_origination: optional("VISITPAY_SMS_ORIGINATION"),
            onboarding_page: optional("VISITPAY_ONBOARDING_PAGE"),
        }
    }
}

/// The deps every function starts from: the store named by the settings, the
/// system clock and randomness, metrics as embedded-metric log lines.
fn base(sdk: &aws_config::SdkConfig, settings: &LambdaSettings) -> Result<Deps, ConfigError> {
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), settings.table.clone());
    let patient_links = visitpay_app::PatientLinks::parse(
        settings.patient_link_base.as_deref().ok_or(ConfigError::Missing("VISITPAY_PATIENT_LINK_BASE"))?,
    )
    .map_err(ConfigError::Invalid)?;
    Ok(Deps::new(
        Arc::new(store),
        Arc::new(SystemClock),
        Arc::new(RandomIds),
        Arc::new(EmfMetrics::new(settings.metrics_namespace.clone(), Sink::Stdout)),
        AppConfig { edge_secret: settings.edge_secret.clone(), ..AppConfig::new(patient_links) },
    ))
}

/// Stripe, its key read from SSM (`STRIPE_SECRET_KEY_PARAM`).
async fn payments(sdk: &aws_config::SdkConfig, settings: &LambdaSettings) -> Result<Stripe, ConfigError> {
    let key = secret(sdk, &settings.stripe_secret_key, "STRIPE_SECRET_KEY").await?;
    let payments =
        StripePayments::new(key.expose_secret(), settings.stripe_api_base.as_deref()).map_err(ConfigError::Stripe)?;
    // Stripe's 429s as a metric, beside the money signals.
    Ok(Arc::new(payments.with_metrics(Arc::new(EmfMetrics::new(settings.metrics_namespace.clone(), Sink::Stdout)))))
}

/// The payment-event queue (`VISITPAY_EVENTS_QUEUE_URL`).
fn queue(sdk: &aws_config::SdkConfig, settings: &LambdaSettings) -> Result<Queue, ConfigError> {
    let url = settings.events_queue_url.clone().ok_or(ConfigError::Missing("VISITPAY_EVENTS_QUEUE_URL"))?;
    Ok(Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), url)))
}

/// Email through SES, texts through SNS (`VISITPAY_EMAIL_FROM`, …).
pub fn messenger(sdk: &aws_config::SdkConfig, settings: &LambdaSettings) -> Result<Outbox, ConfigError> {
    let from_address = settings.email_from.clone().ok_or(ConfigError::Missing("VISITPAY_EMAIL_FROM"))?;
    let sender = SenderSettings {
        from_address,
        configuration_set: settings.ses_configuration_set.clone(),
        sms_origination: settings.sms_origination.clone(),
    };
    Ok(Arc::new(SesSnsMessenger::from_sdk(sdk, sender)))
}

/// Each function's ports, decided here once and at compile time (a function
/// links only the clients it calls: no Stripe, SQS or SSM client in
/// `select-invoices`): its `main.rs` calls its line, and the least-privilege
/// test (`tests/least_privilege.rs`) builds each function the same way to
/// record the AWS calls it really makes.
pub mod wiring {
    use super::{base, messenger, payments, queue, secret, webhook_secrets, ConfigError, LambdaSettings};
    use aws_config::SdkConfig;
    use visitpay_app::{Deps, Outbox, Pdf, Queue, Stripe, Unwired};

    /// Stripe, to check an account support names before payments go to it,
    /// and to make a clinic's account and its onboarding links (Stripe sends
    /// the person back to `VISITPAY_ONBOARDING_PAGE`).
    pub async fn clinic_settings(sdk: &SdkConfig, s: &LambdaSettings) -> Result<Deps<Stripe>, ConfigError> {
        let page = s.onboarding_page.clone().ok_or(ConfigError::Missing("VISITPAY_ONBOARDING_PAGE"))?;
        if !page.starts_with("https://") && !page.starts_with("http://") {
            return Err(ConfigError::Invalid(format!("VISITPAY_ONBOARDING_PAGE must be a URL, got {page:?}")));
        }
        let mut deps = base(sdk, s)?.with_payments(payments(sdk, s).await?);
        deps.config.onboarding_page = Some(page);
        Ok(deps)
    }
    /// A clinic's payouts: reads only.
    pub async fn payouts(sdk: &SdkConfig, s: &LambdaSettings) -> Result<Deps, ConfigError> {
        base(sdk, s)
    }
    pub async fn select_invoices(sdk: &SdkConfig, s: &LambdaSettings) -> Result<Deps, ConfigError> {
        base(sdk, s)
    }
    /// Stripe, to expire a session on cancel and to refund.
    pub async fn assign_action(sdk: &SdkConfig, s: &LambdaSettings) -> Result<Deps<Stripe>, ConfigError> {
        Ok(base(sdk, s)?.with_payments(payments(sdk, s).await?))
    }
    pub async fn action_status(sdk: &SdkConfig, s: &LambdaSettings) -> Result<Deps, ConfigError> {
        base(sdk, s)
    }
    pub async fn create_checkout(sdk: &SdkConfig, s: &LambdaSettings) -> Result<Deps<Stripe>, ConfigError> {
        Ok(base(sdk, s)?.with_payments(payments(sdk, s).await?))
    }
    /// The queue, and the webhook signing secret(s) from SSM (`STRIPE_WEBHOOK_SECRET_PARAM`).
    pub async fn stripe_webhook(
        sdk: &SdkConfig,
        s: &LambdaSettings,
    ) -> Result<Deps<visitpay_app::Unwired, Queue>, ConfigError> {
        let mut deps = base(sdk, s)?.with_queue(queue(sdk, s)?);
        deps.config.webhook_secrets = webhook_secrets(&secret(sdk, &s.webhook_secret, "STRIPE_WEBHOOK_SECRET").await?);
        Ok(deps)
    }
    /// Stripe, to read a charge's refunds and to expire a paid action's other sessions.
    pub async fn process_payment_events(sdk: &SdkConfig, s: &LambdaSettings) -> Result<Deps<Stripe>, ConfigError> {
        Ok(base(sdk, s)?.with_payments(payments(sdk, s).await?))
    }
    /// The bus only: it reads no table (the stream brings the images) and calls no Stripe.
    pub async fn publish_action_events(
        sdk: &SdkConfig,
        s: &LambdaSettings,
    ) -> Result<visitpay_aws::eventbridge::EventBridgeBus, ConfigError> {
        let bus = s.event_bus.clone().ok_or(ConfigError::Missing("VISITPAY_EVENT_BUS"))?;
        Ok(visitpay_aws::eventbridge::EventBridgeBus::new(aws_sdk_eventbridge::Client::new(sdk), bus))
    }
    /// The PDF renderer, which its function links (the other functions do not carry its fonts).
    pub async fn receipt_pdf(
        sdk: &SdkConfig,
        s: &LambdaSettings,
        pdf: Pdf,
    ) -> Result<Deps<Unwired, Unwired, Pdf>, ConfigError> {
        Ok(base(sdk, s)?.with_pdf(pdf))
    }
    pub async fn unsubscribe(sdk: &SdkConfig, s: &LambdaSettings) -> Result<Deps, ConfigError> {
        base(sdk, s)
    }
    /// Email (SES) and texts (SNS), and the PDF renderer for the receipt's email.
    pub async fn send_messages(
        sdk: &SdkConfig,
        s: &LambdaSettings,
        pdf: Pdf,
    ) -> Result<Deps<Unwired, Unwired, Pdf, Outbox>, ConfigError> {
        Ok(base(sdk, s)?.with_pdf(pdf).with_messenger(messenger(sdk, s)?))
    }
    /// Stripe to ask, the queue to feed what it learns to the consumer.
    pub async fn reconcile(sdk: &SdkConfig, s: &LambdaSettings) -> Result<Deps<Stripe, Queue>, ConfigError> {
        Ok(base(sdk, s)?.with_payments(payments(sdk, s).await?).with_queue(queue(sdk, s)?))
    }
}

/// Reconcile's settings: `VISITPAY_RECONCILE_MIN_AGE_SECS` (default 300) and
/// `VISITPAY_RECONCILE_BATCH` (default 200).
pub fn reconcile_config() -> Result<visitpay_app::reconcile::ReconcileConfig, ConfigError> {
    let number = |name: &'static str, default: i64| -> Result<i64, ConfigError> {
        match std::env::var(name) {
            Ok(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or(ConfigError::Invalid(format!("{name} must be a whole number"))),
            Err(_) => Ok(default),
        }
    };
    Ok(visitpay_app::reconcile::ReconcileConfig {
        min_age: time::Duration::seconds(number("VISITPAY_RECONCILE_MIN_AGE_SECS", 300)?),
        batch: number("VISITPAY_RECONCILE_BATCH", 200)?.max(1) as usize,
    })
}
