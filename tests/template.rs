//! `template.yaml` agrees with the repo's single sources of truth: the table
//! definition (`infra/tables.json`) and the route table (`http::routes`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_yaml::Value;
use visitpay::adapters::tables;
use visitpay::http::routes::{Access, ROUTES};

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
            assert_eq!(route.function.name(), binary, "{method} {path}");
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
