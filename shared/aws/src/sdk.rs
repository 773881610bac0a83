//! What a Lambda function builds once per cold start to reach AWS: the SDK
//! configuration (from Lambda's environment alone, trusting only the roots
//! AWS endpoints use) and its secrets from SSM.

use secrecy::SecretString;
use visitpay_app::ports::{BoxError, ErrorChain};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
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
    #[error("building the HTTPS client")]
    Tls(#[source] BoxError),
    #[error("{0}")]
    Invalid(String),
}

fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
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
pub fn https_client() -> Result<aws_sdk_dynamodb::config::SharedHttpClient, SetupError> {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(AWS_ROOTS_PEM);
    let context = TlsContext::builder().with_trust_store(trust).build().map_err(|e| SetupError::Tls(Box::new(e)))?;
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
pub async fn lambda_sdk() -> Result<aws_types::SdkConfig, SetupError> {
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_credential_types::Credentials;
    let var = |name: &'static str| optional(name).ok_or(SetupError::Missing(name));
    let credentials = Credentials::new(
        var("AWS_ACCESS_KEY_ID")?,
        var("AWS_SECRET_ACCESS_KEY")?,
        optional("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    let sleep = aws_smithy_async::rt::sleep::default_async_sleep()
        .ok_or(SetupError::Invalid("no async sleep implementation (tokio)".into()))?;
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

/// Reads a secret from where `source` says.
pub async fn secret(
    sdk: &aws_config::SdkConfig,
    source: &SecretSource,
    name: &'static str,
) -> Result<SecretString, SetupError> {
    match source {
        SecretSource::Value(value) => Ok(value.clone()),
        SecretSource::Unset => Err(SetupError::Missing(name)),
        SecretSource::Ssm { parameter } => {
            let out = aws_sdk_ssm::Client::new(sdk)
                .get_parameter()
                .name(parameter)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| SetupError::Ssm { name, source: Box::new(e) })?;
            out.parameter
                .and_then(|p| p.value)
                .filter(|v| !v.is_empty())
                .map(SecretString::from)
                .ok_or(SetupError::EmptySecret(name))
        }
    }
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
        assert!(matches!(super::lambda_sdk().await, Err(super::SetupError::Missing("AWS_REGION"))));
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
