//! The store on DynamoDB: single table, conditional writes, and
//! TransactWriteItems for every multi-item invariant. Reads are keyed gets and
//! queries (base table or `gsi1`), never scans.

mod attributes;
pub mod connect;
pub mod items;
pub mod keys;
pub mod messages;
pub mod records;
pub mod stream;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_dynamo::aws_sdk_dynamodb_1::from_item;

use visitpay_app::ports::{
    ActionStore, AssignInputs, AssignStore, Commit, Expect, IdempotencyRecord, InvoiceStore, PaymentStore,
    ReconcileStore, SettingsStore, StoreError, Stored, Write,
};
use visitpay_domain::{
    Action, ActionId, ClinicId, Invoice, InvoiceEffect, InvoiceId, InvoiceStatus, PatientId, PaymentIntentId,
    PaymentRef, PaymentSettings, SessionId, StrayPayment, Timestamp, VisitId,
};

use items::Item;
use records::{invoice_fields, ActionRecord, InvoiceRecord, PaymentRecord, SettingsRecord};

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get<T: DeserializeOwned>(&self, (pk, sk): (String, String)) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, AttributeValue::S(pk))
            .key(keys::SK, AttributeValue::S(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item.map(decode).transpose()
    }

    /// Runs a query to the end, page by page.
    async fn query_all<T: DeserializeOwned>(
        &self,
        index: Option<&str>,
        key_condition: &str,
        values: Vec<(&str, String)>,
    ) -> Result<Vec<T>, StoreError> {
        self.query_up_to(index, key_condition, values, usize::MAX).await
    }

    /// Runs a query page by page until `limit` items (or the end).
    async fn query_up_to<T: DeserializeOwned>(
        &self,
        index: Option<&str>,
        key_condition: &str,
        values: Vec<(&str, String)>,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let mut results = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(key_condition)
                .set_exclusive_start_key(start.take())
                // GSIs only offer eventual consistency; the base table can do better.
                .consistent_read(index.is_none());
            for (name, value) in &values {
                q = q.expression_attribute_values(*name, AttributeValue::S(value.clone()));
            }
            let out = q.send().await.map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                results.push(decode(item)?);
            }
            if results.len() >= limit {
                results.truncate(limit);
                return Ok(results);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(results),
            }
        }
    }

    /// The SDK client (the dev kit creates tables with it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Items by key, strongly consistent, in one BatchGetItem (again for any
    /// keys DynamoDB leaves unprocessed under load).
    async fn batch_get(&self, keys: Vec<(String, String)>) -> Result<Vec<Item>, StoreError> {
        let mut wanted: Vec<Item> = keys
            .into_iter()
            .map(|(pk, sk)| {
                HashMap::from([
                    (keys::PK.to_owned(), AttributeValue::S(pk)),
                    (keys::SK.to_owned(), AttributeValue::S(sk)),
                ])
            })
            .collect();
        let mut items = Vec::new();
        let mut attempt = 0u32;
        while !wanted.is_empty() {
            let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut wanted)))
                .consistent_read(true)
                .build()
                .expect("keys set");
            let out =
                self.client.batch_get_item().request_items(&self.table, request).send().await.map_err(classify)?;
            items.extend(out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default());
            if let Some(rest) = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                wanted = rest.keys;
                attempt += 1;
                if attempt > 5 {
                    return Err(StoreError::Throttled);
                }
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
        }
        Ok(items)
    }
}

fn sort_key(item: &Item) -> Result<String, StoreError> {
    match item.get(keys::SK) {
        Some(AttributeValue::S(sk)) => Ok(sk.clone()),
        _ => Err(StoreError::Corrupt("item without a sort key".into())),
    }
}

fn decode<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    from_item(item).map_err(|e| StoreError::Corrupt(Box::new(e)))
}

/// A record read back as the domain's value, refused if the domain refuses
/// it (an invoice pending without its action, an action paid without its
/// payment): a hand-edited or corrupt item must not drive a decision.
fn restore<R, T: TryFrom<R, Error = records::Unreadable>>(record: R) -> Result<T, StoreError> {
    T::try_from(record).map_err(|e| StoreError::Corrupt(Box::new(e)))
}

fn action_of(record: ActionRecord) -> Result<Stored<Action>, StoreError> {
    restore(record)
}

fn invoice_of(record: InvoiceRecord) -> Result<Stored<Invoice>, StoreError> {
    restore(record)
}

