//! What AWS authorizes: every request a function's SDK clients send, recorded
//! at the HTTP layer (exactly what AWS receives), translated into the IAM
//! actions and resources AWS checks for it, and the same read off the
//! template's policies, so the two can be compared.
//!
//! The translation follows AWS's documentation:
//! - DynamoDB: "Each item in a TransactWriteItems request is authorized as its
//!   own action: Put as dynamodb:PutItem, Update as dynamodb:UpdateItem, Delete
//!   as dynamodb:DeleteItem, ConditionCheck as dynamodb:ConditionCheckItem";
//!   TransactGetItems elements as dynamodb:GetItem (Amazon DynamoDB Developer
//!   Guide, "Using IAM with DynamoDB transactions"). There is no
//!   `dynamodb:TransactWriteItems` action. BatchGetItem is `dynamodb:BatchGetItem`
//!   on each table named. A Query or Scan naming an `IndexName` is authorized on
//!   the index's ARN, `…:table/<table>/index/<index>` (Service Authorization
//!   Reference, "Resource types defined by Amazon DynamoDB": index).
//! - SQS: the action is the operation (`sqs:SendMessage`, and
//!   `SendMessageBatch` is authorized as `sqs:SendMessage`), on the queue's ARN.
//! - EventBridge: `events:PutEvents` on each event bus its entries name
//!   (Service Authorization Reference, "Actions defined by Amazon
//!   EventBridge": PutEvents, resource type event-bus).
//! - SSM: `ssm:GetParameter` on the parameter's ARN; decrypting a SecureString
//!   also needs `kms:Decrypt` on its key, unless the key is the AWS managed
//!   `aws/ssm` key, whose key policy already lets any principal of the account
//!   that may read the parameter decrypt through Parameter Store (Systems
//!   Manager User Guide, "How AWS Systems Manager Parameter Store uses AWS KMS").
//! - SES API v2: SendEmail is `ses:SendEmail` on the sending identity and on
//!   the configuration set it names (Service Authorization Reference,
//!   "Actions defined by Amazon Simple Email Service v2": SendEmail, resource
//!   types identity and configuration-set), whatever its content (raw
//!   included; v2 has no separate SendRawEmail).
//! - SNS: Publish to a phone number names no topic; it is `sns:Publish` on
//!   "*" (Amazon SNS Developer Guide, "Publishing to a mobile phone").

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use serde_json::Value;

/// One request as sent: the service it is signed for (`dynamodb`, `ses`,
/// `sns`), its `X-Amz-Target` (`DynamoDB_20120810.Query`) if any, path, and
/// body (as JSON when it is, and as text).
#[derive(Debug, Clone)]
pub struct AwsCall {
    pub service: String,
    pub target: String,
    pub path: String,
    pub body: Value,
    pub text: String,
}

/// Every AWS request one function's clients sent, in order.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<AwsCall>>>);

impl Recorder {
    pub fn calls(&self) -> Vec<AwsCall> {
        self.0.lock().unwrap().clone()
    }

    /// An HTTP client for the SDK that records each request, then sends it
    /// through `inner` (the production client: `visitpay_edge::config::https_client`).
    pub fn client(&self, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(RecordingClient { inner, log: self.clone() })
    }
}

#[derive(Debug)]
struct RecordingClient {
    inner: SharedHttpClient,
    log: Recorder,
}

impl HttpClient for RecordingClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(RecordingConnector {
            inner: self.inner.http_connector(settings, components),
            log: self.log.clone(),
        })
    }
}

#[derive(Debug)]
struct RecordingConnector {
    inner: SharedHttpConnector,
    log: Recorder,
}

