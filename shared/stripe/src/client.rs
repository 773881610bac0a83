//! Payments on Stripe: async-stripe's request builders, sent by our
//! transport (`transport`), answers read into what we use (`answers`). The
//! same code talks to Stripe or, with another base URL, to the project's
//! emulator.
//!
//! Every POST carries a deterministic Idempotency-Key and is retried with the
//! same key on network errors, 409, 429 and 5xx, so a retry can never create
//! a second session or a second refund.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ExpireCheckoutSession, ProductData, RetrieveCheckoutSession,
};
use stripe_client_core::{IdempotencyKey, RequestBuilder, RequestStrategy, StripeMethod, StripeRequest};
use stripe_core::refund::{CreateRefund, ListRefund};
use stripe_shared::{AccountId, CheckoutSessionLocale, CheckoutSessionMode};

use super::answers::{
    AccountAnswer, AccountLinkAnswer, BalanceTransactionAnswer, IntentChargeAnswer, Page, RefundAnswer, SessionAnswer,
};
use super::transport::{StripeCallError, StripeHttp};
use visitpay_app::ports::{
    AccountLink, BalanceTransaction, CheckoutRequest, CheckoutSession, ConnectedAccount, EventLog, LoggedEvent,
    Metrics, MoneySignal, Payments, PaymentsError, Refund, RefundRequest, SessionPaymentStatus, SessionStatus,
    META_REFUND_ATTEMPT,
};
use visitpay_domain::{
    ClinicId, Locale, PaymentIntentId, PaymentMethod, RefundId, RefundState, SessionId, StripeAccountId,
};

/// Per attempt; the whole call stays well inside a Lambda's timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);
const MAX_ATTEMPTS: u32 = 3;
/// Pages of a list read at most (100 each): a payment's refunds (visitpay
/// makes at most 250).
const MAX_PAGES: usize = 10;

pub struct StripePayments {
    client: StripeHttp,
    livemode: bool,
    /// Where Stripe's 429s are counted (none in tests that do not look).
    metrics: Option<std::sync::Arc<dyn Metrics>>,
}

impl StripePayments {
    /// `base_url` points the client at an emulator (`http://127.0.0.1:3000/stripe/`);
    /// `None` means api.stripe.com.
    pub fn new(secret_key: &str, base_url: Option<&str>) -> Result<Self, PaymentsError> {
        Self::with_timeout(secret_key, base_url, ATTEMPT_TIMEOUT)
    }

    /// As `new`, with another per-attempt timeout (tests of slow answers).
    pub fn with_timeout(secret_key: &str, base_url: Option<&str>, timeout: Duration) -> Result<Self, PaymentsError> {
        let client =
            StripeHttp::new(secret_key, base_url, timeout).map_err(|e| PaymentsError::Unavailable(Box::new(e)))?;
        let livemode = secret_key.starts_with("sk_live_") || secret_key.starts_with("rk_live_");
        Ok(StripePayments { client, livemode, metrics: None })
    }

    /// Counts Stripe's 429s as `StripeRateLimited`.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<dyn Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

/// Stripe's advice first (`Stripe-Should-Retry`), else its transient
/// statuses (https://docs.stripe.com/error-low-level#idempotency).
fn retryable(e: &StripeCallError) -> bool {
    match e {
        // Stripe's answer kept under the key: sent again, it is replayed again.
        StripeCallError::Api { replayed: true, .. } => false,
        StripeCallError::Api { should_retry: Some(advice), .. } => *advice,
        StripeCallError::Api { status, .. } => transient(*status),
        StripeCallError::Transport(_) | StripeCallError::Body(_) | StripeCallError::Timeout(_) => true,
        StripeCallError::Request(_) | StripeCallError::Decode(_) | StripeCallError::TooLarge => false,
    }
}

fn transient(status: u16) -> bool {
    matches!(status, 409 | 429 | 500..=599)
}

fn to_error(e: StripeCallError) -> PaymentsError {
    match e {
        StripeCallError::Api { status: 404, .. } => PaymentsError::NotFound,
        // "The provided key … does not have access to account … Application
        // access may have been revoked."
        StripeCallError::Api { status: 403, error, .. } if error.code() == Some("account_invalid") => {
            PaymentsError::AccountDisconnected
        }
        StripeCallError::Api { status, error, .. } if !transient(status) => PaymentsError::Rejected {
            status,
            code: error.code().map(str::to_owned),
            message: error.message().unwrap_or_default().to_owned(),
        },
        StripeCallError::Decode(what) => PaymentsError::Unexpected(what),
        StripeCallError::TooLarge => PaymentsError::Unexpected(e_too_large()),
        other => PaymentsError::Unavailable(Box::new(other)),
    }
}

fn e_too_large() -> String {
    format!("an answer over {} bytes", super::transport::MAX_ANSWER_BYTES)
}

/// Below this much time left before the work's deadline, no attempt starts:
/// it could not be answered in time.
const LEAST_FOR_AN_ATTEMPT: Duration = Duration::from_millis(250);

impl StripePayments {
    /// Runs `call` up to three times, with backoff, while the error is
    /// transient, and never past the deadline of the work in hand
    /// (`ports::deadline`): each attempt is bounded by what is left of it, and
    /// no retry starts too late.
    async fn with_retries<T, F, Fut>(&self, call: F) -> Result<T, PaymentsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StripeCallError>>,
    {
        self.with_retries_raw(call).await.map_err(to_error)
    }

