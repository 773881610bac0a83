//! Test support shared by the contract, use-case, handler and end-to-end
//! tests and the benchmarks: injectable time and ids, stores on each backend,
//! recorded money signals. Not part of any Lambda build.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use visitpay_app::ports::{
    CheckoutRequest, CheckoutSession, Clock, ConnectedAccount, Email, Ids, MessagingError, Messenger, Payments,
    PaymentsError, Refund, RefundRequest, Sms, Store,
};
use visitpay_app::{AppConfig, Deps, Outbox, PatientLinks, Pdf, Queue, Stripe};
use visitpay_aws::dynamodb::DynamoStore;
use visitpay_aws::tables;
use visitpay_devkit::embedded::EmbeddedStore;
use visitpay_devkit::embedded_queue::EmbeddedQueue;
use visitpay_domain::{ActionId, ClinicId, Timestamp};
use visitpay_domain::{PaymentIntentId, SessionId, StripeAccountId};

/// A clock that only moves when told to (forward). It can be the Stripe
/// emulator's own (`sharing`), so both sides of a webhook agree on "now".
pub struct FixedClock(Arc<stripe_emulator::Clock>);

impl FixedClock {
    pub fn at_unix(secs: i64) -> Self {
        FixedClock(Arc::new(stripe_emulator::Clock::fixed(secs)))
    }
    /// The emulator's clock, read as visitpay's.
    pub fn sharing(clock: Arc<stripe_emulator::Clock>) -> Self {
        FixedClock(clock)
    }
    pub fn advance(&self, secs: i64) {
        self.0.advance(secs);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        time::OffsetDateTime::from_unix_timestamp(self.0.now()).expect("valid time")
    }
}

/// Predictable ids: `act_0001`, tokens `tok…0001` (still 43 characters).
#[derive(Default)]
pub struct SeqIds(AtomicU64);

impl Ids for SeqIds {
    fn action_id(&self) -> ActionId {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        ActionId::parse(&format!("act_{n:04}")).expect("valid id")
    }
    fn link_token(&self) -> String {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        format!("tok{n:040}")
    }
}

pub const TEST_WEBHOOK_SECRET: &str = "whsec_test_secret";
/// Where the tests' onboarding links send the person back.
pub const ONBOARDING_PAGE: &str = "https://emr.example.test/support/stripe";

/// The environment variable the test script sets to moto's address.
pub const DYNAMODB_ENDPOINT_ENV: &str = "VISITPAY_TEST_DYNAMODB_ENDPOINT";

/// A fresh DynamoDB table on the emulator started by `scripts/test`, unique
/// to the caller. Panics (fails the test) when no emulator is configured:
/// DynamoDB tests never silently skip.
pub async fn dynamodb_store(prefix: &str) -> DynamoStore {
    dynamodb_store_at(&moto_endpoint(), prefix).await
}

/// moto's address, from the environment `scripts/test` sets.
pub fn moto_endpoint() -> String {
    std::env::var(DYNAMODB_ENDPOINT_ENV).unwrap_or_else(|_| {
        panic!("{DYNAMODB_ENDPOINT_ENV} is not set: run the tests with scripts/test, which starts moto")
    })
}

/// A DynamoDB client for `endpoint` (moto, or a fault-injecting proxy in front of it).
pub async fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "visitpay-tests"))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&sdk)
}

async fn dynamodb_store_at(endpoint: &str, prefix: &str) -> DynamoStore {
    let table = format!("{prefix}-{}", unique_suffix());
    let store = DynamoStore::new(dynamodb_client(endpoint).await, table);
    visitpay_devkit::setup::ensure_table(&store, &tables::main_table()).await.expect("create test table on moto");
    store
}

fn unique_suffix() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn embedded_store() -> EmbeddedStore {
    EmbeddedStore::new()
}

pub use visitpay_devkit::recorded_metrics::RecordedMetrics;

/// Gives `deps` a fresh recorder of money signals and returns it.
pub fn record_metrics<P, Q, R, M>(deps: &mut Deps<P, Q, R, M>) -> Arc<RecordedMetrics> {
    let recorder = Arc::new(RecordedMetrics::default());
    deps.metrics = recorder.clone();
    recorder
}

/// A Stripe no test reaches for money: any call that would move or show
/// money is answered `Unavailable`, which a test that did not mean to call
/// Stripe sees as a 503, never as success. It knows which accounts the
/// platform has connected, as settings need.
pub struct NoStripe;

