//! Keyset pagination, shared by the list endpoints: `limit` (1-500,
//! default 50) and an opaque `cursor` (today the last id seen). A page is
//! bounded in bytes as well (`LIST_PAGE_MAX_BYTES` of resources' JSON):
//! it stops early, with a `next_cursor`, rather than exceed it, and holds
//! at least one resource, so paging always progresses. The store stops
//! reading at the bound (`Resources::list`); the bound is re-checked here
//! exactly, since Postgres measures a row as `row_to_json` does, a few
//! bytes off what is sent.

use std::collections::HashMap;

use super::error::ApiError;
use crate::domain::bounds::json_len;
use crate::store::{PageBound, Resource, Resources};

/// Default and largest page size.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

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
                    "invalid_limit",
                    format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let after =
        match params.get("cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(raw) => Some(raw.parse::<i64>().map_err(|_| {
                ApiError::bad_request("invalid_cursor", "cursor must be a value returned as next_cursor")
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
