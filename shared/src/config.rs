//! Configuration read once per cold start.

use std::sync::Arc;

use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::emf::{EmfMetrics, Sink};
use crate::adapters::sqs::SqsQueue;
use crate::adapters::stripe::StripePayments;
use crate::adapters::system::{RandomIds, SystemClock};
use crate::adapters::tables;
use crate::app::{AppConfig, Deps, Queue, Stripe};
use crate::ports::{BoxError, ErrorChain};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("reading {name} from SSM: {}", ErrorChain(&**source))]
    Ssm {
        name: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("the SSM parameter holding {0} is empty")]
    EmptySecret(&'static str),
    #[error("building the Stripe client")]
    Stripe(#[source] crate::ports::PaymentsError),
    #[error("building the HTTPS client")]
    Tls(#[source] BoxError),
    #[error("{0}")]
    Invalid(String),
}

/// The patient links from `VISITPAY_PATIENT_LINK_BASE`, else `default`;
/// a base that is not `http(s)://host[/base path]/patient/actions` stops the start.
pub fn patient_links(default: &str) -> Result<crate::app::PatientLinks, ConfigError> {
    let base = std::env::var("VISITPAY_PATIENT_LINK_BASE").unwrap_or_else(|_| default.to_owned());
    crate::app::PatientLinks::parse(&base).map_err(ConfigError::Invalid)
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

/// The roots AWS service endpoints chain to: Amazon Trust Services (Amazon
/// Root CA 1-4, and Starfield Services Root CA G2, which cross-signs them);
/// AWS moved every service endpoint to these in 2021. 4 KB of PEM.
pub const AWS_ROOTS_PEM: &str = include_str!("../certs/aws-roots.pem");

/// The AWS SDK's HTTPS client (rustls with aws-lc, as by default) trusting
/// only the roots AWS endpoints use, compiled in, instead of the OS store:
/// reading and parsing the OS's ~150 roots was most of our init time beyond a
/// hello-world's (the README's cold-start benchmark). The Stripe client has
/// its own (Mozilla's roots, compiled in).
pub fn https_client() -> Result<aws_sdk_dynamodb::config::SharedHttpClient, ConfigError> {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(AWS_ROOTS_PEM);
    let context = TlsContext::builder().with_trust_store(trust).build().map_err(|e| ConfigError::Tls(Box::new(e)))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https())
}

/// The SDK configuration of a Lambda function, built by hand from what
/// Lambda always gives: the region and the function's credentials in the
/// environment. `aws_config`'s loader, even told its providers, still reads
/// profile files and resolves endpoint, retry and timeout settings from
/// them at every cold start, and links the default chains (web identity and
/// its STS client, SSO, ECS, IMDS); none of that runs or ships here.
/// `AWS_ENDPOINT_URL` is honoured (the benchmark runs the functions against
/// moto); the rest are the SDK's defaults: standard retries, the 3.1 s
/// connect timeout `aws_config` sets.
pub async fn lambda_sdk() -> Result<aws_types::SdkConfig, ConfigError> {
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_credential_types::Credentials;
    let var = |name: &'static str| optional(name).ok_or(ConfigError::Missing(name));
    let credentials = Credentials::new(
        var("AWS_ACCESS_KEY_ID")?,
        var("AWS_SECRET_ACCESS_KEY")?,
        optional("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    let sleep = aws_smithy_async::rt::sleep::default_async_sleep()
        .ok_or(ConfigError::Invalid("no async sleep implementation (tokio)".into()))?;
    let mut config = aws_types::SdkConfig::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new(var("AWS_REGION")?))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(https_client()?)
        .sleep_impl(sleep)
        .time_source(aws_smithy_async::time::SharedTimeSource::default())
        .retry_config(aws_smithy_types::retry::RetryConfig::standard())
        .timeout_config(
            aws_smithy_types::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_millis(3100))
                .build(),
        );
    config.set_endpoint_url(optional("AWS_ENDPOINT_URL"));
    Ok(config.build())
}

/// Where a secret comes from: an SSM SecureString named by `{NAME}_PARAM`
/// (how it is deployed, read once per cold start) or, for local and test
/// runs, the `{NAME}` variable itself. A value never prints.
#[derive(Clone, Debug)]
pub enum SecretSource {
    Ssm { parameter: String },
    Value(SecretString),
    Unset,
}

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
        }
    }
}

/// Reads a secret from where `source` says.
async fn secret(
    sdk: &aws_config::SdkConfig,
    source: &SecretSource,
    name: &'static str,
) -> Result<SecretString, ConfigError> {
    match source {
        SecretSource::Value(value) => Ok(value.clone()),
        SecretSource::Unset => Err(ConfigError::Missing(name)),
        SecretSource::Ssm { parameter } => {
            let out = aws_sdk_ssm::Client::new(sdk)
                .get_parameter()
                .name(parameter)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| ConfigError::Ssm { name, source: Box::new(e) })?;
            out.parameter
                .and_then(|p| p.value)
                .filter(|v| !v.is_empty())
                .map(SecretString::from)
                .ok_or(ConfigError::EmptySecret(name))
        }
    }
}