/// The accounts connected to the tests' Stripe platform: the emulator
/// fixture's (`ACCOUNT`) and the clinic the `events/` files name.
pub const CONNECTED_ACCOUNTS: &[&str] = &[crate::support::ACCOUNT, "acct_1ClinicA"];

fn no_stripe() -> PaymentsError {
    PaymentsError::Unavailable("this test has no Stripe".into())
}

#[async_trait::async_trait]
impl Payments for NoStripe {
    async fn create_checkout(&self, _: &CheckoutRequest) -> Result<CheckoutSession, PaymentsError> {
        Err(no_stripe())
    }
    async fn retrieve_checkout(&self, _: &StripeAccountId, _: &SessionId) -> Result<CheckoutSession, PaymentsError> {
        Err(no_stripe())
    }
    async fn expire_checkout(&self, _: &StripeAccountId, _: &SessionId) -> Result<CheckoutSession, PaymentsError> {
        Err(no_stripe())
    }
    async fn refund(&self, _: &RefundRequest) -> Result<Refund, PaymentsError> {
        Err(no_stripe())
    }
    async fn recover_checkout(&self, _: &CheckoutRequest) -> Result<Option<CheckoutSession>, PaymentsError> {
        Err(no_stripe())
    }
    async fn payment_method(
        &self,
        _: &StripeAccountId,
        _: &PaymentIntentId,
    ) -> Result<Option<visitpay_domain::PaymentMethod>, PaymentsError> {
        Err(no_stripe())
    }
    /// The test platform's connected accounts (`CONNECTED_ACCOUNTS`) are
    /// known, as Stripe knows an account connected to the platform; any other
    /// is refused as Stripe refuses it (`account_invalid`).
    async fn retrieve_account(&self, account: &StripeAccountId) -> Result<ConnectedAccount, PaymentsError> {
        if CONNECTED_ACCOUNTS.contains(&account.as_str()) {
            return Ok(ConnectedAccount {
                id: account.clone(),
                charges_enabled: true,
                payouts_enabled: true,
                details_submitted: true,
                requirements_due: Vec::new(),
                disabled_reason: None,
            });
        }
        Err(PaymentsError::AccountDisconnected)
    }
    async fn create_account(&self, _: &visitpay_domain::ClinicId) -> Result<ConnectedAccount, PaymentsError> {
        Err(no_stripe())
    }
    async fn create_account_link(
        &self,
        _: &StripeAccountId,
        _: &str,
        _: &str,
    ) -> Result<visitpay_app::ports::AccountLink, PaymentsError> {
        Err(no_stripe())
    }
    async fn list_payout_transactions(
        &self,
        _: &StripeAccountId,
        _: &str,
    ) -> Result<Vec<visitpay_app::ports::BalanceTransaction>, PaymentsError> {
        Err(no_stripe())
    }
    async fn list_undelivered_events(
        &self,
        _: &StripeAccountId,
        _: visitpay_domain::Timestamp,
        _: visitpay_domain::Timestamp,
    ) -> Result<visitpay_app::ports::EventLog, PaymentsError> {
        Err(no_stripe())
    }
    async fn list_refunds(&self, _: &StripeAccountId, _: &PaymentIntentId) -> Result<Vec<Refund>, PaymentsError> {
        Err(no_stripe())
    }
    fn livemode(&self) -> bool {
        false
    }
}

/// Deps as the tests use them: every port wired, as in the local runner.
pub type TestDeps = Deps<Stripe, Queue, Pdf, Outbox>;

/// The receipt renderer, built once for the whole binary (its fonts are megabytes).
pub fn pdf() -> Pdf {
    static PDF: std::sync::OnceLock<Pdf> = std::sync::OnceLock::new();
    PDF.get_or_init(|| Arc::new(visitpay_pdf::KrillaPdf::new())).clone()
}

/// Gives `deps` a fresh outbox and returns it: every email and text the
/// test's deliveries send (each one checked by `NoHealthData` on the way).
pub fn record_messages(deps: &mut TestDeps) -> Arc<visitpay_devkit::outbox::Outbox> {
    let outbox = Arc::new(visitpay_devkit::outbox::Outbox::new(deps.clock.clone(), None));
    deps.messenger = Arc::new(NoHealthData { store: deps.store.clone(), inner: outbox.clone() });
    outbox
}

