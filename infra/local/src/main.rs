//! `visitpay-local`: run the whole system on a laptop, or mint a dev token.
//!
//!     visitpay-local                      serve every function on VISITPAY_ADDR
//!     visitpay-local token --clinic C --role staff|support [--sub S]

use std::net::SocketAddr;
use std::sync::Arc;

use visitpay::adapters::embedded::EmbeddedStore;
use visitpay::adapters::tables;
use visitpay::app::{AppConfig, Deps, Role};
use visitpay::dev_jwt::DEFAULT_DEV_SECRET;
use visitpay::ports::{RandomIds, Store, SystemClock};
use visitpay_local::seed::{self, DEMO_CLINIC, DEMO_INVOICES, DEMO_PATIENT, DEMO_VISIT};
use visitpay_local::{serve, token, Gateway};

const USAGE: &str = "usage: visitpay-local [token --clinic <id> --role staff|support [--sub <id>]]";

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
    if !visitpay::domain::ids::is_valid_id(&clinic) {
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
    if !visitpay::domain::ids::is_valid_id(&sub) {
        return Err("--sub must match [A-Za-z0-9_-]{1,64}".into());
    }
    Ok(token(&jwt_secret(), &clinic, role, &sub))
}

async fn run_server() -> Result<(), Box<dyn std::error::Error>> {
    visitpay::telemetry::init_stderr();
    let addr: SocketAddr = std::env::var("VISITPAY_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()
        .map_err(|e| format!("VISITPAY_ADDR: {e}"))?;

    let (store, store_name): (Arc<dyn Store>, String) = if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
        let dynamo = visitpay::config::dynamo_store_from_env().await?;
        dynamo.ensure_table(&tables::main_table()).await?;
        let name =
            format!("dynamodb table {} at {}", dynamo.table(), std::env::var("AWS_ENDPOINT_URL").unwrap_or_default());
        (Arc::new(dynamo), name)
    } else {
        (Arc::new(EmbeddedStore::new()), "embedded (in memory)".into())
    };

    let secret = jwt_secret();
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let base = format!("http://{bound}");
    let deps = Deps {
        store,
        clock: Arc::new(SystemClock),
        ids: Arc::new(RandomIds),
        config: AppConfig {
            patient_link_base: visitpay::config::patient_link_base(&format!("{base}/patient/actions")),
        },
    };
    seed::seed(&deps).await?;

    let gateway = Gateway { deps, jwt_secret: secret.clone().into() };
    {
        let invoices: Vec<&str> = DEMO_INVOICES.iter().map(|(id, _, _)| *id).collect();
        println!("visitpay-local listening on http://{bound}");
        println!("store: {store_name}");
        println!("staff token (clinic {DEMO_CLINIC}): {}", token(&secret, DEMO_CLINIC, Role::Staff, "demo-staff"));
        println!("support token: {}", token(&secret, DEMO_CLINIC, Role::Support, "demo-support"));
        println!("demo clinic: {DEMO_CLINIC}");
        println!("demo patient: {DEMO_PATIENT} (unprocessed invoices: {})", invoices.join(", "));
        println!("demo visit: {DEMO_VISIT}");
        println!("ready");
    }
    serve(listener, gateway).await?;
    Ok(())
}