/// The deps every function starts from: the store named by the settings, the
/// system clock and randomness, metrics as embedded-metric log lines.
fn base(sdk: &aws_config::SdkConfig, settings: &LambdaSettings) -> Result<Deps, ConfigError> {
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), settings.table.clone());
    let patient_links = crate::app::PatientLinks::parse(
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
    Ok(Arc::new(payments))
}

/// The payment-event queue (`VISITPAY_EVENTS_QUEUE_URL`).
fn queue(sdk: &aws_config::SdkConfig, settings: &LambdaSettings) -> Result<Queue, ConfigError> {
    let url = settings.events_queue_url.clone().ok_or(ConfigError::Missing("VISITPAY_EVENTS_QUEUE_URL"))?;
    Ok(Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), url)))
}

/// Each function's ports, decided here once and at compile time (a function
/// links only the clients it calls: no Stripe, SQS or SSM client in
/// `select-invoices`): its `main.rs` calls its line, and the least-privilege
/// test (`tests/least_privilege.rs`) builds each function the same way to
/// record the AWS calls it really makes.
pub mod wiring {
    use super::{base, payments, queue, secret, webhook_secrets, ConfigError, LambdaSettings};
    use crate::app::{Deps, Queue, Stripe};
    use aws_config::SdkConfig;

    /// Stripe, to check an account support names before payments go to it.
    pub async fn clinic_settings(sdk: &SdkConfig, s: &LambdaSettings) -> Result<Deps<Stripe>, ConfigError> {
        Ok(base(sdk, s)?.with_payments(payments(sdk, s).await?))
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
    ) -> Result<Deps<crate::app::Unwired, Queue>, ConfigError> {
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
    ) -> Result<crate::adapters::eventbridge::EventBridgeBus, ConfigError> {
        let bus = s.event_bus.clone().ok_or(ConfigError::Missing("VISITPAY_EVENT_BUS"))?;
        Ok(crate::adapters::eventbridge::EventBridgeBus::new(aws_sdk_eventbridge::Client::new(sdk), bus))
    }
    /// Stripe to ask, the queue to feed what it learns to the consumer.
    pub async fn reconcile(sdk: &SdkConfig, s: &LambdaSettings) -> Result<Deps<Stripe, Queue>, ConfigError> {
        Ok(base(sdk, s)?.with_payments(payments(sdk, s).await?).with_queue(queue(sdk, s)?))
    }
}

/// Reconcile's settings: `VISITPAY_RECONCILE_MIN_AGE_SECS` (default 300) and
/// `VISITPAY_RECONCILE_BATCH` (default 200).
pub fn reconcile_config() -> Result<crate::app::reconcile::ReconcileConfig, ConfigError> {
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
    Ok(crate::app::reconcile::ReconcileConfig {
        min_age: time::Duration::seconds(number("VISITPAY_RECONCILE_MIN_AGE_SECS", 300)?),
        batch: number("VISITPAY_RECONCILE_BATCH", 200)?.max(1) as usize,
    })
}

#[cfg(test)]
mod tests {
    /// Lambda's environment in, the SDK configuration out: region, the
    /// function's credentials, no profile read (HOME points nowhere useful).
    #[tokio::test]
    async fn the_lambda_sdk_config_is_built_from_lambdas_environment_alone() {
        use aws_credential_types::provider::ProvideCredentials;
        // nextest runs each test in its own process: the environment is ours.
        std::env::set_var("HOME", "/nonexistent");
        std::env::set_var("AWS_REGION", "ca-central-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "secret");
        std::env::set_var("AWS_SESSION_TOKEN", "session");
        std::env::set_var("AWS_ENDPOINT_URL", "http://127.0.0.1:5555");
        let sdk = super::lambda_sdk().await.unwrap();
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("ca-central-1"));
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:5555"));
        let credentials = sdk.credentials_provider().unwrap().provide_credentials().await.unwrap();
        assert_eq!((credentials.access_key_id(), credentials.session_token()), ("AKIDEXAMPLE", Some("session")));
        assert!(sdk.sleep_impl().is_some() && sdk.http_client().is_some() && sdk.retry_config().is_some());
        std::env::remove_var("AWS_REGION");
        assert!(matches!(super::lambda_sdk().await, Err(super::ConfigError::Missing("AWS_REGION"))));
    }

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    #[test]
    fn the_sdk_trusts_exactly_the_amazon_trust_services_roots_from_mozillas_set() {
        let ours: Vec<CertificateDer<'_>> =
            CertificateDer::pem_slice_iter(super::AWS_ROOTS_PEM.as_bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(ours.len(), 5, "Amazon Root CA 1-4 and Starfield Services G2");
        for cert in &ours {
            assert!(webpki_root_certs::TLS_SERVER_ROOT_CERTS.contains(cert), "every root is one of Mozilla's");
        }
        for name in ["Amazon Root CA 1", "Amazon Root CA 4", "Starfield Services Root Certificate Authority - G2"] {
            assert!(ours.iter().any(|c| c.windows(name.len()).any(|w| w == name.as_bytes())), "{name}");
        }
        assert!(super::https_client().is_ok());
    }
}