/// Maps an SDK error to the port's error, keeping the SDK's words for logs.
pub fn classify<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let message = e.message().unwrap_or_default();
    // "Item size has exceeded the maximum allowed size", "Item size to update has
    // exceeded …", "… Member must have length less than or equal to 100".
    let over_a_limit = message.contains("Item size") && message.contains("exceeded")
        || message.contains("Member must have length less than or equal to 100")
        || message.contains("Transaction request cannot exceed");
    match e.code() {
        Some("ValidationException") if over_a_limit => StoreError::TooLarge(message.to_owned()),
        Some("ConditionalCheckFailedException" | "TransactionConflictException") => StoreError::Conflict,
        Some("ProvisionedThroughputExceededException" | "ThrottlingException" | "RequestLimitExceeded") => {
            StoreError::Throttled
        }
        Some("TransactionCanceledException") => {
            // "Transaction cancelled, please refer cancellation reasons for specific
            // reasons [None, ConditionalCheckFailed]": the reasons are in the message.
            let message = message.to_owned();
            if message.contains("ValidationError") && over_a_limit {
                StoreError::TooLarge(message)
            } else if message.contains("ConditionalCheckFailed") || message.contains("TransactionConflict") {
                StoreError::Conflict
            } else if message.contains("Throttl") || message.contains("ProvisionedThroughputExceeded") {
                StoreError::Throttled
            } else {
                StoreError::Unavailable(Box::new(e))
            }
        }
        _ => StoreError::Unavailable(Box::new(e)),
    }
}

/// One write as a member of a transaction.
fn transact_item(table: &str, write: Write) -> Result<TransactWriteItem, StoreError> {
    Ok(match write {
        Write::HeldInvoice { clinic_id, patient_id, invoice_id, action_id, effect, at } => {
            let key = keys::invoice(&clinic_id, &patient_id, &invoice_id);
            TransactWriteItem::builder().update(held_invoice_update(table, key, &action_id, effect, at)?).build()
        }
        Write::AccountTakesPayments { clinic_id, account } => TransactWriteItem::builder()
            .condition_check(connect::takes_payments_check(table, &clinic_id, &account))
            .build(),
        other => TransactWriteItem::builder().put(put_of(table, &other)).build(),
    })
}

fn attribute<T: Serialize>(value: &T) -> AttributeValue {
    serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(value).expect("domain values serialize")
}

/// `Invoice::follow` as a conditional update, so the invoice need not be read
/// first: the same move, the same fields (as `InvoiceRecord` names them),
/// version + 1.
fn held_invoice_update(
    table: &str,
    (pk, sk): (String, String),
    action: &ActionId,
    effect: InvoiceEffect,
    at: Timestamp,
) -> Result<Update, StoreError> {
    // No move: nothing can hold, as on the embedded store.
    let (from, to) = effect.invoice_move().ok_or(StoreError::Conflict)?;
    let held = matches!(to, InvoiceStatus::Pending | InvoiceStatus::Paid);
    let mut sets = vec!["#status = :to", "#updated_at = :at"];
    let mut removes = Vec::new();
    if to == InvoiceStatus::Paid {
        sets.push("#paid_at = :at");
    } else {
        removes.push("#paid_at");
    }
    if !held {
        removes.push("#action_id");
    }
    // Reopened by a full refund: the invoice remembers whose, as `follow` does.
    let reopen = effect == InvoiceEffect::Reopen;
    if reopen {
        sets.push("#refunded_from = :action");
    } else {
        removes.push("#refunded_from");
    }
    let removes = if removes.is_empty() { String::new() } else { format!(" REMOVE {}", removes.join(", ")) };
    let at = at.format(&time::format_description::well_known::Rfc3339).expect("a timestamp formats as RFC 3339");
    Update::builder()
        .table_name(table)
        .key(keys::PK, AttributeValue::S(pk))
        .key(keys::SK, AttributeValue::S(sk))
        .update_expression(format!("SET {}{removes} ADD #v :one", sets.join(", ")))
        .condition_expression("#action_id = :action AND #status = :from")
        .expression_attribute_names("#status", invoice_fields::STATUS)
        .expression_attribute_names("#updated_at", invoice_fields::UPDATED_AT)
        .expression_attribute_names("#paid_at", invoice_fields::PAID_AT)
        .expression_attribute_names("#action_id", invoice_fields::ACTION_ID)
        .expression_attribute_names("#refunded_from", invoice_fields::REFUNDED_FROM)
        .expression_attribute_names("#v", keys::VERSION)
        .expression_attribute_values(":to", attribute(&to))
        .expression_attribute_values(":from", attribute(&from))
        .expression_attribute_values(":at", AttributeValue::S(at))
        .expression_attribute_values(":action", attribute(action))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .build()
        .map_err(|e| StoreError::Unavailable(Box::new(e)))
}

