//! What one webhook delivery's signature check costs as its header grows:
//! one `v1` entry, and 1,670 (a 113 KB header, which once took 31 s on the
//! local run: each entry cost a full HMAC of the body), over a 1 MiB body.
//! The check now hashes the body once per secret whatever the header holds,
//! so the two should cost about the same; the ratio is printed.
//!
//! usage: signature-check [--runs N] [--out FILE]

use std::time::Instant;

use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use visitpay_stripe::webhook::verify_signature;

fn sign(body: &[u8], secret: &str, t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let runs: usize = value("--runs").and_then(|v| v.parse().ok()).unwrap_or(20);
    let out = value("--out");

    let body = vec![b'x'; 1024 * 1024];
    let secrets: Vec<SecretString> = vec!["whsec_bench".into()];
    let t = 1_800_000_000;
    let good = sign(&body, "whsec_bench", t);
    let one = format!("t={t},v1={good}");
    // An attacker's header: 1,670 well-formed entries, none of them right.
    let flood: Vec<String> = (0..1670).map(|i| format!("v1={i:064x}")).collect();
    let many = format!("t={t},{}", flood.join(","));

    let time = |header: &str, expect_ok: bool| -> f64 {
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            let result = verify_signature(&body, Some(header), &secrets, t);
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(result.is_ok(), expect_ok, "the check's answer");
        }
        median(samples)
    };
    let one_ms = time(&one, true);
    let many_ms = time(&many, false);
    let ratio = many_ms / one_ms;
    println!("signature check over a 1 MiB body, median of {runs}");
    println!("  1 v1 entry:        {one_ms:8.3} ms");
    println!("  1,670 v1 entries:  {many_ms:8.3} ms  ({ratio:.2}x one entry)");
    if let Some(path) = out {
        let json = serde_json::json!({
            "body_bytes": body.len(), "runs": runs,
            "one_entry_ms": one_ms, "many_entries": 1670, "many_entries_ms": many_ms, "ratio": ratio,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json")).expect("write the result");
    }
}