impl HttpConnector for RecordingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = request.headers().get("x-amz-target").unwrap_or("<no X-Amz-Target>").to_owned();
        // SigV4's credential scope names the service: …/<date>/<region>/<service>/aws4_request.
        let service = request
            .headers()
            .get("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or("<unsigned>")
            .to_owned();
        let path =
            request.uri().split("://").nth(1).and_then(|r| r.find('/').map(|i| r[i..].to_owned())).unwrap_or_default();
        let bytes = request.body().bytes().unwrap_or_default();
        let body = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        let text = String::from_utf8_lossy(bytes).into_owned();
        self.log.0.lock().unwrap().push(AwsCall { service, target, path, body, text });
        self.inner.call(request)
    }
}

/// An AWS resource as the template names it (a logical id or a parameter).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// `!GetAtt <Table>.Arn`
    Table(String),
    /// `!Sub "${<Table>.Arn}/index/<index>"`
    Index(String, String),
    /// `!GetAtt <Queue>.Arn`
    Queue(String),
    /// `!Sub "arn:…:ssm:…:parameter${<Parameter>}"`: an SSM parameter named by a template parameter.
    Parameter(String),
    /// `!Ref <Parameter>`: a KMS key named by a template parameter.
    Key(String),
    /// `!GetAtt <EventBus>.Arn`
    Bus(String),
    /// The SES identity of the domain of the address a template parameter holds.
    SenderDomain(String),
    /// `!Sub "arn:…:ses:…:configuration-set/${<ConfigurationSet>}"`
    ConfigurationSet(String),
    /// `"*"`
    Any,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Table(t) => write!(f, "table {t}"),
            Resource::Index(t, i) => write!(f, "index {t}/{i}"),
            Resource::Queue(q) => write!(f, "queue {q}"),
            Resource::Parameter(p) => write!(f, "parameter ${{{p}}}"),
            Resource::Key(k) => write!(f, "kms key ${{{k}}}"),
            Resource::Bus(b) => write!(f, "event bus {b}"),
            Resource::SenderDomain(p) => write!(f, "the SES identity of ${{{p}}}'s domain"),
            Resource::ConfigurationSet(c) => write!(f, "configuration set {c}"),
            Resource::Any => write!(f, "*"),
        }
    }
}

/// One IAM action on one resource.
pub type Grant = (String, Resource);

/// How the names a test gave its AWS resources map to the template's.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Table name → logical id.
    pub tables: BTreeMap<String, String>,
    /// Queue name (the URL's last segment) → logical id.
    pub queues: BTreeMap<String, String>,
    /// Event bus name → logical id.
    pub buses: BTreeMap<String, String>,
    /// SSM parameter name → the template parameter holding it.
    pub parameters: BTreeMap<String, String>,
    /// An email domain → the template parameter whose address has it.
    pub sender_domains: BTreeMap<String, String>,
    /// SES configuration set name → logical id.
    pub configuration_sets: BTreeMap<String, String>,
    /// When set, SecureStrings are encrypted with the customer managed key
    /// named by this template parameter (else the AWS managed `aws/ssm`).
    pub secrets_key: Option<String>,
}

impl Names {
    fn table(&self, name: &str) -> Result<String, String> {
        self.tables.get(name).cloned().ok_or_else(|| format!("unknown table {name}"))
    }
}

