//! The embedded queue for the laptop run: SQS's semantics in memory —
//! batches of up to 10, redelivery of failed messages after a visibility
//! delay, and a dead-letter list after a bounded number of receives.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use tokio::sync::Notify;

use crate::setup::{sqs_event, Delivery};
use visitpay_app::ports::{message_size, EventQueue, QueueError, QueueMessage, MAX_MESSAGE_BYTES};

#[derive(Debug, Clone)]
struct Message {
    id: String,
    body: String,
    receives: u32,
    visible_at: Instant,
}

/// A message that failed `max_receives` times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    pub receives: u32,
}

pub struct EmbeddedQueue {
    messages: Mutex<VecDeque<Message>>,
    dead: Mutex<Vec<DeadLetter>>,
    in_flight: Mutex<usize>,
    notify: Notify,
    max_receives: u32,
    visibility: Duration,
    next_id: std::sync::atomic::AtomicU64,
}

impl EmbeddedQueue {
    /// `visibility` is the delay before a failed message is delivered again
    /// (it grows with each receive).
    pub fn new(max_receives: u32, visibility: Duration) -> Self {
        EmbeddedQueue {
            messages: Mutex::new(VecDeque::new()),
            dead: Mutex::new(Vec::new()),
            in_flight: Mutex::new(0),
            notify: Notify::new(),
            max_receives,
            visibility,
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Messages waiting or being processed.
    pub fn depth(&self) -> usize {
        self.messages.lock().unwrap_or_else(|p| p.into_inner()).len()
            + *self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Receives and deletes every visible message at once (reading the queue
    /// by hand, as a test or a tool does), oldest first.
    pub fn take_all(&self) -> Vec<String> {
        let (batch, _) = self.take_visible(usize::MAX);
        *self.in_flight.lock().unwrap_or_else(|p| p.into_inner()) -= batch.len();
        batch.into_iter().map(|m| m.body).collect()
    }

    fn take_visible(&self, max: usize) -> (Vec<Message>, Option<Instant>) {
        let mut queue = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let mut batch = Vec::new();
        let mut rest = VecDeque::new();
        while let Some(m) = queue.pop_front() {
            if batch.len() < max && m.visible_at <= now {
                batch.push(m);
            } else {
                rest.push_back(m);
            }
        }
        let next = rest.iter().map(|m| m.visible_at).min();
        *queue = rest;
        *self.in_flight.lock().unwrap_or_else(|p| p.into_inner()) += batch.len();
        (batch, next)
    }

    /// Delivers batches to `handler` forever, as Lambda's event source mapping
    /// does with `ReportBatchItemFailures`.
    pub async fn run<F, Fut>(&self, handler: F) -> !
    where
        F: Fn(SqsEvent) -> Fut,
        Fut: Future<Output = SqsBatchResponse>,
    {
        loop {
            let (mut batch, next_visible) = self.take_visible(10);
            if batch.is_empty() {
                let wait = next_visible.map_or(Duration::from_secs(1), |t| t.saturating_duration_since(Instant::now()));
                let _ = tokio::time::timeout(wait, self.notify.notified()).await;
                continue;
            }
            for m in &mut batch {
                m.receives += 1;
            }
            let deliveries: Vec<Delivery<'_>> = batch
                .iter()
                .map(|m| Delivery {
                    message_id: &m.id,
                    receipt_handle: &m.id,
                    body: &m.body,
                    receive_count: m.receives,
                })
                .collect();
            let response = handler(sqs_event(&deliveries, "arn:aws:sqs:local:000000000000:visitpay-events")).await;
            let failed: Vec<String> = response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
            let count = batch.len();
            for mut m in batch.into_iter().filter(|m| failed.contains(&m.id)) {
                if m.receives >= self.max_receives {
                    tracing::error!(message_id = %m.id, receives = m.receives, "message moved to the dead-letter queue");
                    self.dead.lock().unwrap_or_else(|p| p.into_inner()).push(DeadLetter {
                        message_id: m.id,
                        body: m.body,
                        receives: m.receives,
                    });
                } else {
                    m.visible_at = Instant::now() + self.visibility * m.receives;
                    self.messages.lock().unwrap_or_else(|p| p.into_inner()).push_back(m);
                }
            }
            *self.in_flight.lock().unwrap_or_else(|p| p.into_inner()) -= count;
        }
    }
}

#[async_trait]
impl EventQueue for EmbeddedQueue {
    async fn enqueue(&self, message: &QueueMessage) -> Result<(), QueueError> {
        // The template's queue takes SQS's maximum, body and attributes counted.
        let bytes = message_size(message);
        if bytes > MAX_MESSAGE_BYTES {
            return Err(QueueError::TooLarge { bytes, max: MAX_MESSAGE_BYTES });
        }
        let n = self.next_id.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.messages.lock().unwrap_or_else(|p| p.into_inner()).push_back(Message {
            id: format!("msg-{n}"),
            body: message.body(),
            receives: 0,
            visible_at: Instant::now(),
        });
        self.notify.notify_one();
        Ok(())
    }
}
