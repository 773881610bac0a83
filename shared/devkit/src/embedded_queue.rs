//! The embedded queue for the laptop run: SQS's semantics in memory —
//! batches of up to 10, redelivery of failed messages after a visibility
//! delay, a dead-letter list after a bounded number of receives, and a fair
//! queue's order: a tenant (message group) with a backlog in flight waits
//! while other tenants' messages go first.

use std::collections::{HashMap, VecDeque};
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
    /// The message group (`QueueMessage::tenant`); none: a tenant of its own.
    tenant: Option<String>,
}

/// SQS fair queues flag a noisy neighbour when "the tenant accounts for more
/// than 10% of in-flight messages in the queue and has at least 30 of its own
/// messages in flight", then prefer quiet tenants' messages "whenever quiet
/// tenant messages are available" (SQS Developer Guide, "How Amazon SQS fair
/// queues work"). Its other measure (a tenant's share of processing time)
/// is not emulated: this queue is never fairer than SQS.
const NOISY_MIN_IN_FLIGHT: usize = 30;
const NOISY_SHARE_PERCENT: usize = 10;

#[derive(Debug, Default)]
struct InFlight {
    total: usize,
    by_tenant: HashMap<String, usize>,
}

impl InFlight {
    fn add(&mut self, m: &Message) {
        self.total += 1;
        if let Some(t) = &m.tenant {
            *self.by_tenant.entry(t.clone()).or_default() += 1;
        }
    }

    fn remove(&mut self, tenant: Option<&str>) {
        self.total = self.total.saturating_sub(1);
        if let Some(t) = tenant {
            if let Some(n) = self.by_tenant.get_mut(t) {
                *n -= 1;
                if *n == 0 {
                    self.by_tenant.remove(t);
                }
            }
        }
    }

    fn noisy(&self, tenant: Option<&str>) -> bool {
        let Some(n) = tenant.and_then(|t| self.by_tenant.get(t)) else { return false };
        *n >= NOISY_MIN_IN_FLIGHT && *n * 100 > self.total * NOISY_SHARE_PERCENT
    }
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
    in_flight: Mutex<InFlight>,
    /// Messages keep their group (a fair queue); off, as a queue sent no
    /// `MessageGroupId`, every message is a tenant of its own.
    fair: bool,
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
            in_flight: Mutex::new(InFlight::default()),
            fair: true,
            notify: Notify::new(),
            max_receives,
            visibility,
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// As a queue whose messages carry no group: first come, first served
    /// (the benchmark's comparison).
    pub fn without_groups(mut self) -> Self {
        self.fair = false;
        self
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Messages waiting or being processed.
    pub fn depth(&self) -> usize {
        self.messages.lock().unwrap_or_else(|p| p.into_inner()).len()
            + self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// Receives and deletes every visible message at once (reading the queue
    /// by hand, as a test or a tool does), oldest first.
    pub fn take_all(&self) -> Vec<String> {
        let (batch, _) = self.take_visible(usize::MAX);
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        for m in &batch {
            in_flight.remove(m.tenant.as_deref());
        }
        batch.into_iter().map(|m| m.body).collect()
    }

    /// Takes up to `max` visible messages: quiet tenants' first, oldest
    /// first, then noisy tenants' (the noisy one with fewest in flight first).
    fn take_visible(&self, max: usize) -> (Vec<Message>, Option<Instant>) {
        let mut queue = self.messages.lock().unwrap_or_else(|p| p.into_inner());
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let noisy = |m: &Message| in_flight.noisy(m.tenant.as_deref());
        let mut quiet: Vec<usize> = Vec::new();
        let mut loud: Vec<usize> = Vec::new();
        for (i, m) in queue.iter().enumerate() {
            if m.visible_at <= now {
                if noisy(m) {
                    loud.push(i)
                } else {
                    quiet.push(i)
                }
            }
        }
        let count = |m: &Message| m.tenant.as_ref().and_then(|t| in_flight.by_tenant.get(t)).copied().unwrap_or(0);
        loud.sort_by_key(|&i| (count(&queue[i]), i));
        let chosen: std::collections::BTreeSet<usize> = quiet.into_iter().chain(loud).take(max).collect();
        let mut batch = Vec::new();
        let mut rest = VecDeque::new();
        for (i, m) in queue.drain(..).enumerate() {
            if chosen.contains(&i) {
                batch.push(m)
            } else {
                rest.push_back(m)
            }
        }
        // The batch in queue order: which messages, not their order within it, is the fair part.
        let next = rest.iter().map(|m| m.visible_at).min();
        *queue = rest;
        for m in &batch {
            in_flight.add(m);
        }
        (batch, next)
    }

    /// Delivers batches to `handler` forever, one at a time, as Lambda's
    /// event source mapping does with `ReportBatchItemFailures`.
    pub async fn run<F, Fut>(&self, handler: F) -> !
    where
        F: Fn(SqsEvent) -> Fut,
        Fut: Future<Output = SqsBatchResponse>,
    {
        self.run_concurrently(1, handler).await
    }

    /// As `run`, with up to `batches` batches in flight at once, as the event
    /// source mapping's `MaximumConcurrency` allows.
    pub async fn run_concurrently<F, Fut>(&self, batches: usize, handler: F) -> !
    where
        F: Fn(SqsEvent) -> Fut,
        Fut: Future<Output = SqsBatchResponse>,
    {
        let workers = (0..batches.max(1)).map(|_| self.worker(&handler));
        futures_util::future::join_all(workers).await;
        unreachable!("workers never end")
    }

    async fn worker<F, Fut>(&self, handler: &F)
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
            // What is left may be another worker's to take.
            self.notify.notify_one();
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
            let tenants: Vec<Option<String>> = batch.iter().map(|m| m.tenant.clone()).collect();
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
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            for tenant in &tenants {
                in_flight.remove(tenant.as_deref());
            }
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
            tenant: message.tenant().filter(|_| self.fair).map(str::to_owned),
        });
        self.notify.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use visitpay_app::ports::StripeDelivery;

