//! `template.yaml` agrees with the repo's single sources of truth: the table
//! definition (`infra/tables.json`) and the route table (`http::routes`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_yaml::Value;
use visitpay_aws::tables;
use visitpay_edge::http::functions::ROUTES;
use visitpay_edge::http::routes::Access;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tagged(t) => s(&t.value),
        other => panic!("expected a string, got {other:?}"),
    }
}

#[test]
fn tables_match_the_single_definition() {
    let t = template();
    for def in tables::definitions() {
        let props = &t["Resources"][def.logical_id.as_str()]["Properties"];
        assert_eq!(s(&props["BillingMode"]), def.billing_mode);
        let attributes: BTreeSet<(String, String)> = props["AttributeDefinitions"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| (s(&a["AttributeName"]), s(&a["AttributeType"])))
            .collect();
        let expected: BTreeSet<(String, String)> = def.attributes.clone().into_iter().collect();
        assert_eq!(attributes, expected);
        let keys: Vec<(String, String)> = props["KeySchema"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|k| (s(&k["AttributeName"]), s(&k["KeyType"])))
            .collect();
        assert_eq!(keys, vec![(def.partition_key.clone(), "HASH".into()), (def.sort_key.clone(), "RANGE".into())]);
        let indexes = props["GlobalSecondaryIndexes"].as_sequence().unwrap();
        assert_eq!(indexes.len(), def.global_secondary_indexes.len());
        for (got, want) in indexes.iter().zip(&def.global_secondary_indexes) {
            assert_eq!(s(&got["IndexName"]), want.name);
            let keys: Vec<String> =
                got["KeySchema"].as_sequence().unwrap().iter().map(|k| s(&k["AttributeName"])).collect();
            assert_eq!(keys, vec![want.partition_key.clone(), want.sort_key.clone()]);
            assert_eq!(s(&got["Projection"]["ProjectionType"]), want.projection);
        }
        assert_eq!(s(&props["TimeToLiveSpecification"]["AttributeName"]), def.ttl_attribute);
        assert_eq!(s(&props["StreamSpecification"]["StreamViewType"]), def.stream_view_type);
        assert_eq!(props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], Value::Bool(true));
    }
}

#[test]
fn every_route_is_wired_to_its_function_with_the_right_auth() {
    let t = template();
    let resources = t["Resources"].as_mapping().unwrap();
    let mut wired = BTreeSet::new();
    for (_, resource) in resources {
        if s(&resource["Type"]) != "AWS::Serverless::Function" {
            continue;
        }
        let binary = s(&resource["Metadata"]["BuildProperties"]["Binary"]);
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (_, e) in events {
            if s(&e["Type"]) != "HttpApi" {
                continue;
            }
            let p = &e["Properties"];
            let (method, path) = (s(&p["Method"]), s(&p["Path"]));
            let route = ROUTES
                .iter()
                .find(|r| r.method == method && r.path == path)
                .unwrap_or_else(|| panic!("{method} {path} is in the template but not in the route table"));
            assert_eq!(route.function, binary, "{method} {path}");
            let authorizer = s(&p["Auth"]["Authorizer"]);
            let expected = if matches!(route.access, Access::Patient | Access::Stripe) { "NONE" } else { "ClinicJwt" };
            assert_eq!(authorizer, expected, "{method} {path}");
            wired.insert(route.key());
        }
    }
    let all: BTreeSet<String> = ROUTES.iter().map(|r| r.key()).collect();
    assert_eq!(wired, all, "every route needs an HttpApi event");
}

#[test]
fn every_function_crate_has_a_template_resource() {
    let t = template();
    let binaries: BTreeSet<String> = t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| s(&r["Type"]) == "AWS::Serverless::Function")
        .map(|r| s(&r["Metadata"]["BuildProperties"]["Binary"]))
        .collect();
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!crates.is_empty());
    assert_eq!(binaries, crates);
}

fn resources_of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| s(&r["Type"]) == kind)
        .map(|(k, r)| (k.as_str().unwrap(), r))
        .collect()
}

fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(items) => items.iter().for_each(|i| all_strings(i, out)),
        Value::Mapping(m) => m.values().for_each(|i| all_strings(i, out)),
        Value::Tagged(t) => all_strings(&t.value, out),
        _ => {}
    }
}

#[test]
fn functions_are_arm64_rust_on_al2023_with_least_privilege() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(s(&globals["Runtime"]), "provided.al2023");
    assert_eq!(globals["Architectures"][0].as_str(), Some("arm64"));
    for (name, f) in resources_of_type(&t, "AWS::Serverless::Function") {
        assert_eq!(s(&f["Metadata"]["BuildMethod"]), "rust-cargolambda", "{name}");
        let statements = f["Properties"]["Policies"].as_sequence().unwrap_or_else(|| panic!("{name} has no policy"));
        for policy in statements {
            let policy_statements = policy["Statement"].as_sequence().expect("inline statements only");
            for st in policy_statements {
                // A conditional statement (`!If [cond, statement, !Ref AWS::NoValue]`): its statement.
                let st = match st {
                    Value::Tagged(t) if t.tag == "If" => &t.value[1],
                    other => other,
                };
                let mut actions = Vec::new();
                all_strings(&st["Action"], &mut actions);
                assert!(!actions.is_empty(), "{name}");
                for a in &actions {
                    assert!(!a.contains('*'), "{name}: wildcard action {a}");
                }
                let mut resources = Vec::new();
                all_strings(&st["Resource"], &mut resources);
                // The one exception: a text published to a phone number names
                // no topic, and SNS authorizes it on "*" (SNS Developer Guide,
                // "Publishing to a mobile phone"); nothing else rides along.
                let sms = name == "SendMessagesFunction" && actions == ["sns:Publish"];
                assert!(sms || resources.iter().all(|r| r != "*"), "{name}: wildcard resource");
            }
        }
        // Secrets come from SSM at cold start, never as plain environment values.
        let env = &f["Properties"]["Environment"]["Variables"];
        for secret in ["STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"] {
            assert!(env[secret].is_null(), "{name} puts {secret} in its environment");
        }
    }
}