/// The IAM actions AWS checks for one request.
pub fn required(call: &AwsCall, names: &Names) -> Result<Vec<Grant>, String> {
    match call.service.as_str() {
        "ses" => return ses_required(call, names),
        "sns" => return sns_required(call),
        _ => {}
    }
    let (service, operation) = call.target.split_once('.').ok_or_else(|| format!("no operation: {}", call.target))?;
    let body = &call.body;
    let s = |v: &Value, field: &str| -> Result<String, String> {
        v.get(field).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| format!("{operation} without {field}"))
    };
    let mut out = Vec::new();
    match service {
        "DynamoDB_20120810" => match operation {
            "GetItem" | "PutItem" | "UpdateItem" | "DeleteItem" => {
                out.push((format!("dynamodb:{operation}"), Resource::Table(names.table(&s(body, "TableName")?)?)));
            }
            "Query" | "Scan" => {
                let table = names.table(&s(body, "TableName")?)?;
                let resource = match body.get("IndexName").and_then(Value::as_str) {
                    Some(index) => Resource::Index(table, index.to_owned()),
                    None => Resource::Table(table),
                };
                out.push((format!("dynamodb:{operation}"), resource));
            }
            "BatchGetItem" | "BatchWriteItem" => {
                let tables = body.get("RequestItems").and_then(Value::as_object).ok_or("batch without RequestItems")?;
                for table in tables.keys() {
                    out.push((format!("dynamodb:{operation}"), Resource::Table(names.table(table)?)));
                }
            }
            "TransactWriteItems" | "TransactGetItems" => {
                let items = body.get("TransactItems").and_then(Value::as_array).ok_or("transaction without items")?;
                for item in items {
                    let (kind, element) =
                        item.as_object().and_then(|o| o.iter().next()).ok_or("empty transaction element")?;
                    let action = match kind.as_str() {
                        "Put" => "dynamodb:PutItem",
                        "Update" => "dynamodb:UpdateItem",
                        "Delete" => "dynamodb:DeleteItem",
                        "ConditionCheck" => "dynamodb:ConditionCheckItem",
                        "Get" => "dynamodb:GetItem",
                        other => return Err(format!("unknown transaction element {other}")),
                    };
                    out.push((action.to_owned(), Resource::Table(names.table(&s(element, "TableName")?)?)));
                }
            }
            other => return Err(format!("no IAM translation for DynamoDB {other}")),
        },
        "AmazonSQS" => {
            let action = match operation {
                "SendMessage" | "SendMessageBatch" => "sqs:SendMessage",
                "ReceiveMessage" => "sqs:ReceiveMessage",
                "DeleteMessage" | "DeleteMessageBatch" => "sqs:DeleteMessage",
                "GetQueueAttributes" => "sqs:GetQueueAttributes",
                other => return Err(format!("no IAM translation for SQS {other}")),
            };
            let url = s(body, "QueueUrl")?;
            let name = url.rsplit('/').next().unwrap_or_default();
            let queue = names.queues.get(name).cloned().ok_or_else(|| format!("unknown queue {url}"))?;
            out.push((action.to_owned(), Resource::Queue(queue)));
        }
        "AWSEvents" => match operation {
            "PutEvents" => {
                let entries = body.get("Entries").and_then(Value::as_array).ok_or("PutEvents without Entries")?;
                for entry in entries {
                    let name = s(entry, "EventBusName")?;
                    let bus = names.buses.get(&name).cloned().ok_or_else(|| format!("unknown event bus {name}"))?;
                    out.push(("events:PutEvents".to_owned(), Resource::Bus(bus)));
                }
            }
            other => return Err(format!("no IAM translation for EventBridge {other}")),
        },
        "AmazonSSM" => match operation {
            "GetParameter" => {
                let name = s(body, "Name")?;
                let parameter =
                    names.parameters.get(&name).cloned().ok_or_else(|| format!("unknown parameter {name}"))?;
                out.push(("ssm:GetParameter".to_owned(), Resource::Parameter(parameter)));
                let decrypts = body.get("WithDecryption").and_then(Value::as_bool).unwrap_or(false);
                if let (true, Some(key)) = (decrypts, &names.secrets_key) {
                    out.push(("kms:Decrypt".to_owned(), Resource::Key(key.clone())));
                }
            }
            other => return Err(format!("no IAM translation for SSM {other}")),
        },
        other => return Err(format!("no IAM translation for service {other}")),
    }
    Ok(out)
}

