//! Serves the Stripe emulator standalone.
//!
//! `STRIPE_EMULATOR_ADDR` (default 127.0.0.1:12111), `STRIPE_EMULATOR_WEBHOOK_URL` (optional),
//! `STRIPE_WEBHOOK_SECRET` (default `whsec_visitpay_dev_secret`).

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
    let emulator = Emulator::new(Config {
        public_base: format!("http://{bound}"),
        webhook_url: webhook_url.clone(),
        webhook_secret,
    });
    println!("stripe-emulator listening on http://{bound}");
    match webhook_url {
        Some(url) => println!("delivering webhooks to {url}"),
        None => println!("no STRIPE_EMULATOR_WEBHOOK_URL: events are recorded, not delivered"),
    }
    axum::serve(listener, emulator.router()).await
}
