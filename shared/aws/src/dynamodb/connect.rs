//! Clinics' Stripe accounts and payouts on DynamoDB: Stripe's latest word
//! on a clinic's account (beside its settings), which clinic an account is,
//! and each payout with its lines (one partition per payout; listed newest
//! first through gsi1).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck};
use serde::{Deserialize, Serialize};

use super::attributes::{encode, Item};
use super::{classify, decode, keys, records::Unreadable, DynamoStore};
use visitpay_app::ports::{AccountStore, CatchUpCheckpoint, PayoutPage, PayoutStore, StoreError, Stored};
use visitpay_domain::{
    AccountHealth, ClinicId, Currency, Payout, PayoutLine, PayoutStatus, StripeAccountId, Timestamp,
};

/// Stripe's word on a clinic's account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountHealthRecord {
    pub clinic_id: ClinicId,
    #[serde(flatten)]
    pub health: AccountHealth,
    pub version: u64,
}

/// The health item's fields a condition reads (as `AccountHealth` names them).
const HEALTH_ACCOUNT: &str = "id";
const HEALTH_CHARGES_ENABLED: &str = "charges_enabled";

/// `Write::AccountTakesPayments` as a transaction's ConditionCheck: the
/// clinic's health item is absent, about another account, or says charges
/// are enabled (`AccountHealth::can_take_payments`, which the embedded store
/// calls itself).
pub fn takes_payments_check(table: &str, clinic: &ClinicId, account: &StripeAccountId) -> ConditionCheck {
    let (pk, sk) = keys::account_health(clinic);
    ConditionCheck::builder()
        .table_name(table)
        .key(keys::PK, AttributeValue::S(pk))
        .key(keys::SK, AttributeValue::S(sk))
        .condition_expression("attribute_not_exists(#pk) OR #account <> :account OR #charges = :yes")
        .expression_attribute_names("#pk", keys::PK)
        .expression_attribute_names("#account", HEALTH_ACCOUNT)
        .expression_attribute_names("#charges", HEALTH_CHARGES_ENABLED)
        .expression_attribute_values(":account", AttributeValue::S(account.as_str().to_owned()))
        .expression_attribute_values(":yes", AttributeValue::Bool(true))
        .build()
        .expect("table, key and condition set")
}

pub fn account_health_item(clinic: &ClinicId, health: &AccountHealth, version: u64) -> Item {
    let record = AccountHealthRecord { clinic_id: clinic.clone(), health: health.clone(), version };
    encode(&record, keys::account_health(clinic))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountOwnerRecord {
    pub account: StripeAccountId,
    pub clinic_id: ClinicId,
}

pub fn account_owner_item(account: &StripeAccountId, clinic: &ClinicId) -> Item {
    let record = AccountOwnerRecord { account: account.clone(), clinic_id: clinic.clone() };
    encode(&record, keys::account_owner(account, clinic))
}

/// How far the catch-up has read an account's event log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatchUpRecord {
    #[serde(flatten)]
    pub checkpoint: CatchUpCheckpoint,
    pub version: u64,
}

pub fn catch_up_item(checkpoint: &CatchUpCheckpoint, version: u64) -> Item {
    let record = CatchUpRecord { checkpoint: checkpoint.clone(), version };
    encode(&record, keys::catch_up(&checkpoint.account))
}

/// A payout's summary item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayoutRecord {
    pub clinic_id: ClinicId,
    pub payout_id: String,
    pub account: StripeAccountId,
    pub amount: i64,
    pub currency: Currency,
    pub status: PayoutStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub arrival_date: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    pub lines_net: i64,
    pub line_count: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: Timestamp,
    pub version: u64,
}

impl From<PayoutRecord> for Stored<Payout> {
    fn from(r: PayoutRecord) -> Self {
        Stored {
            value: Payout {
                payout_id: r.payout_id,
                account: r.account,
                amount: r.amount,
                currency: r.currency,
                status: r.status,
                created: r.created,
                arrival_date: r.arrival_date,
                failure_code: r.failure_code,
                lines_net: r.lines_net,
                line_count: r.line_count,
                as_of: r.as_of,
            },
            version: r.version,
        }
    }
}

