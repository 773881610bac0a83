//! A JSON Schema check for the subset of draft 2020-12 visitpay's event
//! schema uses (`type`, `enum`, `required`, `properties`,
//! `additionalProperties: false`, `anyOf`, local `$ref`, `minimum`,
//! `maximum`, `pattern` as a character-class-and-length check, and `format:
//! date-time`); a keyword it does not know fails the check rather than pass.

use serde_json::Value;

const KNOWN: &[&str] = &[
    "$schema",
    "$id",
    "title",
    "description",
    "type",
    "enum",
    "required",
    "properties",
    "additionalProperties",
    "anyOf",
    "$ref",
    "$defs",
    "minimum",
    "maximum",
    "pattern",
    "format",
];

pub fn conforms(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, schema, value, "$")
}

fn check(root: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let obj = schema.as_object().ok_or_else(|| format!("{at}: schema is not an object"))?;
    if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!("{at}: schema keyword {unknown} not understood"));
    }
    if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
        let path = reference.strip_prefix("#/").ok_or_else(|| format!("{at}: only local $ref"))?;
        let target = path
            .split('/')
            .try_fold(root, |v, part| v.get(part))
            .ok_or_else(|| format!("{at}: {reference} missing"))?;
        check(root, target, value, at)?;
    }
    if let Some(options) = obj.get("anyOf").and_then(Value::as_array) {
        if !options.iter().any(|o| check(root, o, value, at).is_ok()) {
            return Err(format!("{at}: {value} matches none of anyOf"));
        }
    }
    if let Some(kind) = obj.get("type").and_then(Value::as_str) {
        let ok = match kind {
            "object" => value.is_object(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            other => return Err(format!("{at}: type {other} not understood")),
        };
        if !ok {
            return Err(format!("{at}: {value} is not {kind}"));
        }
    }
    if let Some(options) = obj.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            return Err(format!("{at}: {value} not in enum"));
        }
    }
    if let Some(n) = value.as_f64() {
        if obj.get("minimum").and_then(Value::as_f64).is_some_and(|m| n < m) {
            return Err(format!("{at}: {n} under minimum"));
        }
        if obj.get("maximum").and_then(Value::as_f64).is_some_and(|m| n > m) {
            return Err(format!("{at}: {n} over maximum"));
        }
    }
    if let (Some(pattern), Some(text)) = (obj.get("pattern").and_then(Value::as_str), value.as_str()) {
        pattern_matches(pattern, text).map_err(|e| format!("{at}: {e}"))?;
    }
    if obj.get("format").and_then(Value::as_str) == Some("date-time") {
        let text = value.as_str().unwrap_or_default();
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map_err(|_| format!("{at}: {text} is not an RFC 3339 date-time"))?;
    }
    if let Some(map) = value.as_object() {
        for name in obj.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !map.contains_key(name) {
                return Err(format!("{at}: {name} is required"));
            }
        }
        let properties = obj.get("properties").and_then(Value::as_object);
        for (name, v) in map {
            match properties.and_then(|p| p.get(name)) {
                Some(sub) => check(root, sub, v, &format!("{at}.{name}"))?,
                None if obj.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}: {name} is not allowed"))
                }
                None => {}
            }
        }
    }
    Ok(())
}

/// The two pattern shapes the schema uses: `^[<class>]{min,max}$` and `^[<class>]{n}$`.
fn pattern_matches(pattern: &str, text: &str) -> Result<(), String> {
    let inner = pattern
        .strip_prefix("^[")
        .and_then(|p| p.strip_suffix('$'))
        .ok_or(format!("pattern {pattern} not understood"))?;
    let (class, count) = inner.split_once("]{").ok_or(format!("pattern {pattern} not understood"))?;
    let count = count.strip_suffix('}').ok_or(format!("pattern {pattern} not understood"))?;
    let (min, max) = match count.split_once(',') {
        Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
        None => (count.parse::<usize>(), count.parse::<usize>()),
    };
    let (min, max) = (min.map_err(|_| "bad count")?, max.map_err(|_| "bad count")?);
    let allowed = |c: char| {
        let mut chars = class.chars().peekable();
        let mut ok = false;
        while let Some(a) = chars.next() {
            if chars.peek() == Some(&'-') {
                chars.next();
                match chars.next() {
                    Some(b) => ok |= (a..=b).contains(&c),
                    None => ok |= c == a || c == '-',
                }
            } else {
                ok |= c == a;
            }
        }
        ok
    };
    let n = text.chars().count();
    if n < min || n > max || !text.chars().all(allowed) {
        return Err(format!("{text:?} does not match {pattern}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        serde_json::from_str(include_str!("../../docs/events/payment-action-changed.schema.json")).unwrap()
    }

    fn event() -> Value {
        json!({"clinic_id":"c1","visit_id":"v1","action_id":"act_1","status":"paid","previous_status":"checkout_open",
               "amount":4500,"currency":"cad","refunded_amount":0,"disputed":false,"refund_needed":false,"version":4,
               "at":"2026-12-01T10:00:00Z"})
    }

    #[test]
    fn the_check_fails_on_what_the_schema_refuses() {
        assert_eq!(conforms(&schema(), &event()), Ok(()));
        let mut first = event();
        first["previous_status"] = Value::Null;
        assert_eq!(conforms(&schema(), &first), Ok(()));
        for (field, bad) in [
            ("status", json!("settled")),
            ("amount", json!(0)),
            ("currency", json!("CAD")),
            ("action_id", json!("a#1")),
            ("at", json!("yesterday")),
            ("disputed", json!("no")),
            ("previous_status", json!(3)),
        ] {
            let mut e = event();
            e[field] = bad;
            assert!(conforms(&schema(), &e).is_err(), "{field}");
        }
        let mut extra = event();
        extra["patient_name"] = json!("Jeanne");
        assert!(conforms(&schema(), &extra).is_err());
        let mut missing = event();
        missing.as_object_mut().unwrap().remove("version");
        assert!(conforms(&schema(), &missing).is_err());
    }
}