#[test]
fn the_queue_has_a_dead_letter_queue_and_the_consumer_reports_batch_failures() {
    let t = template();
    let queue = &t["Resources"]["EventsQueue"]["Properties"];
    let redrive = &queue["RedrivePolicy"];
    assert_eq!(s(&redrive["deadLetterTargetArn"]), "EventsDeadLetterQueue.Arn");
    assert!(redrive["maxReceiveCount"].as_u64().is_some_and(|n| (1..=10).contains(&n)));
    let consumer = &t["Resources"]["ProcessPaymentEventsFunction"]["Properties"];
    let timeout = consumer["Timeout"].as_u64().unwrap();
    assert!(queue["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout, "visibility ≥ 6 × consumer timeout");
    let source = &consumer["Events"]["PaymentEvents"];
    assert_eq!(s(&source["Type"]), "SQS");
    assert_eq!(source["Properties"]["FunctionResponseTypes"][0].as_str(), Some("ReportBatchItemFailures"));
    // The webhook accepts exactly what the queue can take (413 beyond).
    let max = visitpay_app::ports::MAX_MESSAGE_BYTES as u64;
    assert_eq!(queue["MaximumMessageSize"].as_u64(), Some(max));
    let webhook = ROUTES.iter().find(|r| r.access == Access::Stripe).unwrap();
    assert_eq!(webhook.max_body_bytes() as u64, max);
    let schedule = &t["Resources"]["ReconcileFunction"]["Properties"]["Events"]["EveryMinute"];
    assert!(s(&schedule["Type"]).starts_with("Schedule"));
    assert!(s(&schedule["Properties"]["ScheduleExpression"]).starts_with("rate("));
}

#[test]
fn the_api_has_the_jwt_authorizer_and_tables_are_protected() {
    let t = template();
    let auth = &t["Resources"]["HttpApi"]["Properties"]["Auth"];
    assert_eq!(s(&auth["DefaultAuthorizer"]), "ClinicJwt");
    let jwt = &auth["Authorizers"]["ClinicJwt"]["JwtConfiguration"];
    assert_eq!(s(&jwt["issuer"]), "JwtIssuer");
    assert_eq!(s(&jwt["audience"][0]), "JwtAudience");
    for (name, table) in resources_of_type(&t, "AWS::DynamoDB::Table") {
        let p = &table["Properties"];
        assert_eq!(p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], Value::Bool(true), "{name}");
        assert_eq!(p["SSESpecification"]["SSEEnabled"], Value::Bool(true), "{name}");
        assert_eq!(p["TimeToLiveSpecification"]["Enabled"], Value::Bool(true), "{name}");
    }
}

#[test]
fn alarms_watch_the_dead_letter_queue_and_every_function() {
    let t = template();
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    let watched = |metric: &str, dimension: &str| -> BTreeSet<String> {
        alarms
            .iter()
            .filter(|(_, a)| s(&a["Properties"]["MetricName"]) == metric)
            .flat_map(|(_, a)| a["Properties"]["Dimensions"].as_sequence().unwrap().iter())
            .filter(|d| s(&d["Name"]) == dimension)
            .map(|d| s(&d["Value"]))
            .collect()
    };
    let queues = watched("ApproximateNumberOfMessagesVisible", "QueueName");
    assert!(queues.contains("EventsDeadLetterQueue.QueueName"));
    assert!(queues.contains("StatusEventsFailedQueue.QueueName"), "status events given up on");
    assert!(watched("IteratorAge", "FunctionName").contains("PublishActionEventsFunction"), "status events late");
    let functions: BTreeSet<String> =
        resources_of_type(&t, "AWS::Serverless::Function").iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(watched("Errors", "FunctionName"), functions);
    assert_eq!(watched("Throttles", "FunctionName"), functions);
    let outputs = t["Outputs"].as_mapping().unwrap();
    assert!(outputs.contains_key("ApiUrl") && outputs.contains_key("StripeWebhookUrl"));
}

/// The HTTP API takes browser calls from the EMR's origins only (a template
/// parameter, never "*"), with exactly the headers the API reads and sets
/// (`http::cors`, which the local runner answers preflights from too).
#[test]
fn cors_allows_the_emr_origins_and_the_headers_the_api_uses() {
    use visitpay_edge::http::cors;
    let t = template();
    let c = &t["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"];
    assert_eq!(s(&c["AllowOrigins"]), "EmrOrigins");
    let origins = &t["Parameters"]["EmrOrigins"];
    assert_eq!(s(&origins["Type"]), "CommaDelimitedList");
    assert!(origins["Default"].is_null(), "the origins are the deployer's to give");
    let list = |v: &Value| -> Vec<String> { v.as_sequence().unwrap().iter().map(s).collect() };
    assert_eq!(list(&c["AllowMethods"]), cors::allow_methods());
    assert_eq!(list(&c["AllowHeaders"]), cors::ALLOW_HEADERS);
    assert_eq!(list(&c["ExposeHeaders"]), cors::EXPOSE_HEADERS);
    assert_eq!(c["MaxAge"].as_u64(), Some(u64::from(cors::MAX_AGE_SECS)));
    assert_eq!(c["AllowCredentials"], Value::Bool(false), "bearer tokens, no cookies");
    let methods: BTreeSet<&str> = ROUTES.iter().map(|r| r.method).collect();
    assert_eq!(methods, cors::allow_methods().into_iter().collect(), "every method a route uses");
}

/// Patient routes (no authentication) cannot starve payment events: they
/// are throttled tighter than staff routes, and the webhook and the consumer
/// have concurrency of their own; reconcile runs one at a time.
#[test]
fn floods_are_throttled_and_payment_events_keep_their_concurrency() {
    let t = template();
    let api = &t["Resources"]["HttpApi"]["Properties"];
    let default_rate = &api["DefaultRouteSettings"]["ThrottlingRateLimit"];
    assert_eq!(s(default_rate), "StaffRateLimit");
    let staff_rate = t["Parameters"]["StaffRateLimit"]["Default"].as_u64().unwrap();
    let patient_rate = t["Parameters"]["PatientRateLimit"]["Default"].as_u64().unwrap();
    assert!(patient_rate * 4 <= staff_rate, "patient routes much tighter: {patient_rate} vs {staff_rate}");
    let default_burst = api["DefaultRouteSettings"]["ThrottlingBurstLimit"].as_u64().unwrap();
    for route in ROUTES.iter().filter(|r| r.access == Access::Patient) {
        let settings = &api["RouteSettings"][route.key().as_str()];
        assert_eq!(s(&settings["ThrottlingRateLimit"]), "PatientRateLimit", "{}", route.key());
        assert!(settings["ThrottlingBurstLimit"].as_u64().unwrap() < default_burst, "{}", route.key());
    }
    let webhook = ROUTES.iter().find(|r| r.access == Access::Stripe).unwrap();
    let stripe = &api["RouteSettings"][webhook.key().as_str()];
    assert!(
        stripe["ThrottlingRateLimit"].as_u64().unwrap() > staff_rate,
        "Stripe's retries after an outage come in bursts"
    );
    let keys: BTreeSet<String> = api["RouteSettings"].as_mapping().unwrap().keys().map(s).collect();
    let routes: BTreeSet<String> = ROUTES.iter().map(|r| r.key()).collect();
    assert!(keys.is_subset(&routes), "route settings name real routes: {keys:?}");

    let reserved = |f: &str| t["Resources"][f]["Properties"]["ReservedConcurrentExecutions"].as_u64();
    assert!(reserved("StripeWebhookFunction").is_some_and(|n| n >= 10));
    let consumer = reserved("ProcessPaymentEventsFunction").unwrap();
    let max = t["Resources"]["ProcessPaymentEventsFunction"]["Properties"]["Events"]["PaymentEvents"]["Properties"]
        ["ScalingConfig"]["MaximumConcurrency"]
        .as_u64()
        .unwrap();
    assert!(
        (2..=consumer).contains(&max),
        "the event source's maximum concurrency (>= 2) fits the reserved {consumer}"
    );
    assert_eq!(reserved("ReconcileFunction"), Some(1));
}

/// Each money signal the code emits (`ports::MoneySignal`, as embedded
/// metrics in the namespace the functions are given) has an alarm.
#[test]
fn every_money_signal_has_an_alarm() {
    use visitpay_app::ports::MoneySignal;
    let t = template();
    let namespace = s(&t["Globals"]["Function"]["Environment"]["Variables"]["VISITPAY_METRICS_NAMESPACE"]);
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    for signal in MoneySignal::ALL {
        let alarm = alarms
            .iter()
            .find(|(_, a)| s(&a["Properties"]["MetricName"]) == signal.name())
            .unwrap_or_else(|| panic!("no alarm on {}", signal.name()));
        let p = &alarm.1["Properties"];
        assert_eq!(s(&p["Namespace"]), namespace, "{}", signal.name());
        assert!(p["Dimensions"].is_null(), "the metrics have no dimensions");
        assert_eq!((s(&p["Statistic"]), p["Threshold"].as_u64()), ("Sum".to_owned(), Some(0)));
        assert_eq!(s(&p["AlarmActions"][0]), "AlarmTopic");
    }
}

/// The stream's event source mapping filters to action records with the
/// pattern the local mapping applies, keeps each shard in order, reports
/// partial failures, bisects a failing batch and sends what it gives up on
/// to a queue that has an alarm.
#[test]
fn status_events_come_from_the_tables_stream_in_order_and_failures_are_kept() {
    let t = template();
    let f = &t["Resources"]["PublishActionEventsFunction"]["Properties"];
    let source = &f["Events"]["ActionChanges"]["Properties"];
    assert_eq!(s(&f["Events"]["ActionChanges"]["Type"]), "DynamoDB");
    assert_eq!(s(&source["Stream"]), "VisitpayTable.StreamArn");
    let pattern: serde_json::Value =
        serde_json::from_str(&s(&source["FilterCriteria"]["Filters"][0]["Pattern"])).unwrap();
    let ours: serde_json::Value = serde_json::from_str(visitpay_aws::dynamodb::stream::ACTION_RECORDS_FILTER).unwrap();
    assert_eq!(pattern, ours);
    assert_eq!(source["ParallelizationFactor"].as_u64(), Some(1));
    assert_eq!(s(&source["FunctionResponseTypes"][0]), "ReportBatchItemFailures");
    assert_eq!(source["BisectBatchOnFunctionError"], Value::Bool(true));
    assert_eq!(s(&source["DestinationConfig"]["OnFailure"]["Destination"]), "StatusEventsFailedQueue.Arn");
    assert_eq!(s(&source["DestinationConfig"]["OnFailure"]["Type"]), "SQS");
    assert_eq!(s(&f["Environment"]["Variables"]["VISITPAY_EVENT_BUS"]), "StatusEventBus");
}

fn edge_waf() -> Value {
    let text = std::fs::read_to_string(root().join("infra/edge-waf.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// The patient routes are behind an edge that limits each client: CloudFront
/// with a CLOUDFRONT-scope WAF web ACL (from us-east-1, `infra/edge-waf.yaml`)
/// whose rate rule is per IP, AWS's managed rule groups, nothing cached, the
/// stage's path as the origin's, and the secret header the patient routes
/// require (so API Gateway's own address is no way around it). The HTTP
/// API's throttles stay behind it as the backstop.
#[test]
fn the_patient_routes_are_behind_an_edge_with_per_client_limits() {
    let t = template();
    let edge = &t["Resources"]["PatientEdge"]["Properties"]["DistributionConfig"];
    assert_eq!(s(&edge["WebACLId"]), "PatientWebAclArn", "the ACL comes in as a parameter");
    assert!(s(&t["Parameters"]["PatientWebAclArn"]["AllowedPattern"]).contains("wafv2:us-east-1"));
    let origin = &edge["Origins"][0];
    assert!(s(&origin["DomainName"]).contains("${HttpApi}.execute-api"), "the origin is the HTTP API");
    assert_eq!(s(&origin["OriginPath"]), "/${Stage}");
    assert_eq!(s(&origin["CustomOriginConfig"]["OriginProtocolPolicy"]), "https-only");
    let header = &origin["OriginCustomHeaders"][0];
    assert_eq!(s(&header["HeaderName"]), visitpay_edge::http::request::EDGE_HEADER);
    assert!(s(&header["HeaderValue"]).contains("resolve:secretsmanager:${EdgeOriginSecret}"));
    let behaviour = &edge["DefaultCacheBehavior"];
    assert_eq!(s(&behaviour["CachePolicyId"]), "4135ea2d-6df8-44a3-9df3-4b5a84be39ad", "CachingDisabled");
    assert_eq!(
        s(&behaviour["OriginRequestPolicyId"]),
        "b689b0a8-53d0-40ab-baf2-68738e2966ac",
        "AllViewerExceptHostHeader"
    );
    assert_eq!(s(&behaviour["ViewerProtocolPolicy"]), "redirect-to-https");
    let association = &behaviour["FunctionAssociations"][0];
    assert_eq!(s(&association["EventType"]), "viewer-request");
    let mut function = Vec::new();
    all_strings(&association["FunctionARN"], &mut function);
    assert!(function.iter().any(|f| f.contains("PatientPathFunction")), "{function:?}");
    // The functions behind the patient routes know the secret; no other does.
    let patient_functions: BTreeSet<&str> =
        ROUTES.iter().filter(|r| r.access == Access::Patient).map(|r| r.function).collect();
    for (id, resource) in resources_of_type(&t, "AWS::Serverless::Function") {
        let secret = &resource["Properties"]["Environment"]["Variables"]["VISITPAY_EDGE_SECRET"];
        let binary = s(&resource["Metadata"]["BuildProperties"]["Binary"]);
        assert_eq!(!secret.is_null(), patient_functions.contains(binary.as_str()), "{id}");
    }
    // The backstop stays.
    let routes = &t["Resources"]["HttpApi"]["Properties"]["RouteSettings"];
    for route in ROUTES.iter().filter(|r| r.access == Access::Patient) {
        assert!(!routes[route.key().as_str()]["ThrottlingRateLimit"].is_null(), "{}", route.key());
    }

    let waf = edge_waf();
    let acl = &waf["Resources"]["PatientWebAcl"]["Properties"];
    assert_eq!(s(&acl["Scope"]), "CLOUDFRONT");
    let rules = acl["Rules"].as_sequence().unwrap();
    let rate = rules.iter().find(|r| !r["Statement"]["RateBasedStatement"].is_null()).expect("a rate-based rule");
    assert_eq!(s(&rate["Statement"]["RateBasedStatement"]["AggregateKeyType"]), "IP", "per client IP");
    assert!(!rate["Action"]["Block"].is_null());
    let managed: BTreeSet<String> = rules
        .iter()
        .filter_map(|r| r["Statement"]["ManagedRuleGroupStatement"]["Name"].as_str().map(str::to_owned))
        .collect();
    for group in [
        "AWSManagedRulesAmazonIpReputationList",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesCommonRuleSet",
    ] {
        assert!(managed.contains(group), "{group}");
    }
}

/// The CloudFront Function in front of the patient routes, run as CloudFront
/// runs it (a `handler(event)` over the viewer request; cloudfront-js-2.0 is
/// ECMAScript 5.1 with a few newer features, which Node.js runs the same):
/// the patient routes with tokens shaped as visitpay makes them go through;
/// anything else is answered 404 at the edge, before a function runs.
#[test]
fn the_edge_refuses_malformed_links_before_any_function_runs() {
    let t = template();
    let code = s(&t["Resources"]["PatientPathFunction"]["Properties"]["FunctionCode"]);
    let action = "act_0123456789abcdef01234567";
    let token = format!("{action}.{}", "A1b2-C3d4_".repeat(4) + "xyz");
    assert_eq!(token.len() - action.len() - 1, 43);
    let cases = [
        ("GET", format!("/patient/actions/{token}"), true),
        ("HEAD", format!("/patient/actions/{token}"), true),
        ("GET", format!("/patient/actions/{token}/receipt"), true),
        ("POST", format!("/patient/actions/{token}/checkout"), true),
        ("GET", format!("/patient/return/{action}"), true),
        ("GET", format!("/patient/actions/{token}/receipt.pdf"), true),
        ("GET", format!("/unsubscribe/{}", "A1b2-C3d4_".repeat(4) + "xyz"), true),
        ("POST", format!("/unsubscribe/{}", "A1b2-C3d4_".repeat(4) + "xyz"), true),
        ("GET", format!("/patient/actions/{token}/receiptxpdf"), false),
        ("GET", format!("/unsubscribe/{}", "A1b2-C3d4_".repeat(4) + "xy"), false),
        ("GET", format!("/unsubscribe/{}", "A1b2-C3d4_".repeat(4) + "xy."), false),
        ("PUT", format!("/unsubscribe/{}", "A1b2-C3d4_".repeat(4) + "xyz"), false),
        ("GET", "/patient/actions/x.y".to_owned(), false),
        ("GET", format!("/patient/actions/{token}x"), false),
        ("GET", format!("/patient/actions/{action}"), false),
        ("POST", format!("/patient/actions/{token}"), false),
        ("GET", format!("/patient/actions/{token}/checkout"), false),
        ("GET", "/actions/act_0123456789abcdef01234567".to_owned(), false),
        ("GET", "/patient/return/act_x".to_owned(), false),
        ("GET", format!("/patient/actions/{token}/../../clinics/c1/payment-settings"), false),
    ];
    let script = format!(
        "{code}\nconst cases = {};\nconst out = cases.map(([method, uri]) => {{\n  const r = handler({{ request: {{ method, uri, headers: {{}}, querystring: {{}} }} }});\n  return r.statusCode === undefined ? 'pass' : String(r.statusCode);\n}});\nconsole.log(JSON.stringify(out));",
        serde_json::to_string(&cases.iter().map(|(m, u, _)| (m, u)).collect::<Vec<_>>()).unwrap()
    );
    let out = std::process::Command::new("node")
        .arg("-e")
        .arg(&script)
        .output()
        .expect("node (Node.js) runs the edge function; scripts/test needs it for axe-core too");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let verdicts: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    for ((method, uri, pass), verdict) in cases.iter().zip(&verdicts) {
        let expected = if *pass { "pass" } else { "404" };
        assert_eq!(verdict, expected, "{method} {uri}");
    }
}

/// Every patient route goes through the edge function: each one's shape
/// (with tokens as visitpay makes them) is let through. A route added to the
/// table but not to the CloudFront Function would 404 at the edge.
#[test]
fn the_edge_lets_every_patient_route_through() {
    let t = template();
    let code = s(&t["Resources"]["PatientPathFunction"]["Properties"]["FunctionCode"]);
    let token = format!("act_0123456789abcdef01234567.{}", "A1b2-C3d4_".repeat(4) + "xyz");
    let unsubscribe_token = "A1b2-C3d4_".repeat(4) + "xyz";
    let cases: Vec<(String, String)> = ROUTES
        .iter()
        .filter(|r| r.access == Access::Patient)
        .map(|r| {
            let path = r
                .path
                .replace("{token}", if r.path.starts_with("/unsubscribe") { &unsubscribe_token } else { &token })
                .replace("{action_id}", "act_0123456789abcdef01234567");
            (r.method.to_owned(), path)
        })
        .collect();
    let script = format!(
        "{code}\nconst cases = {};\nconsole.log(JSON.stringify(cases.map(([method, uri]) => handler({{ request: {{ method, uri, headers: {{}}, querystring: {{}} }} }}).statusCode === undefined)));",
        serde_json::to_string(&cases).unwrap()
    );
    let out = std::process::Command::new("node").arg("-e").arg(&script).output().expect("node runs the edge function");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let passed: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap();
    for ((method, path), pass) in cases.iter().zip(passed) {
        assert!(pass, "the edge refuses the patient route {method} {path}");
    }
}

/// Messages to patients: new message items reach send-messages through the
/// table's stream with the filter the local stream mapping applies (a test
/// drives it against moto), partial failures reported, what it gives up on
/// kept in a queue with an alarm; the minute's sweep; the patients' replies
/// from the SMS topic. Email leaves through a configuration set that
/// suppresses bounced and complaining addresses.
#[test]
fn messages_come_from_the_stream_the_sweep_and_the_replies() {
    let t = template();
    let f = &t["Resources"]["SendMessagesFunction"]["Properties"];
    let stream = &f["Events"]["NewMessages"];
    assert_eq!(s(&stream["Type"]), "DynamoDB");
    let source = &stream["Properties"];
    assert_eq!(s(&source["Stream"]), "VisitpayTable.StreamArn");
    let pattern: serde_json::Value =
        serde_json::from_str(&s(&source["FilterCriteria"]["Filters"][0]["Pattern"])).unwrap();
    let ours: serde_json::Value = serde_json::from_str(visitpay_aws::dynamodb::stream::MESSAGE_RECORDS_FILTER).unwrap();
    assert_eq!(pattern, ours);
    assert_eq!(s(&source["FunctionResponseTypes"][0]), "ReportBatchItemFailures");
    assert_eq!(s(&source["DestinationConfig"]["OnFailure"]["Destination"]), "MessagesFailedQueue.Arn");
    let schedule = &f["Events"]["EveryMinute"];
    assert_eq!(s(&schedule["Type"]), "ScheduleV2");
    assert_eq!(s(&schedule["Properties"]["ScheduleExpression"]), "rate(1 minute)");
    let replies = &f["Events"]["PatientReplies"];
    assert_eq!(
        (s(&replies["Type"]), s(&replies["Properties"]["Topic"])),
        ("SNS".to_owned(), "InboundSmsTopic".to_owned())
    );
    let env = &f["Environment"]["Variables"];
    assert_eq!(s(&env["VISITPAY_SES_CONFIGURATION_SET"]), "MessagingConfigurationSet");
    assert_eq!(s(&env["VISITPAY_EMAIL_FROM"]), "EmailFromAddress");
    let set = &t["Resources"]["MessagingConfigurationSet"]["Properties"];
    let mut reasons = Vec::new();
    all_strings(&set["SuppressionOptions"]["SuppressedReasons"], &mut reasons);
    assert_eq!(reasons, ["BOUNCE", "COMPLAINT"]);
    // The topic takes what the SMS service publishes, of this account only.
    let policy = &t["Resources"]["InboundSmsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(s(&policy["Principal"]["Service"]), "sms-voice.amazonaws.com");
    assert!(!policy["Condition"]["StringEquals"]["aws:SourceAccount"].is_null());
    // Alarms: the queue of given-up batches, bounces, complaints.
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    let watches = |metric: &str, value: &str| {
        alarms.iter().any(|(_, a)| {
            s(&a["Properties"]["MetricName"]) == metric
                && a["Properties"]["Dimensions"]
                    .as_sequence()
                    .is_some_and(|d| d.iter().any(|d| s(&d["Value"]) == value))
        })
    };
    assert!(watches("ApproximateNumberOfMessagesVisible", "MessagesFailedQueue.QueueName"));
    assert!(watches("Bounce", "MessagingConfigurationSet"));
    assert!(watches("Complaint", "MessagingConfigurationSet"));
}

/// openapi.yaml's `ErrorCode` lists exactly the codes the API answers with:
/// every code `http::error` (the one place statuses and codes are decided)
/// writes, and nothing else. A code added there without the contract, or a
/// documented code nothing answers, fails here rather than in a client.
#[test]
fn the_contract_lists_every_error_code_the_api_answers_with() {
    let source = std::fs::read_to_string(root().join("shared/edge/src/http/error.rs")).unwrap();
    let code = source.split("#[cfg(test)]").next().unwrap();
    let answered: BTreeSet<String> = code
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .map(str::to_owned)
        .collect();
    let contract: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("openapi.yaml")).unwrap()).unwrap();
    let documented: BTreeSet<String> = contract["components"]["schemas"]["ErrorCode"]["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert!(answered.len() > 40, "the codes were read: {answered:?}");
    assert_eq!(answered, documented, "http::error's codes vs openapi.yaml's ErrorCode");
}

/// The events the operations guide tells an operator to subscribe the
/// webhook endpoint to (its `enabled_events[]` and its table) are exactly
/// the ones the webhook acts on (`events::HANDLED_TYPES`), so the guide
/// cannot drift from the code.
#[test]
fn the_operations_guide_subscribes_exactly_the_events_visitpay_handles() {
    let guide = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    let handled: BTreeSet<&str> = visitpay_stripe::events::HANDLED_TYPES.iter().copied().collect();
    let subscribed: BTreeSet<&str> =
        guide.split("enabled_events[]=").skip(1).map(|rest| rest.split('"').next().unwrap()).collect();
    assert_eq!(subscribed, handled, "docs/operations.md's enabled_events[] vs HANDLED_TYPES");
    let section = guide.split("### The webhook endpoint").nth(1).unwrap().split("Any other type").next().unwrap();
    let tabled: BTreeSet<&str> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| l.split('|').nth(1).unwrap().split('`').skip(1).step_by(2))
        .collect();
    assert_eq!(tabled, handled, "docs/operations.md's event table vs HANDLED_TYPES");
    // The guide counts them in words; a type added or dropped changes both.
    assert_eq!(handled.len(), 21);
    assert!(section.contains("twenty-one events"), "the guide's count of events");
}