pub fn payout_item(clinic: &ClinicId, p: &Payout, version: u64) -> Item {
    let record = PayoutRecord {
        clinic_id: clinic.clone(),
        payout_id: p.payout_id.clone(),
        account: p.account.clone(),
        amount: p.amount,
        currency: p.currency,
        status: p.status,
        created: p.created,
        arrival_date: p.arrival_date,
        failure_code: p.failure_code.clone(),
        lines_net: p.lines_net,
        line_count: p.line_count,
        as_of: p.as_of,
        version,
    };
    let mut item = encode(&record, keys::payout(clinic, &p.payout_id));
    let (pk, sk) = keys::payout_listing(clinic, p.created, &p.payout_id);
    item.insert(keys::GSI1PK.into(), AttributeValue::S(pk));
    item.insert(keys::GSI1SK.into(), AttributeValue::S(sk));
    item
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PayoutLineRecord {
    pub index: u32,
    #[serde(flatten)]
    pub line: PayoutLine,
}

pub fn payout_line_item(clinic: &ClinicId, payout_id: &str, index: u32, line: &PayoutLine) -> Item {
    encode(&PayoutLineRecord { index, line: line.clone() }, keys::payout_line(clinic, payout_id, index))
}

fn unreadable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(Box::new(Unreadable(e.to_string())))
}

impl DynamoStore {
    /// Every item of a partition, strongly consistent, page by page.
    async fn partition(&self, pk: String) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", AttributeValue::S(pk.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(classify)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}

#[async_trait]
impl AccountStore for DynamoStore {
    async fn account_health(&self, clinic: &ClinicId) -> Result<Option<Stored<AccountHealth>>, StoreError> {
        let found: Option<AccountHealthRecord> = self.get(keys::account_health(clinic)).await?;
        Ok(found.map(|r| Stored { value: r.health, version: r.version }))
    }

    async fn clinics_of_account(&self, account: &StripeAccountId) -> Result<Vec<ClinicId>, StoreError> {
        let pk = keys::account_partition(account);
        let found: Vec<AccountOwnerRecord> = self.query_all(None, "pk = :p", vec![(":p", pk)]).await?;
        Ok(found.into_iter().map(|r| r.clinic_id).collect())
    }

    async fn catch_up_checkpoints(&self) -> Result<Vec<Stored<CatchUpCheckpoint>>, StoreError> {
        let items = self.partition(keys::CATCH_UP_PARTITION.to_owned()).await?;
        items
            .into_iter()
            .map(|item| decode::<CatchUpRecord>(item).map(|r| Stored { value: r.checkpoint, version: r.version }))
            .collect()
    }
}

#[async_trait]
impl PayoutStore for DynamoStore {
    async fn get_payout(
        &self,
        clinic: &ClinicId,
        payout_id: &str,
    ) -> Result<Option<(Stored<Payout>, Vec<PayoutLine>)>, StoreError> {
        let (pk, _) = keys::payout(clinic, payout_id);
        let items = self.partition(pk).await?;
        let mut summary: Option<Stored<Payout>> = None;
        let mut lines: Vec<PayoutLineRecord> = Vec::new();
        for item in items {
            match item.get(keys::SK) {
                Some(AttributeValue::S(sk)) if sk == keys::PAYOUT_SK => {
                    summary = Some(decode::<PayoutRecord>(item)?.into())
                }
                Some(AttributeValue::S(sk)) if sk.starts_with(keys::PAYOUT_LINE_PREFIX) => lines.push(decode(item)?),
                _ => return Err(unreadable("an item of a payout that is neither its summary nor a line")),
            }
        }
        let Some(summary) = summary else { return Ok(None) };
        // Only the lines the summary counts (a write of more may be under way).
        lines.retain(|l| l.index < summary.line_count);
        lines.sort_by_key(|l| l.index);
        if lines.len() != summary.line_count as usize {
            return Err(unreadable(format!("a payout with {} of its {} lines", lines.len(), summary.line_count)));
        }
        Ok(Some((summary, lines.into_iter().map(|l| l.line).collect())))
    }

    async fn list_payouts(
        &self,
        clinic: &ClinicId,
        limit: usize,
        after: Option<&str>,
    ) -> Result<PayoutPage, StoreError> {
        let partition = keys::payouts_partition(clinic);
        let start = after.map(|cursor| {
            let payout_id = cursor.split_once('#').map_or("", |(_, id)| id);
            let (pk, sk) = keys::payout(clinic, payout_id);
            Item::from([
                (keys::GSI1PK.to_owned(), AttributeValue::S(partition.clone())),
                (keys::GSI1SK.to_owned(), AttributeValue::S(cursor.to_owned())),
                (keys::PK.to_owned(), AttributeValue::S(pk)),
                (keys::SK.to_owned(), AttributeValue::S(sk)),
            ])
        });
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("gsi1pk = :p")
            .expression_attribute_values(":p", AttributeValue::S(partition))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        let mut page = PayoutPage::default();
        for item in out.items.unwrap_or_default() {
            page.payouts.push(decode::<PayoutRecord>(item)?.into());
        }
        page.next = match out.last_evaluated_key {
            Some(key) if !key.is_empty() => match key.get(keys::GSI1SK) {
                Some(AttributeValue::S(s)) => Some(s.clone()),
                _ => return Err(unreadable("a page's end without its sort key")),
            },
            _ => None,
        };
        Ok(page)
    }
}
