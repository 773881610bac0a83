//! Decoding of Stripe's `application/x-www-form-urlencoded` bodies with bracket nesting
//! (`line_items[0][price_data][unit_amount]=1500`) into nested JSON.
//!
//! Values stay strings, exactly as received; callers coerce with [`as_int`] / [`as_bool`]
//! where Stripe would, so the request log shows what the client really sent.

use serde_json::{Map, Value};

/// Parses a form body or query string. Objects whose keys are all indices become arrays
/// (ordered by index), except under `metadata`, whose keys are free-form.
pub(crate) fn parse(input: &[u8]) -> Value {
    let mut root = Map::new();
    for (key, value) in form_urlencoded::parse(input) {
        let segments = split_key(&key);
        insert(&mut root, &segments, value.into_owned());
    }
    indices_to_arrays(Value::Object(root), false)
}

/// `a[b][0]` → `["a", "b", "0"]`; `a[]` → `["a", ""]` (append). A malformed tail is kept literally.
fn split_key(key: &str) -> Vec<String> {
    let Some(open) = key.find('[') else { return vec![key.to_owned()] };
    let mut segments = vec![key[..open].to_owned()];
    let mut rest = &key[open..];
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else { break };
        segments.push(stripped[..close].to_owned());
        rest = &stripped[close + 1..];
    }
    if !rest.is_empty() {
        // e.g. `a[b]c`: keep the leftover glued to the last segment rather than dropping it.
        if let Some(last) = segments.last_mut() {
            last.push_str(rest);
        }
    }
    segments
}

fn insert(map: &mut Map<String, Value>, segments: &[String], value: String) {
    let Some((first, rest)) = segments.split_first() else { return };
    let key = if first.is_empty() { map.len().to_string() } else { first.clone() };
    if rest.is_empty() {
        map.insert(key, Value::String(value));
        return;
    }
    let child = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        // `metadata=&metadata[a]=b`: the nested form wins over the scalar.
        *child = Value::Object(Map::new());
    }
    if let Value::Object(child) = child {
        insert(child, rest, value);
    }
}

fn indices_to_arrays(value: Value, free_form_keys: bool) -> Value {
    let Value::Object(map) = value else { return value };
    let all_indices = !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok());
    if all_indices && !free_form_keys {
        let mut entries: Vec<(usize, Value)> =
            map.into_iter().map(|(k, v)| (k.parse().unwrap_or_default(), indices_to_arrays(v, false))).collect();
        entries.sort_by_key(|(index, _)| *index);
        return Value::Array(entries.into_iter().map(|(_, v)| v).collect());
    }
    Value::Object(
        map.into_iter()
            .map(|(k, v)| {
                let free_form = k == "metadata";
                let v = indices_to_arrays(v, free_form);
                (k, v)
            })
            .collect(),
    )
}

/// An integer sent as a form string (or already a JSON number).
pub(crate) fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Stripe accepts `true`/`false` as strings.
pub(crate) fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The list of strings of `expand[]=a&expand[]=b` (also accepts a lone `expand=a`).
pub(crate) fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_brackets_unencoded() {
        let body = "mode=payment&line_items[0][price_data][unit_amount]=1500&line_items[0][price_data][currency]=cad\
            &line_items[0][price_data][product_data][name]=Clinic+services&line_items[0][quantity]=1\
            &metadata[action_id]=act_1&expand[0]=payment_intent";
        assert_eq!(
            parse(body.as_bytes()),
            json!({
                "mode": "payment",
                "line_items": [{
                    "price_data": {"unit_amount": "1500", "currency": "cad", "product_data": {"name": "Clinic services"}},
                    "quantity": "1"
                }],
                "metadata": {"action_id": "act_1"},
                "expand": ["payment_intent"]
            })
        );
    }

    #[test]
    fn percent_encoded_brackets_and_values() {
        let body = "line_items%5B0%5D%5Bprice_data%5D%5Bproduct_data%5D%5Bname%5D=Soins%20%C3%A0%20domicile\
            &success_url=https%3A%2F%2Fx.test%2Fok%3Fs%3D%7BCHECKOUT_SESSION_ID%7D";
        let parsed = parse(body.as_bytes());
        assert_eq!(parsed["line_items"][0]["price_data"]["product_data"]["name"], "Soins à domicile");
        assert_eq!(parsed["success_url"], "https://x.test/ok?s={CHECKOUT_SESSION_ID}");
    }

    #[test]
    fn indices_sort_numerically_and_append_brackets() {
        let mut body = String::new();
        for i in 0..12 {
            body.push_str(&format!("items[{i}][n]={i}&"));
        }
        body.push_str("expand[]=a&expand[]=b");
        let parsed = parse(body.as_bytes());
        let items = parsed["items"].as_array().unwrap();
        assert_eq!(items.len(), 12);
        assert_eq!(items[10]["n"], "10");
        assert_eq!(parsed["expand"], json!(["a", "b"]));
    }

    #[test]
    fn metadata_keys_stay_a_map() {
        let parsed = parse(b"metadata[0]=zero&metadata[1]=one");
        assert_eq!(parsed["metadata"], json!({"0": "zero", "1": "one"}));
    }

    #[test]
    fn coercions() {
        assert_eq!(as_int(&json!("1500")), Some(1500));
        assert_eq!(as_int(&json!(-3)), Some(-3));
        assert_eq!(as_int(&json!("15.5")), None);
        assert_eq!(as_bool(&json!("true")), Some(true));
        assert_eq!(as_bool(&json!("yes")), None);
        assert_eq!(string_list(Some(&json!("x"))), vec!["x".to_owned()]);
    }
}