    /// As `with_retries`, with the last error as the transport gave it.
    async fn with_retries_raw<T, F, Fut>(&self, mut call: F) -> Result<T, StripeCallError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StripeCallError>>,
    {
        let mut attempt = 0;
        loop {
            if let Some(left) = visitpay_app::ports::deadline::remaining().filter(|left| *left < LEAST_FOR_AN_ATTEMPT) {
                return Err(StripeCallError::Timeout(left));
            }
            attempt += 1;
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < MAX_ATTEMPTS && retryable(&e) => {
                    let limited = rate_limited(&e);
                    if limited {
                        self.note_rate_limited();
                    }
                    let pause = backoff(attempt, limited);
                    if visitpay_app::ports::deadline::remaining()
                        .is_some_and(|left| left < pause + LEAST_FOR_AN_ATTEMPT)
                    {
                        return Err(e);
                    }
                    tracing::warn!(attempt, error = %e, "stripe call failed; retrying with the same idempotency key");
                    tokio::time::sleep(pause).await;
                }
                Err(e) => {
                    if rate_limited(&e) {
                        self.note_rate_limited();
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Stripe slowed us down (429): counted, so a clinic's burst or a loop
    /// that would crowd out payments is seen (`StripeRateLimitedAlarm`).
    fn note_rate_limited(&self) {
        tracing::warn!("stripe answered 429 (rate limited)");
        if let Some(metrics) = &self.metrics {
            metrics.signal(MoneySignal::StripeRateLimited, None);
        }
    }
}

fn rate_limited(e: &StripeCallError) -> bool {
    matches!(e, StripeCallError::Api { status: 429, .. })
}

/// The pause before attempt `attempt + 1`: doubling from 200 ms; from 500 ms
/// after a 429, with up to half again at random, so clients slowed together
/// do not come back together ("exponential backoff", Stripe's rate limits
/// page; jitter as AWS's "Exponential Backoff And Jitter").
fn backoff(attempt: u32, limited: bool) -> Duration {
    let doubling = 2u64.pow(attempt - 1);
    if !limited {
        return Duration::from_millis(200 * doubling);
    }
    let base = 500 * doubling;
    let jitter = u64::from(time::OffsetDateTime::now_utc().nanosecond()) % (base / 2);
    Duration::from_millis(base + jitter)
}

fn key(k: &str) -> Result<RequestStrategy, PaymentsError> {
    let key = IdempotencyKey::new(k).map_err(|e| PaymentsError::Rejected {
        status: 400,
        code: None,
        message: e.to_string(),
    })?;
    Ok(RequestStrategy::Idempotent(key))
}

fn account(a: &StripeAccountId) -> AccountId {
    AccountId::from(a.as_str())
}

fn unexpected(what: String) -> PaymentsError {
    PaymentsError::Unexpected(what)
}

fn session_of(s: SessionAnswer) -> Result<CheckoutSession, PaymentsError> {
    let status = match s.status.as_deref() {
        None | Some("open") => SessionStatus::Open,
        Some("complete") => SessionStatus::Complete,
        Some("expired") => SessionStatus::Expired,
        Some(other) => return Err(unexpected(format!("session {} in an unknown status {other:?}", s.id))),
    };
    let payment_status = match s.payment_status.as_str() {
        "paid" => SessionPaymentStatus::Paid,
        "unpaid" => SessionPaymentStatus::Unpaid,
        "no_payment_required" => SessionPaymentStatus::NoPaymentRequired,
        other => return Err(unexpected(format!("session {} with an unknown payment status {other:?}", s.id))),
    };
    let payment_intent = s
        .payment_intent
        .as_ref()
        .and_then(|p| p.id())
        .map(|id| PaymentIntentId::parse(id).map_err(|_| unexpected(format!("a payment intent id {id:?}"))))
        .transpose()?;
    Ok(CheckoutSession {
        expires_at: time::OffsetDateTime::from_unix_timestamp(s.expires_at)
            .map_err(|_| unexpected(format!("session {} expires at {}", s.id, s.expires_at)))?,
        payment_intent_status: s.payment_intent.as_ref().and_then(|p| p.status()).map(str::to_owned),
        payment_intent,
        id: SessionId::parse(&s.id).map_err(|_| unexpected(format!("a session id {:?}", s.id)))?,
        url: s.url,
        status,
        payment_status,
        metadata: s.metadata.unwrap_or_default().into_iter().collect(),
        amount_total: s.amount_total,
        currency: s.currency,
        mode: Some(s.mode),
    })
}

fn timestamp(unix: i64) -> Result<time::OffsetDateTime, PaymentsError> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|_| unexpected(format!("a time {unix}")))
}

fn account_of(a: AccountAnswer) -> Result<ConnectedAccount, PaymentsError> {
    let requirements = a.requirements.unwrap_or(super::answers::RequirementsAnswer {
        currently_due: None,
        past_due: None,
        disabled_reason: None,
    });
    let mut due = requirements.currently_due.unwrap_or_default();
    due.extend(requirements.past_due.unwrap_or_default());
    Ok(ConnectedAccount {
        id: StripeAccountId::parse(&a.id).map_err(|_| unexpected(format!("an account id {:?}", a.id)))?,
        charges_enabled: a.charges_enabled,
        payouts_enabled: a.payouts_enabled,
        details_submitted: a.details_submitted.unwrap_or(false),
        requirements_due: due,
        disabled_reason: requirements.disabled_reason,
    })
}

fn balance_transaction_of(b: BalanceTransactionAnswer) -> Result<BalanceTransaction, PaymentsError> {
    let payment_intent = b
        .source
        .as_ref()
        .and_then(|s| s.payment_intent())
        .map(|id| PaymentIntentId::parse(id).map_err(|_| unexpected(format!("a payment intent id {id:?}"))))
        .transpose()?;
    Ok(BalanceTransaction {
        created: timestamp(b.created)?,
        id: b.id,
        kind: b.kind,
        reporting_category: b.reporting_category,
        amount: b.amount,
        fee: b.fee,
        net: b.net,
        payment_intent,
    })
}

/// `POST /v1/accounts`'s form (serde_qs writes `controller[fees][payer]=…`).
#[derive(serde::Serialize)]
struct AccountParams<'a> {
    controller: Controller,
    metadata: Metadata<'a>,
}

#[derive(serde::Serialize)]
struct Controller {
    fees: Fees,
    losses: Losses,
    requirement_collection: &'static str,
    stripe_dashboard: Dashboard,
}

#[derive(serde::Serialize)]
struct Fees {
    payer: &'static str,
}

#[derive(serde::Serialize)]
struct Losses {
    payments: &'static str,
}

#[derive(serde::Serialize)]
struct Dashboard {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(serde::Serialize)]
struct Metadata<'a> {
    visitpay_clinic_id: &'a str,
}

/// `POST /v1/account_links`'s form.
#[derive(serde::Serialize)]
struct AccountLinkParams<'a> {
    account: &'a str,
    refresh_url: &'a str,
    return_url: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    collection_options: CollectionOptions,
}