/// SES API v2 (REST: the operation is the method and path).
fn ses_required(call: &AwsCall, names: &Names) -> Result<Vec<Grant>, String> {
    if call.path.split('?').next() != Some("/v2/email/outbound-emails") {
        return Err(format!("no IAM translation for SES {}", call.path));
    }
    let from = call.body["FromEmailAddress"].as_str().ok_or("SendEmail without FromEmailAddress")?;
    // "Name <address>" or the address alone.
    let address = from.rsplit('<').next().unwrap_or(from).trim_end_matches('>');
    let domain = address.rsplit_once('@').map(|(_, d)| d).ok_or_else(|| format!("not an address: {from}"))?;
    let parameter =
        names.sender_domains.get(domain).cloned().ok_or_else(|| format!("unknown sender domain {domain}"))?;
    let mut out = vec![("ses:SendEmail".to_owned(), Resource::SenderDomain(parameter))];
    if let Some(set) = call.body["ConfigurationSetName"].as_str() {
        let logical =
            names.configuration_sets.get(set).cloned().ok_or_else(|| format!("unknown configuration set {set}"))?;
        out.push(("ses:SendEmail".to_owned(), Resource::ConfigurationSet(logical)));
    }
    Ok(out)
}

/// SNS (the query protocol: `Action=…` in a form body).
fn sns_required(call: &AwsCall) -> Result<Vec<Grant>, String> {
    let form: BTreeMap<String, String> = form_urlencoded::parse(call.text.as_bytes()).into_owned().collect();
    match form.get("Action").map(String::as_str) {
        Some("Publish") if form.contains_key("PhoneNumber") => Ok(vec![("sns:Publish".to_owned(), Resource::Any)]),
        Some("Publish") => Err("no IAM translation for SNS Publish to a topic (no topic is granted)".into()),
        other => Err(format!("no IAM translation for SNS {other:?}")),
    }
}

/// Everything a function's recorded calls need, or the calls that cannot be translated.
pub fn required_by(calls: &[AwsCall], names: &Names) -> Result<BTreeSet<Grant>, Vec<String>> {
    let mut grants = BTreeSet::new();
    let mut errors = Vec::new();
    for call in calls {
        match required(call, names) {
            Ok(g) => grants.extend(g),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(grants)
    } else {
        Err(errors)
    }
}

/// The template, as the policy reader needs it.
pub struct Template<'a> {
    pub resources: &'a serde_yaml::Value,
    /// The conditions to assume true (`!If` takes its first branch for these).
    pub true_conditions: BTreeSet<String>,
}

fn text(v: &serde_yaml::Value) -> Option<&str> {
    match v {
        serde_yaml::Value::String(s) => Some(s),
        serde_yaml::Value::Tagged(t) => text(&t.value),
        _ => None,
    }
}

/// An intrinsic function (`!GetAtt x`) as its name (`GetAtt`) and argument.
fn tag(v: &serde_yaml::Value) -> Option<(String, &serde_yaml::Value)> {
    match v {
        serde_yaml::Value::Tagged(t) => Some((t.tag.to_string().trim_start_matches('!').to_owned(), &t.value)),
        _ => None,
    }
}

