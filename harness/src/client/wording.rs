//! How a form's body is spelled on the wire. The same fields can be sent
//! in many texts: a service must fingerprint what they mean (JSON objects
//! are unordered, whitespace is insignificant), so a retry spelled
//! differently is the same request. A cut-short body is a client error
//! the service must refuse without remembering it against the key.

use serde::Serialize;
use serde_json::Value;

/// The spelling of a creation request's body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wording {
    /// Compact, fields in the template's order.
    #[default]
    Plain,
    /// The same fields in reverse order at every level, spaced out (form
    /// bodies: the pairs reversed).
    Reordered,
    /// Not a valid body: JSON cut one byte short; a form body with every
    /// field present but empty, the key (if it is in the body) aside.
    Malformed,
}

/// A JSON body as `wording` spells it.
pub fn json(body: &Value, wording: Wording) -> Result<Vec<u8>, String> {
    let plain = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    Ok(match wording {
        Wording::Plain => plain,
        Wording::Reordered => {
            let mut out = String::new();
            reordered(body, &mut out)?;
            out.into_bytes()
        }
        Wording::Malformed => {
            let mut cut = plain;
            cut.pop();
            cut
        }
    })
}

/// Form pairs as `wording` spells them; `key` is the idempotency key,
/// kept in a malformed body so the service still sees which key it was.
pub fn form_pairs(mut pairs: Vec<(String, String)>, wording: Wording, key: Option<&str>) -> Vec<(String, String)> {
    match wording {
        Wording::Plain => pairs,
        Wording::Reordered => {
            pairs.reverse();
            pairs
        }
        Wording::Malformed => pairs
            .into_iter()
            .map(|(name, value)| match key == Some(value.as_str()) {
                true => (name, value),
                false => (name, String::new()),
            })
            .collect(),
    }
}

/// `value` with every object's members in reverse order, spaced out.
fn reordered(value: &Value, out: &mut String) -> Result<(), String> {
    fn text(v: &impl Serialize) -> Result<String, String> {
        serde_json::to_string(v).map_err(|e| e.to_string())
    }
    match value {
        Value::Object(members) => {
            out.push_str("{\n  ");
            for (i, (name, member)) in members.iter().rev().enumerate() {
                if i > 0 {
                    out.push_str(" ,\n  ");
                }
                out.push_str(&text(name)?);
                out.push_str(" : ");
                reordered(member, out)?;
            }
            out.push_str("\n}");
        }
        Value::Array(items) => {
            out.push_str("[ ");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(" , ");
                }
                reordered(item, out)?;
            }
            out.push_str(" ]");
        }
        scalar => out.push_str(&text(scalar)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body() -> Value {
        json!({"name": "a b", "config": {"temperature": 3, "tags": ["x", "y"]}, "idempotency_key": "k"})
    }

    #[test]
    fn a_reordered_body_means_the_same_in_another_text() {
        let plain = json(&body(), Wording::Plain).unwrap_or_default();
        let reordered = json(&body(), Wording::Reordered).unwrap_or_default();
        assert_ne!(plain, reordered);
        let parsed: Value = serde_json::from_slice(&reordered).unwrap_or_default();
        assert_eq!(parsed, body());
        // Members really come in the other order, at every level.
        let (plain, text) = (
            String::from_utf8(plain).unwrap_or_default(),
            String::from_utf8(reordered).unwrap_or_default(),
        );
        let before = |text: &str, a: &str, b: &str| text.find(a) < text.find(b);
        for (a, b) in [("\"config\"", "\"name\""), ("\"tags\"", "\"temperature\"")] {
            assert_ne!(before(&plain, a, b), before(&text, a, b), "{a} {b}: {plain} / {text}");
        }
    }

    #[test]
    fn a_malformed_json_body_does_not_parse() {
        let cut = json(&body(), Wording::Malformed).unwrap_or_default();
        assert!(!cut.is_empty());
        assert!(serde_json::from_slice::<Value>(&cut).is_err());
    }

    #[test]
    fn form_pairs_reorder_or_empty_all_but_the_key() {
        let pairs = || {
            vec![
                ("item".to_owned(), "tea".to_owned()),
                ("request_token".to_owned(), "k1".to_owned()),
                ("quantity".to_owned(), "2".to_owned()),
            ]
        };
        assert_eq!(form_pairs(pairs(), Wording::Plain, Some("k1")), pairs());
        let mut reversed = pairs();
        reversed.reverse();
        assert_eq!(form_pairs(pairs(), Wording::Reordered, Some("k1")), reversed);
        assert_eq!(
            form_pairs(pairs(), Wording::Malformed, Some("k1")),
            vec![
                ("item".to_owned(), String::new()),
                ("request_token".to_owned(), "k1".to_owned()),
                ("quantity".to_owned(), String::new()),
            ]
        );
    }
}