#[derive(serde::Serialize)]
struct CollectionOptions {
    fields: &'static str,
}

/// `GET /v1/balance_transactions`'s query.
#[derive(serde::Serialize)]
struct BalanceListParams<'a> {
    payout: &'a str,
    limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
    expand: [&'static str; 1],
}

fn refund_of(r: RefundAnswer) -> Result<Refund, PaymentsError> {
    let status = r.status.as_deref().unwrap_or_default();
    let status = RefundState::parse(status)
        .ok_or_else(|| unexpected(format!("refund {} in an unknown status {status:?}", r.id)))?;
    let attempt = r.metadata.as_ref().and_then(|m| m.get(META_REFUND_ATTEMPT)).and_then(|a| a.parse().ok());
    let id = RefundId::parse(&r.id).map_err(|_| unexpected(format!("a refund id {:?}", r.id)))?;
    Ok(Refund { id, amount: r.amount, status, attempt })
}

impl StripePayments {
    /// Every page of a list (https://docs.stripe.com/api/pagination), up to
    /// `MAX_PAGES`, each item read by `read`; `page` builds the request for
    /// the page after the item id it is given.
    async fn every_page<A, T>(
        &self,
        account_id: &StripeAccountId,
        page: impl Fn(Option<&str>) -> RequestBuilder + Sync,
        id: fn(&A) -> &String,
        read: fn(A) -> Result<T, PaymentsError>,
        what: &str,
    ) -> Result<Vec<T>, PaymentsError>
    where
        A: miniserde::Deserialize + Send,
        T: Send,
    {
        let mut found = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let list: Page<A> = self
                .with_retries(|| {
                    page(after.as_deref()).customize::<Page<A>>().account_id(account(account_id)).send(&self.client)
                })
                .await?;
            after = list.data.last().map(|item| id(item).clone());
            for item in list.data {
                found.push(read(item)?);
            }
            if !list.has_more {
                return Ok(found);
            }
        }
        Err(PaymentsError::Unexpected(format!("more than {} {what}", MAX_PAGES * 100)))
    }
}