/// One write as a conditional Put.
fn put_of(table: &str, write: &Write) -> Put {
    let (item, expect) = items::put_item(write).expect("a held invoice is written as an update (transact_item)");
    let put = Put::builder().table_name(table).set_item(Some(item));
    let put = match expect {
        Expect::Any => put,
        Expect::Absent => {
            put.condition_expression("attribute_not_exists(#pk)").expression_attribute_names("#pk", keys::PK)
        }
        Expect::Version(v) => put
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", keys::VERSION)
            .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
    };
    put.build().expect("table and item set")
}

#[async_trait]
impl SettingsStore for DynamoStore {
    async fn get_settings(&self, clinic: &ClinicId) -> Result<Option<PaymentSettings>, StoreError> {
        let found: Option<SettingsRecord> = self.get(keys::settings(clinic)).await?;
        Ok(found.map(PaymentSettings::from))
    }

    async fn put_settings(&self, settings: &PaymentSettings) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(items::settings_item(settings)))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[async_trait]
impl InvoiceStore for DynamoStore {
    async fn get_invoice(
        &self,
        clinic: &ClinicId,
        patient: &PatientId,
        invoice: &InvoiceId,
    ) -> Result<Option<Stored<Invoice>>, StoreError> {
        let found: Option<InvoiceRecord> = self.get(keys::invoice(clinic, patient, invoice)).await?;
        found.map(invoice_of).transpose()
    }

    async fn list_invoices(&self, clinic: &ClinicId, patient: &PatientId) -> Result<Vec<Stored<Invoice>>, StoreError> {
        let found: Vec<InvoiceRecord> = self
            .query_all(
                None,
                "pk = :pk AND begins_with(sk, :prefix)",
                vec![(":pk", keys::patient_partition(clinic, patient)), (":prefix", keys::INVOICE_PREFIX.to_owned())],
            )
            .await?;
        found.into_iter().map(invoice_of).collect()
    }
}

#[async_trait]
impl ActionStore for DynamoStore {
    async fn get_action(&self, clinic: &ClinicId, action: &ActionId) -> Result<Option<Stored<Action>>, StoreError> {
        Ok(self.find_action(action).await?.filter(|a| a.clinic_id() == clinic))
    }

    async fn list_visit_actions(&self, clinic: &ClinicId, visit: &VisitId) -> Result<Vec<Stored<Action>>, StoreError> {
        let found: Vec<ActionRecord> =
            self.query_all(Some(keys::GSI1), "gsi1pk = :v", vec![(":v", keys::visit_partition(clinic, visit))]).await?;
        found.into_iter().map(action_of).collect()
    }

    async fn find_action(&self, action: &ActionId) -> Result<Option<Stored<Action>>, StoreError> {
        let found: Option<ActionRecord> = self.get(keys::action(action)).await?;
        found.map(action_of).transpose()
    }
}

#[async_trait]
impl AssignStore for DynamoStore {
    async fn get_idempotency(&self, clinic: &ClinicId, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.get(keys::idempotency(clinic, key)).await
    }

    async fn assign_inputs(
        &self,
        clinic: &ClinicId,
        patient: &PatientId,
        invoices: &[InvoiceId],
        idempotency_key: Option<&str>,
    ) -> Result<AssignInputs, StoreError> {
        let mut wanted = vec![keys::settings(clinic), keys::account_health(clinic)];
        if let Some(k) = idempotency_key {
            wanted.push(keys::idempotency(clinic, k));
        }
        wanted.extend(invoices.iter().map(|i| keys::invoice(clinic, patient, i)));
        let mut inputs = AssignInputs::default();
        for item in self.batch_get(wanted).await? {
            match sort_key(&item)?.as_str() {
                keys::SETTINGS_SK => inputs.settings = Some(decode::<SettingsRecord>(item)?.into()),
                keys::STRIPE_ACCOUNT_SK => {
                    let r: connect::AccountHealthRecord = decode(item)?;
                    inputs.account = Some(Stored { value: r.health, version: r.version });
                }
                keys::IDEMPOTENCY_SK => inputs.idempotency = Some(decode(item)?),
                _ => inputs.invoices.push(invoice_of(decode(item)?)?),
            }
        }
        Ok(inputs)
    }
}

