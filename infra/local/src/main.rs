//! `visitpay-local`: run the whole system on a laptop, or mint a dev token.
//!
//!     visitpay-local                      serve every function, the console and the
//!                                         status events on VISITPAY_ADDR
//!     visitpay-local token --clinic C --role staff|support [--sub S]

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use stripe_emulator::{Config as EmulatorConfig, Emulator};
use tokio::sync::broadcast;
use visitpay_app::ports::{EventQueue, Store};
use visitpay_app::reconcile;
use visitpay_app::status_events::publish_in_order;
use visitpay_app::{AppConfig, Deps, Role};
use visitpay_aws::emf::{EmfMetrics, Sink};
use visitpay_aws::sqs::SqsQueue;
use visitpay_aws::tables;
use visitpay_devkit::embedded::EmbeddedStore;
use visitpay_devkit::embedded_queue::EmbeddedQueue;
use visitpay_edge::lambda::consumer;
use visitpay_edge::system::RandomIds;
use visitpay_local::dev_jwt::DEFAULT_DEV_SECRET;
use visitpay_local::events::LocalEvents;
use visitpay_local::seed::{self, DEMO_CLINIC, DEMO_INVOICES, DEMO_PATIENT, DEMO_VISIT};
use visitpay_local::stream_mapping::StreamMapping;
use visitpay_local::{serve, token, BasePath, Controls, Gateway, LocalClock, OwnHosts};
use visitpay_stripe::StripePayments;

const USAGE: &str = "usage: visitpay-local [token --clinic <id> --role staff|support [--sub <id>]]";

fn env_secs(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|_| format!("{name} must be a whole number of seconds")),
        Err(_) => Ok(default),
    }
}

fn jwt_secret() -> String {
    std::env::var("VISITPAY_DEV_JWT_SECRET").unwrap_or_else(|_| DEFAULT_DEV_SECRET.to_owned())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(run_server()) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("visitpay-local: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Some("token") => match token_command(&args[1..]) {
            Ok(t) => {
                println!("{t}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("visitpay-local: {e}\n{USAGE}");
                std::process::ExitCode::from(2)
            }
        },
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            std::process::ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("visitpay-local: unknown command {other:?}\n{USAGE}");
            std::process::ExitCode::from(2)
        }
    }
}

