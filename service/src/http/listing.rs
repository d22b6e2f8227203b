//! Keyset pagination, shared by the list endpoints: `limit` (1-500,
//! default 50) and an opaque `cursor` (today the last id seen).

use std::collections::HashMap;

use super::error::ApiError;
use crate::store::{Resource, Resources};

/// Default and largest page size.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// One page of resources, and the cursor of the next if there is one.
pub(super) struct Page<R> {
    pub items: Vec<R>,
    pub next_cursor: Option<String>,
}

/// The page of `organization_id`'s resources (under `parent`) that the
/// `limit` and `cursor` query parameters ask for.
pub(super) async fn page<R: Resource>(
    resources: &dyn Resources<R>,
    params: &HashMap<String, String>,
    organization_id: i64,
    parent: Option<i64>,
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
    // One more than asked tells whether there is a next page.
    let mut items = resources.list(organization_id, parent, after, limit + 1).await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|r| r.id().to_string())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}