impl Template<'_> {
    fn kind(&self, logical: &str) -> Option<&str> {
        text(&self.resources[logical]["Type"])
    }

    /// `!If [cond, then, else]` resolved under `true_conditions`; anything else as is.
    fn resolve<'v>(&self, v: &'v serde_yaml::Value) -> Option<&'v serde_yaml::Value> {
        match tag(v).as_ref().map(|(t, a)| (t.as_str(), *a)) {
            Some(("If", args)) => {
                let args = args.as_sequence()?;
                let cond = text(&args[0])?;
                let branch = if self.true_conditions.contains(cond) { &args[1] } else { &args[2] };
                match tag(branch).as_ref().map(|(t, a)| (t.as_str(), *a)) {
                    Some(("Ref", r)) if text(r) == Some("AWS::NoValue") => None,
                    _ => self.resolve(branch),
                }
            }
            _ => Some(v),
        }
    }

    /// A policy resource in one of the shapes visitpay's template uses.
    fn resource(&self, v: &serde_yaml::Value) -> Result<Resource, String> {
        let unknown = || format!("unrecognised policy resource {v:?}");
        if text(v) == Some("*") && tag(v).is_none() {
            return Ok(Resource::Any);
        }
        match tag(v).as_ref().map(|(t, a)| (t.as_str(), *a)) {
            // `!Sub ["arn:…:identity/${Domain}", {Domain: !Select [1, !Split ["@", !Ref <Parameter>]]}]`
            Some(("Sub", serde_yaml::Value::Sequence(parts))) => {
                let template = parts.first().and_then(text).ok_or_else(unknown)?;
                if !template.ends_with(":identity/${Domain}") {
                    return Err(unknown());
                }
                let select = tag(&parts.get(1).ok_or_else(unknown)?["Domain"]).ok_or_else(unknown)?;
                let split = select.1.as_sequence().and_then(|s| s.get(1)).and_then(tag).ok_or_else(unknown)?;
                let reference = split.1.as_sequence().and_then(|s| s.get(1)).and_then(tag).ok_or_else(unknown)?;
                match (select.0.as_str(), split.0.as_str(), reference.0.as_str()) {
                    ("Select", "Split", "Ref") => {
                        Ok(Resource::SenderDomain(text(reference.1).ok_or_else(unknown)?.to_owned()))
                    }
                    _ => Err(unknown()),
                }
            }
            Some(("GetAtt", target)) => {
                let target = text(target).ok_or_else(unknown)?;
                let logical = target.strip_suffix(".Arn").ok_or_else(unknown)?;
                match self.kind(logical) {
                    Some("AWS::DynamoDB::Table") => Ok(Resource::Table(logical.to_owned())),
                    Some("AWS::SQS::Queue") => Ok(Resource::Queue(logical.to_owned())),
                    Some("AWS::Events::EventBus") => Ok(Resource::Bus(logical.to_owned())),
                    _ => Err(unknown()),
                }
            }
            Some(("Sub", template)) => {
                let template = text(template).ok_or_else(unknown)?;
                if let Some(rest) = template.strip_prefix("${") {
                    let (arn, index) = rest.split_once(".Arn}/index/").ok_or_else(unknown)?;
                    if self.kind(arn) == Some("AWS::DynamoDB::Table") {
                        return Ok(Resource::Index(arn.to_owned(), index.to_owned()));
                    }
                }
                let sets = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:configuration-set/${";
                if let Some(set) = template.strip_prefix(sets).and_then(|s| s.strip_suffix('}')) {
                    return Ok(Resource::ConfigurationSet(set.to_owned()));
                }
                let prefix = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${";
                let parameter = template.strip_prefix(prefix).and_then(|p| p.strip_suffix('}')).ok_or_else(unknown)?;
                Ok(Resource::Parameter(parameter.to_owned()))
            }
            Some(("Ref", name)) => Ok(Resource::Key(text(name).ok_or_else(unknown)?.to_owned())),
            _ => Err(unknown()),
        }
    }

    /// What a function's inline policies grant: every action of a statement
    /// on every resource of it.
    pub fn granted(&self, function: &str) -> Result<BTreeSet<Grant>, String> {
        let policies = self.resources[function]["Properties"]["Policies"]
            .as_sequence()
            .ok_or_else(|| format!("{function} has no Policies list"))?;
        let mut grants = BTreeSet::new();
        for policy in policies {
            let statements =
                policy["Statement"].as_sequence().ok_or_else(|| format!("{function}: inline statements only"))?;
            for statement in statements.iter().filter_map(|s| self.resolve(s)) {
                if text(&statement["Effect"]) != Some("Allow") {
                    return Err(format!("{function}: only Allow statements are understood"));
                }
                let list = |v: &serde_yaml::Value| -> Vec<serde_yaml::Value> {
                    match v {
                        serde_yaml::Value::Sequence(s) => s.clone(),
                        other => vec![other.clone()],
                    }
                };
                let actions: Vec<String> =
                    list(&statement["Action"]).iter().filter_map(|a| text(a).map(str::to_owned)).collect();
                for resource in list(&statement["Resource"]) {
                    let resource = self.resource(&resource)?;
                    for action in &actions {
                        grants.insert((action.clone(), resource.clone()));
                    }
                }
            }
        }
        Ok(grants)
    }
}