fn token_command(args: &[String]) -> Result<String, String> {
    let (mut clinic, mut role, mut sub) = (None, None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--clinic" => clinic = Some(value.clone()),
            "--role" => role = Some(value.clone()),
            "--sub" => sub = Some(value.clone()),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let clinic = clinic.ok_or("--clinic is required")?;
    if !visitpay_domain::ids::is_valid_id(&clinic) {
        return Err("--clinic must match [A-Za-z0-9_-]{1,64}".into());
    }
    let role = match role.as_deref() {
        Some("staff") => Role::Staff,
        Some("support") => Role::Support,
        _ => return Err("--role must be staff or support".into()),
    };
    let sub = sub.unwrap_or_else(|| match role {
        Role::Staff => "demo-staff".into(),
        Role::Support => "demo-support".into(),
    });
    if !visitpay_domain::ids::is_valid_id(&sub) {
        return Err("--sub must match [A-Za-z0-9_-]{1,64}".into());
    }
    Ok(token(&jwt_secret(), &clinic, role, &sub))
}

/// The local Stripe: the project's emulator under `/stripe`, unless
/// `STRIPE_SECRET_KEY` points at real Stripe (test mode).
const EMULATOR_KEY: &str = "sk_test_visitpay_local";
const DEFAULT_WEBHOOK_SECRET: &str = "whsec_visitpay_dev_secret";
/// Signs the events POSTed to `VISITPAY_LOCAL_EVENTS_URL` unless
/// `VISITPAY_LOCAL_EVENTS_SECRET` says otherwise.
const DEFAULT_EVENTS_SECRET: &str = "visitpay_local_events_secret";
/// The sender of the laptop's email (`VISITPAY_EMAIL_FROM` overrides it).
const DEFAULT_EMAIL_FROM: &str = "paiements@visitpay.localhost";
/// How often the table's stream is read against moto (Lambda polls a
/// stream's shards four times a second).
const STREAM_POLL: Duration = Duration::from_millis(250);

async fn run_server() -> Result<(), Box<dyn std::error::Error>> {
    visitpay_edge::telemetry::init_stderr();
    let addr: SocketAddr = std::env::var("VISITPAY_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()
        .map_err(|e| format!("VISITPAY_ADDR: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let base_path = BasePath::parse(&std::env::var("VISITPAY_BASE_PATH").unwrap_or_default())?;
    // Everything is served under the base path, as API Gateway serves a named stage.
    let base = format!("http://{bound}{}", base_path.as_str());

    // Store and queue: embedded, or DynamoDB and SQS at AWS_ENDPOINT_URL.
    // Status events come from the store as they do in AWS: the embedded
    // store's own feed, or the table's stream read as Lambda reads it.
    let events = LocalEvents::default();
    let embedded_queue = Arc::new(EmbeddedQueue::new(5, Duration::from_secs(1)));
    let mut aws_sdk = None;
    let (store, queue, store_name, sqs): (Arc<dyn Store>, Arc<dyn EventQueue>, String, Option<SqsQueue>) =
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            let sdk = aws_config::load_from_env().await;
            aws_sdk = Some(sdk.clone());
            let dynamo = visitpay_edge::config::dynamo_store(&sdk).await;
            visitpay_devkit::setup::ensure_table(&dynamo, &tables::main_table()).await?;
            let queue_name = std::env::var("VISITPAY_EVENTS_QUEUE").unwrap_or_else(|_| "visitpay-events".into());
            let sqs_client = aws_sdk_sqs::Client::new(&sdk);
            let url = visitpay_devkit::setup::ensure_queue(&sqs_client, &queue_name, 5, 30).await?;
            let sqs = SqsQueue::new(sqs_client, url);
            let name = format!("dynamodb table {} and sqs queue {queue_name} at {endpoint}", dynamo.table());
            let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
            let mut mapping = StreamMapping::connect(&endpoint, &region, dynamo.table()).await?;
            let bus = events.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = mapping.drain(&bus, 10).await {
                        tracing::error!(error = %e, "reading the table's stream failed");
                    }
                    tokio::time::sleep(STREAM_POLL).await;
                }
            });
            (Arc::new(dynamo), Arc::new(sqs.clone()), name, Some(sqs))
        } else {
            let embedded = Arc::new(EmbeddedStore::new());
            let mut changes = embedded.changes();
            let bus = events.clone();
            tokio::spawn(async move {
                loop {
                    match changes.recv().await {
                        Ok(change) => {
                            publish_in_order(&bus, &[((), change)]).await;
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "status events fell behind the store")
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
            (embedded, embedded_queue.clone(), "embedded store and queue (in memory)".into(), None)
        };
    let events_url = std::env::var("VISITPAY_LOCAL_EVENTS_URL").ok().filter(|u| !u.is_empty());
    if let Some(url) = events_url.clone() {
        let secret = std::env::var("VISITPAY_LOCAL_EVENTS_SECRET").unwrap_or_else(|_| DEFAULT_EVENTS_SECRET.to_owned());
        tokio::spawn(visitpay_local::events::forward(events.clone(), url, secret));
    }

    // Stripe: real (test mode) when configured, else the emulator on this port.
    let webhook_secret = std::env::var("STRIPE_WEBHOOK_SECRET").unwrap_or_else(|_| DEFAULT_WEBHOOK_SECRET.into());
    let (payments, emulator, stripe_name) = match std::env::var("STRIPE_SECRET_KEY") {
        Ok(key) if !key.is_empty() => {
            let base = std::env::var("STRIPE_API_BASE").ok();
            (StripePayments::new(&key, base.as_deref())?, None, "Stripe (STRIPE_SECRET_KEY)".to_owned())
        }
        _ => {
            // The demo clinic's account is connected; support can name others in settings,
            // which must be connected first (`POST /stripe/test/accounts`), as on Stripe.
            let emulator = Emulator::new(EmulatorConfig::new(
                format!("{base}/stripe"),
                Some(format!("{base}/webhooks/stripe")),
                webhook_secret.clone(),
                &[seed::DEMO_STRIPE_ACCOUNT],
            ));
            let payments = StripePayments::new(EMULATOR_KEY, Some(&format!("{base}/stripe/")))?;
            (payments, Some(emulator), format!("emulator at {base}/stripe"))
        }
    };

    // One clock for the whole run: the emulator's, when there is one.
    let clock = Arc::new(match &emulator {
        Some(emulator) => LocalClock::sharing(emulator.clock()),
        None => LocalClock::default(),
    });
    let metrics = EmfMetrics::new(
        std::env::var("VISITPAY_METRICS_NAMESPACE").unwrap_or_else(|_| "visitpay/local".into()),
        Sink::Stderr,
    );
    let config = AppConfig {
        patient_links: visitpay_edge::config::patient_links(&format!("{base}/patient/actions"))?,
        webhook_secrets: visitpay_edge::config::webhook_secrets(&webhook_secret.clone().into()),
        // No edge on a laptop: the patient routes answer directly.
        edge_secret: None,
        // Stripe's hosted onboarding sends support back to the console.
        onboarding_page: Some(format!("{base}/console")),
    };
    // Messages: kept in the outbox, and with AWS_ENDPOINT_URL also handed to SES and SNS there.
    let ses_sns = match &aws_sdk {
        Some(sdk) => {
            let settings = visitpay_edge::config::LambdaSettings::from_env();
            let from = settings.email_from.clone().unwrap_or_else(|| DEFAULT_EMAIL_FROM.to_owned());
            let set = settings.ses_configuration_set.clone().unwrap_or_else(|| "visitpay-local".to_owned());
            visitpay_devkit::setup::ensure_email_sender(&aws_sdk_sesv2::Client::new(sdk), &from, Some(&set)).await?;
            let sender = visitpay_aws::messaging::SenderSettings {
                from_address: from,
                configuration_set: Some(set),
                sms_origination: settings.sms_origination.clone(),
            };
            let messenger = visitpay_aws::messaging::SesSnsMessenger::from_sdk(sdk, sender);
            Some(Arc::new(messenger) as Arc<dyn visitpay_app::ports::Messenger>)
        }
        None => None,
    };
    let outbox = Arc::new(visitpay_devkit::outbox::Outbox::new(clock.clone(), ses_sns));
    let metrics: Arc<dyn visitpay_app::ports::Metrics> = Arc::new(metrics);
    let deps = Deps::new(store, clock.clone(), Arc::new(RandomIds), metrics.clone(), config)
        .with_payments(Arc::new(payments.with_metrics(metrics)))
        .with_queue(queue)
        .with_pdf(Arc::new(visitpay_pdf::KrillaPdf::new()))
        .with_messenger(outbox.clone());
    seed::seed(&deps).await?;

    // The consumer, fed as Lambda's SQS event source would feed it.
    let consumer_deps = deps.clone();
    match sqs {
        Some(sqs) => {
            tokio::spawn(async move {
                visitpay_devkit::setup::poll(&sqs, "arn:aws:sqs:local:000000000000:visitpay-events", |event| {
                    consumer::handle(&consumer_deps, event)
                })
                .await
            });
        }
        None => {
            let queue = embedded_queue.clone();
            // Ten batches at once, as the template's event source mapping
            // (`MaximumConcurrency: 10`) lets the consumer run in AWS.
            tokio::spawn(
                async move { queue.run_concurrently(10, |event| consumer::handle(&consumer_deps, event)).await },
            );
        }
    }

    // Messages to patients, as send-messages delivers them (each second here:
    // in AWS the table's stream at once, the schedule every minute).
    let sender = deps.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        loop {
            ticks.tick().await;
            if let Err(e) = visitpay_app::messages::deliver_due(&sender, 100).await {
                tracing::error!(error = %e, "delivering messages failed");
            }
        }
    });

    // Reconcile, as the schedule would run it.
    let reconcile_every = Duration::from_secs(env_secs("VISITPAY_RECONCILE_INTERVAL_SECS", 60)?.max(1));
    let reconcile_config = visitpay_edge::config::reconcile_config()?;
    let reconciler = deps.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(reconcile_every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(e) = reconcile::run(&reconciler, reconcile_config).await {
                tracing::error!(error = %e, "reconcile failed");
            }
        }
    });

    let secret = jwt_secret();
    let cors = visitpay_edge::http::cors::Cors::from_list(&std::env::var("VISITPAY_CORS_ORIGINS").unwrap_or_default())
        .map_err(|e| format!("VISITPAY_CORS_ORIGINS: {e}"))?;
    let gateway = Gateway { deps, jwt_secret: secret.clone().into(), cors, base_path };
    let controls = Controls { clock, emulator, events, own_hosts: OwnHosts::of(bound), outbox };
    {
        let invoices: Vec<&str> = DEMO_INVOICES.iter().map(|(id, _, _)| *id).collect();
        println!("visitpay-local listening on {base}");
        println!("store: {store_name}");
        println!("stripe: {stripe_name}");
        println!("staff token (clinic {DEMO_CLINIC}): {}", token(&secret, DEMO_CLINIC, Role::Staff, "demo-staff"));
        println!("support token: {}", token(&secret, DEMO_CLINIC, Role::Support, "demo-support"));
        println!("demo clinic: {DEMO_CLINIC}");
        println!("demo patient: {DEMO_PATIENT} (unprocessed invoices: {})", invoices.join(", "));
        println!("demo visit: {DEMO_VISIT}");
        println!("console: {base}/console");
        println!("status events: GET {base}/_local/events?clinic={DEMO_CLINIC} (staff token)");
        println!("outbox (email and texts, sent nowhere): GET {base}/_local/outbox?clinic={DEMO_CLINIC} (staff token)");
        if let Some(url) = &events_url {
            println!("status events POSTed to {url} (signed: visitpay-signature)");
        }
        println!("ready");
    }
    serve(listener, gateway, controls).await?;
    Ok(())
}