    fn event(n: usize, account: &str) -> QueueMessage {
        QueueMessage::Stripe(StripeDelivery {
            event_id: format!("evt_{n}"),
            event_type: "charge.refunded".into(),
            account: Some(account.into()),
            body: format!("{{\"id\":\"evt_{n}\",\"account\":\"{account}\"}}"),
        })
    }

    /// Where the quiet clinic's one message is delivered, behind 200 of a
    /// flooding clinic's, with ten batches in flight at once.
    async fn position_of_the_quiet_message(queue: EmbeddedQueue) -> usize {
        let queue = Arc::new(queue);
        for n in 0..200 {
            queue.enqueue(&event(n, "acct_1Flooding")).await.unwrap();
        }
        queue.enqueue(&event(200, "acct_1Quiet")).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let seen = order.clone();
        let worker = queue.clone();
        let run = tokio::spawn(async move {
            worker
                .run_concurrently(10, |event: SqsEvent| {
                    let seen = seen.clone();
                    async move {
                        for r in &event.records {
                            seen.lock().unwrap().push(r.body.clone().unwrap_or_default());
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        SqsBatchResponse::default()
                    }
                })
                .await
        });
        while order.lock().unwrap().len() < 201 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        run.abort();
        let order = order.lock().unwrap();
        order.iter().position(|b| b.contains("acct_1Quiet")).unwrap()
    }

    /// SQS fair queues: a tenant with at least 30 messages in flight and more
    /// than 10% of them is a noisy neighbour, and quiet tenants' messages go
    /// first (SQS Developer Guide, "How Amazon SQS fair queues work").
    #[tokio::test]
    async fn a_flooding_clinic_does_not_hold_up_a_quiet_one() {
        let fair = position_of_the_quiet_message(EmbeddedQueue::new(3, Duration::from_millis(10))).await;
        assert!(fair <= 40, "taken once the flood has 30 in flight: {fair}");
        let plain =
            position_of_the_quiet_message(EmbeddedQueue::new(3, Duration::from_millis(10)).without_groups()).await;
        assert_eq!(plain, 200, "without groups, first come first served");
    }
}
