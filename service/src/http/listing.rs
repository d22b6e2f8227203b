//! Keyset pagination, shared by the list endpoints: `limit` (1-500,
//! default 50) and an opaque `cursor` (today the last id seen, in
//! canonical decimal; empty for the first page). A page is
//! bounded in bytes as well (`LIST_PAGE_MAX_BYTES` of resources' JSON):
//! it stops early, with a `next_cursor`, rather than exceed it, and holds
//! at least one resource, so paging always progresses. The store stops
//! reading at the bound (`Resources::list`); the bound is re-checked here
//! exactly, since Postgres measures a row as `row_to_json` does, a few
//! bytes off what is sent.

use std::collections::HashMap;

use super::error::{ApiError, Code};
use crate::domain::bounds::json_len;
use crate::store::{PageBound, Resource, Resources};

/// Default and largest page size.
pub(super) const DEFAULT_LIMIT: u32 = 50;
pub(super) const MAX_LIMIT: u32 = 500;

/// One page of resources, and the cursor of the next if there is one.
pub(super) struct Page<R> {
    pub items: Vec<R>,
    pub next_cursor: Option<String>,
}

/// The page of `organization_id`'s resources (under `parent`) that the
/// `limit` and `cursor` query parameters ask for, in at most `max_bytes`
/// of JSON (or one resource, if the first alone is larger).
pub(super) async fn page<R: Resource>(
    resources: &dyn Resources<R>,
    params: &HashMap<String, String>,
    organization_id: i64,
    parent: Option<i64>,
    max_bytes: usize,
) -> Result<Page<R>, ApiError> {
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request(
                    Code::InvalidLimit,
                    format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let after = match params.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => Some(cursor(raw).ok_or_else(|| {
            ApiError::bad_request(Code::InvalidCursor, "cursor must be a value returned as next_cursor")
        })?),
    };
    let bound = PageBound {
        rows: limit,
        bytes: max_bytes,
    };
    let listed = resources.list(organization_id, parent, after, bound).await?;
    let (mut items, mut more) = (listed.items, listed.more);
    let mut bytes = 0;
    if let Some(over) = items.iter().enumerate().position(|(i, item)| {
        bytes += json_len(item) + 1;
        i > 0 && bytes > max_bytes
    }) {
        items.truncate(over);
        more = true;
    }
    let next_cursor = if more {
        items.last().map(|r| r.id().to_string())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// The id a cursor names: a non-negative integer in canonical decimal (no
/// sign, no leading zero), as `next_cursor` spells it.
fn cursor(raw: &str) -> Option<i64> {
    let canonical = raw.bytes().all(|b| b.is_ascii_digit()) && (raw == "0" || !raw.starts_with('0'));
    canonical.then(|| raw.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_canonical_ids() {
        assert_eq!(cursor("0"), Some(0));
        assert_eq!(cursor("42"), Some(42));
        assert_eq!(cursor("9223372036854775807"), Some(i64::MAX));
        for bad in ["+42", "-1", "042", "00", "4 2", "zz", "9223372036854775808", "1.5"] {
            assert_eq!(cursor(bad), None, "{bad}");
        }
    }
}
