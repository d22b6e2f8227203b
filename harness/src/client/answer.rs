//! Reading an answer through the contract: its class, the id it names,
//! the replay marker, the owner and form fields the resource shows.

use std::collections::BTreeMap;

use regex::Regex;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::contract::template::text_of;
use crate::contract::{Class, Contract, IdSource, ReplayMarker};
use crate::history::Outcome;

/// The outcome of an answer with `status`, `headers` and `body`.
pub fn classify(contract: &Contract, status: u16, headers: &HeaderMap, body: &[u8]) -> Outcome {
    let r = &contract.response;
    let mut json: Option<Value> = serde_json::from_slice(body).ok();
    let code = r.code.as_deref().and_then(|p| json.as_ref()?.pointer(p)).map(text_of);
    let class = contract.statuses.classify(status, code.as_deref());
    if let Some(json) = &mut json {
        for p in &r.volatile {
            remove_pointer(json, p);
        }
    }
    let resource = json.as_ref().and_then(|j| j.pointer(&r.resource)).cloned();
    let (mut id, mut replayed, mut owner, mut fields) = (None, None, None, BTreeMap::new());
    if class == Class::Success {
        id = find_id(contract, headers, json.as_ref());
        replayed = replay_marker(contract, status, headers);
        if let Some(res) = &resource {
            let at = |p: &Option<String>| p.as_deref().and_then(|p| res.pointer(p)).map(text_of);
            if r.tenant.is_some() || r.user.is_some() {
                owner = Some((at(&r.tenant), at(&r.user)));
            }
            for (field, p) in &r.fields {
                if let Some(v) = res.pointer(p) {
                    fields.insert(*field, text_of(v));
                }
            }
        }
    }
    Outcome::Response {
        status,
        class,
        replayed,
        code,
        id,
        owner,
        fields,
        resource,
    }
}

fn find_id(contract: &Contract, headers: &HeaderMap, json: Option<&Value>) -> Option<String> {
    read_source(&contract.response.id, contract.id_regex(), headers, json)
        .map(|v| text_of(&v))
        .filter(|id| !id.is_empty())
}

/// The value `source` names in an answer: what its pointer points at (as
/// it is, unless a regex picks text out of it) or its header's text, with
/// `regex`'s first capture group taken when there is one.
pub(super) fn read_source(
    source: &IdSource,
    regex: Option<&Regex>,
    headers: &HeaderMap,
    json: Option<&Value>,
) -> Option<Value> {
    let value = match (&source.pointer, &source.header) {
        (Some(p), _) => json?.pointer(p)?.clone(),
        (None, Some(h)) => Value::String(headers.get(h.as_str())?.to_str().ok()?.to_owned()),
        (None, None) => return None,
    };
    match regex {
        Some(re) => {
            let text = text_of(&value);
            re.captures(&text)?.get(1).map(|m| Value::String(m.as_str().to_owned()))
        }
        None => Some(value),
    }
}

fn replay_marker(contract: &Contract, status: u16, headers: &HeaderMap) -> Option<bool> {
    let by_header = || {
        contract.replay_header().is_some_and(|(name, value)| {
            headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case(&value))
        })
    };
    let by_status = || contract.statuses.replay_by_status(status);
    match contract.response.replay {
        ReplayMarker::None => None,
        ReplayMarker::Header => Some(by_header()),
        ReplayMarker::Status => by_status(),
        ReplayMarker::Both => Some(by_status() == Some(true) && by_header()),
    }
}

/// Removes what `pointer` points at, if anything.
fn remove_pointer(value: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&last);
        }
        Some(Value::Array(items)) => {
            if let Ok(i) = last.parse::<usize>()
                && i < items.len()
            {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// Sets what `pointer` points at, creating objects on the way.
pub(super) fn set_pointer(value: &mut Value, pointer: &str, new: Value) {
    let mut target = value;
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if !target.is_object() {
            *target = Value::Object(serde_json::Map::new());
        }
        let Value::Object(map) = target else { return };
        target = map.entry(part).or_insert(Value::Null);
    }
    *target = new;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pointers_set_and_remove() {
        let mut v = json!({"a": {"b": 1}, "t": "x"});
        set_pointer(&mut v, "/a/key", json!("k"));
        set_pointer(&mut v, "/new/deep", json!(2));
        remove_pointer(&mut v, "/t");
        assert_eq!(v, json!({"a": {"b": 1, "key": "k"}, "new": {"deep": 2}}));
    }

    #[test]
    fn the_reference_answers_read_as_they_mean() {
        let Ok(contract) = Contract::reference() else {
            panic!("the reference contract loads");
        };
        let mut headers = HeaderMap::new();
        headers.insert("idempotent-replayed", reqwest::header::HeaderValue::from_static("true"));
        let body = br#"{"status":"success","data":{"agent":{"id":7,"organization_id":2,"user_id":1,"name":"n"}}}"#;
        let o = classify(&contract, 200, &headers, body);
        assert_eq!(o.id(), Some("7"));
        assert!(
            matches!(&o, Outcome::Response { replayed: Some(true), owner: Some((Some(t), Some(u))), .. } if t == "2" && u == "1")
        );
        let o = classify(&contract, 201, &HeaderMap::new(), body);
        assert!(matches!(
            o,
            Outcome::Response {
                replayed: Some(false),
                ..
            }
        ));
        let reused = br#"{"code":"idempotency_key_reused"}"#;
        assert_eq!(
            classify(&contract, 422, &HeaderMap::new(), reused).class(),
            Some(Class::KeyReused)
        );
        assert_eq!(
            classify(&contract, 400, &HeaderMap::new(), b"{}").class(),
            Some(Class::Other)
        );
    }
}
