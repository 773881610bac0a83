//! Publishing committed changes of actions, in each action's version order,
//! at least once. The caller (the stream handler, the local runner) hands
//! over changes in commit order, each with its position in its source (a
//! stream record's sequence number); what could not be published is named
//! by the first position to deliver again, and nothing after it is sent, so
//! an action's later change never goes out before an earlier one.

use std::time::Duration;

use crate::ports::{ErrorChain, StatusEvents, MAX_EVENTS_PER_PUT};
use visitpay_domain::ActionChanged;

/// Entries the bus refused are sent again this many times, after these
/// pauses, before the batch gives up (EventBridge: "retry … the failed
/// entries", PutEvents API reference; a refusal is most often throttling).
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(200)];

/// What became of a batch of changes.
#[derive(Debug, PartialEq, Eq)]
pub struct Published<P> {
    /// Events accepted by the bus.
    pub published: usize,
    /// The position of the first change not published: this one and all
    /// after it must be delivered again (published ones after it are then
    /// sent twice; consumers drop duplicates by `(action_id, version)`).
    pub failed_from: Option<P>,
}

/// Groups changes into requests of at most `MAX_EVENTS_PER_PUT`, with at most
/// one change per action in a request: a refused entry retried on its own
/// then cannot fall behind a later change of its action from the same request.
fn requests<P>(changes: &[(P, ActionChanged)]) -> Vec<&[(P, ActionChanged)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for end in 0..changes.len() {
        let request = &changes[start..end];
        if request.len() == MAX_EVENTS_PER_PUT || request.iter().any(|(_, c)| c.action_id == changes[end].1.action_id) {
            out.push(request);
            start = end;
        }
    }
    if start < changes.len() {
        out.push(&changes[start..]);
    }
    out
}

