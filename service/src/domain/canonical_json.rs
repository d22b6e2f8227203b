//! A canonical byte form of JSON values: object keys sorted, no whitespace.
//! Payload fingerprints hash this form, so `{"a":1,"b":2}` and
//! `{"b":2,"a":1}` are the same payload whatever serde_json features the
//! build happens to enable (with `preserve_order`, `Value` keeps insertion
//! order and would hash them differently).

use serde_json::Value;

/// Appends the canonical form of `value` to `out`.
pub fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(k.clone()), out);
                out.push(b':');
                write(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(v, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Serialising a scalar into a Vec cannot fail.
    serde_json::to_writer(out, value).unwrap_or_default();
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn canon(v: &Value) -> String {
        let mut out = Vec::new();
        write(v, &mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a: Value =
            serde_json::from_str(r#"{"b": {"y": [1, {"q":1,"p":2}], "x": null}, "a": "é\""}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{"a":"é\"","b":{"x":null,"y":[1,{"p":2,"q":1}]}}"#).expect("json");
        assert_eq!(canon(&a), canon(&b));
        assert_eq!(canon(&a), r#"{"a":"é\"","b":{"x":null,"y":[1,{"p":2,"q":1}]}}"#);
    }

    #[test]
    fn array_order_and_values_do_matter() {
        assert_ne!(canon(&json!([1, 2])), canon(&json!([2, 1])));
        assert_ne!(canon(&json!({"a": 1})), canon(&json!({"a": 1.5})));
    }
}
