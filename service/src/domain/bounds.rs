//! What every stored field must satisfy, whatever the resource: no NUL
//! character, and a bounded size. Checked while a body is validated, so
//! both stores refuse the same requests (422) before any store call.
//!
//! Postgres cannot store U+0000 in `text` or `jsonb` (it would answer an
//! error, and a client mistake would look like an outage), and no field
//! has a use for it. Sizes are bounded so that one request, one stored
//! row and therefore one list page stay bounded too.

use serde::Serialize;
use serde_json::{Map, Value};

use super::agent::FieldError;

/// The message of a field holding U+0000.
pub const NUL_MESSAGE: &str = "must not contain the NUL character (U+0000)";

/// Whether any key or string inside `value` contains U+0000.
pub fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// The problem with a JSON object field `field`, if any: a NUL in a key
/// or a string anywhere inside, or more than `max_bytes` of compact JSON.
pub fn object_problem(field: &'static str, object: &Map<String, Value>, max_bytes: usize) -> Option<FieldError> {
    let message = if object.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)) {
        format!("keys and strings {NUL_MESSAGE}")
    } else if json_len(object) > max_bytes {
        format!("must be at most {max_bytes} bytes of JSON")
    } else {
        return None;
    };
    Some(FieldError { field, message })
}

/// Bytes of `value` as compact JSON, without building the text.
pub fn json_len(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_len_is_the_length_of_the_compact_text() {
        for value in [json!({}), json!({"a": [1, "x\"y", null]}), json!("é\n")] {
            assert_eq!(json_len(&value), value.to_string().len(), "{value}");
        }
    }

    #[test]
    fn nul_is_found_at_any_depth_in_keys_and_strings() {
        assert!(holds_nul(&json!({"a": [1, {"b": "x\u{0}"}]})));
        assert!(holds_nul(&json!({"a": {"k\u{0}": 1}})));
        assert!(!holds_nul(&json!({"a": [1, {"b": "x0"}], "n": 0})));
    }

    #[test]
    fn an_object_is_refused_over_its_size_or_with_a_nul() {
        let object = |v: Value| v.as_object().cloned().expect("an object");
        let small = object(json!({"k": "v"}));
        let len = json_len(&small);
        assert!(object_problem("settings", &small, len).is_none());
        assert!(object_problem("settings", &small, len - 1).is_some());
        let nul = object(json!({"k": ["\u{0}"]}));
        let problem = object_problem("settings", &nul, usize::MAX).expect("refused");
        assert_eq!(problem.field, "settings");
        assert!(problem.message.contains("NUL"), "{}", problem.message);
    }
}