#[async_trait]
impl PaymentStore for DynamoStore {
    async fn find_payment(&self, payment_intent: &PaymentIntentId) -> Result<Option<Stored<PaymentRef>>, StoreError> {
        let found: Option<PaymentRecord> = self.get(keys::payment(payment_intent)).await?;
        Ok(found.map(Stored::from))
    }

    async fn find_stray_payment(&self, session_id: &SessionId) -> Result<Option<StrayPayment>, StoreError> {
        self.get(keys::stray_payment(session_id)).await
    }

    async fn action_and_payment(
        &self,
        clinic: &ClinicId,
        action: &ActionId,
        payment_intent: &PaymentIntentId,
    ) -> Result<(Option<Stored<Action>>, Option<Stored<PaymentRef>>), StoreError> {
        let (mut found_action, mut found_payment) = (None, None);
        for item in self.batch_get(vec![keys::action(action), keys::payment(payment_intent)]).await? {
            match sort_key(&item)?.as_str() {
                keys::ACTION_SK => {
                    found_action = Some(action_of(decode(item)?)?).filter(|a| a.clinic_id() == clinic);
                }
                _ => found_payment = Some(Stored::from(decode::<PaymentRecord>(item)?)),
            }
        }
        Ok((found_action, found_payment))
    }
}

#[async_trait]
impl ReconcileStore for DynamoStore {
    async fn actions_awaiting_stripe(
        &self,
        untouched_since: Timestamp,
        limit: usize,
    ) -> Result<Vec<Stored<Action>>, StoreError> {
        let before = keys::sortable_time(untouched_since);
        let mut due = Vec::new();
        for shard in 0..keys::RECONCILE_SHARDS {
            let part = keys::awaiting_stripe_partition(shard);
            let found: Vec<ActionRecord> = self
                .query_up_to(
                    Some(keys::GSI2),
                    "gsi2pk = :p AND gsi2sk < :t",
                    vec![(":p", part), (":t", before.clone())],
                    limit,
                )
                .await?;
            for record in found {
                due.push(action_of(record)?);
            }
        }
        due.sort_by_key(|a| a.last_touched());
        due.truncate(limit);
        Ok(due)
    }

    async fn actions_past_lifetime(&self, now: Timestamp, limit: usize) -> Result<Vec<Stored<Action>>, StoreError> {
        let before = keys::sortable_time(now);
        let mut due = Vec::new();
        for shard in 0..keys::RECONCILE_SHARDS {
            let part = keys::open_to_payment_partition(shard);
            let found: Vec<ActionRecord> = self
                .query_up_to(
                    Some(keys::GSI3),
                    "gsi3pk = :p AND gsi3sk < :t",
                    vec![(":p", part), (":t", before.clone())],
                    limit,
                )
                .await?;
            for record in found {
                due.push(action_of(record)?);
            }
        }
        due.sort_by_key(|a| a.expires_at());
        due.truncate(limit);
        Ok(due)
    }
}

#[async_trait]
impl Commit for DynamoStore {
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let single_put =
            writes.len() == 1 && !matches!(writes[0], Write::HeldInvoice { .. } | Write::AccountTakesPayments { .. });
        match writes.len() {
            0 => Ok(()),
            1 if single_put => {
                // One item needs no transaction: a conditional put is atomic and half the cost.
                let put = put_of(&self.table, &writes[0]);
                self.client
                    .put_item()
                    .table_name(put.table_name())
                    .set_item(Some(put.item().clone()))
                    .set_condition_expression(put.condition_expression().map(str::to_owned))
                    .set_expression_attribute_names(put.expression_attribute_names().cloned())
                    .set_expression_attribute_values(put.expression_attribute_values().cloned())
                    .send()
                    .await
                    .map_err(classify)?;
                Ok(())
            }
            _ => {
                // DynamoDB refuses a transaction over 4 MB as a whole; moto does not
                // check it, so the adapter does, with the same answer.
                let bytes: usize =
                    writes.iter().filter_map(items::put_item).map(|(item, _)| items::item_size(&item)).sum();
                if bytes > items::MAX_TRANSACTION_BYTES {
                    return Err(StoreError::TooLarge(format!(
                        "Transaction request cannot exceed 4 MB ({bytes} bytes)"
                    )));
                }
                let items = writes.into_iter().map(|w| transact_item(&self.table, w)).collect::<Result<Vec<_>, _>>()?;
                self.client.transact_write_items().set_transact_items(Some(items)).send().await.map_err(classify)?;
                Ok(())
            }
        }
    }
}
