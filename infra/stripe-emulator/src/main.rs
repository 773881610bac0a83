//! Serves the Stripe emulator standalone.
//!
//! `STRIPE_EMULATOR_ADDR` (default 127.0.0.1:12111), `STRIPE_EMULATOR_WEBHOOK_URL` (optional),
//! `STRIPE_WEBHOOK_SECRET` (default `whsec_visitpay_dev_secret`), `STRIPE_EMULATOR_ACCOUNTS`
//! (connected accounts, comma-separated; default `acct_1DemoClinic`).

use stripe_emulator::{Config, Emulator};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // Webhook delivery problems are logged through tracing; RUST_LOG overrides the default level.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let addr = std::env::var("STRIPE_EMULATOR_ADDR").unwrap_or_else(|_| "127.0.0.1:12111".into());
    let webhook_url = std::env::var("STRIPE_EMULATOR_WEBHOOK_URL").ok().filter(|u| !u.is_empty());
    let webhook_secret = std::env::var("STRIPE_WEBHOOK_SECRET").unwrap_or_else(|_| "whsec_visitpay_dev_secret".into());

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let bound = listener.local_addr()?;
    // Connected accounts: STRIPE_EMULATOR_ACCOUNTS (comma-separated); more with POST /test/accounts.
    let accounts = std::env::var("STRIPE_EMULATOR_ACCOUNTS").unwrap_or_else(|_| "acct_1DemoClinic".into());
    let accounts: Vec<&str> = accounts.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
    let emulator =
        Emulator::new(Config::new(format!("http://{bound}"), webhook_url.clone(), webhook_secret, &accounts));
    println!("stripe-emulator listening on http://{bound}");
    match webhook_url {
        Some(url) => println!("delivering webhooks to {url}"),
        None => println!("no STRIPE_EMULATOR_WEBHOOK_URL: events are recorded, not delivered"),
    }
    axum::serve(listener, emulator.router()).await
}
