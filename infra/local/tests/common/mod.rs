//! What the local run's tests share: the real `visitpay-local` binary,
//! started as a user starts it, and calls over HTTP with its tokens.
#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use reqwest::{Client, StatusCode};
use serde_json::Value;

pub struct Local {
    pub child: Child,
    pub base: String,
    pub staff: String,
    pub support: String,
    /// The banner's `store:` line.
    pub store: String,
    pub logs: Arc<Mutex<String>>,
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Local {
    /// The path everything is served under (`VISITPAY_BASE_PATH`): `""` or `/prod`.
    pub fn base_path(&self) -> String {
        let after_scheme = self.base.split_once("://").map_or(self.base.as_str(), |(_, rest)| rest);
        after_scheme.find('/').map_or(String::new(), |at| after_scheme[at..].to_owned())
    }
}

/// Kills a child and every process of its process group (it was started with
/// `process_group(0)`, so the group is its own): the browsers ChromeDriver
/// started go with it.
pub fn end_process_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = child.kill();
    let _ = child.wait();
}

/// The environment that puts `visitpay-local` on moto (started by
/// `scripts/test`) with a table and queue of its own.
pub fn moto_envs(prefix: &str) -> Vec<(&'static str, String)> {
    let endpoint = std::env::var("VISITPAY_TEST_DYNAMODB_ENDPOINT")
        .expect("VISITPAY_TEST_DYNAMODB_ENDPOINT is not set: run the tests with scripts/test, which starts moto");
    let suffix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000;
    vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("VISITPAY_TABLE", format!("{prefix}-{suffix}")),
        ("VISITPAY_EVENTS_QUEUE", format!("{prefix}-events-{suffix}")),
    ]
}

pub fn start() -> Local {
    start_with(&[])
}

pub fn start_with(envs: &[(&str, &str)]) -> Local {
    let mut child = Command::new(env!("CARGO_BIN_EXE_visitpay-local"))
        .env("VISITPAY_ADDR", "127.0.0.1:0")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("VISITPAY_PATIENT_LINK_BASE")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start visitpay-local");
    let logs = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = logs.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut staff, mut support, mut store) = (None, None, None, String::new());
    for line in lines.by_ref() {
        let line = line.expect("read banner");
        if let Some(rest) = line.strip_prefix("visitpay-local listening on ") {
            base = Some(rest.trim().to_owned());
        } else if line.starts_with("staff token") {
            staff = line.rsplit(' ').next().map(str::to_owned);
        } else if let Some(rest) = line.strip_prefix("store: ") {
            store = rest.to_owned();
        } else if line.starts_with("support token") {
            support = line.rsplit(' ').next().map(str::to_owned);
        } else if line == "ready" {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Local {
        child,
        base: base.expect("address printed"),
        staff: staff.expect("staff token printed"),
        support: support.expect("support token printed"),
        store,
        logs,
    }
}

pub fn mint(clinic: &str, role: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_visitpay-local"))
        .args(["token", "--clinic", clinic, "--role", role, "--sub", "e2e-user"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub async fn call(
    client: &Client,
    method: &str,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

pub fn statuses(list: &Value) -> Vec<(String, String)> {
    list["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["invoice_id"].as_str().unwrap().to_owned(), i["status"].as_str().unwrap().to_owned()))
        .collect()
}
