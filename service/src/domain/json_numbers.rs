//! Numbers a JSON body holds that the service could not store as sent.
//!
//! serde_json (without `arbitrary_precision`) keeps an integer exactly
//! when it fits in an `i64` or a `u64` and turns every other number into
//! a 64-bit float. For an integer beyond 64 bits that silently changes
//! the value (`18446744073709551616` would come back as
//! `1.8446744073709552e19`), and so it does for a decimal with more
//! digits than a double holds, or one so small it underflows. Both
//! stores would then return something the client never sent, so such a
//! body is refused instead (422), naming the number.
//!
//! Why refuse rather than preserve: `arbitrary_precision` is one feature
//! for the whole dependency graph (sqlx, reqwest and the harness would
//! all switch to string-backed numbers), and even then Postgres JSONB
//! rewrites number text on the way in (`1e2` is stored as `100`), so the
//! two stores would still disagree. A refusal needs the number's text,
//! which the parsed `Value` no longer has, hence this scan of the raw
//! bytes of a body that already parsed.
//!
//! What is accepted, and comes back as the same value from either store:
//! integers from −2⁶³ to 2⁶⁴−1, exactly; numbers with a fraction or an
//! exponent with at most 17 significant digits (what a double holds) and
//! a magnitude a normal double can hold, or zero, as that double
//! (re-written in shortest form: `1.50` comes back as `1.5`).

/// Significant decimal digits a double round-trips (`f64::DIGITS` is the
/// guaranteed 15; 17 is enough to name any double, C's `%.17g`).
pub const MAX_FLOAT_DIGITS: usize = 17;

/// One number that would not survive storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InexactNumber {
    /// RFC 6901 pointer to it (`/config/limits/0`).
    pub pointer: String,
    /// Its text as sent.
    pub literal: String,
    /// Why it cannot be stored as sent.
    pub reason: &'static str,
}

/// Every number in `raw` (a JSON text that serde_json accepted) that
/// would not be stored as sent.
pub fn inexact_numbers(raw: &[u8]) -> Vec<InexactNumber> {
    let mut found = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'"' => {
                let end = string_end(raw, i);
                if let Some(Frame::Object { key, expect_key }) = stack.last_mut()
                    && *expect_key
                {
                    *key = serde_json::from_slice::<String>(&raw[i..end]).unwrap_or_default();
                    *expect_key = false;
                }
                i = end;
                continue;
            }
            b'{' => stack.push(Frame::Object {
                key: String::new(),
                expect_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                None => {}
            },
            b'-' | b'0'..=b'9' => {
                let end = raw[i..]
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .map_or(raw.len(), |n| i + n);
                let literal = String::from_utf8_lossy(&raw[i..end]).into_owned();
                if let Some(reason) = why_inexact(&literal) {
                    found.push(InexactNumber {
                        pointer: pointer(&stack),
                        literal,
                        reason,
                    });
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Where the scan is: inside an object (with the key being read or last
/// read) or an array (with the index of the current element).
enum Frame {
    Object { key: String, expect_key: bool },
    Array { index: usize },
}

/// Index just past the string starting at `start` (a `"`).
fn string_end(raw: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < raw.len() {
        match raw[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    raw.len()
}

fn pointer(stack: &[Frame]) -> String {
    let mut out = String::new();
    for frame in stack {
        out.push('/');
        match frame {
            Frame::Object { key, .. } => out.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Frame::Array { index } => out.push_str(&index.to_string()),
        }
    }
    out
}

/// Why `literal` (a valid JSON number) would change on storage, if it would.
fn why_inexact(literal: &str) -> Option<&'static str> {
    if !literal.contains(['.', 'e', 'E']) {
        let fits = literal.parse::<i64>().is_ok() || literal.parse::<u64>().is_ok();
        return (!fits).then_some("is an integer beyond 64 bits");
    }
    let mantissa = literal.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0');
    if significant.is_empty() {
        return None; // zero, in any spelling
    }
    if significant.len() > MAX_FLOAT_DIGITS {
        return Some("has more significant digits than a 64-bit float holds (17)");
    }
    match literal.parse::<f64>() {
        Ok(x) if x.is_normal() => None,
        Ok(x) if x.is_infinite() => Some("is too large for a 64-bit float"),
        _ => Some("is too close to zero for a 64-bit float"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(json: &str) -> Vec<(String, String)> {
        serde_json::from_str::<serde_json::Value>(json).expect("valid JSON");
        inexact_numbers(json.as_bytes())
            .into_iter()
            .map(|n| (n.pointer, n.literal))
            .collect()
    }

    #[test]
    fn numbers_that_fit_are_not_reported() {
        let json = r#"{"a": 0, "b": -0, "c": 9223372036854775807, "d": -9223372036854775808,
            "e": 18446744073709551615, "f": 1.5, "g": 0.1, "h": -2.5e-300, "i": 1.7976931348623157e308,
            "j": 0.10000000000000001, "k": 1.50000000000000000000000, "l": 0e-999, "m": 0.000000}"#;
        assert_eq!(scan(json), Vec::<(String, String)>::new());
    }

    #[test]
    fn numbers_that_would_change_are_reported_with_their_pointer() {
        let json = r#"{"config": {"big": 18446744073709551616, "list": [1, -9223372036854775809],
            "a/b~": {"x": 1e-400}}, "name": "n\"ame", "p": 0.1000000000000000000001, "s": 4.9e-324}"#;
        assert_eq!(
            scan(json),
            [
                ("/config/big".to_owned(), "18446744073709551616".to_owned()),
                ("/config/list/1".to_owned(), "-9223372036854775809".to_owned()),
                ("/config/a~1b~0/x".to_owned(), "1e-400".to_owned()),
                ("/p".to_owned(), "0.1000000000000000000001".to_owned()),
                ("/s".to_owned(), "4.9e-324".to_owned()),
            ]
        );
    }

    #[test]
    fn each_reason_names_what_would_change() {
        let reason = |literal| why_inexact(literal).unwrap_or("exact");
        assert_eq!(reason("1e400"), "is too large for a 64-bit float");
        assert_eq!(reason("-1.5E309"), "is too large for a 64-bit float");
        assert_eq!(reason("1e-400"), "is too close to zero for a 64-bit float");
        assert_eq!(reason("4.9e-324"), "is too close to zero for a 64-bit float");
        assert_eq!(reason("18446744073709551616"), "is an integer beyond 64 bits");
        assert_eq!(
            reason("0.1000000000000000000001"),
            "has more significant digits than a 64-bit float holds (17)"
        );
        assert_eq!(reason("1.7976931348623157e308"), "exact");
    }

    #[test]
    fn digits_inside_strings_and_keys_are_not_numbers() {
        let json = r#"{"99999999999999999999": "18446744073709551616", "k": ["\"", "\\", 1]}"#;
        assert_eq!(scan(json), Vec::<(String, String)>::new());
    }

    #[test]
    fn a_top_level_number_has_the_empty_pointer() {
        assert_eq!(
            scan("18446744073709551616"),
            [(String::new(), "18446744073709551616".to_owned())]
        );
    }
}
