//! Configuration read once per cold start.

use std::sync::Arc;

use crate::adapters::dynamodb::DynamoStore;
use crate::adapters::tables;
use crate::app::{AppConfig, Deps};
use crate::ports::{RandomIds, SystemClock};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
}

/// The patient link prefix: `VISITPAY_PATIENT_LINK_BASE`, else `default`.
pub fn patient_link_base(default: &str) -> String {
    std::env::var("VISITPAY_PATIENT_LINK_BASE").unwrap_or_else(|_| default.to_owned()).trim_end_matches('/').to_owned()
}

/// The DynamoDB store named by the table definition's env var (`VISITPAY_TABLE`),
/// with the SDK configured from the environment (region, credentials,
/// `AWS_ENDPOINT_URL` for an emulator).
pub async fn dynamo_store_from_env() -> Result<DynamoStore, ConfigError> {
    let def = tables::main_table();
    let table = std::env::var(&def.env).ok();
    let table = table.unwrap_or(def.default_name);
    let sdk = aws_config::load_from_env().await;
    Ok(DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table))
}

/// What a Lambda function needs: DynamoDB, the system clock, OS randomness.
pub async fn lambda_deps() -> Result<Deps, ConfigError> {
    let store = dynamo_store_from_env().await?;
    let base =
        std::env::var("VISITPAY_PATIENT_LINK_BASE").map_err(|_| ConfigError::Missing("VISITPAY_PATIENT_LINK_BASE"))?;
    Ok(Deps {
        store: Arc::new(store),
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        config: AppConfig { patient_link_base: base.trim_end_matches('/').to_owned() },
    })
}
