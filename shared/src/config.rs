//! Configuration read once per cold start.

use std::sync::Arc;

use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::sqs::SqsQueue;
use crate::adapters::stripe::StripePayments;
use crate::adapters::tables;
use crate::app::{AppConfig, Deps};
use crate::ports::{EventQueue, Payments, RandomIds, SystemClock};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("{0}")]
    Invalid(String),
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name))
}

/// A secret: from `{name}_PARAM` (an SSM SecureString, read once per cold
/// start — how it is deployed) or, for local and test runs, `{name}` itself.
async fn secret(
    sdk: &aws_config::SdkConfig,
    name: &'static str,
    param_var: &'static str,
) -> Result<String, ConfigError> {
    if let Ok(param) = std::env::var(param_var) {
        let out =
            aws_sdk_ssm::Client::new(sdk).get_parameter().name(&param).with_decryption(true).send().await.map_err(
                |e| {
                    ConfigError::Invalid(format!(
                        "reading {param_var} from SSM: {}",
                        aws_sdk_ssm::error::DisplayErrorContext(&e)
                    ))
                },
            )?;
        return out
            .parameter
            .and_then(|p| p.value)
            .filter(|v| !v.is_empty())
            .ok_or(ConfigError::Invalid(format!("the SSM parameter named by {param_var} is empty")));
    }
    required(name)
}

/// The patient link prefix: `VISITPAY_PATIENT_LINK_BASE`, else `default`.
pub fn patient_link_base(default: &str) -> String {
    std::env::var("VISITPAY_PATIENT_LINK_BASE").unwrap_or_else(|_| default.to_owned()).trim_end_matches('/').to_owned()
}

/// Webhook signing secrets: `STRIPE_WEBHOOK_SECRET`, comma-separated during
/// a rotation (old and new both verify).
pub fn webhook_secrets(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// The DynamoDB store named by the table definition's env var (`VISITPAY_TABLE`),
/// with the SDK configured from the environment (region, credentials,
/// `AWS_ENDPOINT_URL` for an emulator).
pub async fn dynamo_store(sdk: &aws_config::SdkConfig) -> DynamoStore {
    let def = tables::main_table();
    let table = std::env::var(&def.env).unwrap_or(def.default_name);
    DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table)
}

/// Stripe with its secret key, at `STRIPE_API_BASE` when set (an emulator).
pub async fn stripe_payments(sdk: &aws_config::SdkConfig) -> Result<StripePayments, ConfigError> {
    let key = secret(sdk, "STRIPE_SECRET_KEY", "STRIPE_SECRET_KEY_PARAM").await?;
    let base = std::env::var("STRIPE_API_BASE").ok().filter(|b| !b.is_empty());
    StripePayments::new(&key, base.as_deref()).map_err(|e| ConfigError::Invalid(e.to_string()))
}

/// What a Lambda function needs, read once per cold start: the store, then
/// only the ports this function uses. Adding them at compile time (not from
/// a runtime flag) means a function links only the clients it calls: no
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
    let context =
        TlsContext::builder().with_trust_store(trust).build().map_err(|e| ConfigError::Invalid(e.to_string()))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https())
}

/// Stripe, SQS or SSM client in `select-invoices`.
pub struct LambdaDeps {
    sdk: aws_config::SdkConfig,
    deps: Deps,
}

impl LambdaDeps {
    pub async fn from_env() -> Result<Self, ConfigError> {
        // Lambda always gives the region and the function's credentials in
        // the environment: naming those providers skips building the default
        // chains (profile files, web identity and its STS client, IMDS).
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(https_client()?)
            .region(aws_config::environment::EnvironmentVariableRegionProvider::new())
            .credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new())
            .load()
            .await;
        let store = dynamo_store(&sdk).await;
        let patient_link_base = required("VISITPAY_PATIENT_LINK_BASE")?.trim_end_matches('/').to_owned();
        let deps = Deps {
            store: Arc::new(store),
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
            payments: None,
            queue: None,
            config: AppConfig { patient_link_base, webhook_secrets: Vec::new() },
        };
        Ok(LambdaDeps { sdk, deps })
    }

    /// Stripe, its key read from SSM (`STRIPE_SECRET_KEY_PARAM`).
    pub async fn with_payments(mut self) -> Result<Self, ConfigError> {
        let payments: Arc<dyn Payments> = Arc::new(stripe_payments(&self.sdk).await?);
        self.deps.payments = Some(payments);
        Ok(self)
    }

    /// The payment-event queue (`VISITPAY_EVENTS_QUEUE_URL`).
    pub fn with_queue(mut self) -> Result<Self, ConfigError> {
        let url = required("VISITPAY_EVENTS_QUEUE_URL")?;
        let queue: Arc<dyn EventQueue> = Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(&self.sdk), url));
        self.deps.queue = Some(queue);
        Ok(self)
    }

    /// The webhook signing secret(s), read from SSM (`STRIPE_WEBHOOK_SECRET_PARAM`).
    pub async fn with_webhook_secrets(mut self) -> Result<Self, ConfigError> {
        let value = secret(&self.sdk, "STRIPE_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET_PARAM").await?;
        self.deps.config.webhook_secrets = webhook_secrets(&value);
        Ok(self)
    }

    pub fn build(self) -> Deps {
        self.deps
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