fn stripe_locale(l: Locale) -> CheckoutSessionLocale {
    match l {
        Locale::FrCa => CheckoutSessionLocale::FrMinusCa,
        // Stripe has no en-CA; plain English is the closest page language.
        Locale::EnCa => CheckoutSessionLocale::En,
    }
}

/// The Checkout Session request, and its idempotency key.
fn checkout_create(req: &CheckoutRequest) -> Result<(CreateCheckoutSession, RequestStrategy), PaymentsError> {
    let currency: stripe_types::Currency = req.currency.code().parse().map_err(|_| PaymentsError::Rejected {
        status: 400,
        code: None,
        message: "unsupported currency".into(),
    })?;
    let lines: Vec<CreateCheckoutSessionLineItems> = req
        .lines
        .iter()
        .map(|l| {
            let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency.clone());
            price.unit_amount = Some(l.amount);
            price.product_data = Some(ProductData::new(l.name.clone()));
            let mut item = CreateCheckoutSessionLineItems::new();
            item.price_data = Some(price);
            item.quantity = Some(1);
            item
        })
        .collect();
    let metadata: HashMap<String, String> = req.metadata.iter().cloned().collect();
    let mut intent = CreateCheckoutSessionPaymentIntentData::new();
    intent.metadata = Some(metadata.clone());
    let create = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .line_items(lines)
        .client_reference_id(req.client_reference_id.clone())
        .metadata(metadata)
        .payment_intent_data(intent)
        .locale(stripe_locale(req.locale))
        .expires_at(req.expires_at.unix_timestamp())
        .success_url(req.success_url.clone())
        .cancel_url(req.cancel_url.clone());
    Ok((create, key(&req.idempotency_key)?))
}

#[async_trait]
impl Payments for StripePayments {
    async fn create_checkout(&self, req: &CheckoutRequest) -> Result<CheckoutSession, PaymentsError> {
        let (create, strategy) = checkout_create(req)?;
        let session = self
            .with_retries(|| {
                create
                    .build()
                    .customize::<SessionAnswer>()
                    .account_id(account(&req.account))
                    .request_strategy(strategy.clone())
                    .send(&self.client)
            })
            .await?;
        session_of(session)
    }

