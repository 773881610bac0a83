//! Status events on a laptop: what publish-action-events sends EventBridge
//! in AWS, here streamed to staff as Server-Sent Events (`GET
//! /_local/events?clinic=…`, staff token of that clinic) and, when
//! `VISITPAY_LOCAL_EVENTS_URL` is set, POSTed there as EventBridge would
//! deliver them to an API destination, signed like Stripe's webhooks so an
//! EMR prototype can check them.

use std::convert::Infallible;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body as AxumBody;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response as AxumResponse;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::broadcast;
use visitpay_app::ports::{PublishError, StatusEvents};
use visitpay_domain::{ActionChanged, ACTION_CHANGED, EVENT_SOURCE};

/// The header carrying the signature of a POSTed event: `t=<unix
/// seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as `Stripe-Signature`.
pub const SIGNATURE_HEADER: &str = "visitpay-signature";

/// How often an idle stream says it is alive (a comment line), so proxies
/// and browsers keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The local bus: every published event to every listener.
#[derive(Clone)]
pub struct LocalEvents {
    sender: broadcast::Sender<ActionChanged>,
}

impl Default for LocalEvents {
    fn default() -> Self {
        LocalEvents { sender: broadcast::channel(4096).0 }
    }
}

impl LocalEvents {
    pub fn subscribe(&self) -> broadcast::Receiver<ActionChanged> {
        self.sender.subscribe()
    }
}

#[async_trait]
impl StatusEvents for LocalEvents {
    async fn publish(&self, events: &[ActionChanged]) -> Result<Vec<Option<String>>, PublishError> {
        for event in events {
            // No listener is no error: nobody is watching.
            let _ = self.sender.send(event.clone());
        }
        Ok(vec![None; events.len()])
    }
}

/// The event as EventBridge delivers it to a target.
pub fn envelope(event: &ActionChanged, id: &str) -> Value {
    let time = event.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    json!({
        "version": "0",
        "id": id,
        "detail-type": ACTION_CHANGED,
        "source": EVENT_SOURCE,
        "account": "000000000000",
        "time": time,
        "region": "local",
        "resources": [],
        "detail": event,
    })
}

pub fn sign(body: &str, secret: &str, t: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// POSTs every event to `url`, signed with `secret`; a failed delivery is
/// tried again three times (after 1, 2 and 4 s), then logged and dropped.
pub async fn forward(events: LocalEvents, url: String, secret: String) {
    let client = reqwest::Client::new();
    let mut receiver = events.subscribe();
    // Event ids unique across runs, as EventBridge's are.
    let run = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let mut n: u64 = 0;
    loop {
        let event = match receiver.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "the events POST fell behind and dropped events");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        n += 1;
        let body = envelope(&event, &format!("local-{run:x}-{n}")).to_string();
        for attempt in 0..4u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
            }
            let t = time::OffsetDateTime::now_utc().unix_timestamp();
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .header(SIGNATURE_HEADER, sign(&body, &secret, t))
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => tracing::warn!(status = r.status().as_u16(), attempt, "the events URL refused an event"),
                Err(e) => tracing::warn!(error = %e, attempt, "the events URL is unreachable"),
            }
        }
    }
}

#[derive(Clone)]
pub struct Stream {
    pub events: LocalEvents,
    pub jwt_secret: std::sync::Arc<str>,
}

#[derive(serde::Deserialize)]
pub struct StreamQuery {
    clinic: Option<String>,
}

fn refuse(status: StatusCode, code: &'static str, message: &str) -> AxumResponse {
    crate::to_axum(visitpay_edge::http::ApiError::new(status, code, message).into_response())
}

/// One SSE frame: `id` is `<action_id>:<version>`, the pair to de-duplicate on.
fn frame(event: &ActionChanged) -> String {
    let data = serde_json::to_string(event).expect("events serialize");
    format!("event: action\nid: {}:{}\ndata: {data}\n\n", event.action_id, event.version)
}

/// `GET /_local/events?clinic=<id>`: that clinic's events from now on, for
/// its staff only (the same token the API takes), until the token expires.
pub async fn stream(
    State(stream): State<Stream>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> AxumResponse {
    let Some(clinic) = query.clinic.filter(|c| visitpay_domain::ids::is_valid_id(c)) else {
        return refuse(StatusCode::BAD_REQUEST, "invalid_query", "clinic=<clinic id> is required");
    };
    let Some(claims) = crate::bearer_claims(&headers, &stream.jwt_secret) else {
        return refuse(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required");
    };
    let staff = claims.get("role").map(String::as_str) == Some("staff")
        && claims.get("sub").is_some_and(|s| !s.is_empty())
        && claims.get("clinic_id") == Some(&clinic);
    if !staff {
        return refuse(StatusCode::FORBIDDEN, "forbidden", "only this clinic's staff see its events");
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expires_in = claims.get("exp").and_then(|e| e.parse::<i64>().ok()).map_or(0, |exp| (exp - now).max(0));
    let expiry = tokio::time::sleep(Duration::from_secs(expires_in.unsigned_abs()));
    let mut receiver = stream.events.subscribe();
    let body = async_stream(move |tx| async move {
        tokio::pin!(expiry);
        let mut keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
        // Tells the client it is connected before the first event.
        if tx.send(": connected\n\n".to_owned()).await.is_err() {
            return;
        }
        loop {
            let text = tokio::select! {
                // The token ends, the stream ends: the client signs in again.
                _ = &mut expiry => return,
                _ = keep_alive.tick() => ": keep-alive\n\n".to_owned(),
                next = receiver.recv() => match next {
                    Ok(event) if event.clinic_id.as_str() == clinic => frame(&event),
                    Ok(_) => continue,
                    // Fell behind: the client must re-read what it shows.
                    Err(broadcast::error::RecvError::Lagged(_)) => "event: resync\ndata: {}\n\n".to_owned(),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if tx.send(text).await.is_err() {
                return;
            }
        }
    });
    AxumResponse::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-store")
        .body(body)
        .expect("valid response")
}

/// A streaming body fed by `producer` through a small channel; the producer
/// stops when the client goes away (its sends fail).
fn async_stream<F, Fut>(producer: F) -> AxumBody
where
    F: FnOnce(tokio::sync::mpsc::Sender<String>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(64);
    tokio::spawn(producer(tx));
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|text| (Ok::<_, Infallible>(text), rx))
    });
    AxumBody::from_stream(chunks)
}