/// Publishes `changes` (in commit order) through `bus`.
pub async fn publish_in_order<P: Clone>(bus: &dyn StatusEvents, changes: &[(P, ActionChanged)]) -> Published<P> {
    let mut published = 0;
    for request in requests(changes) {
        // Indexes into `request` still to publish.
        let mut pending: Vec<usize> = (0..request.len()).collect();
        for pause in std::iter::once(None).chain(RETRY_PAUSES.iter().copied().map(Some)) {
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
            let events: Vec<ActionChanged> = pending.iter().map(|&i| request[i].1.clone()).collect();
            match bus.publish(&events).await {
                Ok(answers) => {
                    let refused: Vec<usize> = pending
                        .iter()
                        .zip(answers.iter().map(Some).chain(std::iter::repeat(None)))
                        .filter_map(|(&i, answer)| match answer {
                            Some(None) => None,
                            Some(Some(code)) => {
                                let c = &request[i].1;
                                tracing::warn!(action_id = %c.action_id, version = c.version, code = %code, "the bus refused an event");
                                Some(i)
                            }
                            // An answer without an entry for it: not known to be in.
                            None => Some(i),
                        })
                        .collect();
                    published += pending.len() - refused.len();
                    pending = refused;
                }
                Err(e) => tracing::warn!(error = %ErrorChain(&e), events = pending.len(), "publishing failed"),
            }
            if pending.is_empty() {
                break;
            }
        }
        if let Some(&first) = pending.first() {
            return Published { published, failed_from: Some(request[first].0.clone()) };
        }
    }
    Published { published, failed_from: None }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::ports::PublishError;
    use visitpay_domain::fixtures::{action, opened, reserved, step};
    use visitpay_domain::ActionId;

    /// One request's answer: refuse these `(action, version)`, or fail (`None`).
    type Answer = Option<Vec<(&'static str, u64)>>;

    /// A bus that answers each request as its script says, in turn; past
    /// the script it accepts everything.
    #[derive(Default)]
    struct ScriptedBus {
        script: Mutex<VecDeque<Answer>>,
        requests: Mutex<Vec<Vec<(String, u64)>>>,
    }

    impl ScriptedBus {
        fn scripted(script: impl IntoIterator<Item = Answer>) -> Self {
            ScriptedBus { script: Mutex::new(script.into_iter().collect()), ..Default::default() }
        }
        fn requests(&self) -> Vec<Vec<(String, u64)>> {
            self.requests.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl StatusEvents for ScriptedBus {
        async fn publish(&self, events: &[ActionChanged]) -> Result<Vec<Option<String>>, PublishError> {
            assert!(events.len() <= MAX_EVENTS_PER_PUT);
            self.requests.lock().unwrap().push(events.iter().map(|e| (e.action_id.to_string(), e.version)).collect());
            let next = self.script.lock().unwrap().pop_front();
            match next {
                None => Ok(vec![None; events.len()]),
                Some(None) => Err(PublishError::Unavailable("throttled".into())),
                Some(Some(refuse)) => Ok(events
                    .iter()
                    .map(|e| {
                        refuse
                            .iter()
                            .any(|(id, v)| e.action_id.as_str() == *id && e.version == *v)
                            .then(|| "ThrottlingException".to_owned())
                    })
                    .collect()),
            }
        }
    }

    /// `n` changes of action `id`, versions 1..=n.
    fn changes_of(id: &str, n: u64) -> Vec<ActionChanged> {
        let a = action();
        let first = ActionChanged::between(None, &a, 1).unwrap();
        let open = ActionChanged::between(Some((&a, 1)), &step(&reserved(&a), opened("cs_1")).action, 3).unwrap();
        let action_id = ActionId::parse(id).unwrap();
        (1..=n)
            .map(|v| ActionChanged {
                version: v,
                action_id: action_id.clone(),
                ..if v == 1 { first.clone() } else { open.clone() }
            })
            .collect()
    }

    fn positioned(changes: Vec<ActionChanged>) -> Vec<(usize, ActionChanged)> {
        changes.into_iter().enumerate().collect()
    }

    fn entries(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(id, v)| (id.to_string(), *v)).collect()
    }

    #[tokio::test]
    async fn requests_hold_at_most_ten_and_one_change_per_action() {
        let mut changes = changes_of("a", 3);
        for n in 0..12 {
            changes.extend(changes_of(&format!("b{n}"), 1));
        }
        let bus = ScriptedBus::default();
        let out = publish_in_order(&bus, &positioned(changes)).await;
        assert_eq!(out, Published { published: 15, failed_from: None });
        let requests = bus.requests();
        assert_eq!(requests.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 10, 3]);
        for request in &requests {
            let mut ids: Vec<&String> = request.iter().map(|(id, _)| id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), request.len(), "one change per action in {request:?}");
        }
    }

    #[tokio::test]
    async fn refused_entries_are_sent_again_alone() {
        let changes = [changes_of("a", 1), changes_of("b", 1), changes_of("c", 1)].concat();
        let bus = ScriptedBus::scripted([Some(vec![("b", 1)])]);
        let out = publish_in_order(&bus, &positioned(changes)).await;
        assert_eq!(out, Published { published: 3, failed_from: None });
        assert_eq!(bus.requests(), [entries(&[("a", 1), ("b", 1), ("c", 1)]), entries(&[("b", 1)])]);
    }

    #[tokio::test]
    async fn a_batch_that_keeps_failing_names_the_first_change_to_deliver_again_and_sends_nothing_after() {
        let changes = [changes_of("a", 2), changes_of("b", 1), changes_of("c", 1)].concat();
        // a v1 passes; then a v2 is refused three times while b v1 passes.
        let refuse = Some(vec![("a", 2)]);
        let bus = ScriptedBus::scripted([Some(vec![]), refuse.clone(), refuse.clone(), refuse]);
        let out = publish_in_order(&bus, &positioned(changes)).await;
        assert_eq!(out, Published { published: 3, failed_from: Some(1) });
        let requests = bus.requests();
        assert_eq!(requests[1], entries(&[("a", 2), ("b", 1), ("c", 1)]));
        assert_eq!(requests[2..], [entries(&[("a", 2)]), entries(&[("a", 2)])], "only the refused entry again");
    }

    #[tokio::test]
    async fn a_failed_request_is_retried_then_reported_and_what_follows_waits() {
        let changes = [changes_of("a", 2), changes_of("b", 1)].concat();
        let bus = ScriptedBus::scripted([None, None, None]);
        let out = publish_in_order(&bus, &positioned(changes)).await;
        assert_eq!(out, Published { published: 0, failed_from: Some(0) });
        assert_eq!(bus.requests(), [entries(&[("a", 1)]), entries(&[("a", 1)]), entries(&[("a", 1)])]);
    }
}