    async fn recover_checkout(&self, req: &CheckoutRequest) -> Result<Option<CheckoutSession>, PaymentsError> {
        let (create, strategy) = checkout_create(req)?;
        let sent = self
            .with_retries_raw(|| {
                create
                    .build()
                    .customize::<SessionAnswer>()
                    .account_id(account(&req.account))
                    .request_strategy(strategy.clone())
                    .send(&self.client)
            })
            .await;
        match sent {
            Ok(session) => session_of(session).map(Some),
            // An error Stripe kept under the key (`Idempotent-Replayed`): the
            // request's outcome was that error, not a session.
            Err(StripeCallError::Api { replayed: true, .. }) => Ok(None),
            Err(e) => match to_error(e) {
                // Refused now (a validation error is not kept under a key, and
                // executes again): no session either way.
                PaymentsError::Rejected { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn retrieve_checkout(
        &self,
        account_id: &StripeAccountId,
        session_id: &SessionId,
    ) -> Result<CheckoutSession, PaymentsError> {
        // Expanded, so a failed delayed payment shows in the intent's status.
        let retrieve = RetrieveCheckoutSession::new(session_id.as_str()).expand(vec!["payment_intent".to_owned()]);
        let session = self
            .with_retries(|| {
                retrieve.build().customize::<SessionAnswer>().account_id(account(account_id)).send(&self.client)
            })
            .await?;
        session_of(session)
    }

    async fn expire_checkout(
        &self,
        account_id: &StripeAccountId,
        session_id: &SessionId,
    ) -> Result<CheckoutSession, PaymentsError> {
        // No idempotency key: expiring is safe to repeat, and Stripe would
        // replay a first error (a 500 included) under a key for 24 hours.
        let expire = ExpireCheckoutSession::new(session_id.as_str());
        let session = self
            .with_retries(|| {
                expire.build().customize::<SessionAnswer>().account_id(account(account_id)).send(&self.client)
            })
            .await?;
        session_of(session)
    }

    async fn refund(&self, req: &RefundRequest) -> Result<Refund, PaymentsError> {
        let mut create = CreateRefund::new()
            .payment_intent(req.payment_intent.as_str())
            .metadata(req.metadata.iter().cloned().collect::<HashMap<_, _>>());
        if let Some(amount) = req.amount {
            create = create.amount(amount);
        }
        let strategy = key(&req.idempotency_key)?;
        let refund = self
            .with_retries(|| {
                create
                    .build()
                    .customize::<RefundAnswer>()
                    .account_id(account(&req.account))
                    .request_strategy(strategy.clone())
                    .send(&self.client)
            })
            .await?;
        refund_of(refund)
    }

    async fn payment_method(
        &self,
        account_id: &StripeAccountId,
        payment_intent: &PaymentIntentId,
    ) -> Result<Option<PaymentMethod>, PaymentsError> {
        // https://docs.stripe.com/api/payment_intents/retrieve, its latest
        // charge expanded (https://docs.stripe.com/api/expanding_objects).
        let path = format!("/payment_intents/{}", payment_intent.as_str());
        let answer = self
            .with_retries(|| {
                RequestBuilder::new(StripeMethod::Get, path.clone())
                    .query(&ExpandParams { expand: ["latest_charge"] })
                    .customize::<IntentChargeAnswer>()
                    .account_id(account(account_id))
                    .send(&self.client)
            })
            .await?;
        if answer.id != payment_intent.as_str() {
            return Err(unexpected(format!("asked for {payment_intent}, Stripe answered {}", answer.id)));
        }
        Ok(answer.latest_charge.and_then(|c| c.payment_method_details).as_ref().and_then(method_of))
    }

    async fn list_refunds(
        &self,
        account_id: &StripeAccountId,
        payment_intent: &PaymentIntentId,
    ) -> Result<Vec<Refund>, PaymentsError> {
        let page = |after: Option<&str>| {
            let mut list = ListRefund::new().payment_intent(payment_intent.as_str()).limit(100);
            if let Some(last) = after {
                list = list.starting_after(last);
            }
            list.build()
        };
        let what = format!("refunds of {payment_intent}");
        self.every_page(account_id, page, |r: &RefundAnswer| &r.id, refund_of, &what).await
    }

    async fn retrieve_account(&self, account_id: &StripeAccountId) -> Result<ConnectedAccount, PaymentsError> {
        // https://docs.stripe.com/api/accounts/retrieve, as the platform (no Stripe-Account).
        let path = format!("/accounts/{}", account_id.as_str());
        let answer = self
            .with_retries(|| {
                RequestBuilder::new(StripeMethod::Get, path.clone()).customize::<AccountAnswer>().send(&self.client)
            })
            .await?;
        account_of(answer)
    }

    async fn create_account(&self, clinic: &ClinicId) -> Result<ConnectedAccount, PaymentsError> {
        // https://docs.stripe.com/api/accounts/create with the controller
        // properties of a Standard account, Stripe's recommendation for direct
        // charges (https://docs.stripe.com/connect/integration-recommendations,
        // https://docs.stripe.com/connect/migrate-to-controller-properties):
        // the account pays Stripe's fees, Stripe bears losses and collects the
        // requirements, and the clinic uses the full Stripe Dashboard.
        let params = AccountParams {
            controller: Controller {
                fees: Fees { payer: "account" },
                losses: Losses { payments: "stripe" },
                requirement_collection: "stripe",
                stripe_dashboard: Dashboard { kind: "full" },
            },
            metadata: Metadata { visitpay_clinic_id: clinic.as_str() },
        };
        // One account per clinic, whatever is retried or raced.
        let strategy = key(&format!("visitpay-account-{clinic}"))?;
        let answer = self
            .with_retries(|| {
                RequestBuilder::new(StripeMethod::Post, "/accounts")
                    .form(&params)
                    .customize::<AccountAnswer>()
                    .request_strategy(strategy.clone())
                    .send(&self.client)
            })
            .await?;
        account_of(answer)
    }

    async fn create_account_link(
        &self,
        account_id: &StripeAccountId,
        refresh_url: &str,
        return_url: &str,
    ) -> Result<AccountLink, PaymentsError> {
        // https://docs.stripe.com/api/account_links/create: single use, valid
        // a few minutes; no idempotency key (each call is a new link).
        let params = AccountLinkParams {
            account: account_id.as_str(),
            refresh_url,
            return_url,
            kind: "account_onboarding",
            collection_options: CollectionOptions { fields: "currently_due" },
        };
        let answer = self
            .with_retries(|| {
                RequestBuilder::new(StripeMethod::Post, "/account_links")
                    .form(&params)
                    .customize::<AccountLinkAnswer>()
                    .send(&self.client)
            })
            .await?;
        Ok(AccountLink { url: answer.url, expires_at: timestamp(answer.expires_at)? })
    }

    async fn list_payout_transactions(
        &self,
        account_id: &StripeAccountId,
        payout_id: &str,
    ) -> Result<Vec<BalanceTransaction>, PaymentsError> {
        // https://docs.stripe.com/api/balance_transactions/list: `payout`
        // (automatic payouts), the source expanded to its PaymentIntent.
        let page = |after: Option<&str>| {
            RequestBuilder::new(StripeMethod::Get, "/balance_transactions").query(&BalanceListParams {
                payout: payout_id,
                limit: 100,
                starting_after: after,
                expand: ["data.source"],
            })
        };
        let what = format!("balance transactions of {payout_id}");
        self.every_page(account_id, page, |t: &BalanceTransactionAnswer| &t.id, balance_transaction_of, &what).await
    }

    async fn list_undelivered_events(
        &self,
        account_id: &StripeAccountId,
        after: time::OffsetDateTime,
        until: time::OffsetDateTime,
    ) -> Result<EventLog, PaymentsError> {
        // https://docs.stripe.com/api/events/list: `types` takes at most 20
        // names, so the handled types go in as many listings as that needs;
        // `delivery_success=false`: still pending, or given up on.
        let mut events = Vec::new();
        for types in crate::events::HANDLED_TYPES.chunks(MAX_EVENT_TYPES) {
            let mut starting_after: Option<String> = None;
            let mut pages = 0;
            loop {
                if pages == MAX_PAGES {
                    return Ok(EventLog { events: Vec::new(), complete: false });
                }
                pages += 1;
                let params = EventListParams {
                    types,
                    created: CreatedRange { gt: after.unix_timestamp(), lte: until.unix_timestamp() },
                    delivery_success: false,
                    // Events carry whole objects (an account's runs to tens of
                    // KB): 25 a page stays well inside an answer's byte cap.
                    limit: EVENTS_PER_PAGE,
                    starting_after: starting_after.as_deref(),
                };
                let page: Page<miniserde::json::Value> = self
                    .with_retries(|| {
                        RequestBuilder::new(StripeMethod::Get, "/events")
                            .query(&params)
                            .customize::<Page<miniserde::json::Value>>()
                            .account_id(account(account_id))
                            .send(&self.client)
                    })
                    .await?;
                for value in &page.data {
                    events.push(logged_event(value, account_id)?);
                }
                // Newest first: this page's last is where the next one starts.
                if !page.data.is_empty() {
                    starting_after = events.last().map(|e: &LoggedEvent| e.id.clone());
                }
                if !page.has_more {
                    break;
                }
            }
        }
        // Stripe lists newest first; the consumer gets them oldest first.
        events.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        events.dedup_by(|a, b| a.id == b.id);
        Ok(EventLog { events, complete: true })
    }

    fn livemode(&self) -> bool {
        self.livemode
    }
}

/// A retrieve's `expand[]`.
#[derive(serde::Serialize)]
struct ExpandParams {
    expand: [&'static str; 1],
}

/// How a charge was paid (`payment_method_details`): its type, and the
/// card's brand or the bank debit's last 4. Nothing else is kept.
fn method_of(details: &miniserde::json::Value) -> Option<PaymentMethod> {
    use miniserde::json::Value;
    let Value::Object(details) = details else { return None };
    let Some(Value::String(kind)) = details.get("type") else { return None };
    let text = |key: &str| match details.get(kind) {
        Some(Value::Object(of_kind)) => match of_kind.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    Some(PaymentMethod { brand: text("brand"), last4: text("last4"), kind: kind.clone() })
}

/// `types[]` takes "an array of up to 20 strings" (API reference, List all events).
const MAX_EVENT_TYPES: usize = 20;
const EVENTS_PER_PAGE: u32 = 25;

/// `GET /v1/events`'s query.
#[derive(serde::Serialize)]
struct EventListParams<'a> {
    types: &'a [&'a str],
    created: CreatedRange,
    delivery_success: bool,
    limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct CreatedRange {
    gt: i64,
    lte: i64,
}

/// An event as listed: its id, type and time read, its JSON kept whole for
/// the consumer (which decodes it as it decodes a webhook's).
fn logged_event(value: &miniserde::json::Value, account: &StripeAccountId) -> Result<LoggedEvent, PaymentsError> {
    use miniserde::json::{Number, Value};
    let Value::Object(fields) = value else { return Err(unexpected("an event that is not an object".into())) };
    // The consumer reads whose event it is from its `account`, as a Connect
    // webhook carries it; listed with Stripe-Account, it is that account.
    let mut fields = fields.clone();
    if !matches!(fields.get("account"), Some(Value::String(_))) {
        fields.insert("account".to_owned(), Value::String(account.as_str().to_owned()));
    }
    let text = |name: &str| match fields.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(unexpected(format!("an event without {name}"))),
    };
    let created = match fields.get("created") {
        Some(Value::Number(Number::U64(n))) => i64::try_from(*n).map_err(|_| unexpected(format!("a time {n}")))?,
        Some(Value::Number(Number::I64(n))) => *n,
        _ => return Err(unexpected("an event without created".into())),
    };
    Ok(LoggedEvent {
        id: text("id")?,
        event_type: text("type")?,
        created: timestamp(created)?,
        body: miniserde::json::to_string(&Value::Object(fields)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(json: &str) -> miniserde::json::Value {
        miniserde::json::from_str(json).unwrap()
    }

    /// An event listed with `Stripe-Account` is that account's: the consumer
    /// finds it in `account`, as a Connect webhook carries it.
    #[test]
    fn a_listed_event_names_its_account() {
        let account = StripeAccountId::parse("acct_1Listed").unwrap();
        let bare = listed(r#"{"id":"evt_1","type":"payout.paid","created":1800000000,"data":{"object":{}}}"#);
        let event = logged_event(&bare, &account).unwrap();
        let body: serde_json::Value = serde_json::from_str(&event.body).unwrap();
        assert_eq!((event.id.as_str(), body["account"].as_str()), ("evt_1", Some("acct_1Listed")));
        let named = listed(r#"{"id":"evt_2","type":"payout.paid","created":1800000000,"account":"acct_1Other"}"#);
        let body: serde_json::Value = serde_json::from_str(&logged_event(&named, &account).unwrap().body).unwrap();
        assert_eq!(body["account"], "acct_1Other", "what Stripe said is kept");
        assert!(logged_event(&listed(r#"{"id":"evt_3","type":"x"}"#), &account).is_err(), "no created: refused");
    }
}
