//! What moto's SES and SNS took: every email (as the raw MIME SES would send)
//! and every text, read back from moto's state (`/moto-api/data.json`, its
//! models: `ses.RawMessage`, `sns.SMS`). The only way to see them: moto, like
//! AWS, keeps no mailbox an API reads.

use serde_json::Value;

async fn state() -> Value {
    let url = format!("{}/moto-api/data.json", crate::support::kit::moto_endpoint());
    let response = reqwest::get(&url).await.unwrap_or_else(|e| panic!("moto's state at {url}: {e}"));
    response.json().await.expect("moto's state is JSON")
}

/// The raw MIME of every email SES took for `to`, oldest first.
pub async fn emails_to(to: &str) -> Vec<String> {
    let state = state().await;
    let messages = state["ses"]["RawMessage"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .filter(|m| m["destinations"].as_array().is_some_and(|d| d.iter().any(|d| d.as_str() == Some(to))))
        .filter_map(|m| m["raw_data"].as_str().map(str::to_owned))
        .collect()
}

/// The body of every text SNS took for `to`, oldest first.
pub async fn texts_to(to: &str) -> Vec<String> {
    let state = state().await;
    let texts = state["sns"]["SMS"].as_array().cloned().unwrap_or_default();
    texts
        .iter()
        .filter(|t| t["phone_number"].as_str() == Some(to))
        .filter_map(|t| t["message"].as_str().map(str::to_owned))
        .collect()
}

/// The one-click unsubscribe URL of a raw email (its `List-Unsubscribe` header).
pub fn unsubscribe_url(raw: &str) -> Option<String> {
    let start = raw.find("List-Unsubscribe: <")? + "List-Unsubscribe: <".len();
    let end = raw[start..].find('>')?;
    Some(raw[start..start + end].to_owned())
}