/// Every message any test sends passes here (`deps_with` and
/// `record_messages` put it in front of the outbox): it fails the test when
/// an email's subject or text, or a text message, carries anything of the
/// action's invoices beyond the amount: a description, a service, a
/// provider, a profession or a registration number, whatever the clinic's
/// line-item setting. (The receipt's PDF attachment is the receipt itself,
/// which names the services by design; it is not message text.)
pub struct NoHealthData {
    store: Arc<dyn Store>,
    inner: Arc<dyn Messenger>,
}

impl NoHealthData {
    async fn check(&self, clinic_id: &ClinicId, action_id: &ActionId, texts: &[&str]) {
        let action = self.store.get_action(clinic_id, action_id).await.expect("the store answers");
        let action =
            action.unwrap_or_else(|| panic!("a message about an action its clinic does not have: {action_id}"));
        let mut secrets: Vec<String> = Vec::new();
        for line in action.lines() {
            let r = &line.receipt;
            secrets.extend(
                [&r.service, &r.provider_name, &r.profession, &r.registration_number].into_iter().flatten().cloned(),
            );
            let invoice = self.store.get_invoice(clinic_id, action.patient_id(), &line.invoice_id).await.unwrap();
            secrets.extend(invoice.map(|i| i.description.clone()));
        }
        for text in texts {
            let text = text.to_lowercase();
            for secret in secrets.iter().filter(|s| !s.trim().is_empty()) {
                assert!(
                    !text.contains(&secret.to_lowercase()),
                    "a message to the patient carries health data ({secret:?}): {text}"
                );
            }
        }
    }
}

#[async_trait::async_trait]
impl Messenger for NoHealthData {
    async fn send_email(&self, email: &Email) -> Result<String, MessagingError> {
        self.check(&email.clinic_id, &email.action_id, &[&email.subject, &email.text, &email.from_name]).await;
        self.inner.send_email(email).await
    }
    async fn send_sms(&self, sms: &Sms) -> Result<String, MessagingError> {
        self.check(&sms.clinic_id, &sms.action_id, &[&sms.text]).await;
        self.inner.send_sms(sms).await
    }
}

/// Deps over `store` with a fixed clock (2027-01-15T12:00:00Z), sequential
/// ids, recorded metrics, no Stripe (`NoStripe`) and an embedded queue nobody
/// consumes; tests give them the Stripe and queue they drive.
pub fn deps_with(store: Arc<dyn Store>) -> (TestDeps, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::at_unix(1_800_000_000));
    let config = AppConfig {
        patient_links: PatientLinks::parse("https://pay.example.test/patient/actions").expect("a valid base"),
        webhook_secrets: vec![TEST_WEBHOOK_SECRET.into()],
        edge_secret: None,
        onboarding_page: Some(ONBOARDING_PAGE.into()),
    };
    let deps =
        Deps::new(store, clock.clone(), Arc::new(SeqIds::default()), Arc::new(RecordedMetrics::default()), config)
            .with_payments(Arc::new(NoStripe))
            .with_queue(Arc::new(EmbeddedQueue::new(3, std::time::Duration::from_millis(10))))
            .with_pdf(pdf());
    let outbox = Arc::new(visitpay_devkit::outbox::Outbox::new(clock.clone(), None));
    let guarded: Outbox = Arc::new(NoHealthData { store: deps.store.clone(), inner: outbox });
    (deps.with_messenger(guarded), clock)
}

/// A status-event bus that keeps what it accepted and refuses the events
/// `refuse` picks (as EventBridge answers an entry with an `ErrorCode`).
pub struct RecordingBus {
    pub accepted: std::sync::Mutex<Vec<visitpay_domain::ActionChanged>>,
    refuse: Box<dyn Fn(&visitpay_domain::ActionChanged) -> bool + Send + Sync>,
}

impl RecordingBus {
    pub fn accepting() -> Self {
        Self::refusing(|_| false)
    }
    pub fn refusing(refuse: impl Fn(&visitpay_domain::ActionChanged) -> bool + Send + Sync + 'static) -> Self {
        RecordingBus { accepted: Default::default(), refuse: Box::new(refuse) }
    }
}

#[async_trait::async_trait]
impl visitpay_app::ports::StatusEvents for RecordingBus {
    async fn publish(
        &self,
        events: &[visitpay_domain::ActionChanged],
    ) -> Result<Vec<Option<String>>, visitpay_app::ports::PublishError> {
        Ok(events
            .iter()
            .map(|e| {
                if (self.refuse)(e) {
                    Some("InternalFailure".to_owned())
                } else {
                    self.accepted.lock().unwrap().push(e.clone());
                    None
                }
            })
            .collect())
    }
}
